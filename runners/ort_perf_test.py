"""Read what ``onnxruntime_perf_test`` prints.

After its run the tool prints a summary, one figure per line (onnxruntime 1.x):

    Setting intra_op_num_threads to 1
    Session creation time cost: 0.217932 s
    First inference time cost: 196 ms              (whole ms: the tool truncates)
    Total inference time cost: 0.49481 s           (sum of the timed requests)
    Total inference requests: 5
    Average inference time cost: 98.961997 ms      ("... cost total: ..." in newer builds,
                                                    plus "... cost submission: ..." with
                                                    CUDA I/O binding)
    Total inference run time: 0.494854 s           (wall clock of the timed phase)
    Number of inferences per second: 10.104
    Avg CPU usage: 11 %                             ("Total CPU usage: 382 %" in some)
    Peak working set size: 271122432 bytes
    Min Latency: 0.0958204 s
    Max Latency: 0.101519 s
    P50 Latency: 0.0995086 s   (and P90, P95, P99, P999)

Builds since 1.16 or so also repeat ``Avg CPU usage:11``, ``Peak working set size:N``
and ``Runs:N`` without spaces; older ones print no latency percentiles, no first
inference and no throughput. Other layouts read here:

* onnxruntime 0.x: ``Total time cost:1.94`` (seconds, no unit), ``Total iterations:100``
  and ``Average time cost:19.4 ms``; its percentiles went only to the ``-r`` result file
  as ``P50 Latency is 0.0193sec``, which is read too.
* NXP's i.MX fork (eIQ): ``Total time cost (including warm-up): .. s``, ``Warm-up
  inference time cost: .. ms`` and ``Average inference time cost (excluding warm-up):
  .. ms``; its ``Total inference requests`` counts the warm-up request too.
* builds with ``--data_shape`` add indented per-shape-group blocks (``Latency per shape
  group:``, ``Shape group 1 (250 iterations):``); they go to ``shape_groups``, never
  into the overall figures.

Everything comes back in seconds and bytes; a figure not printed is None, and so is one
that is no figure (inf, a negative time: a corrupted line). The figures
are the tool's own: the mean is a mean, and the percentiles are the sample at 0-based
index ``floor(n * p)`` of the sorted request times (not nearest-rank). A ``Peak working
set size`` of 0 is what builds print where they cannot measure it (non-Windows before
onnxruntime 1.0), so it is None. Output without a request count or an average (the
session failed to load, the provider is missing), or whose run made no request, raises
:class:`OrtPerfTestParseError`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import ClassVar

_NUMBER = r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
_UNITS = {"s": 1.0, "sec": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ns": 1e-9}
_UNIT = r"(sec|s|ms|us|µs|μs|ns)\b"


class OrtPerfTestParseError(ValueError):
    """Output that holds no onnxruntime_perf_test summary."""


@dataclass(frozen=True)
class OrtShapeGroup:
    """One ``--data_shape`` group's figures (1-based ``index``), in seconds."""

    index: int
    label: str | None = None  # e.g. "input : [1,3,224,224]"
    iterations: int | None = None
    mean_s: float | None = None
    min_s: float | None = None
    max_s: float | None = None
    percentiles_s: dict[float, float] = field(default_factory=dict)


@dataclass(frozen=True)
class OrtPerfTestResult:
    """What an onnxruntime_perf_test log says; seconds and bytes, None where not printed.

    ``requests`` is ``Total inference requests`` as printed (``Total iterations`` in
    0.x); ``timed_requests`` the number of requests the mean and the percentiles are
    over (one fewer in NXP's fork, which counts its warm-up request). ``mean_s`` excludes
    the warm-up request in every layout. ``first_inference_s`` is the warm-up request
    (``First inference time cost``, whole ms, or NXP's ``Warm-up inference time cost``).
    ``total_time_s`` sums the timed requests' times; ``total_time_including_warmup_s``
    is NXP's total with the warm-up; ``run_time_s`` is the wall clock of the timed
    phase. ``mean_submission_s`` is the mean submission time printed with CUDA I/O
    binding. ``runs`` is the ``Runs:N`` line of newer builds.
    """

    PERCENTILE_METHOD: ClassVar[str] = "sorted[floor(n * p)] (0-based), onnxruntime_perf_test's"

    requests: int
    mean_s: float
    session_creation_s: float | None = None
    first_inference_s: float | None = None
    total_time_s: float | None = None
    run_time_s: float | None = None
    throughput_per_s: float | None = None
    cpu_usage_pct: float | None = None
    peak_working_set_bytes: int | None = None
    intra_op_threads: int | None = None
    min_s: float | None = None
    max_s: float | None = None
    percentiles_s: dict[float, float] = field(default_factory=dict)
    timed_requests: int | None = None
    inter_op_threads: int | None = None
    mean_submission_s: float | None = None
    total_time_including_warmup_s: float | None = None
    runs: int | None = None
    shape_groups: list[OrtShapeGroup] = field(default_factory=list)


