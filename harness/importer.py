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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import __version__, figures
from harness.errors import UsageError
from harness.store import Store
from harness.workspace import git_commit
from runners.benchmark_model import BenchmarkModelParseError, parse_benchmark_model
from runners.ort_perf_test import OrtPerfTestParseError, parse_ort_perf_test
from runners.records import Figure, JobMeasurement, Memory, Provenance, ToolStatistics, to_plain
from runners.tool_stats import benchmark_model_statistics, ort_perf_test_statistics
from runners.trtexec import TrtexecParseError, parse_export_times, parse_trtexec_log

_SUMMARY_ONLY = "summary only: {tool}'s own statistics{more}, no raw samples"


@dataclass
class ImportedJob:
    source: Path
    setting: dict[str, Any]  # {"runtime": ..., "threads": ...} as the log says
    measurement: JobMeasurement

    @property
    def runtime(self) -> str:
        return str(self.setting["runtime"])


def _imported_job(
    log: Path,
    tool: str,
    parsed: Any,
    setting: dict[str, Any],
    *,
    runtime_version: str | None = None,
    windows: list[list[float]] | None = None,
    tool_stats: ToolStatistics | None = None,
    init_s: float | None = None,
    first_s: float | None = None,
    peak_bytes: float | None = None,
    warmup_count: int | None = None,
    extra_figures: list[Figure] | None = None,
    note: str | None = None,
    details: dict[str, Any] | None = None,
) -> ImportedJob:
    """One log as a job: its measurement labelled as imported from ``tool``."""
    measurement = JobMeasurement(
        runner="import",
        provenance=Provenance(
            runner="import",
            runtime=setting["runtime"],
            runtime_version=runtime_version,
            edgebench_version=__version__,
            imported_from=str(log),
            extra={"tool": tool},
        ),
        windows=windows or [],
        init_s=init_s,
        first_inference_s=first_s,
        warmup_count=warmup_count,
        memory=Memory(peak_rss_bytes=peak_bytes),
        tool_stats=tool_stats,
        figures=extra_figures or [],
        note=note,
        details={"tool": tool, tool: to_plain(parsed), **(details or {})},
    )
    return ImportedJob(source=log, setting=setting, measurement=measurement)


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
        tool_stats = None
        lat = result.latency
        if not samples and lat is None:
            # A finished job stands for a latency. An excerpt with only the Throughput
            # line, or a Latency line cut off mid-value, has none: refused, like a log
            # without a summary, instead of a "done" job nobody can compare.
            why = f" ({result.problems[0]})" if result.problems else ""
            raise UsageError(
                f"{log}: no readable Latency line in the trtexec log{why}; give its "
                "--exportTimes JSON after it, or the complete log"
            )
        if not samples and lat is not None:
            # A figure the log does not give stays unknown (no percentiles before 8.4,
            # no Throughput line in an excerpt).
            tool_stats = ToolStatistics(
                tool="trtexec",
                mean_s=lat.mean_s,
                median_s=lat.median_s,
                min_s=lat.min_s,
                max_s=lat.max_s,
                percentiles_s={f"{p:g}": v for p, v in lat.percentiles_s.items()},
                count=result.timed_queries,
                throughput_per_s=result.throughput_qps,
                note="trtexec's Latency (H2D + GPU compute + D2H of one query)",
            )
        gpu = result.gpu_compute_time
        jobs.append(
            _imported_job(
                log,
                "trtexec",
                result,
                {"runtime": "tensorrt", "threads": None, "precision": result.precision},
                runtime_version=result.trt_version,
                windows=[samples] if samples else [],
                tool_stats=tool_stats,
                extra_figures=[Figure("gpu_compute_median", gpu.median_s, "s")] if gpu else [],
                note=None if samples else _SUMMARY_ONLY.format(tool="trtexec", more=""),
                details={"times_file": str(times) if times else None},
            )
        )
    return jobs


def _benchmark_model_jobs(files: list[Path]) -> list[ImportedJob]:
    jobs = []
    for log in files:
        try:
            r = parse_benchmark_model(_read(log))
        except BenchmarkModelParseError as e:
            raise UsageError(f"{log}: {e}") from None
        stats = benchmark_model_statistics(r)
        jobs.append(
            _imported_job(
                log,
                "benchmark_model",
                r,
                {"runtime": "litert", "threads": r.num_threads},
                tool_stats=stats,
                init_s=r.init_s,
                first_s=r.first_inference_s,
                peak_bytes=r.peak_memory_bytes,
                warmup_count=r.warmup.count if r.warmup else None,
                note=_SUMMARY_ONLY.format(
                    tool="benchmark_model", more=" (its std is over the timed runs, ddof=0)"
                ),
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
        stats = ort_perf_test_statistics(r)
        jobs.append(
            _imported_job(
                log,
                "onnxruntime_perf_test",
                r,
                {"runtime": "onnxruntime", "threads": r.intra_op_threads},
                tool_stats=stats,
                init_s=r.session_creation_s,
                first_s=r.first_inference_s,
                peak_bytes=r.peak_working_set_bytes,
                note=_SUMMARY_ONLY.format(tool="onnxruntime_perf_test", more=""),
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
        summary = figures.summarize(job.measurement)
        store.finish_job(
            stored[p["key"]],
            measurement=job.measurement,
            summary=summary.to_dict() if summary else None,
            job_metrics=figures.job_metrics(job.measurement, summary),
        )
    store.set_run_status(run_id, "finished")
    return run_id
