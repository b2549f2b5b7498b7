"""Report rendering: golden text table, HTML escaping / self-containment, SVG plots."""

from __future__ import annotations

import base64
import copy
import random
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from reports.html import render_report, write_report
from reports.plots import latency_distribution_svg
from reports.tables import fmt_bytes, fmt_pct, fmt_seconds, format_summary, rich_summary

XSS = "<script>alert(1)</script>"
TAG_VALUE = 'rack "7" & <top>'
CHROMIUM = Path("/usr/bin/chromium")


def _samples(seed: int, median_s: float, n: int = 2000) -> list[float]:
    rng = random.Random(seed)
    return [median_s * rng.lognormvariate(0.0, 0.15) for _ in range(n)]


def _latency(p50: float, n: int) -> dict[str, float]:
    return {
        "p50": p50,
        "p90": p50 * 1.2,
        "p95": p50 * 1.3,
        "p99": p50 * 1.6,
        "mean": p50 * 1.05,
        "min": p50 * 0.8,
        "max": p50 * 3,
        "std": p50 * 0.1,
        "cv": 0.1,
        "n": n,
        "throughput": 1 / p50,
        "ci_low": p50 * 0.98,
        "ci_high": p50 * 1.02,
    }


def _result(device: str, variant: str, fmt: str, runtime: str, **over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "device": device,
        "variant": variant,
        "model": "digits_cnn",
        "format": fmt,
        "runtime": runtime,
        "threads": 1,
        "setting": f"{runtime} t=1",
        "status": "done",
        "error": None,
        "file_size_bytes": 40421,
        "accuracy": 0.955,
        "accuracy_n": 360,
        "latency_s": None,
        "init_s": 0.012,
        "first_inference_s": 0.0004,
        "peak_rss_bytes": 123456789,
        "rss_after_load_bytes": 120000000,
        "samples_s": [],
        "estimated": [],
    }
    base.update(over)
    return base


def make_data() -> dict[str, Any]:
    return {
        "run": {
            "id": "20261129-213000-ab12",
            "suite": "digits",
            "status": "finished",
            "created_at": "2026-11-29T21:30:00+00:00",
            "edgebench_version": "0.1.0",
            "commit": "abc1234",
            "repetitions": 5,
        },
        "devices": [
            {
                "name": "local",
                "transport": "local",
                "address": "",
                "tags": {"site": "desk"},
                "facts": {
                    "os": "Linux",
                    "os_release": "Debian GNU/Linux 12",
                    "kernel": "6.1.0",
                    "arch": "x86_64",
                    "cpu_model": "AMD EPYC",
                    "cpu_cores": 2,
                    "memory_total_bytes": 25000000000,
                    "python": "3.11.7",
                    "runtimes": {"onnxruntime": "1.32.0", "ai_edge_litert": "2.3.0"},
                },
            },
            {
                # Emulated board with sparse facts: missing keys must render as "-".
                "name": "qemu-arm",
                "transport": "ssh",
                "address": "10.0.0.7",
                "tags": {"note": TAG_VALUE},
                "facts": {"os": "Linux", "arch": "aarch64", "runtimes": {"onnxruntime": "1.32.0"}},
            },
        ],
        "results": [
            _result(
                "local",
                "fp32-onnx",
                "onnx",
                "onnxruntime",
                latency_s=_latency(0.000123, 1234),
                samples_s=_samples(1, 0.000123),
            ),
            _result(
                "local",
                XSS,
                "tflite",
                "ai_edge_litert",
                file_size_bytes=11234,
                accuracy=0.9512,
                latency_s=_latency(0.001234, 987),
                samples_s=_samples(2, 0.001234),
                peak_rss_bytes=98765432,
            ),
            _result(
                "local",
                "int8-onnx",
                "onnx",
                "onnxruntime",
                status="failed",
                error='AgentError: session init failed:\n  bad <model> & "quotes"',
                accuracy=None,
                accuracy_n=None,
                init_s=None,
                first_inference_s=None,
                peak_rss_bytes=None,
            ),
            _result(
                "qemu-arm",
                "fp32-onnx",
                "onnx",
                "onnxruntime",
                latency_s=_latency(1.234, 40),
                samples_s=_samples(3, 1.234, 40),
                estimated=["latency_s", "peak_rss_bytes"],
            ),
            _result(
                "qemu-arm",
                "int8-tflite",
                "tflite",
                "ai_edge_litert",
                file_size_bytes=900,
                accuracy=None,
                accuracy_n=None,
                latency_s=_latency(0.0456, 200),
                samples_s=_samples(4, 0.0456, 200),
                peak_rss_bytes=2048,
            ),
        ],
    }


