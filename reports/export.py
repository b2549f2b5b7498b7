"""A run's figures as files other tools read (`edgebench export`).

- ``csv`` / ``parquet``: one row per job with every figure, or with ``samples`` one row per
  raw latency sample. An ``estimated`` column names the figures that are estimated (no
  sensor, emulation), so no consumer can mistake them for measurements.
- ``pytest-benchmark``: the JSON that pytest-benchmark saves, so `pytest-benchmark compare`
  and dashboards built on it read edgebench runs. One benchmark per job, group = device,
  stats computed by the controller from the raw samples (seconds).

Input: a ``runners.records.RunReport`` (harness.results.report_data) and, for samples, each
job's windows.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from runners.records import RunReport

JOB_COLUMNS = (
    "run_id",
    "device",
    "model",
    "variant",
    "setting",
    "runtime",
    "threads",
    "status",
    "error",
    "format",
    "file_size_bytes",
    "zstd_size_bytes",
    "params",
    "nonzero_params",
    "macs",
    "accuracy",
    "accuracy_n",
    "accuracy_retention",
    "latency_p50_s",
    "latency_p90_s",
    "latency_p95_s",
    "latency_p99_s",
    "latency_mean_s",
    "latency_min_s",
    "latency_max_s",
    "latency_std_s",
    "latency_cv",
    "latency_n",
    "latency_ci_low_s",
    "latency_ci_high_s",
    "throughput_per_s",
    "timed_region",
    "latency_io_p50_s",
    "io_region",
    "processes",
    "init_s",
    "first_inference_s",
    "timer_floor_s",
    "peak_rss_bytes",
    "rss_after_load_bytes",
    "mean_power_w",
    "idle_power_w",
    "energy_per_inference_j",
    "power_rail",
    "power_sample_rate_hz",
    "static_ram_bytes",
    "flash_bytes",
    "arena_bytes",
    "ram_limit_bytes",
    "flash_limit_bytes",
    "executed_instructions",
    "emulated",
    "not_deployable",
    "estimated",
)
SAMPLE_COLUMNS = (
    "run_id",
    "device",
    "model",
    "variant",
    "setting",
    "repetition",
    "index",
    "latency_s",
    "estimated",
)


# JOB_COLUMNS that are not JobResult fields of the same name (the latency figures are
# flattened out of its LatencyStats).
_LATENCY_COLUMNS = {
    **{
        f"latency_{k}_s": k
        for k in ("p50", "p90", "p95", "p99", "mean", "min", "max", "std", "ci_low", "ci_high")
    },
    "latency_cv": "cv",
    "latency_n": "n",
    "throughput_per_s": "throughput",
}
_DERIVED_COLUMNS = {"run_id", "estimated", *_LATENCY_COLUMNS}
_FIELD_COLUMNS = tuple(c for c in JOB_COLUMNS if c not in _DERIVED_COLUMNS)


def job_records(data: RunReport) -> list[dict[str, Any]]:
    """One flat record per job, keys as JOB_COLUMNS."""
    out = []
    for r in data.results:
        # getattr on the column names: a column that is no JobResult field raises.
        rec: dict[str, Any] = {k: getattr(r, k) for k in _FIELD_COLUMNS}
        rec["run_id"] = data.run.id
        for column, stat in _LATENCY_COLUMNS.items():
            rec[column] = getattr(r.latency_s, stat) if r.latency_s else None
        rec["estimated"] = ";".join(r.estimated)
        out.append({k: rec[k] for k in JOB_COLUMNS})
    return out


def sample_records(
    data: RunReport, windows_of: Callable[[int], list[list[float]]]
) -> Iterable[dict[str, Any]]:
    """One record per raw sample; ``windows_of(job_id)`` gives a job's windows."""
    run_id = data.run.id
    for r in data.results:
        if r.status != "done":
            continue
        estimated = "latency_s" in r.estimated
        for rep, window in enumerate(windows_of(r.job_id)):
            for i, value in enumerate(window):
                yield {
                    "run_id": run_id,
                    "device": r.device,
                    "model": r.model,
                    "variant": r.variant,
                    "setting": r.setting,
                    "repetition": rep,
                    "index": i,
                    "latency_s": value,
                    "estimated": estimated,
                }


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: Any) -> Any:
    """Text that a spreadsheet would run as a formula gets a leading quote (a variant or
    device name is user input); numbers stay numbers."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    if isinstance(value, float) and math.isnan(value):
        return ""
    return value


def write_csv(
    records: Iterable[dict[str, Any]], columns: Sequence[str], out: io.TextIOBase | Any
) -> int:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    n = 0
    for rec in records:
        writer.writerow([_csv_cell(rec[c]) for c in columns])
        n += 1
    return n


def write_parquet(records: Iterable[dict[str, Any]], columns: Sequence[str], path: Path) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = list(records)
    table = pa.table({c: [r[c] for r in rows] for c in columns})
    pq.write_table(table, str(path))
    return len(rows)


# --------------------------------------------------------------------------- pytest-benchmark


def pytest_benchmark_json(
    data: RunReport,
    stats_of: dict[int, dict[str, Any]],
    exported_at: str,
    edgebench_version: str,
) -> dict[str, Any]:
    """``stats_of``: job id -> pytest-benchmark stats of its raw samples (harness.stats);
    jobs without samples are left out."""
    run = data.run
    devices = {d.name: d for d in data.devices}
    first = next(iter(devices.values()), None)
    # facts are what the capability probe found: free-form, any of them may be missing.
    facts = first.facts if first else {}
    benchmarks = []
    for r in data.results:
        if r.status != "done" or r.job_id not in stats_of:
            continue
        name = f"{r.variant}[{r.setting}]"
        benchmarks.append(
            {
                "group": r.device,
                "name": name,
                "fullname": f"{r.device}::{r.model}::{name}",
                "params": {"device": r.device, "setting": r.setting},
                "param": r.setting,
                "extra_info": {
                    "edgebench_run": run.id,
                    "model": r.model,
                    "variant": r.variant,
                    "file_size_bytes": r.file_size_bytes,
                    "accuracy": r.accuracy,
                    "peak_rss_bytes": r.peak_rss_bytes,
                    "energy_per_inference_j": r.energy_per_inference_j,
                    "percentiles": "nearest-rank",
                    # Named so no dashboard shows an emulated or sensor-less figure as measured.
                    "estimated": list(r.estimated),
                },
                "options": {
                    "timer": "perf_counter_ns (edgebench agent, one sample per inference)",
                    "disable_gc": False,
                    "warmup": True,
                    "repetitions": run.repetitions,
                },
                "stats": stats_of[r.job_id],
            }
        )
    return {
        "machine_info": {
            "node": first.name if first else None,
            "processor": facts.get("arch"),
            "machine": facts.get("arch"),
            "python_implementation": "CPython",
            "python_version": facts.get("python"),
            "release": facts.get("kernel"),
            "system": facts.get("os"),
            "cpu": {"brand_raw": facts.get("cpu_model"), "count": facts.get("cpu_cores")},
            "edgebench_devices": sorted(devices),
        },
        "commit_info": {"id": run.commit, "project": "edgebench", "dirty": None},
        "benchmarks": benchmarks,
        "datetime": exported_at,
        "version": f"edgebench {edgebench_version}",
    }
