"""The run report's case-study table, published figures, run-sequence / ECDF / memory /
per-layer plots, variant x device matrices, failures and raw-data files."""

from __future__ import annotations

import base64
import csv
import html as html_lib
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.results import report_data
from harness.store import Metric, Store
from reports.html import render_report, write_report
from reports.plots import (
    SEQUENCE_MAX_POINTS,
    latency_distribution_svg,
    layer_time_svg,
    resources_svg,
    run_sequence_svg,
    sequence_points,
)
from reports.tables import (
    CASE_STUDY_COLUMNS,
    case_study_rows,
    deployed_size,
    device_matrix,
    fmt_bytes,
    fmt_joules,
    fmt_seconds,
    fmt_share,
    published_rows,
)
from runners.records import (
    DeviceHealth,
    DeviceInfo,
    JobMeasurement,
    JobResult,
    LayerRow,
    Memory,
    Provenance,
    PublishedFigures,
    RunInfo,
    RunReport,
)
from suites.errors import SuiteError
from suites.recipes import build_key
from suites.schema import bundled_suite, load_suite
from tests.test_reports import XSS, _latency, _result, _samples, make_data

SVG_NS = "{http://www.w3.org/2000/svg}"
CASE_SUITE = bundled_suite("mobilenet_case")


def _svg_root(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def _group_ids(svg: str, prefix: str) -> list[str]:
    """ids of the SVG groups whose id starts with prefix, in document order."""
    return [
        g.get("id", "")
        for g in _svg_root(svg).iter(f"{SVG_NS}g")
        if g.get("id", "").startswith(prefix)
    ]


def _path_points(svg: str, gid: str) -> int:
    """Vertices of the path drawn inside group gid (one matplotlib line)."""
    group = next(g for g in _svg_root(svg).iter(f"{SVG_NS}g") if g.get("id") == gid)
    path = next(group.iter(f"{SVG_NS}path"))
    return len(re.findall(r"[ML]", path.get("d", "")))


def _section(html: str, start: str, end: str | None = None) -> str:
    i = html.index(start)
    return html[i : html.index(end, i) if end else len(html)]


def _cells(row_html: str) -> list[str]:
    """Text of a row's cells: the estimated marker joined to its figure ("52%*"), other
    markup a space."""

    def text(cell: str) -> str:
        cell = cell.replace('<span class="est">*</span>', "*")
        return " ".join(html_lib.unescape(re.sub(r"<[^>]+>", " ", cell)).split())

    return [text(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row_html, re.S)]


def _rows(table_html: str) -> list[list[str]]:
    body = table_html[table_html.index("<tbody>") :]
    return [_cells(r) for r in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)]


# --------------------------------------------------------------------------- case study


def _case_results() -> list[JobResult]:
    """MobileNetV3-Small as the case-study suite builds it, on one phone, with the
    suite's published figures and energy from the phone's sensor (one estimated)."""
    suite = load_suite(CASE_SUITE)
    refs = {
        v.name: PublishedFigures(**v.reference.model_dump()) for v in suite.variants if v.reference
    }
    common: dict[str, Any] = {"model": "mobilenet_v3_small", "accuracy_meaningful": False}
    figures = {
        # variant: file size, zstd size, p50, energy per inference
        "original": (10_200_000, 9_450_000, 0.0180, 4.0e-3),
        "pruned50": (10_200_000, 5_300_000, 0.0176, 3.9e-3),
        "int8": (2_700_000, 2_450_000, 0.0101, 2.1e-3),
        "int8-pruned50": (2_700_000, 1_450_000, 0.0099, 2.0e-3),
    }
    out = []
    for i, (name, (size, zstd, p50, energy)) in enumerate(figures.items()):
        out.append(
            _result(
                "pixel",
                name,
                "tflite",
                "litert",
                **common,
                job_id=i,
                baseline=name == "original",
                file_size_bytes=size,
                zstd_size_bytes=zstd,
                latency_s=_latency(p50, 300),
                samples_s=_samples(i, p50, 300),
                energy_per_inference_j=energy,
                estimated=["energy_per_inference_j"] if name == "int8" else [],
                reference=refs[name],
            )
        )
    return out


