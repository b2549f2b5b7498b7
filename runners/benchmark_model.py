"""Read what LiteRT's (TensorFlow Lite's) ``benchmark_model`` prints.

The tool runs a warm-up phase and a timed phase and prints, one line each (with an
``INFO: `` prefix in recent builds, or a logcat prefix such as
``07-14 13:14:52.113 22838 22838 I tflite  : `` when read from ``adb logcat``):

* settings echoed as ``Num threads: [4]``, ``Graph: [/data/local/tmp/m.tflite]``;
* ``The input model file size (MB): 3.06409`` and ``Initialized session in 92.318ms.``;
* ``Replacing 539 out of 548 node(s) with delegate (TfLiteXNNPackDelegate) node, ...``
  for each delegate applied;
* one ``count=N first=.. curr=.. min=.. max=.. avg=.. std=..`` line per phase, warm-up
  first, timed runs last (recent builds append ``p5=.. median=.. p95=..``), in µs;
* ``Inference timings in us: Init: .., First inference: .., Warmup (avg): ..,
  Inference (avg): ..``;
* ``Memory footprint delta from the start of the tool (MB): init=.. overall=..`` and,
  with ``--report_peak_memory_footprint``, ``Overall peak memory footprint (MB) via
  periodic monitoring: ..``.

Everything comes back in seconds and bytes. The tool's ``std`` is its own (over the
timed runs, population form); its percentiles are its own too. A log with neither the
timings line nor a timed ``count=`` line (the run failed: ``Benchmarking failed.``,
an unsupported op, a killed process) raises :class:`BenchmarkModelParseError`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MIB = 1024 * 1024  # the tool's "MB" is KiB / 1024


class BenchmarkModelParseError(ValueError):
    """Output that holds no benchmark_model timings."""


@dataclass(frozen=True)
class PhaseStats:
    """One ``count=`` line, in seconds."""

    count: int
    first_s: float | None
    min_s: float | None
    max_s: float | None
    avg_s: float | None
    std_s: float | None
    median_s: float | None = None
    p5_s: float | None = None
    p95_s: float | None = None


@dataclass(frozen=True)
class BenchmarkModelResult:
    graph: str | None
    num_threads: int | None
    model_size_bytes: float | None
    init_s: float | None
    first_inference_s: float | None
    warmup_avg_s: float | None
    inference_avg_s: float | None
    warmup: PhaseStats | None
    timed: PhaseStats | None
    delegates: list[dict[str, object]] = field(default_factory=list)
    memory_init_bytes: float | None = None
    memory_overall_bytes: float | None = None
    peak_memory_bytes: float | None = None


_NUMBER = r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
_COUNT = re.compile(r"\bcount=(\d+)((?:\s+\w+=" + _NUMBER + r")*)")
_PAIR = re.compile(r"(\w+)=(" + _NUMBER + r")")
_N = _NUMBER
_TIMINGS = re.compile(
    rf"Inference timings in us: Init: (?P<init>{_N}), First inference: (?P<first>{_N}), "
    rf"Warmup \(avg\): (?P<warmup>{_N}), Inference \(avg\): (?P<inference>{_N})"
)
_SETTING = re.compile(r"\b(Num threads|Graph): \[([^\]]*)\]")
_SIZE = re.compile(r"The input model file size \(MB\): (" + _NUMBER + ")")
_DELEGATE = re.compile(r"Replacing (\d+) out of (\d+) node\(s\) with delegate \((\w+)\) node")
_FOOTPRINT = re.compile(
    rf"Memory footprint delta from the start of the tool \(MB\): init=({_N}) overall=({_N})"
)
_PEAK = re.compile(
    r"Overall peak memory footprint \(MB\) via periodic monitoring: (" + _NUMBER + ")"
)
_FAILED = re.compile(r"(Benchmarking failed\.?|ERROR: .*)")


def _us(value: str | None) -> float | None:
    return float(value) / 1e6 if value is not None else None


def _phase(match: re.Match[str]) -> PhaseStats:
    pairs = dict(_PAIR.findall(match.group(2)))
    return PhaseStats(
        count=int(match.group(1)),
        first_s=_us(pairs.get("first")),
        min_s=_us(pairs.get("min")),
        max_s=_us(pairs.get("max")),
        avg_s=_us(pairs.get("avg")),
        std_s=_us(pairs.get("std")),
        median_s=_us(pairs.get("median")),
        p5_s=_us(pairs.get("p5")),
        p95_s=_us(pairs.get("p95")),
    )


def parse_benchmark_model(text: str) -> BenchmarkModelResult:
    phases: list[PhaseStats] = []
    timings = size = footprint = peak = None
    settings: dict[str, str] = {}
    delegates: list[dict[str, object]] = []
    last_error: str | None = None
    for line in text.splitlines():
        if m := _COUNT.search(line):
            # Op profiling (printed after the timings line) has count= lines of its own,
            # "Timings (microseconds): count=..." and "Memory (bytes): count=...".
            if timings is None and "(microseconds)" not in line and "(bytes)" not in line:
                phases.append(_phase(m))
        elif m := _TIMINGS.search(line):
            timings = m
        elif m := _SETTING.search(line):
            settings.setdefault(m.group(1), m.group(2))
        elif m := _SIZE.search(line):
            size = float(m.group(1)) * MIB
        elif m := _DELEGATE.search(line):
            delegates.append(
                {"delegate": m.group(3), "nodes": int(m.group(1)), "of": int(m.group(2))}
            )
        elif m := _FOOTPRINT.search(line):
            footprint = m
        elif m := _PEAK.search(line):
            peak = float(m.group(1)) * MIB
        elif m := _FAILED.search(line):
            # The first ERROR line says why; "Benchmarking failed." only that it did.
            if last_error is None or last_error.startswith("Benchmarking failed"):
                last_error = m.group(1).strip()
    if timings is None and not phases:
        why = f" ({last_error})" if last_error else ""
        raise BenchmarkModelParseError(f"no benchmark_model timings found{why}")
    threads = settings.get("Num threads")
    return BenchmarkModelResult(
        graph=settings.get("Graph") or None,
        num_threads=int(threads) if threads and threads.strip().isdigit() else None,
        model_size_bytes=size,
        init_s=_us(timings.group("init")) if timings else None,
        first_inference_s=_us(timings.group("first")) if timings else None,
        warmup_avg_s=_us(timings.group("warmup")) if timings else None,
        inference_avg_s=_us(timings.group("inference")) if timings else None,
        # Warm-up is printed first, the timed runs last; a lone line is the timed one.
        warmup=phases[-2] if len(phases) >= 2 else None,
        timed=phases[-1] if phases else None,
        delegates=delegates,
        memory_init_bytes=float(footprint.group(1)) * MIB if footprint else None,
        memory_overall_bytes=float(footprint.group(2)) * MIB if footprint else None,
        peak_memory_bytes=peak,
    )