def _timed(name: str, *, unit_optional: bool = False) -> re.Pattern[str]:
    unit = rf"(?:\s*{_UNIT})?" if unit_optional else rf"\s*{_UNIT}"
    return re.compile(rf"^{name}(?::|\s+is)\s*({_NUMBER}){unit}")


# Order matters: the first pattern that matches a line takes it.
_FIGURES = {
    "session_creation_s": _timed("Session creation time cost"),
    "first_inference_s": _timed("(?:First|Warm-up) inference time cost"),
    "total_time_including_warmup_s": _timed(r"Total time cost \(including warm-up\)"),
    # 0.x printed the total in seconds without a unit.
    "total_time_s": _timed("(?:Total inference time cost|Total time cost)", unit_optional=True),
    "mean_submission_s": _timed("Average inference time cost submission"),
    "mean_s": _timed(
        r"(?:Average inference time cost(?: total| \(excluding warm-up\))?|Average time cost)"
    ),
    "run_time_s": _timed("Total inference run time"),
    "min_s": _timed("Min Latency"),
    "max_s": _timed("Max Latency"),
}
_REQUESTS = re.compile(r"^(Total inference requests|Total iterations):\s*(\d+)")
_RUNS = re.compile(r"^Runs:\s*(\d+)")
_THROUGHPUT = re.compile(rf"^Number of inferences per second:\s*({_NUMBER})")
_CPU = re.compile(rf"^(?:Avg|Total) CPU usage:\s*({_NUMBER})")
_PEAK = re.compile(r"^Peak working set size:\s*(\d+)")
_THREADS = re.compile(r"^Setting (intra|inter)_op_num_threads to (\d+)")
_PERCENTILE = re.compile(rf"^P(\d+) Latency(?::|\s+is)\s*({_NUMBER})\s*{_UNIT}")
# --data_shape blocks.
_SHAPE_HEADER = re.compile(r"^Latency per shape group:")
_SHAPE_LABEL = re.compile(r"^(\d+)\. (.+)$")
_SHAPE_GROUP = re.compile(r"^Shape group (\d+) \((\d+) iterations\):")
_SHAPE_ITERATIONS = re.compile(r"^Iterations:\s*(\d+)")
_SHAPE_MEAN = _timed("Average Latency")


def _percentile_of(digits: str) -> float:
    # P50 -> 50, P99 -> 99, P999 -> 99.9 (the tool's names for them).
    return float(digits) if len(digits) <= 2 else float(digits[:2] + "." + digits[2:])


def _seconds(value: str, unit: str | None) -> float | None:
    """A printed time in seconds; None for one that is no time (inf from a corrupted
    exponent, a negative value)."""
    seconds = float(value) * _UNITS[unit or "s"]
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _rate(value: str) -> float | None:
    """A printed rate or percentage; None where it is not a finite, non-negative number."""
    number = float(value)
    return number if math.isfinite(number) and number >= 0 else None


# A count the tool prints fits in 64 bits; more digits are garbage (and int() of over
# 4300 digits raises a plain ValueError, which is no parse error).
_MAX_DIGITS = 18


def _count(digits: str) -> int:
    if len(digits) > _MAX_DIGITS:
        raise OrtPerfTestParseError(f"count {digits[:_MAX_DIGITS]}... is not a number")
    return int(digits)