def _case_data(extra: list[JobResult] | None = None) -> RunReport:
    return RunReport(
        run=RunInfo(
            id="case-run",
            suite="mobilenet_case",
            status="finished",
            repetitions=5,
            baseline_variant="original",
        ),
        devices=[DeviceInfo(name="pixel", transport="adb")],
        results=[*_case_results(), *(extra or [])],
    )


def test_bundled_case_suite_declares_the_published_figures() -> None:
    suite = load_suite(CASE_SUITE)
    assert [v.name for v in suite.variants] == ["original", "pruned50", "int8", "int8-pruned50"]
    assert suite.baseline_variant == "original"
    recipes = [[s.name for s in v.recipe] for v in suite.variants]
    assert recipes == [
        ["export_tflite"],
        ["prune_unstructured", "export_tflite"],
        ["export_tflite", "tflite_int8_dynamic"],
        ["prune_unstructured", "export_tflite", "tflite_int8_dynamic"],
    ]
    refs = [v.reference for v in suite.variants]
    assert all(r is not None and "Pixel 4" in r.source for r in refs)
    assert [r.battery_impact for r in refs if r] == [1.0, 0.81, 0.55, 0.38]
    assert [fmt_bytes(r.size_bytes) for r in refs if r] == [
        "9.7 MiB",
        "4.9 MiB",
        "2.5 MiB",
        "1.3 MiB",
    ]


def test_reference_section_is_validated_and_leaves_build_keys_alone(tmp_path: Path) -> None:
    text = CASE_SUITE.read_text()
    typo = tmp_path / "typo.yaml"
    typo.write_text(text.replace("battery_impact: 0.81", "battery_impct: 0.81", 1))
    with pytest.raises(SuiteError, match=r"variants\.1\.reference\.battery_impct") as info:
        load_suite(typo)
    assert "typo.yaml:" in str(info.value)
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("accuracy: 0.678", "accuracy: 67.8", 1))
    with pytest.raises(SuiteError, match=r"variants\.1\.reference\.accuracy"):
        load_suite(bad)
    # Published figures describe a variant; they must not rebuild it.
    suite = load_suite(CASE_SUITE)
    variant = suite.variants[1]
    bare = variant.model_copy(update={"reference": None})
    key = build_key(suite.models[0], variant, CASE_SUITE.parent)
    assert key == build_key(suite.models[0], bare, CASE_SUITE.parent)


def test_case_study_table_has_the_case_study_columns_per_device() -> None:
    html = render_report(_case_data())
    table = _section(html, "<h3>Case-study table</h3>", "</table>")
    headers = re.findall(r"<th[^>]*>([^<]*)</th>", table)
    assert headers == [header for _, header in CASE_STUDY_COLUMNS]
    assert headers == [
        "Technique",
        "Model size (file / compressed)",
        "Accuracy (retention)",
        "Latency p50",
        "Battery impact",
    ]
    rows = {r[0].split()[0]: r for r in _rows(table)}
    results = {r.variant: r for r in _case_results()}
    base = results["original"]
    for name, r in results.items():
        size, accuracy, latency, battery = rows[name][1:]
        assert size == f"{fmt_bytes(r.file_size_bytes)} / {fmt_bytes(r.zstd_size_bytes)}"
        assert accuracy == "not meaningful"
        assert latency == fmt_seconds(r.latency_s.p50 if r.latency_s else None)
        share = (
            "100%"
            if name == "original"
            else fmt_share((r.energy_per_inference_j or 0) / (base.energy_per_inference_j or 1))
        )
        star = "*" if name == "int8" else ""
        assert battery.startswith(f"{share}{star} {fmt_joules(r.energy_per_inference_j)}{star}")


