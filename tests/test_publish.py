"""`edgebench publish`: a static site of every run, each judged against the previous run of
its suite; unchanged pages are not rendered again; the index renders in headless Chromium."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from reports.site import render_index
from tests.browser import CHROMIUM, dump_dom
from tests.browser import MISSING as CHROMIUM_MISSING
from tests.conftest import Runner, write_suite


def test_index_escapes_and_links() -> None:
    evil = "<script>alert(1)</script>"
    html = render_index(
        [
            {
                "id": "20261130-000000-abcd",
                "suite": evil,
                "created": "now",
                "status": "finished",
                "jobs": 2,
                "done": 1,
                "failed": 1,
                "devices": [evil],
                "previous": "20261129-000000-0000",
                "verdicts": {"regressions": 2, "improvements": 0},
            },
            {"id": "20261129-000000-0000", "suite": evil, "previous": None, "verdicts": None},
        ],
        generated="today",
    )
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert 'href="runs/20261130-000000-abcd/index.html"' in html
    assert '<td class="worse">2 regressions, 0 improvements' in html
    assert "first run of its suite" in html


def _suite(tmp_path: Path) -> Path:
    return write_suite(
        tmp_path / "suite.yaml",
        variants="\n  - name: fp32-onnx\n    recipe: [export_onnx]\n",
        settings="  - runtime: onnxruntime\n",
        measure="{warmup_runs: 1, min_runs: 20, min_duration_s: 0.0, repetitions: 2}",
    )


def test_publish_two_runs_then_nothing_to_redo(eb: Runner, tmp_path: Path) -> None:
    suite = _suite(tmp_path)
    eb("device", "add", "local")
    eb("run", str(suite), "--no-report")
    eb("run", str(suite), "--no-report")
    runs = sorted(json.loads(eb("runs", "list", "--json").stdout), key=lambda r: r["created_at"])
    first, second = runs[0]["id"], runs[1]["id"]
    site = tmp_path / "site"

    out = eb("publish", "-o", str(site)).stdout
    assert "2 run page(s) rendered, 0 up to date" in out
    index = (site / "index.html").read_text()
    for run_id in (first, second):
        assert f'href="runs/{run_id}/index.html"' in index
        assert (site / "runs" / run_id / "index.html").exists()
    assert "first run of its suite" in index and f"vs {first}" in index
    # The newer run's page carries the comparison with the older one.
    page = (site / "runs" / second / "index.html").read_text()
    assert f"Against run {first}" in page
    assert "Against run" not in (site / "runs" / first / "index.html").read_text()

    # Nothing changed: nothing is rendered again, and the pages are untouched.
    mtime = (site / "runs" / second / "index.html").stat().st_mtime_ns
    again = eb("publish", "-o", str(site)).stdout
    assert "0 run page(s) rendered, 2 up to date" in again
    assert (site / "runs" / second / "index.html").stat().st_mtime_ns == mtime

    # A third run: its page is new, and only it is rendered.
    eb("run", str(suite), "--no-report")
    third = eb("publish", "-o", str(site)).stdout
    assert "1 run page(s) rendered, 2 up to date" in third

    # A page deleted by hand comes back.
    (site / "runs" / first / "index.html").unlink()
    assert "1 run page(s) rendered" in eb("publish", "-o", str(site)).stdout

    bad = eb("publish", "-o", str(site / "index.html"), check=False)
    assert bad.returncode == 2 and "is not a folder" in bad.stderr

    if not CHROMIUM.exists():
        pytest.skip(CHROMIUM_MISSING)
    dom = dump_dom(site / "index.html", tmp_path / "profile")
    links = re.findall(r'<a href="(runs/[^"]+)">', dom)
    assert len(links) == 4  # 3 runs + the latest of the one suite
    assert all((site / link).exists() for link in links)
