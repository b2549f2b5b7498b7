"""Measurement fidelity: invoke-only and with-I/O figures, adaptive stopping, repetitions
spread over fresh processes, CPU pinning, and the data-quality warnings that flag noisy,
drifting or throttled jobs. The statistics on synthetic series; the rest through a real
`edgebench run` on the local device."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest

from harness import stats
from reports.html import render_report
from reports.quality import DRIFT, HIGH_CV, REPETITION_SPREAD, job_warnings, run_warnings
from runners.agent_runner import clock_drops, parse_cpu_list, split_repetitions
from runners.records import JobResult, LatencyStats, RunInfo, RunReport
from tests.conftest import write_suite

# --------------------------------------------------------------------------- statistics


def test_process_ci_covers_a_process_that_ran_slow_for_its_whole_life() -> None:
    rng = np.random.default_rng(0)
    # Four processes near 2.3 ms and one 35% slower, each window tight inside itself.
    centres = [2.32e-3, 2.39e-3, 3.15e-3, 2.34e-3, 2.37e-3]
    windows = [list(rng.normal(c, c * 0.01, 400)) for c in centres]
    processes = list(range(5))
    pooled = stats.summarize_windows(windows)
    spread = stats.summarize_windows(windows, processes=processes)
    # Same headline either way: the median across repetitions.
    assert spread.headline.p50 == pooled.headline.p50
    pooled_width = pooled.headline.ci_high - pooled.headline.ci_low
    spread_width = spread.headline.ci_high - spread.headline.ci_low
    # Pooled samples of 2,000 runs claim a CI a few µs wide; resampling processes
    # gives one as wide as the processes disagree.
    assert spread_width > 5 * pooled_width
    assert spread.headline.ci_low <= 2.34e-3 and spread.headline.ci_high >= 2.37e-3
    # Deterministic: a stored run always gets the same interval.
    assert stats.summarize_windows(windows, processes=processes) == spread


def test_one_process_keeps_the_pooled_ci_and_bad_groups_are_refused() -> None:
    windows = [[1.0, 1.1, 1.2] * 20, [1.0, 1.1, 1.3] * 20]
    assert stats.summarize_windows(windows, processes=[0, 0]) == stats.summarize_windows(windows)
    with pytest.raises(ValueError, match="2 windows"):
        stats.summarize_windows(windows, processes=[0])


def test_ratio_ci_finds_a_shift_and_not_its_absence() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(1.0, 0.01, 8)
    same = stats.ratio_ci(a, rng.normal(1.0, 0.01, 8))
    assert same[1] < 1.0 < same[2]
    shifted = stats.ratio_ci(a * 1.10, rng.normal(1.0, 0.01, 8))
    assert shifted[0] == pytest.approx(1.10, abs=0.02)
    assert shifted[1] > 1.05
    with pytest.raises(ValueError):
        stats.ratio_ci([], [1.0])


def test_repetitions_split_evenly_over_processes() -> None:
    assert split_repetitions(5, 1) == [5]
    assert split_repetitions(5, 2) == [3, 2]
    assert split_repetitions(5, 5) == [1] * 5


def test_cpu_lists_as_taskset_writes_them() -> None:
    assert parse_cpu_list("0") == [0]
    assert parse_cpu_list("0,2") == [0, 2]
    assert parse_cpu_list("4-7,1") == [1, 4, 5, 6, 7]
    for bad in ("", "a", "3-1", "1-", "0;rm -rf /"):
        with pytest.raises(ValueError):
            parse_cpu_list(bad)


def test_a_clock_that_fell_during_the_windows_is_flagged() -> None:
    freqs = {
        "before": {"0": 2_400_000, "1": 2_400_000},
        "after": {"0": 1_500_000, "1": 2_390_000},
    }
    bench = {"cpu_freq_khz": freqs}
    assert clock_drops([bench]) == ["cpu 0 clock fell 38% during the windows"]
    # No cpufreq (VMs, containers): nothing to say, not an error.
    assert clock_drops([{"cpu_freq_khz": {"before": {}, "after": {}}}, {}]) == []


# --------------------------------------------------------------------------- warnings


def _job(**over: object) -> JobResult:
    base: dict = dict(
        job_id=1,
        device="pi",
        model="m",
        variant="v",
        runtime="litert",
        setting="litert t=1",
        status="done",
        latency_s=LatencyStats(p50=1e-3, p90=1.1e-3, cv=0.02, n=500),
        window_p50_s=[1e-3, 1.01e-3, 0.99e-3, 1e-3, 1e-3],
    )
    base.update(over)
    return JobResult(**base)


def _kinds(r: JobResult) -> list[str]:
    return [w.kind for w in job_warnings(r)]


def test_a_clean_job_has_no_warnings() -> None:
    assert _kinds(_job()) == []


def test_each_quality_problem_is_flagged_at_its_threshold() -> None:
    assert _kinds(_job(latency_s=LatencyStats(p50=1e-3, cv=0.02, n=12))) == ["few-samples"]
    noisy = LatencyStats(p50=1e-3, cv=HIGH_CV + 0.05, n=500)
    assert _kinds(_job(latency_s=noisy)) == ["high-cv"]
    spread = 1 + REPETITION_SPREAD + 0.05
    assert "spread" in _kinds(_job(window_p50_s=[1e-3, 1e-3 * spread, 1e-3]))
    # +8% over five repetitions, each a step up: drift, though within the spread limit.
    rising = [1e-3 * (1 + DRIFT * 0.4 * i) for i in range(5)]
    assert _kinds(_job(window_p50_s=rising)) == ["drift"]
    # Up and down is not drift.
    assert "drift" not in _kinds(_job(window_p50_s=[1e-3, 1.04e-3, 1e-3, 1.04e-3, 1.08e-3]))
    assert _kinds(_job(health_flags=["under-voltage", "charging"])) == ["device", "device"]
    # A vendor tool's own figures are not judged by edgebench's sample rules.
    tool = LatencyStats(p50=1e-3, cv=0.5, n=3, source="benchmark_model")
    assert _kinds(_job(latency_s=tool)) == []
    assert _kinds(_job(status="failed")) == []


def test_run_warnings_name_the_job_and_the_runtime_versions_that_differ() -> None:
    data = RunReport(
        run=RunInfo(id="r", suite="s", status="finished"),
        results=[
            _job(runtime_version="2.3.0", latency_s=LatencyStats(p50=1e-3, cv=0.4, n=500)),
            _job(job_id=2, device="jetson", runtime_version="2.1.0"),
        ],
    )
    lines = run_warnings(data)
    assert lines[0] == "litert versions differ between devices: 2.1.0 on jetson; 2.3.0 on pi"
    assert lines[1] == "v on pi (litert t=1): high CV (40% within windows)"


def test_the_report_header_shows_warnings_as_text() -> None:
    hostile = "<img src=x onerror=alert(1)>"
    data = RunReport(
        run=RunInfo(id="r", suite="s", status="finished"),
        results=[_job(variant=hostile, latency_s=LatencyStats(p50=1e-3, cv=0.4, n=500))],
    )
    page = render_report(data)
    header = page.split('<ul class="warnings">')[1].split("</ul>")[0]
    assert "high CV (40% within windows)" in header
    assert hostile not in page and "&lt;img src=x onerror=alert(1)&gt;" in header


# --------------------------------------------------------------------------- end to end


def test_suite_options_are_checked_with_file_and_line(eb, tmp_path: Path) -> None:
    cases = {
        "{repetitions: 2, processes: 3}": "processes (3) cannot exceed repetitions (2)",
        "{target_rel_ci: 1.5}": "target_rel_ci",
        "{max_window_s: 0}": "max_window_s",
    }
    for measure, message in cases.items():
        suite = write_suite(
            tmp_path / "bad.yaml", settings="  - runtime: litert\n", measure=measure
        )
        proc = eb("variants", str(suite), check=False)
        assert proc.returncode == 2, proc.stderr
        assert "bad.yaml:" in proc.stderr and message in proc.stderr
        assert "Traceback" not in proc.stderr
    suite = write_suite(
        tmp_path / "bad.yaml", settings="  - {runtime: litert, cpus: '0;true'}\n", measure="{}"
    )
    proc = eb("variants", str(suite), check=False)
    assert proc.returncode == 2 and "cpus must be a CPU list" in proc.stderr


def test_a_run_spreads_repetitions_over_fresh_processes_pinned_and_adaptive(
    eb, tmp_path: Path
) -> None:
    cpu = sorted(os.sched_getaffinity(0))[-1]
    suite = write_suite(
        tmp_path / "fid.yaml",
        variants="\n  - name: fp32-tflite\n    recipe: [export_tflite]\n"
        "  - name: fp32-onnx\n    recipe: [export_onnx]\n",
        settings=f"  - {{runtime: litert, cpus: '{cpu}'}}\n  - runtime: onnxruntime\n",
        measure="{warmup_runs: 3, warmup_min_s: 0, min_runs: 30, min_duration_s: 0.01, "
        "repetitions: 4, "
        "processes: 2, target_rel_ci: 0.05, max_window_s: 2}",
    )
    eb("device", "add", "local", "--transport", "local")
    proc = eb("run", str(suite), "--device", "local")
    assert f"litert t=1 cpus={cpu}" in proc.stdout
    run_id = json.loads(eb("runs", "list", "--json").stdout)[0]["id"]
    eb("export", run_id, "--format", "csv", "-o", str(tmp_path / "jobs.csv"))
    rows = {r["variant"]: r for r in csv.DictReader((tmp_path / "jobs.csv").open())}
    for variant, region in (("fp32-tflite", "Interpreter.invoke"), ("fp32-onnx", "iobinding")):
        row = rows[variant]
        assert row["processes"] == "2"
        assert region in row["timed_region"]
        assert float(row["latency_io_p50_s"]) > 0 and row["io_region"]
        # Adaptive: windows stopped at or soon after min_runs, far from the 2 s cap.
        assert 4 * 30 <= int(row["latency_n"]) < 4 * 2000
        assert float(row["latency_ci_low_s"]) <= float(row["latency_p50_s"])
        assert float(row["latency_p50_s"]) <= float(row["latency_ci_high_s"])
    eb("report", run_id, "-o", str(tmp_path / "report"))
    page = (tmp_path / "report" / "index.html").read_text()
    assert "p50 with inputs set and outputs copied every run: fp32-tflite " in page
