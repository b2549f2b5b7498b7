"""Bring results of vendor tools, run outside edgebench, into a run.

``edgebench import --tool trtexec LOG [TIMES.json] [LOG ...]``: each log becomes
a finished job; an ``--exportTimes`` JSON given right after its log supplies the
raw per-inference latencies (otherwise only trtexec's own summary is known, and
the job says so).
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

from harness import __version__, stats
from harness.errors import UsageError
from harness.scheduler import latency_metrics
from harness.store import Metric, Store
from harness.workspace import git_commit
from runners.trtexec import TrtexecParseError, parse_export_times, parse_trtexec_log

TOOLS = ("trtexec",)


def pair_files(files: list[Path]) -> list[tuple[Path, Path | None]]:
    """[log, times.json, log, ...] -> [(log, times or None), ...]."""
    pairs: list[tuple[Path, Path | None]] = []
    for f in files:
        if not f.is_file():
            raise UsageError(f"{f}: no such file")
        if f.suffix == ".json":
            if not pairs or pairs[-1][1] is not None:
                raise UsageError(f"{f}: an --exportTimes JSON must follow the log it belongs to")
            pairs[-1] = (pairs[-1][0], f)
        else:
            pairs.append((f, None))
    if not pairs:
        raise UsageError("no log files given")
    return pairs


def import_trtexec(store: Store, files: list[Path], device: str) -> str:
    jobs: list[tuple[dict[str, Any], dict[str, Any], list[list[float]], list[Metric]]] = []
    for log, times in pair_files(files):
        try:
            result = parse_trtexec_log(log.read_text(errors="replace"))
            samples = parse_export_times(times.read_text()) if times else []
        except TrtexecParseError as e:
            raise UsageError(f"{times if times and 'JSON' in str(e) else log}: {e}") from None
        except (OSError, ValueError) as e:
            raise UsageError(f"{times or log}: {e}") from None
        variant = log.stem
        setting = {
            "runtime": "tensorrt",
            "threads": None,
            "precision": result.precision,
            "tool": "trtexec",
        }
        planned = {
            "key": f"{device}|imported|{variant}|trtexec",
            "device": device,
            "model": "imported",
            "variant": variant,
            "runtime": "tensorrt",
            "setting": setting,
            "artifact_sha256": None,
        }
        windows = [samples] if samples else []
        job_result = {
            "imported_from": str(log),
            "times_file": str(times) if times else None,
            "trtexec": _jsonable(result),
            "note": None if samples else "summary only: trtexec's own statistics, no raw samples",
        }
        jobs.append((planned, job_result, windows, _metrics(result, samples)))

    run_id = store.create_run(
        suite_name="import-trtexec",
        suite_path="",
        version=__version__,
        commit=git_commit(),
        host=platform.node(),
        planned_jobs=[p for p, _, _, _ in jobs],
        suite={
            "name": "import-trtexec",
            "imported": True,
            "measure": {"repetitions": 1},
            "variants": [],
        },
    )
    stored = {j["key"]: j["id"] for j in store.jobs_for_run(run_id)}
    for planned, job_result, windows, metrics in jobs:
        provenance = {
            "imported": True,
            "tool": "trtexec",
            "runtime_version": job_result["trtexec"].get("trt_version"),
            "edgebench_version": __version__,
        }
        store.finish_job(
            stored[planned["key"]],
            result=job_result,
            provenance=provenance,
            windows=windows,
            job_metrics=metrics,
        )
    store.set_run_status(run_id, "finished")
    return run_id


def _metrics(result: Any, samples: list[float]) -> list[Metric]:
    if samples:
        # Raw times: our own statistics, exactly as for a measured job.
        out = latency_metrics(stats.summarize(samples))
    elif result.latency is not None:
        # Summary only: trtexec's own figures, stored as it printed them.
        lat = result.latency
        figures = {
            "p50": lat.median_s,
            "mean": lat.mean_s,
            "min": lat.min_s,
            "max": lat.max_s,
            **{f"p{int(p)}": v for p, v in lat.percentiles_s.items() if p in (90, 95, 99)},
        }
        out = [Metric(f"latency_{name}", value, "s") for name, value in figures.items()]
        if result.timed_queries is not None:
            out.append(Metric("latency_n", result.timed_queries, "count"))
        if result.throughput_qps is not None:
            out.append(Metric("throughput", result.throughput_qps, "1/s"))
    else:
        return []
    if result.gpu_compute_time is not None:
        out.append(Metric("gpu_compute_median", result.gpu_compute_time.median_s, "s"))
    return out


def _jsonable(obj: Any) -> Any:
    """A parser dataclass as plain JSON data (for the job's stored result)."""
    import dataclasses

    if dataclasses.is_dataclass(obj):
        return {f.name: _jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj
