"""Speed of edgebench's own hot paths (not of the models it measures).

Run: .venv/bin/pytest benchmarks --benchmark-only -q
Figures are recorded in benchmarks/RESULTS.md; nothing here asserts a time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness import stats
from harness.store import Metric, Store
from reports.html import render_report
from runners.records import (
    DeviceInfo,
    JobMeasurement,
    JobResult,
    LatencyStats,
    Provenance,
    RunInfo,
    RunReport,
)

# A fast model on a phone yields ~100k samples per window at the default 0.5 s x 5.
WINDOWS = [list(np.random.default_rng(i).lognormal(-9, 0.2, 100_000)) for i in range(5)]


def test_summarize_windows_500k(benchmark: pytest.FixtureRequest) -> None:
    result = benchmark(stats.summarize_windows, WINDOWS)
    assert result.headline.n == 500_000


def test_store_finish_job_500k_samples(benchmark: pytest.FixtureRequest, tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'b.db'}")
    planned = [
        {
            "key": f"k{i}",
            "device": "d",
            "model": "m",
            "variant": "v",
            "runtime": "onnxruntime",
            "setting": {"runtime": "onnxruntime", "threads": 1},
            "artifact_sha256": "0" * 64,
        }
        for i in range(10)
    ]
    run_id = store.create_run(
        suite_name="s",
        suite_path="s",
        suite={},
        version="0",
        commit=None,
        host="h",
        planned_jobs=planned,
    )
    job_ids = iter(j["id"] for j in store.jobs_for_run(run_id))

    def commit_one() -> None:
        store.finish_job(
            next(job_ids),
            measurement=JobMeasurement(
                runner="bench", provenance=Provenance(runner="bench"), windows=WINDOWS
            ),
            summary=None,
            job_metrics=[Metric("latency_p50", 1.0, "s")],
        )

    benchmark.pedantic(commit_one, rounds=3, iterations=1)


def test_render_report_4_variants_500k_samples_each(benchmark: pytest.FixtureRequest) -> None:
    pooled = [s for w in WINDOWS for s in w]
    head = stats.summarize(pooled)
    latency = LatencyStats(
        **{k: getattr(head, k) for k in ("p50", "p90", "p95", "p99", "mean", "min", "max")},
        std=head.std,
        cv=head.cv,
        n=head.n,
        throughput=head.throughput,
        ci_low=head.ci_low,
        ci_high=head.ci_high,
    )
    results = [
        JobResult(
            job_id=i,
            device="d",
            model="m",
            variant=f"v{i}",
            runtime="onnxruntime",
            threads=1,
            setting="onnxruntime t=1",
            status="done",
            file_size_bytes=1000,
            accuracy=0.9,
            latency_s=latency,
            samples_s=pooled,
        )
        for i in range(4)
    ]
    data = RunReport(
        run=RunInfo(id="r", suite="s", status="finished", created_at="t",
                    edgebench_version="0", repetitions=5),
        devices=[DeviceInfo(name="d", transport="local")],
        results=results,
    )
    html = benchmark.pedantic(render_report, args=(data,), rounds=3, iterations=1)
    assert "v3" in html


def test_agent_timing_floor_noop_model(benchmark: pytest.FixtureRequest) -> None:
    """What the agent's own loop adds to every raw sample: a model whose run() does
    nothing, timed exactly as a real one is (perf_counter_ns around model.run). The
    median sample is the floor under every latency edgebench reports on this machine."""
    import importlib.util

    from runners.agent_client import AGENT_PATH

    spec = importlib.util.spec_from_file_location("edgebench_agent_bench", AGENT_PATH)
    assert spec is not None and spec.loader is not None
    agent_mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(agent_mod)

    class Noop(agent_mod.Model):  # type: ignore[name-defined,misc]
        runtime = "noop"

        def run(self, feed: list) -> list:
            return []

    agent = agent_mod.Agent()
    agent.model = Noop()
    request = {
        "warmup_runs": 1000,
        "warmup_min_s": 0.0,
        "min_runs": 100_000,
        "min_duration_s": 0.0,
        "repetitions": 1,
    }
    result = benchmark.pedantic(agent.op_bench, args=(request,), rounds=3, iterations=1)
    samples = np.asarray(result["windows"][0]["samples_s"])
    summary = stats.summarize(list(samples))
    benchmark.extra_info["sample_p50_ns"] = summary.p50 * 1e9
    benchmark.extra_info["sample_p99_ns"] = summary.p99 * 1e9
    print(f"\nno-op sample: p50 {summary.p50 * 1e9:.0f} ns, p99 {summary.p99 * 1e9:.0f} ns")
    assert len(samples) == 100_000