def test_case_study_rows_say_why_a_variant_is_not_deployable() -> None:
    failed = [
        _result(
            "pixel",
            "int8-gpu",
            "tflite",
            "litert",
            status="failed",
            error="AgentError: litert cannot load <model>: unsupported op",
            error_kind="load_failed",
        ),
        _result(
            "pixel",
            "fp32-mcu",
            "tflite",
            "tflm",
            not_deployable="does not fit flash (2.1 MiB > 1.0 MiB)",
        ),
        _result(
            "pixel",
            "broken",
            "tflite",
            "litert",
            status="failed",
            error="TransportTimeout: no reply in 30 s",
            error_kind=None,
        ),
    ]
    rows = case_study_rows([*_case_results(), *failed], "original")
    messages = {r["variant"]: r["message"] for r in rows}
    assert messages["int8-gpu"] == (
        "not deployable: load failed: AgentError: litert cannot load <model>: unsupported op"
    )
    assert messages["fp32-mcu"] == "not deployable: does not fit flash (2.1 MiB > 1.0 MiB)"
    assert messages["broken"] == "failed: TransportTimeout: no reply in 30 s"
    html = render_report(_case_data(failed))
    table = _section(html, "<h3>Case-study table</h3>", "</table>")
    assert "not deployable: does not fit flash (2.1 MiB &gt; 1.0 MiB)" in table
    assert "litert cannot load &lt;model&gt;: unsupported op" in table


def test_published_ratios_stand_beside_the_measured_ones() -> None:
    results = _case_results()
    base = results[0]
    assert base.reference is not None
    html = render_report(_case_data())
    table = _section(html, "<h3>Against the published figures</h3>", "</table>")
    rows = {r[0].split()[0]: r for r in _rows(table)}
    for r in results:
        ref = r.reference
        assert ref is not None
        size_m, size_p, lat_m, lat_p, bat_m, bat_p, acc_m, acc_p = rows[r.variant][1:]
        measured_size = (deployed_size(r) or 0) / (deployed_size(base) or 1)
        assert size_m == fmt_share(measured_size)
        published_size = (ref.size_bytes or 0) / (base.reference.size_bytes or 1)
        assert size_p == f"{fmt_share(published_size)} {fmt_bytes(ref.size_bytes)}"
        p50 = (r.latency_s.p50 or 0) if r.latency_s else 0
        base_p50 = (base.latency_s.p50 or 1) if base.latency_s else 1
        assert lat_m == fmt_share(p50 / base_p50)
        published_latency = (ref.latency_s or 0) / (base.reference.latency_s or 1)
        assert lat_p == f"{fmt_share(published_latency)} {fmt_seconds(ref.latency_s)}"
        energy = (r.energy_per_inference_j or 0) / (base.energy_per_inference_j or 1)
        # The int8 energy is estimated, so is its measured share.
        assert bat_m == fmt_share(energy) + ("*" if r.variant == "int8" else "")
        assert bat_p == fmt_share(ref.battery_impact)
        assert acc_m == "not meaningful"
        assert acc_p == f"{(ref.accuracy or 0) * 100:.1f}%"
    assert "MobileNetV3-Small compression case study, measured on a Pixel 4" in html
    # Without published figures there is no such table.
    plain = _case_data().replace(results=[r.replace(reference=None) for r in _case_results()])
    assert published_rows(plain.results, "original") is None
    assert "Against the published figures" not in render_report(plain)


# --------------------------------------------------------------------------- plots