GOLDEN = """\
run 20261129-213000-ab12  suite digits  status finished

Device local (local): Linux x86_64, AMD EPYC, 2 cores
Variant                    Runtime                 Size  Accuracy      p50      p90      p99   Peak mem     n
-------------------------  ------------------  --------  --------  -------  -------  -------  ---------  ----
fp32-onnx                  onnxruntime t=1     39.5 KiB     95.5%   123 µs   148 µs   197 µs  117.7 MiB  1234
<script>alert(1)</script>  ai_edge_litert t=1  11.0 KiB     95.1%  1.23 ms  1.48 ms  1.97 ms   94.2 MiB   987
int8-onnx                  onnxruntime t=1     FAILED: AgentError: session init failed: bad <model> & "quotes"
percentiles: nearest-rank; latency = median across 5 repetitions

Device qemu-arm (ssh): Linux aarch64
Variant      Runtime                 Size  Accuracy       p50       p90       p99    Peak mem    n
-----------  ------------------  --------  --------  --------  --------  --------  ----------  ---
fp32-onnx    onnxruntime t=1     39.5 KiB     95.5%   1.23 s*   1.48 s*   1.97 s*  117.7 MiB*   40
int8-tflite  ai_edge_litert t=1     900 B         -  45.6 ms   54.7 ms   73.0 ms     2.0 KiB   200
* estimated (no sensor / emulation)
percentiles: nearest-rank; latency = median across 5 repetitions
"""  # noqa: E501


def test_formatters() -> None:
    assert fmt_seconds(0.000123) == "123 µs"
    assert fmt_seconds(0.00123) == "1.23 ms"
    assert fmt_seconds(1.23) == "1.23 s"
    assert fmt_seconds(0.0012) == "1.20 ms"
    assert fmt_seconds(0.00099996) == "1.00 ms"  # rounding moves up a unit
    assert fmt_seconds(0.0000999) == "99.9 µs"
    assert fmt_seconds(None) == "-"
    assert fmt_bytes(40421) == "39.5 KiB"
    assert fmt_bytes(123456789) == "117.7 MiB"
    assert fmt_bytes(900) == "900 B"
    assert fmt_bytes(None) == "-"
    assert fmt_pct(0.955) == "95.5%"
    assert fmt_pct(None) == "-"


def test_text_table_golden() -> None:
    assert format_summary(make_data()) == GOLDEN


def test_rich_summary_treats_strings_as_text() -> None:
    data = make_data()
    # "[/]" would raise MarkupError if cells were parsed as rich markup.
    data["results"][0]["variant"] = "[bold]fp32[/] [/x]"
    tables = rich_summary(data)
    assert len(tables) == 2
    console = Console(record=True, width=200, color_system=None)
    for table in tables:
        console.print(table)
    text = console.export_text()
    assert "[bold]fp32[/] [/x]" in text
    assert "FAILED: AgentError" in text
    assert "* estimated (no sensor / emulation)" in text


def _data_uris(html: str) -> list[str]:
    return re.findall(r'src="(data:[^"]*)"', html)


def test_html_escapes_user_strings() -> None:
    html = render_report(make_data())
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "rack &#34;7&#34; &amp; &lt;top&gt;" in html
    assert "bad &lt;model&gt; &amp; &#34;quotes&#34;" in html


