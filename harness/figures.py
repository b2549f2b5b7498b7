"""The figures a finished job is queried and compared by (the store's metrics table),
derived in one place from its typed measurement and the controller's statistics."""

from __future__ import annotations

from typing import Any

from harness import stats
from harness.store import Metric
from runners.records import JobMeasurement, ToolStatistics

# Which metrics an estimated figure of the record marks (JobMeasurement.estimated).
_ESTIMATED_FIELDS = {
    "latency": ("latency_", "throughput"),
    "power": ("mean_power", "energy_per_inference", "idle_power", "power_sample_rate"),
}


def latency_metrics(head: stats.LatencySummary) -> list[Metric]:
    return [
        Metric("latency_p50", head.p50, "s"),
        Metric("latency_p90", head.p90, "s"),
        Metric("latency_p95", head.p95, "s"),
        Metric("latency_p99", head.p99, "s"),
        Metric("latency_mean", head.mean, "s"),
        Metric("latency_min", head.min, "s"),
        Metric("latency_max", head.max, "s"),
        Metric("latency_std", head.std, "s"),
        Metric("latency_cv", head.cv, "ratio"),
        Metric("latency_n", head.n, "count"),
        Metric("latency_ci_low", head.ci_low, "s"),
        Metric("latency_ci_high", head.ci_high, "s"),
        Metric("throughput", head.throughput, "1/s"),
    ]


def tool_latency_metrics(tool: ToolStatistics) -> list[Metric]:
    """A vendor tool's own figures, stored as it printed them (its mean is a mean, its
    median a median; a figure it did not print is left out, not zero)."""
    figures: dict[str, float | None] = {
        "p50": tool.median_s,
        "mean": tool.mean_s,
        "min": tool.min_s,
        "max": tool.max_s,
        "std": tool.std_s,
        **{f"p{p}": v for p, v in tool.percentiles_s.items() if p in ("90", "95", "99")},
    }
    out = [Metric(f"latency_{k}", v, "s") for k, v in figures.items() if v is not None]
    if tool.count is not None:
        out.append(Metric("latency_n", tool.count, "count"))
    if tool.throughput_per_s is not None:
        out.append(Metric("throughput", tool.throughput_per_s, "1/s"))
    return out


def summarize(measurement: JobMeasurement) -> stats.WindowedSummary | None:
    """edgebench's statistics of the raw windows (None when there are none)."""
    kept = [i for i, w in enumerate(measurement.windows) if len(w)]
    if not kept:
        return None
    groups = measurement.window_processes
    return stats.summarize_windows(
        [measurement.windows[i] for i in kept],
        processes=[groups[i] for i in kept] if groups else None,
    )


def job_metrics(
    measurement: JobMeasurement,
    summary: stats.WindowedSummary | None,
    file_size_bytes: int | None = None,
) -> list[Metric]:
    m = measurement
    out: list[Metric] = []
    if summary is not None:
        out += latency_metrics(summary.headline)
    elif m.tool_stats is not None:
        out += tool_latency_metrics(m.tool_stats)
    plain: list[tuple[str, Any, str]] = [
        ("init", m.init_s, "s"),
        ("first_inference", m.first_inference_s, "s"),
        ("timer_floor", m.timer_floor_s, "s"),
        ("warmup_count", m.warmup_count, "count"),
        ("warmup_time", m.warmup_time_s, "s"),
        ("peak_rss", m.memory.peak_rss_bytes, "bytes"),
        ("rss_after_load", m.memory.rss_after_load_bytes, "bytes"),
        ("static_ram", m.memory.static_ram_bytes, "bytes"),
        ("flash", m.memory.flash_bytes, "bytes"),
        ("arena", m.memory.arena_bytes, "bytes"),
        ("pss", m.memory.pss_bytes, "bytes"),
        ("executed_instructions", m.executed_instructions, "count"),
        ("file_size", file_size_bytes, "bytes"),
    ]
    if m.accuracy is not None and m.accuracy.top1 is not None:
        plain += [
            ("accuracy_top1", m.accuracy.top1, "ratio"),
            ("accuracy_n", m.accuracy.count, "count"),
        ]
    if m.power is not None and m.power.sample_count is not None:
        p = m.power
        plain += [
            ("mean_power", p.mean_power_w, "W"),
            ("energy_per_inference", p.energy_per_inference_j, "J"),
            ("idle_power", p.idle_power_w, "W"),
            ("energy_per_inference_above_idle", p.energy_per_inference_above_idle_j, "J"),
            ("power_sample_rate", p.sample_rate_hz, "Hz"),
        ]
    # A figure nobody measured is not stored: reads of it give None ("-"), never 0.
    out += [Metric(name, value, unit) for name, value, unit in plain if value is not None]
    out += [Metric(f.name, f.value, f.unit) for f in m.figures]
    estimated = _estimated_prefixes(m)
    if not estimated:
        return out
    return [Metric(x.name, x.value, x.unit, x.name.startswith(estimated)) for x in out]


def _estimated_prefixes(m: JobMeasurement) -> tuple[str, ...]:
    prefixes: list[str] = []
    for name in m.estimated:
        prefixes += _ESTIMATED_FIELDS.get(name, (name,))
    if m.power is not None and m.power.estimated:
        prefixes += _ESTIMATED_FIELDS["power"]
    return tuple(prefixes)