def test_run_sequence_plot_has_one_series_per_variant_with_window_boundaries() -> None:
    counts = [200, 150, 220]  # fewer than SEQUENCE_MAX_POINTS in all
    results = [
        r.replace(
            samples_s=_samples(i, 0.01, sum(counts)),
            window_sample_counts=counts,
            window_p50_s=[0.0101, 0.0100, 0.0102],
            warmup_count=20,
            warmup_time_s=0.25,
        )
        for i, r in enumerate(_case_results())
    ]
    results[2] = results[2].replace(samples_s=[])  # nothing to draw for this one
    results[3] = results[3].replace(health_flags=["throttled (soft temp limit)"])
    svg = run_sequence_svg(results)
    assert svg is not None
    assert _group_ids(svg, "sequence-") == ["sequence-0", "sequence-1", "sequence-2"]
    assert _group_ids(svg, "window-p50-") == ["window-p50-0", "window-p50-1", "window-p50-2"]
    # Every sample drawn when there are fewer than the cap.
    assert _path_points(svg, "sequence-0") == sum(counts)
    assert run_sequence_svg([r.replace(samples_s=[]) for r in results]) is None


def test_run_sequence_downsampling_keeps_spikes_and_bounds_the_points() -> None:
    rng = np.random.default_rng(3)
    values = rng.lognormal(-7, 0.05, 500_000)
    spike_at = int(rng.integers(0, values.size))
    values[spike_at] = values.max() * 8  # one throttling spike among half a million
    dip_at = int(rng.integers(0, values.size))
    values[dip_at] = values.min() / 4
    xs, ys = sequence_points(values)
    assert len(xs) == len(ys) <= SEQUENCE_MAX_POINTS
    assert ys.max() == values.max() and ys.min() == values.min()
    # The spike is drawn where it happened (within one bucket).
    bucket = values.size / (SEQUENCE_MAX_POINTS // 2)
    assert abs(xs[int(np.argmax(ys))] - spike_at) <= bucket
    # The SVG does not grow with the run: 500k samples draw as many points as 5k.
    long = _case_results()[0].replace(samples_s=list(values))
    short = long.replace(samples_s=list(values[:5000]))
    long_svg, short_svg = run_sequence_svg([long]), run_sequence_svg([short])
    assert long_svg is not None and short_svg is not None
    assert _path_points(long_svg, "sequence-0") == _path_points(short_svg, "sequence-0")


def test_latency_ecdf_beside_the_boxes() -> None:
    results = _case_results()
    svg = latency_distribution_svg(results)
    assert svg is not None
    assert _group_ids(svg, "ecdf-") == [f"ecdf-{i}" for i in range(len(results))]
    fewer = latency_distribution_svg([results[0], results[1].replace(samples_s=[])])
    assert fewer is not None and _group_ids(fewer, "ecdf-") == ["ecdf-0"]


def _mcu(variant: str, ram: float, flash: float, **over: Any) -> JobResult:
    return _result(
        "nucleo",
        variant,
        "tflite",
        "tflm",
        model="kws",
        peak_rss_bytes=None,
        static_ram_bytes=ram,
        flash_bytes=flash,
        ram_limit_bytes=320 * 1024,
        flash_limit_bytes=1024 * 1024,
        emulated=True,
        estimated=["latency_s"],
        **over,
    )


def test_mcu_flash_and_ram_are_drawn_against_the_board_limits() -> None:
    results = [
        _mcu("int8", 96 * 1024, 300 * 1024),
        _mcu("fp32", 200 * 1024, 1300 * 1024, not_deployable="does not fit flash"),
    ]
    svg = resources_svg(results)
    assert svg is not None
    assert _group_ids(svg, "bars-") == [
        "bars-static_ram_bytes-0",
        "bars-static_ram_bytes-1",
        "bars-flash_bytes-0",
        "bars-flash_bytes-1",
    ]
    assert _group_ids(svg, "limit-") == ["limit-static_ram_bytes", "limit-flash_bytes"]

    def fill(gid: str) -> str:
        group = next(g for g in _svg_root(svg).iter(f"{SVG_NS}g") if g.get("id") == gid)
        found = re.search(
            r"fill:\s*(#[0-9a-f]{6})", next(group.iter(f"{SVG_NS}path")).get("style", "")
        )
        assert found is not None
        return found.group(1)

    # The variant past the board's flash is red, the one that fits is not; both fit RAM.
    assert [fill("bars-flash_bytes-0"), fill("bars-flash_bytes-1")] == ["#5b8def", "#d92d20"]
    assert fill("bars-static_ram_bytes-1") == "#5b8def"
    # A desktop job has peak memory and energy, no board limits.
    desktop = resources_svg(_case_results())
    assert desktop is not None
    assert sorted({g.rsplit("-", 1)[0] for g in _group_ids(desktop, "bars-")}) == [
        "bars-energy_per_inference_j",
        "bars-peak_rss_bytes",
    ]
    assert _group_ids(desktop, "limit-") == []


def _layers(shares: dict[str, float], total_s: float) -> list[LayerRow]:
    return [
        LayerRow(
            name=f"{i} {op}", op=op.split(":")[0], time_s=share * total_s, share=share, count=1
        )
        for i, (op, share) in enumerate(shares.items())
    ]


def test_per_layer_table_and_where_the_time_goes() -> None:
    many = {f"CONV_2D:{i}": 0.6 / 20 for i in range(20)}
    many |= {"DEPTHWISE_CONV_2D:a": 0.3, "FULLY_CONNECTED:a": 0.1}
    fast = {"CONV_2D:0": 0.5, "MEAN:0": 0.5}
    results = _case_results()
    results[0] = results[0].replace(layers=_layers(many, 0.018))
    results[2] = results[2].replace(layers=_layers(fast, 0.010))
    svg = layer_time_svg(results)
    assert svg is not None
    # One bar per variant with a profile, one segment per operator type of the two.
    segments = _group_ids(svg, "layer-op-")
    assert segments == [f"layer-op-{k}-{row}" for k in range(4) for row in range(2)]
    assert layer_time_svg(_case_results()) is None

    html = render_report(_case_data().replace(results=results))
    table = _section(html, "<h3>Per-layer profile: original</h3>", "</table>")
    rows = _rows(table)
    assert len(rows) == 15
    assert rows[0][1:4] == ["20 DEPTHWISE_CONV_2D:a", "DEPTHWISE_CONV_2D", fmt_seconds(0.3 * 0.018)]
    assert rows[0][4] == "30.0%"
    assert "7 more layers, 21.0% of the time." in html
    assert "<h3>Per-layer profile: int8</h3>" in html
    assert 'alt="Where the time goes on pixel"' in html


def test_emulated_layer_times_are_marked_estimated() -> None:
    result = _mcu("int8", 96 * 1024, 300 * 1024).replace(
        layers=[
            LayerRow(name="0 CONV_2D", op="CONV_2D", time_s=1e-3, share=0.8, instructions=80_000),
            LayerRow(name="1 SOFTMAX", op="SOFTMAX", time_s=2.5e-4, share=0.2, instructions=20_000),
        ],
    )
    data = RunReport(
        run=RunInfo(id="r", suite="s", status="finished"),
        devices=[DeviceInfo(name="nucleo")],
        results=[result],
    )
    html = render_report(data)
    table = _section(html, "<h3>Per-layer profile: int8</h3>", "</table>")
    assert '<td class="estimated" title="estimated">1.00 ms<span class="est">*</span>' in table
    assert "<th>Instructions</th>" in table and "80.0k" in table


# --------------------------------------------------------------------------- across devices


def test_variant_by_device_matrix_marks_the_best_per_device() -> None:
    data = make_data()
    matrix = device_matrix(data, "p50")
    assert matrix is not None and matrix["devices"] == ["local", "qemu-arm"]
    labels = [r["label"] for r in matrix["rows"]]
    assert labels[:2] == ["fp32-onnx", "int8-onnx"] and XSS in labels
    by_label = {r["label"]: r["cells"] for r in matrix["rows"]}
    # local's fastest p50 is distilled-onnx; qemu-arm's the XSS-named variant.
    assert [c["best"] for c in by_label["distilled-onnx"]] == [True, False]
    assert by_label[XSS][1]["best"] and by_label[XSS][0]["text"] == "-"
    # qemu-arm's fp32 latency is estimated (emulation).
    assert by_label["fp32-onnx"][1] == {"text": "1.23 s", "best": False, "estimated": True}
    assert sum(c["best"] for cells in by_label.values() for c in cells) == 2
    accuracy = device_matrix(data, "accuracy")
    assert accuracy is not None
    best = [r["label"] for r in accuracy["rows"] for c in r["cells"] if c["best"]]
    assert best == ["fp32-onnx", "fp32-onnx"]  # highest is best
    # One device: no matrix.
    assert device_matrix(_case_data(), "p50") is None

    html = render_report(data)
    across = _section(html, "<h2>Across devices</h2>", "</section>")
    assert [t for t in re.findall(r"<h3>([^<]*)<", across)] == [
        "Latency p50 ",
        "Energy / inference ",
        "Accuracy ",
    ]
    p50 = _section(across, 'class="results matrix p50"', "</table>")
    assert '<td class="best">6.10 µs</td>' in p50
    assert '1.23 s<span class="est">*</span>' in p50
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in across and "<script>" not in across


# --------------------------------------------------------------------------- failures, files


def test_failures_show_error_and_log_excerpt() -> None:
    data = make_data()
    failed = data.results[6]
    assert failed.status == "failed"
    log = [
        "2026-11-29 21:31:00 UTC warning: local/int8-tflite: attempt 1 failed: <boom>",
        "2026-11-29 21:31:05 UTC error: local/int8-tflite: attempt 2 failed: <boom>",
    ]
    results = list(data.results)
    results[6] = failed.replace(error_kind="load_failed", attempts=2, log_excerpt=log)
    html = render_report(data.replace(results=results))
    failures = _section(html, "<h2>Failures (1)</h2>", "</section>")
    assert "int8-tflite on local (litert t=1)" in failures
    assert '<span class="badge">load_failed</span>' in failures
    assert "after 2 attempts" in failures
    # The error whole, line breaks kept, escaped.
    assert (
        '<pre class="error">AgentError: session init failed:\n  bad &lt;model&gt; &amp; '
        "&#34;quotes&#34;</pre>"
    ) in failures
    assert "attempt 1 failed: &lt;boom&gt;" in failures and "attempt 2 failed" in failures
    # No failed job, no section.
    done = data.replace(results=[r for r in data.results if r.status != "failed"])
    assert "Failures (" not in render_report(done)


def test_write_report_writes_and_links_the_raw_data(tmp_path: Path) -> None:
    data = make_data()
    page = write_report(data, tmp_path / "out")
    html = page.read_text(encoding="utf-8")
    assert '<a href="jobs.json">jobs.json</a>' in html and '<a href="jobs.csv">jobs.csv</a>' in html
    doc = json.loads((tmp_path / "out" / "jobs.json").read_text(encoding="utf-8"))
    assert doc["run"]["id"] == data.run.id
    assert [j["variant"] for j in doc["jobs"]] == [r.variant for r in data.results]
    failed = next(j for j in doc["jobs"] if j["status"] == "failed")
    assert failed["error"].startswith("AgentError: session init failed")
    with (tmp_path / "out" / "jobs.csv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(data.results)
    assert rows[0]["variant"] == "fp32-onnx" and rows[0]["latency_p50_s"] == str(15.3e-6)
    estimated = [r["estimated"] for r in rows if r["device"] == "qemu-arm"]
    assert estimated[0] == "latency_s;peak_rss_bytes"


def test_new_tables_and_plots_mark_estimated_figures() -> None:
    results = _case_results()
    results[1] = results[1].replace(estimated=["latency_s"])
    html = render_report(_case_data().replace(results=results))
    table = _section(html, "<h3>Case-study table</h3>", "</table>")
    assert f'{fmt_seconds(0.0176)}<span class="est">*</span>' in table
    assert "* estimated (no sensor / emulation)" in html
    sequence = run_sequence_svg(results)
    distribution = latency_distribution_svg(results)
    assert sequence is not None and distribution is not None
    # The labels are drawn as paths; the estimated variant's label carries the "*", and a
    # "*" title appears: compare against the same plot without the estimate.
    plain = [r.replace(estimated=[]) for r in results]
    assert run_sequence_svg(plain) != sequence
    assert latency_distribution_svg(plain) != distribution


# --------------------------------------------------------------------------- from the store


def test_report_data_carries_layers_windows_failures_and_references(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'r.db'}")
    suite = load_suite(CASE_SUITE).model_dump(mode="json")
    planned = [
        {
            "key": f"pixel/{v}",
            "device": "pixel",
            "model": "mobilenet_v3_small",
            "variant": v,
            "runtime": "litert",
            "setting": {"runtime": "litert", "threads": 1},
            "artifact_sha256": None,
        }
        for v in ("original", "int8")
    ]
    run_id = store.create_run(
        suite_name="mobilenet_case",
        suite_path=str(CASE_SUITE),
        suite=suite,
        version="0",
        commit=None,
        host="h",
        planned_jobs=planned,
    )
    done, failed = store.jobs_for_run(run_id)
    layers = [LayerRow(name="0 CONV_2D", op="CONV_2D", time_s=1e-3, share=1.0, count=1)]
    store.finish_job(
        done["id"],
        measurement=JobMeasurement(
            runner="agent",
            provenance=Provenance(runner="agent"),
            windows=[[0.010, 0.011], [0.012, 0.013, 0.014]],
            warmup_count=10,
            warmup_time_s=0.2,
            layers=layers,
            memory=Memory(peak_rss_bytes=1e8),
            health=DeviceHealth(flags=["charging"]),
        ),
        summary=None,
        job_metrics=[Metric("latency_p50", 0.012, "s")],
    )
    store.mark_job_started(failed["id"])
    store.fail_job(
        failed["id"],
        {"type": "AgentError", "message": "cannot load", "kind": "load_failed", "attempt": 1},
        final=True,
    )
    store.log_event(
        run_id,
        "pixel/int8: attempt 1 failed: cannot load\nline two",
        level="error",
        job_id=failed["id"],
    )
    store.log_event(run_id, "another job's line", level="info", job_id=done["id"])

    data = report_data(store, run_id)
    first, second = data.results
    assert first.layers == layers
    assert first.window_sample_counts == [2, 3] and len(first.samples_s) == 5
    assert (first.warmup_count, first.warmup_time_s) == (10, 0.2)
    assert first.reference is not None and first.reference.latency_s == 0.026
    assert first.log_excerpt == []  # only failed jobs carry their log
    assert second.status == "failed" and second.error == "AgentError: cannot load"
    assert second.error_kind == "load_failed" and second.attempts == 1
    assert second.reference is not None and second.reference.battery_impact == 0.55
    assert len(second.log_excerpt) == 2
    assert second.log_excerpt[0].endswith("error: pixel/int8: attempt 1 failed: cannot load")
    assert second.log_excerpt[1] == "line two"
    # Without samples (compare, export) the window counts are left out too.
    assert report_data(store, run_id, samples=False).results[0].window_sample_counts == []
    html = render_report(data)
    assert "Against the published figures" in html
    assert "not deployable: load failed: AgentError: cannot load" in html


def test_svg_plots_are_inline_and_parse() -> None:
    html = render_report(_case_data())
    uris = re.findall(r'src="(data:image/svg\+xml;base64,[^"]*)"', html)
    alts = re.findall(r'<img src="[^"]*" alt="([^"]*)"', html)
    assert alts == [
        "File size vs p90 latency on pixel",
        "Latency distribution on pixel",
        "Latency over the run on pixel",
        "Memory and energy on pixel",
    ]
    for uri in uris:
        _svg_root(base64.b64decode(uri.split(",", 1)[1]).decode("utf-8"))