def test_html_is_self_contained() -> None:
    html = render_report(make_data())
    outside = re.sub(r'src="data:[^"]*"', 'src=""', html)
    assert "http://" not in outside and "https://" not in outside
    assert not re.search(r"[a-z][a-z0-9+.-]*://", outside, re.I)  # no URL of any scheme
    # Only data: URIs are loaded; no scripts, links or imports of any kind.
    assert re.findall(r'\b(?:src|href)="([^"]*)"', outside) == ["", ""]
    assert "<link" not in html and "@import" not in html and "url(" not in html


def test_html_plots_are_valid_svg() -> None:
    html = render_report(make_data())
    uris = _data_uris(html)
    assert len(uris) == 2  # one plot per device
    for uri in uris:
        prefix = "data:image/svg+xml;base64,"
        assert uri.startswith(prefix)
        root = ET.fromstring(base64.b64decode(uri[len(prefix) :]))
        assert root.tag == "{http://www.w3.org/2000/svg}svg"


def test_html_header_and_facts() -> None:
    html = render_report(make_data())
    for text in [
        "20261129-213000-ab12",
        "digits",
        "finished",
        "2026-11-29T21:30:00+00:00",
        "0.1.0",
        "abc1234",
        "Debian GNU/Linux 12",
        "AMD EPYC",
        "23.3 GiB",
        "3.11.7",
        "ai_edge_litert 2.3.0, onnxruntime 1.32.0",
        "ssh 10.0.0.7",
        "site=desk",
        "percentiles: nearest-rank; latency = median across 5 repetitions",
        "12.0 ms",
        "400 µs",  # init and first inference columns
    ]:
        assert text in html, text


def test_html_marks_estimated_figures() -> None:
    html = render_report(make_data())
    qemu = html[html.index("Device qemu-arm") :]
    marked = re.findall(
        r'<td class="estimated" title="estimated">([^<]*)<span class="est">\*', qemu
    )
    assert marked == ["1.23 s", "1.48 s", "1.97 s", "117.7 MiB"]
    assert "* estimated (no sensor / emulation)" in qemu
    local = html[: html.index("Device qemu-arm")]
    assert 'class="estimated"' not in local and "no sensor" not in local


def test_rendering_is_deterministic(tmp_path: Path) -> None:
    assert render_report(make_data()) == render_report(copy.deepcopy(make_data()))
    a = write_report(make_data(), tmp_path / "a").read_bytes()
    b = write_report(make_data(), tmp_path / "b").read_bytes()
    assert a == b


def test_write_report_creates_dir(tmp_path: Path) -> None:
    path = write_report(make_data(), tmp_path / "nested" / "out")
    assert path == tmp_path / "nested" / "out" / "index.html"
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_plot_skips_results_without_samples() -> None:
    results = [r for r in make_data()["results"] if r["device"] == "qemu-arm"]
    svg = latency_distribution_svg(results)
    assert svg is not None and svg == latency_distribution_svg(copy.deepcopy(results))
    ET.fromstring(svg)
    assert latency_distribution_svg([{**r, "samples_s": []} for r in results]) is None
    assert latency_distribution_svg([]) is None


def test_plot_draws_dollar_signs_literally() -> None:
    # parse_math is off: an odd "$" would otherwise make matplotlib's mathtext raise.
    result = make_data()["results"][0]
    svg = latency_distribution_svg([{**result, "variant": "cost$ $\\frac{"}])
    assert svg is not None


def test_reports_does_not_import_controller_packages() -> None:
    code = (
        "import sys, reports.html, reports.tables, reports.plots; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('harness', 'devices', 'runners')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.skipif(
    not CHROMIUM.exists(), reason="/usr/bin/chromium not installed (make installs it for CI)"
)
def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    path = write_report(make_data(), tmp_path / "report")
    cmd = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--dump-dom",
        path.as_uri(),
    ]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True).stdout
    for variant in [
        "fp32-onnx",
        "int8-onnx",
        "int8-tflite",
        "&lt;script&gt;alert(1)&lt;/script&gt;",
    ]:
        assert f'<td class="label">{variant}</td>' in dom, variant
    assert "<script" not in dom.lower()
    imgs = re.findall(r'<img src="data:image/svg\+xml;base64,[A-Za-z0-9+/=]+"', dom)
    assert len(imgs) == 2
