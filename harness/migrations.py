"""Conversions of stored data written by older releases (used by the store's
schema migrations; each function reads one old shape, exactly as that release
wrote it, and is never changed afterwards).

``job_record_from_v0``: a job's ``result`` before typed records (schema 1, up to
commit d7fdf04): the agent's replies (``load``, ``bench``, ``power``,
``throttling``, ``accuracy``), trtexec's (``trtexec``, ``note``) or an imported
log's (``imported_from``, the tool's parsed summary), each with ``summary``.
"""

from __future__ import annotations

from typing import Any

from runners.records import (
    Accuracy,
    DeviceHealth,
    Figure,
    JobMeasurement,
    Memory,
    Power,
    Provenance,
    ToolStatistics,
)

_PROVENANCE_FIELDS = (
    "runner_version",
    "model_sha256",
    "runtime",
    "runtime_version",
    "device_fingerprint",
    "edgebench_version",
    "commit",
    "controller",
    "recipe",
    "percentiles",
    "std_ddof",
)
_IMPORT_TOOLS = ("trtexec", "benchmark_model", "onnxruntime_perf_test")


def job_record_from_v0(
    result: dict[str, Any], provenance: dict[str, Any], metrics: dict[str, float | None]
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(the JobMeasurement JSON, the statistics summary) of one schema-1 job."""
    summary = result.get("summary")
    if provenance.get("imported"):
        record = _imported(result, provenance, metrics)
    elif "trtexec" in result:
        record = _trtexec(result, provenance, metrics)
    else:
        record = _agent(result, provenance, metrics)
    return record.to_json(), summary


def _provenance(runner: str, old: dict[str, Any], **more: Any) -> Provenance:
    known = {k: old.get(k) for k in _PROVENANCE_FIELDS}
    extra = {
        k: v
        for k, v in old.items()
        if k not in _PROVENANCE_FIELDS and k not in ("runner", "imported", "tool")
    }
    return Provenance(runner=runner, **known, **more, extra=extra)


def _power(old: dict[str, Any] | None, metrics: dict[str, float | None]) -> Power | None:
    if not old:
        return None
    has_energy = old.get("sample_count") is not None
    return Power(
        source=str(old.get("source") or "unknown"),
        rail=old.get("rail"),
        mean_power_w=metrics.get("mean_power") if has_energy else None,
        idle_power_w=metrics.get("idle_power") if has_energy else None,
        energy_per_inference_j=metrics.get("energy_per_inference") if has_energy else None,
        energy_per_inference_above_idle_j=(
            metrics.get("energy_per_inference_above_idle") if has_energy else None
        ),
        sample_rate_hz=old.get("sample_rate_hz"),
        sample_count=old.get("sample_count"),
        coverage=old.get("coverage"),
        skipped_readings=old.get("skipped_readings"),
        interval_ms=old.get("interval_ms"),
        note=old.get("note"),
        errors=list(old.get("errors") or []),
        readings=list(old.get("readings") or []),
        idle=None,
        clock=old.get("clock"),
        telemetry=old.get("telemetry"),
    )


def _accuracy(old: dict[str, Any] | None) -> Accuracy | None:
    if not old:
        return None
    return Accuracy(
        top1=old.get("top1"),
        count=old.get("count"),
        correct=old.get("correct"),
        outputs_sha256=old.get("outputs_sha256"),
    )


def _agent(
    result: dict[str, Any], provenance: dict[str, Any], metrics: dict[str, float | None]
) -> JobMeasurement:
    load = result.get("load") or {}
    bench = result.get("bench") or {}
    warmup = bench.get("warmup") or {}
    throttling = result.get("throttling")
    health = None
    if throttling:
        health = DeviceHealth(
            flags=list(throttling.get("flags") or []),
            ok=throttling.get("ok"),
            temp_c=throttling.get("temp_c"),
            error=throttling.get("error"),
        )
    return JobMeasurement(
        runner="agent",
        provenance=_provenance("agent", provenance),
        init_s=load.get("init_s"),
        first_inference_s=bench.get("first_inference_s"),
        warmup_count=warmup.get("count"),
        warmup_time_s=warmup.get("time_s"),
        timer_floor_s=bench.get("timer_floor_s"),
        timed_region="set inputs + invoke + read outputs",
        memory=Memory(
            peak_rss_bytes=bench.get("peak_rss_bytes"),
            rss_after_load_bytes=load.get("rss_after_load_bytes"),
            peak_reset=bench.get("vmhwm_reset"),
        ),
        power=_power(result.get("power"), metrics),
        accuracy=_accuracy(result.get("accuracy")),
        health=health,
        details={
            "load": load,
            "bench": bench,
            "window_durations_s": result.get("window_durations_s"),
        },
    )


def _trtexec(
    result: dict[str, Any], provenance: dict[str, Any], metrics: dict[str, float | None]
) -> JobMeasurement:
    gpu = metrics.get("gpu_compute_median")
    return JobMeasurement(
        runner="trtexec",
        provenance=_provenance("trtexec", provenance),
        timed_region="trtexec per-inference latency (enqueue to output copy)",
        power=_power(result.get("power"), metrics),
        accuracy=_accuracy(result.get("accuracy")),
        figures=[Figure("gpu_compute_median", gpu, "s")] if gpu is not None else [],
        note=result.get("note"),
        details={"trtexec": result.get("trtexec")},
    )


def _imported(
    result: dict[str, Any], provenance: dict[str, Any], metrics: dict[str, float | None]
) -> JobMeasurement:
    tool = next((t for t in _IMPORT_TOOLS if t in result), str(provenance.get("tool")))
    has_raw = bool(result.get("times_file"))
    tool_stats = None
    if not has_raw and metrics.get("latency_p50", metrics.get("latency_mean")) is not None:
        n = metrics.get("latency_n")
        tool_stats = ToolStatistics(
            tool=tool,
            mean_s=metrics.get("latency_mean"),
            median_s=metrics.get("latency_p50"),
            min_s=metrics.get("latency_min"),
            max_s=metrics.get("latency_max"),
            std_s=metrics.get("latency_std"),
            percentiles_s={
                p: v for p in ("90", "95", "99") if (v := metrics.get(f"latency_p{p}")) is not None
            },
            count=int(n) if n is not None else None,
            throughput_per_s=metrics.get("throughput"),
        )
    gpu = metrics.get("gpu_compute_median")
    return JobMeasurement(
        runner="import",
        provenance=_provenance(
            "import",
            provenance,
            imported_from=result.get("imported_from"),
        ),
        init_s=metrics.get("init"),
        first_inference_s=metrics.get("first_inference"),
        memory=Memory(peak_rss_bytes=metrics.get("peak_rss")),
        tool_stats=tool_stats,
        figures=[Figure("gpu_compute_median", gpu, "s")] if gpu is not None else [],
        note=result.get("note"),
        details={
            "tool": tool,
            "times_file": result.get("times_file"),
            tool: result.get(tool),
        },
    )
