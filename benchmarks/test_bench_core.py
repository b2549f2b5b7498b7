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
            result={},
            provenance={},
            windows=WINDOWS,
            job_metrics=[Metric("latency_p50", 1.0, "s")],
        )

    benchmark.pedantic(commit_one, rounds=3, iterations=1)


def test_render_report_4_variants_500k_samples_each(benchmark: pytest.FixtureRequest) -> None:
    pooled = [s for w in WINDOWS for s in w]
    results = [
        {
            "device": "d",
            "variant": f"v{i}",
            "runtime": "onnxruntime",
            "threads": 1,
            "setting": "onnxruntime t=1",
            "status": "done",
            "file_size_bytes": 1000,
            "accuracy": 0.9,
            "latency_s": stats.summarize(pooled).to_dict(),
            "samples_s": pooled,
            "estimated": [],
        }
        for i in range(4)
    ]
    data = {
        "run": {
            "id": "r",
            "suite": "s",
            "status": "finished",
            "created_at": "t",
            "edgebench_version": "0",
            "commit": None,
            "repetitions": 5,
        },
        "devices": [{"name": "d", "transport": "local", "tags": {}, "facts": {}}],
        "results": results,
    }
    html = benchmark.pedantic(render_report, args=(data,), rounds=3, iterations=1)
    assert "v3" in html
