"""Read what ``onnxruntime_perf_test`` prints.

After its run the tool prints a summary, one figure per line (onnxruntime 1.x):

    Setting intra_op_num_threads to 1
    Session creation time cost: 0.217932 s
    First inference time cost: 196 ms
    Total inference time cost: 0.49481 s
    Total inference requests: 5
    Average inference time cost: 98.961997 ms      ("... cost total: ..." in newer builds)
    Total inference run time: 0.494854 s
    Number of inferences per second: 10.104
    Avg CPU usage: 11 %                             ("Total CPU usage: 382 %" in some)
    Peak working set size: 271122432 bytes
    Min Latency: 0.0958204 s
    Max Latency: 0.101519 s
    P50 Latency: 0.0995086 s   (and P90, P95, P99, P999)

Builds since 1.16 or so also repeat ``Avg CPU usage:11``, ``Peak working set size:N``
and ``Runs:N`` without spaces; older ones print no latency percentiles. Everything
comes back in seconds and bytes; the percentiles are the tool's own. Output without
``Total inference requests`` or an average (the session failed to load, the provider
is missing) raises :class:`OrtPerfTestParseError`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_NUMBER = r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6}


class OrtPerfTestParseError(ValueError):
    """Output that holds no onnxruntime_perf_test summary."""


@dataclass(frozen=True)
class OrtPerfTestResult:
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


def _timed(name: str) -> re.Pattern[str]:
    return re.compile(rf"^{name}:\s*({_NUMBER})\s*(s|ms|us)\b")


_FIGURES = {
    "session_creation_s": _timed("Session creation time cost"),
    "first_inference_s": _timed("First inference time cost"),
    "total_time_s": _timed("Total inference time cost"),
    "mean_s": _timed(r"Average inference time cost(?: total)?"),
    "run_time_s": _timed("Total inference run time"),
    "min_s": _timed("Min Latency"),
    "max_s": _timed("Max Latency"),
}
_REQUESTS = re.compile(r"^Total inference requests:\s*(\d+)")
_THROUGHPUT = re.compile(rf"^Number of inferences per second:\s*({_NUMBER})")
_CPU = re.compile(rf"^(?:Avg|Total) CPU usage:\s*({_NUMBER})")
_PEAK = re.compile(r"^Peak working set size:\s*(\d+)")
_THREADS = re.compile(r"^Setting intra_op_num_threads to (\d+)")
_PERCENTILE = re.compile(rf"^P(\d+) Latency:\s*({_NUMBER})\s*(s|ms|us)\b")


def _percentile_of(digits: str) -> float:
    # P50 -> 50, P99 -> 99, P999 -> 99.9 (the tool's names for them).
    return float(digits) if len(digits) <= 2 else float(digits[:2] + "." + digits[2:])


def parse_ort_perf_test(text: str) -> OrtPerfTestResult:
    values: dict[str, float] = {}
    percentiles: dict[float, float] = {}
    requests = threads = peak = None
    throughput = cpu = None
    for raw in text.splitlines():
        line = raw.strip()
        for key, pattern in _FIGURES.items():
            if m := pattern.match(line):
                values.setdefault(key, float(m.group(1)) * _UNITS[m.group(2)])
                break
        else:
            if m := _REQUESTS.match(line):
                requests = int(m.group(1))
            elif m := _THROUGHPUT.match(line):
                throughput = float(m.group(1))
            elif m := _CPU.match(line):
                cpu = cpu if cpu is not None else float(m.group(1))
            elif m := _PEAK.match(line):
                peak = peak if peak is not None else int(m.group(1))
            elif m := _THREADS.match(line):
                threads = int(m.group(1))
            elif m := _PERCENTILE.match(line):
                percentiles[_percentile_of(m.group(1))] = float(m.group(2)) * _UNITS[m.group(3)]
    if requests is None or "mean_s" not in values:
        last = next((ln.strip() for ln in reversed(text.splitlines()) if ln.strip()), "")
        raise OrtPerfTestParseError(
            "no onnxruntime_perf_test summary found"
            + (f" (last line: {last[:200]})" if last else " (empty output)")
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
        peak_working_set_bytes=peak,
        intra_op_threads=threads,
        min_s=values.get("min_s"),
        max_s=values.get("max_s"),
        percentiles_s=percentiles,
    )
