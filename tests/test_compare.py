"""`edgebench compare`: pairing, verdicts, marks and tolerances on synthetic runs with
known answers, rendering (escaping included, text and markdown against golden files), and
the CLI on two real runs as a CI gate. The significance tests on synthetic samples are in
test_compare_stats.py.

Golden files (tests/golden/compare.*) are compared byte for byte; after a deliberate change
of the output, rewrite them with EDGEBENCH_UPDATE_GOLDEN=1 and review the diff."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from harness.compare import compare_reports, compare_results, parse_thresholds
from harness.errors import UsageError
from reports.compare import format_markdown, format_text, md_escape
from runners.records import JobResult, LatencyStats, RunInfo
from tests.conftest import Runner, write_suite
from tests.test_compare_stats import job_with_samples

GOLDEN = Path(__file__).parent / "golden"


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
    assert out["rows"][0]["mark"] == "unchanged" and out["unmatched"] == []
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
    assert {v: r["mark"] for v, r in rows.items()} == {
        "kept": "unchanged",
        "broken": "newly failing",
        "dropped": "not comparable",
        "added": "not comparable",
    }
    assert out["unmatched"] == [
        {**_where("dropped"), "reason": "only in the first run"},
        {**_where("added"), "reason": "only in the second run"},
    ]
    # The same variant under another runtime setting is another job.
    other = _row("kept", setting="onnxruntime t=2")
    assert len(compare_results([_row("kept")], [other])["rows"]) == 2


def _where(variant: str) -> dict[str, str]:
    return {
        "device": "local",
        "model": "digits_cnn",
        "variant": variant,
        "setting": "onnxruntime t=1",
    }


def test_marks_for_fixed_and_both_failing_jobs() -> None:
    failed = {"status": "failed", "error": "AgentError: boom"}
    first = [_row("back", **failed), _row("still", **failed), _row("resumed", status="pending")]
    second = [_row("back"), _row("still", **failed), _row("resumed")]
    marks = {r["variant"]: r["mark"] for r in compare_results(first, second)["rows"]}
    # A job that had failed and finishes now is fixed; one interrupted before is not.
    assert marks == {"back": "fixed", "still": "not comparable", "resumed": "not comparable"}


def test_a_changed_runtime_version_makes_a_job_not_comparable() -> None:
    a = _row("kept", job_id=1, runtime_version="1.17.1")
    b = _row("kept", job_id=2, file_size_bytes=99_000, runtime_version="1.18.0")
    out = compare_results([a], [b])
    (row,) = out["rows"]
    assert row["mark"] == "not comparable" and row["metrics"] == [] and out["regressions"] == 0
    reason = "runtime version changed: onnxruntime 1.17.1 → 1.18.0"
    assert out["unmatched"] == [{**_where("kept"), "reason": reason}]
    # An unrecorded version (an imported log) is no reason: the grown file is judged.
    out = compare_results([a], [b.replace(runtime_version=None)])
    assert out["rows"][0]["mark"] == "worse" and out["unmatched"] == []


def test_jobs_that_regress_and_improve_at_once_are_worse() -> None:
    (row,) = compare_results([_row()], [_row(file_size_bytes=50_000, peak_rss_bytes=1)])["rows"]
    verdicts = {m["metric"]: m["verdict"] for m in row["metrics"]}
    assert verdicts["size"] == "regressed" and verdicts["memory"] == "improved"
    assert row["mark"] == "worse"


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
    # NAME:PATTERN=VALUE; giving a key again moves it last (the last match wins).
    assert parse_thresholds(["p50:mobilenet*=3%", "p50=10", "p50:mobilenet*=4"]) == {
        "p50": pytest.approx(0.10),
        "p50:mobilenet*": pytest.approx(0.04),
    }
    assert list(parse_thresholds(["p50:a*=1", "p50:b*=2", "p50:a*=3"])) == ["p50:b*", "p50:a*"]
    for bad, words in [
        ("p50:=3", "PATTERN after 'p50:' is empty"),
        ("p51:mobilenet*=3", "NAME one of"),
        (":mobilenet*=3", "NAME one of"),
        ("p50:mobilenet*", "NAME:PATTERN=VALUE"),
        ("p50:mobilenet*=3x", "not a number"),
        ("p50:mobilenet*=nan", "finite number"),
        ("p50:mobilenet*=inf%", "finite number"),
        ("p50:mobilenet*=-2", ">= 0"),
    ]:
        with pytest.raises(UsageError, match=words) as caught:
            parse_thresholds(["p50=5", bad])
        assert repr(bad) in str(caught.value) and "\n" not in str(caught.value)


def test_pattern_thresholds_apply_to_the_jobs_they_match() -> None:
    def latency(p50: float) -> LatencyStats:
        return _latency(p50, 0.01e-6, p90=p50)

    a = [_row("int8", model="mobilenet_v2"), _row("int8"), _row("fp32", model="mobilenet_v2")]
    b = [x.replace(latency_s=latency(10.8e-6)) for x in a]  # +8% everywhere
    a = [x.replace(latency_s=latency(10e-6)) for x in a]

    def p50s(*given: str) -> dict[str, str]:
        out = compare_results(a, b, parse_thresholds(list(given)))
        return {r["label"]: r["metrics"][0]["verdict"] for r in out["rows"]}

    # The default 5%: all three regressed; a pattern opens only the jobs it matches.
    assert set(p50s().values()) == {"regressed"}
    assert p50s("p50:mobilenet*=10%") == {
        "mobilenet_v2/int8": "unchanged",
        "digits_cnn/int8": "regressed",
        "mobilenet_v2/fp32": "unchanged",
    }
    # On "model/variant": a variant pattern; the last matching one wins over the plain form.
    assert p50s("p50=10", "p50:*/int8=1") == {
        "mobilenet_v2/int8": "regressed",
        "digits_cnn/int8": "regressed",
        "mobilenet_v2/fp32": "unchanged",
    }
    out = compare_results(a, b, parse_thresholds(["p50:resnet*=50"]))
    assert out["threshold_patterns"] == [
        {"metric": "p50", "pattern": "resnet*", "tolerance": pytest.approx(0.5), "jobs": 0}
    ]
    assert "p50 for resnet* 50% (matches no job)" in format_text(_cmp(a, b, ["p50:resnet*=50"]))


def _cmp(
    a: list[JobResult], b: list[JobResult], thresholds: list[str] | None = None
) -> dict[str, Any]:
    out = compare_results(a, b, parse_thresholds(thresholds))
    return {"run_a": {"id": "run-a"}, "run_b": {"id": "run-b"}, **out}


def test_text_lists_what_changed() -> None:
    a = _row(latency_s=_latency(10e-6, 0.1e-6))
    b = _row(latency_s=_latency(12e-6, 0.1e-6), estimated=["latency_s"])
    text = format_text(_cmp([a], [b]))
    # Jobs first, then figures: p90 moved with p50, two regressed figures of one job.
    assert text.startswith(
        "compare run-a → run-b: 1 worse, 0 better, 0 unchanged of 1 job"
        " (p < 0.002; CI overlap for 1 job with fewer than 20 samples a side)\n"
        "  figures: 2 regressions, 0 improvements"
    )
    assert "the spread of each run's repetitions" in text
    assert (
        "  REGRESSED       local digits_cnn/int8-onnx [onnxruntime t=1] p50 latency:"
        " 10.0 µs → 12.0 µs (+20.0%) (estimated) [few samples (0 and 0): CIs of the median"
        " apart]" in text
    )
    assert "(estimated)" in text  # an emulated or sensor-less figure says so
    assert "other figures unchanged" in text


def test_markdown_escapes_user_strings() -> None:
    evil = "x|y <script>alert(1)</script> *bold* [link](http://e)"
    md = format_markdown(_cmp([_row(evil)], [_row(evil, file_size_bytes=50_000)]))
    assert "<script>" not in md and "&lt;script&gt;" in md
    row = next(line for line in md.splitlines() if "script" in line)
    # A mark, 3 label cells + 6 figures: the | in the name did not add a column.
    assert row.count(" | ") == 9 and row.startswith("| **worse** | local | digits\\_cnn/x\\|y")
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


# --------------------------------------------------------------------------- golden


def _grid(median_s: float, spread: float, n: int) -> list[float]:
    """n samples evenly over median * (1 +- spread): deterministic with every numpy and
    scipy, so the golden p-values cannot drift with a random generator."""
    return [median_s * (1 + spread * (2 * i / (n - 1) - 1)) for i in range(n)]


def _golden_runs() -> dict[str, Any]:
    """One of each mark, each reason a job is not comparable, a test of each kind, an MCU,
    a pattern threshold, and strings that would break markdown or inject HTML."""
    fast, slow = _grid(10e-3, 0.1, 200), _grid(12e-3, 0.1, 200)
    wide = _grid(10e-3, 0.5, 30)
    mcu = {
        "device": "m4",
        "model": "kws",
        "variant": "int8-tflm",
        "runtime": "tflm",
        "setting": "tflm",
        "file_size_bytes": 20_480,
        "static_ram_bytes": 12_288,
        "flash_bytes": 65_536,
        "estimated": ["latency_s"],
    }
    evil = "x|y <script>alert(1)</script> *b*"
    failed = {"status": "failed", "latency_s": None, "samples_s": []}
    first = [
        job_with_samples(fast, "int8-onnx"),  # worse: +20%, U test
        job_with_samples(slow, "fp32-onnx"),  # better: -17%
        job_with_samples(wide, "pruned-onnx"),  # +6%, not significant
        job_with_samples(fast, "int8-onnx", setting="onnxruntime t=2"),  # unchanged
        job_with_samples(fast, "int8-tflite", runtime="litert", setting="litert t=1"),
        job_with_samples(fast, "fp32-tflite", runtime="litert", setting="litert t=1", **failed),
        job_with_samples(fast, "dropped"),  # only in the first run
        # runtime upgraded:
        job_with_samples(fast, "int8-onnx", device="pixel-7", job_id=7, runtime_version="1.17.1"),
        job_with_samples(_grid(10e-3, 0.02, 10), "few-samples"),  # worse, by CI overlap
        job_with_samples([1e-3] * 30, executed_instructions=1_000_000, **mcu),
        job_with_samples(fast, evil),
        job_with_samples(fast, "slow-onnx"),  # +20% under its pattern's 30%: unchanged
        job_with_samples(fast, "drift-onnx", window_p50_s=[9.5e-3, 10e-3, 11.2e-3]),
    ]
    second = [
        job_with_samples(slow, "int8-onnx"),
        job_with_samples(fast, "fp32-onnx"),
        job_with_samples([x * 1.06 for x in wide], "pruned-onnx"),
        job_with_samples(fast, "int8-onnx", setting="onnxruntime t=2"),
        job_with_samples(
            fast,
            "int8-tflite",
            runtime="litert",
            setting="litert t=1",
            **failed,
            error="AgentError: <b>out of memory</b> | see *log*",
        ),
        job_with_samples(fast, "fp32-tflite", runtime="litert", setting="litert t=1"),
        job_with_samples(slow, "int8-onnx", device="pixel-7", job_id=8, runtime_version="1.18.0"),
        job_with_samples(_grid(12e-3, 0.02, 10), "few-samples"),
        job_with_samples([1e-3] * 30, executed_instructions=1_000_001, **mcu),
        job_with_samples(fast, evil, file_size_bytes=50_000),
        job_with_samples(slow, "slow-onnx"),
        job_with_samples([x * 1.1 for x in fast], "drift-onnx"),
        job_with_samples(fast, "added"),  # only in the second run
    ]
    thresholds = parse_thresholds(["p90=25%", "p50:*/slow-*=30%", "memory:mobilenet*=1%"])
    out = compare_results(first, second, thresholds)
    return {"run_a": {"id": "main-0042"}, "run_b": {"id": "pr-1234_fix"}, **out}


def _assert_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("EDGEBENCH_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(text.encode("utf-8"))
    assert path.exists(), f"{path} is missing: run with EDGEBENCH_UPDATE_GOLDEN=1 to write it"
    assert text.encode("utf-8") == path.read_bytes(), (
        f"{name} differs from {path}; if the change is meant, rerun with "
        "EDGEBENCH_UPDATE_GOLDEN=1 and review the diff"
    )


def test_golden_runs_have_one_job_of_each_kind() -> None:
    """The golden input is what its comments say (so the golden files test something)."""
    cmp = _golden_runs()
    assert cmp["marks"] == {
        "worse": 4,
        "newly failing": 1,
        "better": 1,
        "fixed": 1,
        "changed but not significant": 2,
        "unchanged": 2,
        "not comparable": 3,
    }
    assert [u["reason"] for u in cmp["unmatched"]] == [
        "only in the first run",
        "runtime version changed: onnxruntime 1.17.1 → 1.18.0",
        "only in the second run",
    ]
    tests = {
        r["variant"]: m["evidence"]["test"]
        for r in cmp["rows"]
        for m in r["metrics"]
        if m["metric"] == "p50" and "evidence" in m
    }
    assert tests["few-samples"] == "ci-overlap" and tests["int8-onnx"] == "mann-whitney-u"


def test_text_matches_the_golden_file() -> None:
    _assert_golden("compare.txt", format_text(_golden_runs()))


def test_markdown_matches_the_golden_file() -> None:
    md = format_markdown(_golden_runs())
    _assert_golden("compare.md", md)
    # What a pull-request comment needs, whatever the golden file says.
    first, blank, details = md.splitlines()[:3]
    assert first.startswith("edgebench compare main-0042 → pr-1234\\_fix: 4 worse, 1 newly")
    assert blank == "" and details == "<details><summary>Jobs and figures</summary>"
    assert md.rstrip().endswith("</details>") and "<script>" not in md and "<b>" not in md


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
    assert gate.stdout.startswith(f"compare {before['id']} → {after['id']}: 1 worse, 0 better")
    line = next(x for x in gate.stdout.splitlines() if "File size" in x)
    assert (
        line.lstrip().startswith("REGRESSED") and "local digits_cnn/model [onnxruntime t=1]" in line
    )

    # The other way round the size is an improvement and the gate passes. A pattern that
    # matches no job is most likely a typo: a warning says so.
    back = eb(
        "compare", after["id"][:-1], before["id"][:-1], "--fail-on-regression", *wide,
        "--threshold", "p50:mobilenet*=3%",
    )  # fmt: skip
    assert "0 worse, 1 better, 0 unchanged of 1 job" in back.stdout
    assert "0 regressions, 1 improvement" in back.stdout
    assert "warning: --threshold pattern 'mobilenet*' (p50) matches no job" in back.stderr

    data = json.loads(eb("compare", before["id"], after["id"], "--format", "json").stdout)
    (row,) = data["rows"]
    assert row["mark"] == "worse" and data["unmatched"] == []
    assert data["marks"]["worse"] == 1 and data["significance"]["alpha"] == 0.002
    size = next(m for m in row["metrics"] if m["metric"] == "size")
    assert size["verdict"] == "regressed" and size["b"] > 3 * size["a"]
    # Both runs kept every raw sample (20 or more a window, 2 windows): the U test judged.
    p50 = next(m for m in row["metrics"] if m["metric"] == "p50")
    assert p50["evidence"]["test"] == "mann-whitney-u" and min(p50["evidence"]["samples"]) >= 40
    assert 0.0 <= p50["evidence"]["p_value"] <= 1.0
    md = eb("compare", before["id"], after["id"], "--format", "md").stdout
    assert md.startswith(f"edgebench compare {before['id']} → {after['id']}: 1 worse")
    assert "<details>" in md and "| **worse** | local | digits\\_cnn/model |" in md

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

    # The second run's runtime was upgraded (as a lockfile bump would): its job cannot be
    # judged against the first, says why, and does not fail the gate.
    with sqlite3.connect(tmp_path / "results.db") as db:
        db.execute(
            "UPDATE jobs SET provenance = json_set(provenance, '$.runtime_version', '99.0')"
            " WHERE run_id = ?",
            (after["id"],),
        )
    gate = eb("compare", before["id"], after["id"], "--fail-on-regression", "--format", "json")
    data = json.loads(gate.stdout)
    (row,) = data["rows"]
    assert row["mark"] == "not comparable" and data["marks"]["not comparable"] == 1
    (unmatched,) = data["unmatched"]
    assert unmatched["variant"] == "model" and unmatched["reason"].startswith(
        "runtime version changed: onnxruntime "
    )
    assert unmatched["reason"].endswith(" → 99.0")


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("p50:=3", "the PATTERN after 'p50:' is empty"),
        ("p5O:mobilenet*=3%", "NAME one of"),
        ("p50:mobilenet*", "NAME:PATTERN=VALUE"),
        ("p50:mobilenet*=fast", "is not a number"),
        ("p50:mobilenet*=nan", "finite number"),
        ("p50:mobilenet*=-inf", "finite number"),
        ("p50:mobilenet*=-3%", "finite number >= 0"),
        ("p50=-1", "finite number >= 0"),
    ],
)
def test_cli_refuses_bad_thresholds_in_one_line(eb: Runner, value: str, words: str) -> None:
    bad = eb("compare", "a", "b", "--threshold", "p90=20", "--threshold", value, check=False)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    (line,) = bad.stderr.splitlines()
    assert line.startswith(f"edgebench: error: --threshold {value!r}") and words in line


def test_markdown_never_mentions_a_github_user() -> None:
    from reports.compare import md_escape

    # A device named after a team must not notify it from a pull-request comment.
    assert "@\u200bacme/ml-team" in md_escape("@acme/ml-team")
    assert "@a" not in md_escape("pixel @alice")
