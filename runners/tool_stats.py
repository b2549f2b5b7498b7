"""A vendor tool's printed statistics as :class:`~runners.records.ToolStatistics`.

One mapping per tool, shared by ``edgebench import`` (a log run elsewhere) and the
runners that drive the tool themselves (``runners/android_runner.py``), so that a
figure means the same whichever way it arrived. :func:`median_across_repetitions`
combines several runs of a tool the way edgebench combines its own windows.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from runners.benchmark_model import BenchmarkModelResult, PhaseStats
from runners.ort_perf_test import OrtPerfTestResult
from runners.records import ToolStatistics

BENCHMARK_MODEL_NOTE = (
    "benchmark_model's own statistics: avg is a mean, std has ddof 0, "
    f"percentiles are {PhaseStats.PERCENTILE_METHOD}"
)


def benchmark_model_statistics(r: BenchmarkModelResult) -> ToolStatistics:
    """The timed phase of one benchmark_model run."""
    timed = r.timed
    mean = timed.avg_s if timed and timed.avg_s is not None else r.inference_avg_s
    same = timed.curr_s if timed and timed.all_same else None
    if mean is None:
        mean = same  # every run took the same time: that time is the mean, min, max
    return ToolStatistics(
        tool="benchmark_model",
        mean_s=mean,
        median_s=timed.median_s if timed else None,
        min_s=timed.min_s if timed and timed.min_s is not None else same,
        max_s=timed.max_s if timed and timed.max_s is not None else same,
        std_s=timed.std_s if timed else None,
        std_ddof=0,
        percentiles_s=(
            {f"{p:g}": v for p, v in timed.percentiles_s.items() if p != 50.0} if timed else {}
        ),
        count=timed.count if timed else None,
        throughput_per_s=1.0 / mean if mean else None,
        first_s=timed.first_s if timed else None,
        note=BENCHMARK_MODEL_NOTE,
    )


def ort_perf_test_statistics(r: OrtPerfTestResult) -> ToolStatistics:
    """The timed requests of one onnxruntime_perf_test run."""
    pct = {f"{p:g}": v for p, v in r.percentiles_s.items()}
    return ToolStatistics(
        tool="onnxruntime_perf_test",
        mean_s=r.mean_s,
        median_s=pct.pop("50", None),
        min_s=r.min_s,
        max_s=r.max_s,
        percentiles_s=pct,
        count=r.timed_requests if r.timed_requests is not None else r.requests,
        throughput_per_s=r.throughput_per_s,
        note=f"percentiles: {r.PERCENTILE_METHOD}",
    )


def _median(values: Sequence[float | None]) -> float | None:
    # A figure one run did not print is unknown for the whole set, not a smaller median.
    if not values or any(v is None for v in values):
        return None
    return float(statistics.median(v for v in values if v is not None))


def median_across_repetitions(runs: Sequence[ToolStatistics]) -> ToolStatistics:
    """One ToolStatistics from several runs of the same tool (one per repetition).

    Each figure is the median, across runs, of that run's own figure: exactly how
    edgebench's headline is made from its windows (``harness/stats.py``,
    ``summarize_windows``), so that ``p50`` is the median across repetitions of each
    repetition's median (the tool's method), ``mean`` the median of the per-run means
    and so on. ``count`` is the total of inferences (edgebench's pooled ``n``). A figure
    missing from any run is None. The figures stay the tool's: its mean is a mean and
    its std has its ddof; the note says both.
    """
    if not runs:
        raise ValueError("no tool runs to combine")
    tools = {r.tool for r in runs}
    if len(tools) != 1:
        raise ValueError(f"runs of different tools: {sorted(tools)}")
    if len(runs) == 1:
        return runs[0]
    keys = set.intersection(*(set(r.percentiles_s) for r in runs))
    counts = [r.count for r in runs]
    return ToolStatistics(
        tool=runs[0].tool,
        mean_s=_median([r.mean_s for r in runs]),
        median_s=_median([r.median_s for r in runs]),
        min_s=_median([r.min_s for r in runs]),
        max_s=_median([r.max_s for r in runs]),
        std_s=_median([r.std_s for r in runs]),
        std_ddof=runs[0].std_ddof,
        percentiles_s={
            k: v
            for k in sorted(keys)
            if (v := _median([r.percentiles_s[k] for r in runs])) is not None
        },
        count=sum(c for c in counts if c is not None)
        if all(c is not None for c in counts)
        else None,
        throughput_per_s=_median([r.throughput_per_s for r in runs]),
        first_s=_median([r.first_s for r in runs]),
        note=f"median across {len(runs)} runs of each run's own figure; {runs[0].note}",
    )