class _ShapeGroups:
    """Collects the per-shape-group figures of both blocks, merged by group index."""

    def __init__(self) -> None:
        self.groups: dict[int, dict[str, object]] = {}
        self.current: int | None = None

    def start(self, index: int, **known: object) -> None:
        self.current = index
        group = self.groups.setdefault(index, {"percentiles_s": {}})
        for key, value in known.items():
            group.setdefault(key, value)

    def add(self, line: str) -> bool:
        """Take one indented line of the current group; False if it is not one."""
        if self.current is None:
            return False
        group = self.groups[self.current]
        if m := _SHAPE_ITERATIONS.match(line):
            group.setdefault("iterations", _count(m.group(1)))
        elif m := _SHAPE_MEAN.match(line):
            if (seconds := _seconds(m.group(1), m.group(2))) is not None:
                group.setdefault("mean_s", seconds)
        elif (m := _FIGURES["min_s"].match(line)) or (m := _FIGURES["max_s"].match(line)):
            key = "min_s" if line.startswith("Min") else "max_s"
            if (seconds := _seconds(m.group(1), m.group(2))) is not None:
                group.setdefault(key, seconds)
        elif m := _PERCENTILE.match(line):
            percentiles = group["percentiles_s"]
            assert isinstance(percentiles, dict)
            if (seconds := _seconds(m.group(2), m.group(3))) is not None:
                percentiles.setdefault(_percentile_of(m.group(1)), seconds)
        else:
            return line == "(no data)"
        return True

    def result(self) -> list[OrtShapeGroup]:
        return [
            OrtShapeGroup(index=index, **group)  # type: ignore[arg-type]
            for index, group in sorted(self.groups.items())
        ]


def parse_ort_perf_test(text: str) -> OrtPerfTestResult:
    values: dict[str, float] = {}
    percentiles: dict[float, float] = {}
    requests: int | None = None
    requests_label: str | None = None
    threads: dict[str, int] = {}
    peak = runs = None
    throughput = cpu = None
    shapes = _ShapeGroups()
    in_shape_block = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        indented = raw[:1].isspace()
        # Per-shape-group blocks: their lines are indented, and they must never be
        # read as the overall figures (whose names they share).
        if _SHAPE_HEADER.match(line):
            in_shape_block = True
            continue
        if m := _SHAPE_GROUP.match(line):
            shapes.start(_count(m.group(1)), iterations=_count(m.group(2)))
            continue
        if in_shape_block and indented and (m := _SHAPE_LABEL.match(line)):
            shapes.start(_count(m.group(1)), label=m.group(2))
            continue
        if indented and shapes.current is not None:
            shapes.add(line)
            continue
        in_shape_block = False
        shapes.current = None
        for key, pattern in _FIGURES.items():
            if m := pattern.match(line):
                # A time that is no time (inf, negative) is as if not printed.
                if (seconds := _seconds(m.group(1), m.group(2))) is not None:
                    values.setdefault(key, seconds)
                break
        else:
            if m := _REQUESTS.match(line):
                requests, requests_label = _count(m.group(2)), m.group(1)
            elif m := _RUNS.match(line):
                runs = _count(m.group(1))
            elif m := _THROUGHPUT.match(line):
                throughput = _rate(m.group(1))
            elif m := _CPU.match(line):
                cpu = cpu if cpu is not None else _rate(m.group(1))
            elif m := _PEAK.match(line):
                peak = peak if peak is not None else _count(m.group(1))
            elif m := _THREADS.match(line):
                threads[m.group(1)] = _count(m.group(2))
            elif m := _PERCENTILE.match(line):
                if (seconds := _seconds(m.group(2), m.group(3))) is not None:
                    percentiles[_percentile_of(m.group(1))] = seconds
    if requests is None or "mean_s" not in values:
        last = next((ln.strip() for ln in reversed(text.splitlines()) if ln.strip()), "")
        raise OrtPerfTestParseError(
            "no onnxruntime_perf_test summary found"
            + (f" (last line: {last[:200]})" if last else " (empty output)")
        )
    nxp = "total_time_including_warmup_s" in values
    timed_requests = requests - 1 if nxp else requests
    if timed_requests <= 0:
        raise OrtPerfTestParseError(
            f"onnxruntime_perf_test made no timed request ({requests_label}: {requests})"
        )
    return OrtPerfTestResult(
        requests=requests,
        mean_s=values["mean_s"],
        session_creation_s=values.get("session_creation_s"),
        first_inference_s=values.get("first_inference_s"),
        total_time_s=values.get("total_time_s"),
        run_time_s=values.get("run_time_s"),
        throughput_per_s=throughput,
        cpu_usage_pct=cpu,
        peak_working_set_bytes=peak or None,  # 0: not measurable on that build
        intra_op_threads=threads.get("intra"),
        min_s=values.get("min_s"),
        max_s=values.get("max_s"),
        percentiles_s=percentiles,
        timed_requests=timed_requests,
        inter_op_threads=threads.get("inter"),
        mean_submission_s=values.get("mean_submission_s"),
        total_time_including_warmup_s=values.get("total_time_including_warmup_s"),
        runs=runs,
        shape_groups=shapes.result(),
    )
