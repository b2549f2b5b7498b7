"""Bring results of vendor tools, run outside edgebench, into a run.

``edgebench import --tool TOOL FILE ...``: each log becomes a finished job of a new run.

* ``trtexec``: a console log, optionally followed by its ``--exportTimes`` JSON, which
  supplies the raw per-inference latencies (otherwise only trtexec's own summary is
  known, and the job says so).
* ``benchmark_model`` (LiteRT / TensorFlow Lite, also as read from ``adb logcat``) and
  ``ort-perf-test`` (``onnxruntime_perf_test``): the printed summary.

Where no raw samples exist the job's figures are the tool's own statistics, stored as it
printed them; the run says so (``suite.imported``) and reports mark it.
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import __version__, stats
from harness.errors import UsageError
from harness.scheduler import latency_metrics
from harness.store import Metric, Store
from harness.workspace import git_commit
from runners.benchmark_model import BenchmarkModelParseError, parse_benchmark_model
from runners.ort_perf_test import OrtPerfTestParseError, parse_ort_perf_test
from runners.trtexec import TrtexecParseError, parse_export_times, parse_trtexec_log


@dataclass
class ImportedJob:
    source: Path
    runtime: str
    setting: dict[str, Any]
    result: dict[str, Any]
    metrics: list[Metric]
    windows: list[list[float]] = field(default_factory=list)
    runtime_version: str | None = None


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


def _read(path: Path) -> str:
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    try:
        return path.read_text(errors="replace")
    except OSError as e:
        raise UsageError(f"{path}: {e}") from None


def _trtexec_jobs(files: list[Path]) -> list[ImportedJob]:
    jobs = []
    for log, times in pair_files(files):
        try:
            result = parse_trtexec_log(_read(log))
            samples = parse_export_times(_read(times)) if times else []
        except TrtexecParseError as e:
            raise UsageError(f"{times if times and 'JSON' in str(e) else log}: {e}") from None
        except ValueError as e:
            raise UsageError(f"{times or log}: {e}") from None
        jobs.append(
            ImportedJob(
                source=log,
                runtime="tensorrt",
                setting={"runtime": "tensorrt", "threads": None, "precision": result.precision},
                result={
                    "times_file": str(times) if times else None,
                    "trtexec": _jsonable(result),
                    "note": None
                    if samples
                    else "summary only: trtexec's own statistics, no raw samples",
                },
                metrics=_metrics(result, samples),
                windows=[samples] if samples else [],
                runtime_version=result.trt_version,
            )
        )
    return jobs


def _summary_job(
    log: Path,
    tool: str,
    parsed: Any,
    *,
    runtime: str,
    threads: int | None,
    figures: dict[str, float | None],
    n: int | None,
    throughput: float | None,
    init_s: float | None,
    first_s: float | None,
    peak_bytes: float | None,
    note: str = "",
) -> ImportedJob:
    """A job from a tool's printed summary: its own latency figures (seconds) stored as
    it printed them, and no raw samples."""
    metrics = [Metric(f"latency_{k}", v, "s") for k, v in figures.items() if v is not None]
    if n is not None:
        metrics.append(Metric("latency_n", n, "count"))
    if throughput is not None:
        metrics.append(Metric("throughput", throughput, "1/s"))
    metrics += [
        Metric("init", init_s, "s"),
        Metric("first_inference", first_s, "s"),
        Metric("peak_rss", peak_bytes, "bytes"),
    ]
    return ImportedJob(
        source=log,
        runtime=runtime,
        setting={"runtime": runtime, "threads": threads},
        result={
            tool: _jsonable(parsed),
            "note": f"summary only: {tool}'s own statistics{note}, no raw samples",
        },
        metrics=metrics,
    )


def _benchmark_model_jobs(files: list[Path]) -> list[ImportedJob]:
    jobs = []
    for log in files:
        try:
            r = parse_benchmark_model(_read(log))
        except BenchmarkModelParseError as e:
            raise UsageError(f"{log}: {e}") from None
        timed = r.timed
        mean = timed.avg_s if timed and timed.avg_s is not None else r.inference_avg_s
        figures = {"mean": mean}
        if timed:
            figures |= {
                "p50": timed.median_s,
                "p95": timed.p95_s,
                "min": timed.min_s,
                "max": timed.max_s,
            }
        jobs.append(
            _summary_job(
                log,
                "benchmark_model",
                r,
                runtime="litert",
                threads=r.num_threads,
                figures=figures,
                n=timed.count if timed else None,
                throughput=1.0 / mean if mean else None,
                init_s=r.init_s,
                first_s=r.first_inference_s,
                peak_bytes=r.peak_memory_bytes,
                note=" (its std is over the timed runs, ddof=0)",
            )
        )
    return jobs


def _ort_perf_test_jobs(files: list[Path]) -> list[ImportedJob]:
    jobs = []
    for log in files:
        try:
            r = parse_ort_perf_test(_read(log))
        except OrtPerfTestParseError as e:
            raise UsageError(f"{log}: {e}") from None
        figures: dict[str, float | None] = {
            f"p{int(p)}": v for p, v in r.percentiles_s.items() if p in (50, 90, 95, 99)
        }
        jobs.append(
            _summary_job(
                log,
                "onnxruntime_perf_test",
                r,
                runtime="onnxruntime",
                threads=r.intra_op_threads,
                figures=figures | {"mean": r.mean_s, "min": r.min_s, "max": r.max_s},
                n=r.requests,
                throughput=r.throughput_per_s,
                init_s=r.session_creation_s,
                first_s=r.first_inference_s,
                peak_bytes=r.peak_working_set_bytes,
            )
        )
    return jobs


READERS: dict[str, Callable[[list[Path]], list[ImportedJob]]] = {
    "trtexec": _trtexec_jobs,
    "benchmark_model": _benchmark_model_jobs,
    "ort-perf-test": _ort_perf_test_jobs,
}
TOOLS = tuple(READERS)


def import_logs(store: Store, tool: str, files: list[Path], device: str) -> str:
    """Parse every file first (a bad one stops the import before anything is stored),
    then store one finished job per log in a new run; returns the run id."""
    if tool not in READERS:
        raise UsageError(f"--tool {tool!r} is not supported (supported: {', '.join(TOOLS)})")
    if not files:
        raise UsageError("no log files given")
    jobs = READERS[tool](files)
    planned = []
    seen: dict[str, Path] = {}
    for job in jobs:
        variant = job.source.stem
        if variant in seen:
            raise UsageError(
                f"{job.source}: named like {seen[variant]}; each log's file name names its "
                "variant, so give them different names"
            )
        seen[variant] = job.source
        planned.append(
            {
                "key": f"{device}|imported|{variant}|{tool}",
                "device": device,
                "model": "imported",
                "variant": variant,
                "runtime": job.runtime,
                "setting": {**job.setting, "tool": tool},
                "artifact_sha256": None,
            }
        )
    name = f"import-{tool}"
    run_id = store.create_run(
        suite_name=name,
        suite_path="",
        version=__version__,
        commit=git_commit(),
        host=platform.node(),
        planned_jobs=planned,
        suite={
            "name": name,
            "imported": True,
            "tool": tool,
            "measure": {"repetitions": 1},
            "variants": [],
        },
    )
    stored = {j["key"]: j["id"] for j in store.jobs_for_run(run_id)}
    for p, job in zip(planned, jobs, strict=True):
        store.finish_job(
            stored[p["key"]],
            result={"imported_from": str(job.source), **job.result},
            provenance={
                "imported": True,
                "tool": tool,
                "runtime_version": job.runtime_version,
                "edgebench_version": __version__,
            },
            windows=job.windows,
            job_metrics=job.metrics,
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
