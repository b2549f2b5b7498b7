"""`edgebench compare`: pairing, verdicts and tolerances on synthetic runs with known
answers, rendering (escaping included), and the CLI on two real runs as a CI gate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.compare import compare_reports, compare_results, parse_thresholds
from harness.errors import UsageError
from reports.compare import format_markdown, format_text, md_escape
from runners.records import JobResult, LatencyStats, RunInfo
from tests.conftest import Runner, write_suite


def _row(variant: str = "int8-onnx", **over: Any) -> JobResult:
    """One finished job; ``over`` replaces any field (a typo is a TypeError)."""
    base: dict[str, Any] = {
        "job_id": 0,
        "device": "local",
        "model": "digits_cnn",
        "variant": variant,
        "runtime": "onnxruntime",
        "setting": "onnxruntime t=1",
        "status": "done",
        "error": None,
        "latency_s": LatencyStats(p50=10e-6, p90=11e-6, ci_low=9.9e-6, ci_high=10.1e-6),
        "peak_rss_bytes": 80_000_000,
        "file_size_bytes": 46_000,
        "accuracy": 0.972,
        "energy_per_inference_j": None,
        "estimated": [],
    }
    base.update(over)
    return JobResult(**base)


def _latency(p50: float, half_ci: float, p90: float | None = None) -> LatencyStats:
    return LatencyStats(p50=p50, p90=p90 or p50 * 1.1, ci_low=p50 - half_ci, ci_high=p50 + half_ci)


def _verdicts(a: JobResult, b: JobResult, **thresholds: float) -> dict[str, str]:
    (row,) = compare_results([a], [b], thresholds)["rows"]
    return {m["metric"]: m["verdict"] for m in row["metrics"]}


def test_identical_runs_have_nothing_to_say() -> None:
    out = compare_results([_row()], [_row()])
    assert out["regressions"] == 0 and out["improvements"] == 0
    assert set(_verdicts(_row(), _row()).values()) == {"unchanged", "n/a"}  # energy: no sensor


def test_p50_must_clear_tolerance_and_noise() -> None:
    a = _row(latency_s=_latency(10e-6, 0.1e-6))
    # +10%, intervals apart: a regression (p90 moved with it, beyond its 10%? 11 -> 12.1 = 10%:
    # not beyond, so unchanged).
    v = _verdicts(a, _row(latency_s=_latency(11e-6, 0.1e-6)))
    assert v["p50"] == "regressed" and v["p90"] == "unchanged"
    # +10% but the intervals overlap: noise, whatever the tolerance says.
    assert _verdicts(a, _row(latency_s=_latency(11e-6, 1.5e-6)))["p50"] == "within noise"
    # +3%: inside the 5% tolerance.
    assert _verdicts(a, _row(latency_s=_latency(10.3e-6, 0.01e-6)))["p50"] == "unchanged"
    # -20%: faster is an improvement.
    assert _verdicts(a, _row(latency_s=_latency(8e-6, 0.1e-6)))["p50"] == "improved"
    # +10% with tight intervals, but the first run's own repetitions ranged that far
    # (a machine that changes speed between windows): noise.
    spread = _row(latency_s=_latency(10e-6, 0.1e-6), window_p50_s=[9.8e-6, 10e-6, 11.2e-6])
    assert _verdicts(spread, _row(latency_s=_latency(11e-6, 0.1e-6)))["p50"] == "within noise"
    # ... the same spread in the second run counts too; a narrow spread does not help.
    b_spread = _row(latency_s=_latency(11e-6, 0.1e-6), window_p50_s=[9.9e-6, 11e-6, 11.1e-6])
    assert _verdicts(a, b_spread)["p50"] == "within noise"
    narrow = _row(latency_s=_latency(11e-6, 0.1e-6), window_p50_s=[10.9e-6, 11e-6, 11.1e-6])
    assert _verdicts(a, narrow)["p50"] == "regressed"
    # A tighter tolerance turns the +3% into a regression.
    tight = _verdicts(a, _row(latency_s=_latency(10.3e-6, 0.01e-6)), p50=0.01)
    assert tight["p50"] == "regressed"


def test_size_memory_accuracy_energy_directions() -> None:
    a = _row(energy_per_inference_j=1e-5)
    b = _row(
        file_size_bytes=46_001,  # one byte more: file size has no tolerance
        peak_rss_bytes=70_000_000,  # -12.5%: better
        accuracy=0.969,  # -0.3 pp: within 0.5 pp
        energy_per_inference_j=1.2e-5,  # +20%
    )
    v = _verdicts(a, b)
    assert v["size"] == "regressed" and v["memory"] == "improved"
    assert v["accuracy"] == "unchanged" and v["energy"] == "regressed"
    assert _verdicts(a, _row(accuracy=0.960))["accuracy"] == "regressed"  # -1.2 pp
    assert _verdicts(a, _row(accuracy=0.990))["accuracy"] == "improved"
    out = compare_results([a], [b])
    assert out["regressions"] == 2 and out["improvements"] == 1


def test_pairing_failures_and_new_jobs() -> None:
    a = [_row("kept"), _row("broken"), _row("dropped")]
    b = [
        _row("kept"),
        _row("broken", status="failed", error="AgentError: out of memory"),
        _row("added"),
    ]
    out = compare_results(a, b)
    rows = {r["variant"]: r for r in out["rows"]}
    assert list(rows) == ["kept", "broken", "dropped", "added"]
    assert rows["broken"]["regressed"] and "out of memory" in rows["broken"]["note"]
    assert not rows["dropped"]["regressed"] and "only in the first" in rows["dropped"]["note"]
    assert not rows["added"]["regressed"] and "only in the second" in rows["added"]["note"]
    assert out["regressions"] == 1
    # The same variant under another runtime setting is another job.
    other = _row("kept", setting="onnxruntime t=2")
    assert len(compare_results([_row("kept")], [other])["rows"]) == 2


def test_thresholds_parse_and_refuse_mistakes() -> None:
    assert parse_thresholds(["p50=3", "accuracy=0.2pp", "size=1%"]) == {
        "p50": pytest.approx(0.03),
        "accuracy": pytest.approx(0.002),
        "size": pytest.approx(0.01),
    }
    for bad, words in [("p51=3", "NAME one of"), ("p50", "NAME=VALUE"), ("p50=x", "not a number")]:
        with pytest.raises(UsageError, match=words):
            parse_thresholds([bad])
    with pytest.raises(UsageError, match=">= 0"):
        parse_thresholds(["size=-1"])


def _cmp(a: list[JobResult], b: list[JobResult]) -> dict[str, Any]:
    return {"run_a": {"id": "run-a"}, "run_b": {"id": "run-b"}, **compare_results(a, b)}


def test_text_lists_what_changed() -> None:
    a = _row(latency_s=_latency(10e-6, 0.1e-6))
    b = _row(latency_s=_latency(12e-6, 0.1e-6), estimated=["latency_s"])
    text = format_text(_cmp([a], [b]))
    # p90 moved with p50: two regressed figures.
    assert text.startswith("compare run-a → run-b: 2 regressions, 0 improvements")
    assert "the spread of each run's repetitions" in text
    assert (
        "REGRESSED local int8-onnx [onnxruntime t=1] p50 latency: 10.0 µs → 12.0 µs (+20.0%)"
        in text
    )
    assert "(estimated)" in text  # an emulated or sensor-less figure says so
    assert "other figures unchanged" in text


def test_markdown_escapes_user_strings() -> None:
    evil = "x|y <script>alert(1)</script> *bold* [link](http://e)"
    md = format_markdown(_cmp([_row(evil)], [_row(evil, file_size_bytes=50_000)]))
    assert "<script>" not in md and "&lt;script&gt;" in md
    row = next(line for line in md.splitlines() if "script" in line)
    # 3 label cells + 6 figures: the | in the name did not add a column.
    assert row.count(" | ") == 8
    assert r"x\|y" in row and r"\*bold\*" in row and r"\[link\]" in row
    assert "**44.9 KiB → 48.8 KiB (+8.7%) regressed**" in row
    assert "| 76.3 MiB |" in row  # an unchanged figure is shown once
    assert md_escape("a\nb") == "a b"


def test_html_report_with_a_baseline_run_shows_the_verdicts() -> None:
    from reports.html import render_report
    from tests.test_reports import make_data

    data = make_data()
    evil = "<img src=x onerror=alert(1)>"
    base = list(data.results)
    assert base[0].file_size_bytes is not None
    base[0] = base[0].replace(file_size_bytes=base[0].file_size_bytes // 2)
    base.append(_row(evil, device=data.results[0].device))
    base_run = data.replace(
        run=RunInfo(id="base-run", suite=data.run.suite, status="finished"), results=base
    )
    html = render_report(data.replace(comparison=compare_reports(base_run, data)))
    assert "Against run base-run" in html
    assert '<td class="worse" title="regressed">' in html  # the doubled file size
    assert "only in the first run" in html
    assert evil not in html and "&lt;img src=x onerror=alert(1)&gt;" in html


# --------------------------------------------------------------------------- CLI


def _suite(tmp_path: Path, name: str, recipe: str) -> Path:
    return write_suite(
        tmp_path / f"{name}.yaml",
        variants=f"\n  - name: model\n    recipe: {recipe}\n",
        settings="  - runtime: onnxruntime\n",
        measure="{warmup_runs: 1, min_runs: 20, min_duration_s: 0.0, repetitions: 2}",
    )


def test_cli_compare_gates_a_model_that_grew(eb: Runner, tmp_path: Path) -> None:
    """The CI use: the reference run has the int8 model; a change ships fp32 under the
    same name, 3x bigger. Latency and memory tolerances are opened wide so that this
    machine's noise cannot decide the outcome."""
    eb("device", "add", "local")
    int8 = _suite(tmp_path, "before", "[export_onnx, {onnx_int8_static: {per_channel: true}}]")
    fp32 = _suite(tmp_path, "after", "[export_onnx]")
    eb("run", str(int8), "--no-report")
    eb("run", str(fp32), "--no-report")
    runs = json.loads(eb("runs", "list", "--json").stdout)
    before, after = sorted(runs, key=lambda r: r["created_at"])
    wide = ["--threshold", "p50=1000", "--threshold", "p90=1000", "--threshold", "memory=1000"]

    gate = eb("compare", before["id"], after["id"], "--fail-on-regression", *wide, check=False)
    assert gate.returncode == 1, gate.stdout + gate.stderr
    assert "Traceback" not in gate.stderr
    assert gate.stderr.strip() == f"edgebench: 1 regression against {before['id']}"
    line = next(x for x in gate.stdout.splitlines() if "File size" in x)
    assert line.lstrip().startswith("REGRESSED") and "local model [onnxruntime t=1]" in line

    # The other way round the size is an improvement and the gate passes.
    back = eb("compare", after["id"][:-1], before["id"][:-1], "--fail-on-regression", *wide)
    assert "0 regressions, 1 improvement" in back.stdout

    data = json.loads(eb("compare", before["id"], after["id"], "--format", "json").stdout)
    (row,) = data["rows"]
    size = next(m for m in row["metrics"] if m["metric"] == "size")
    assert size["verdict"] == "regressed" and size["b"] > 3 * size["a"]
    md = eb("compare", before["id"], after["id"], "--format", "md").stdout
    assert md.startswith("### edgebench compare") and "| local | model |" in md

    # The HTML report of the new run, judged against the reference run.
    out = tmp_path / "report"
    shown = eb("report", after["id"], "--baseline", before["id"], "-o", str(out), *wide)
    assert "1 regression" in shown.stdout
    html = (out / "index.html").read_text()
    assert f"Against run {before['id']}" in html and 'class="worse"' in html
    bad = eb("report", after["id"], "--baseline", "nope", check=False)
    assert bad.returncode == 2 and "no run 'nope'" in bad.stderr

    bad = eb("compare", before["id"], "nope", check=False)
    assert bad.returncode == 2 and "no run 'nope'" in bad.stderr
    bad = eb("compare", before["id"], after["id"], "--format", "xml", check=False)
    assert bad.returncode == 2 and "--format 'xml'" in bad.stderr
