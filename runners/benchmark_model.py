"""Read what LiteRT's (TensorFlow Lite's) ``benchmark_model`` prints.

The tool runs a warm-up phase and a timed phase and prints, one line each, with an
``INFO: `` prefix (builds since about TF 2.5), no prefix (older builds), or a logcat
prefix such as ``07-14 13:14:52.113 22838 22838 I tflite  : `` or ``I/tflite  (22838): ``
when read from ``adb logcat``:

* settings echoed as ``Num threads: [4]``, ``Graph: [/data/local/tmp/m.tflite]``,
  ``Use gpu: [1]`` (all kept in ``settings``);
* ``The input model file size (MB): 3.06409`` and ``Initialized session in 92.318ms.``
  (no full stop before TF 2.2);
* ``Replacing 539 out of 548 node(s) with delegate (TfLiteXNNPackDelegate) node, ...``
  for each delegate applied (``Replacing 64 node(s) with delegate (...) node, ...``
  before TF 2.4), and ``Explicitly applied GPU delegate, and the model graph will be
  completely executed by the delegate.``;
* before each phase ``Running benchmark for at least N iterations and at least S
  seconds but terminate if exceeding M seconds.``, after it one ``count=N first=..
  curr=.. min=.. max=.. avg=.. std=..`` line (warm-up first, timed runs second), in
  µs. A phase whose runs all took the same time prints only ``count=N curr=..`` (with
  ``(all same)`` appended when N > 1); an empty one prints ``count=0``. LiteRT / recent
  TF builds append ``p5=.. median=.. p95=..``;
* the summary line, whose form changed twice:
  ``Inference timings in us: Init: .., First inference: .., Warmup (avg): ..,
  Inference (avg): ..`` (TF 2.2 on), ``Average inference timings in us: Warmup: ..,
  Init: .., Inference: ..`` (TF 1.15-2.1) and ``... Init: .., no stats: ..`` (TF 1.x);
* memory: ``Memory footprint delta from the start of the tool (MB): init=..
  overall=..`` (printed as ``Peak memory footprint (MB): init=.. overall=..`` before
  TF 2.4; absent on platforms without getrusage), and, with
  ``--report_peak_memory_footprint``, ``Overall peak memory footprint (MB) via periodic
  monitoring: ..`` followed (LiteRT on Linux) by ``- VmRSS : N MB`` lines;
* with ``--enable_op_profiling``, op tables that end in ``Timings (microseconds):
  count=..`` and ``Memory (bytes): count=..`` lines of their own (not the timed phase:
  per-run sums of the profiled op times; kept apart in ``op_profile_*``).

Everything comes back in seconds and bytes; a figure the log does not print is None
(never 0). The figures are the tool's own statistics, see :class:`PhaseStats`. A log
with neither the summary line nor a timed ``count=`` line (the run failed:
``Benchmarking failed.``, an unsupported op, a killed process, only the warm-up phase
finished), whose timed phase ran no inference, or whose figures give no latency (every
mean and median nan, negative or cut off) raises :class:`BenchmarkModelParseError`.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import ClassVar

MIB = 1024 * 1024  # the tool's memory "MB" is KiB / 1024 (ru_maxrss / 1024)
MODEL_MB = 1e6  # but its model file size "MB" is bytes / 1e6 (MayGetModelFileSize() / 1e6)


class BenchmarkModelParseError(ValueError):
    """Output that holds no benchmark_model timings."""


@dataclass(frozen=True)
class PhaseStats:
    """One ``count=`` line (a warm-up or timed phase), in seconds.

    These are benchmark_model's statistics, not edgebench's:

    * ``avg_s`` is the arithmetic **mean** (not a median), printed to 6 significant
      digits;
    * ``std_s`` is the **population** standard deviation (ddof=0, ``sqrt(E[x²] -
      mean²)``), truncated by the tool to whole microseconds;
    * ``p5_s`` / ``median_s`` / ``p95_s`` (LiteRT and recent TF only) are the sample
      at 0-based index ``floor(count * p / 100)`` of the sorted run times - not
      nearest-rank, and for an even count the median is the upper middle sample;
    * ``first_s`` is the phase's first run, ``curr_s`` its last one.

    ``all_same`` is True when the tool printed the short ``count=N curr=X`` form, which
    it does only when every run took the same whole number of microseconds; it then
    prints no first/min/max/avg/std, so they stay None here (each equals ``curr_s``).
    ``requested_*`` come from the ``Running benchmark for at least N iterations and at
    least S seconds but terminate if exceeding M seconds.`` line before the phase.
    """

    STD_DDOF: ClassVar[int] = 0
    PERCENTILE_METHOD: ClassVar[str] = "sorted[floor(n * p / 100)] (0-based), benchmark_model's"

    count: int
    first_s: float | None
    min_s: float | None
    max_s: float | None
    avg_s: float | None
    std_s: float | None
    median_s: float | None = None
    p5_s: float | None = None
    p95_s: float | None = None
    curr_s: float | None = None
    all_same: bool = False
    requested_min_runs: int | None = None
    requested_min_s: float | None = None
    requested_max_s: float | None = None

    @property
    def percentiles_s(self) -> dict[float, float]:
        """The printed percentiles as {percent: seconds} (empty where none printed)."""
        pairs = ((5.0, self.p5_s), (50.0, self.median_s), (95.0, self.p95_s))
        return {p: v for p, v in pairs if v is not None}


@dataclass(frozen=True)
class BenchmarkModelResult:
    """What a benchmark_model log says; seconds and bytes, None where not printed.

    * ``init_s``: the summary line's ``Init`` or, where the log has no summary line,
      ``Initialized session in ..ms`` (the same figure).
    * ``first_inference_s``: the summary line's ``First inference`` or, before TF 2.2
      (no such item), the warm-up phase's first run (the same figure: the tool takes it
      from there).
    * ``warmup_avg_s`` / ``inference_avg_s``: the summary line's means of the warm-up
      and timed runs (``warmup.avg_s`` / ``timed.avg_s`` are the same figures from the
      phase lines). None where the phase ran no inference (the tool prints 0 then).
    * ``memory_init_bytes`` / ``memory_overall_bytes``: how much the process's peak
      RSS (ru_maxrss) grew from the tool's start to the end of init / of the run - a
      delta, not a peak. ``peak_memory_bytes``: the peak RSS itself as the periodic
      monitor saw it (``--report_peak_memory_footprint``). ``vm_rss_end_bytes``,
      ``rss_anon_end_bytes``, ``rss_file_shmem_end_bytes``: /proc/self/statm at the end,
      which the tool floors to whole MiB.
    * ``model_size_bytes``: from ``The input model file size (MB)``, which the tool
      computes as bytes / 1e6 (decimal, unlike its memory "MB", which are MiB).
    * ``delegates``: one ``{"delegate", "nodes", "of"}`` per ``Replacing .. node(s)``
      line (``of`` is None before TF 2.4, which did not print the node total);
      ``delegate_coverage``: delegate name -> "completely" / "partially" / "not", from
      the ``Explicitly applied X delegate ...`` lines.
    * ``settings``: every ``Name: [value]`` line echoed, first value kept.
    * ``op_profile_init`` / ``op_profile_timed``: the ``Timings (microseconds):`` lines
      of the op-profiling tables (initialization, regular runs); per-run sums of the
      profiled op times, not the wall-clock time of the timed phase.
    * ``timings_line``: which summary line the log has (``"Inference timings in us"``,
      ``"Average inference timings in us"``) or None.
    * ``errors``: ``ERROR:`` lines (and ``Benchmarking failed.``) the tool printed.
    * ``problems``: ``count=`` lines that were cut off mid-line (left out, so the phase
      they belonged to is unknown).
    """

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
    vm_rss_end_bytes: float | None = None
    rss_anon_end_bytes: float | None = None
    rss_file_shmem_end_bytes: float | None = None
    delegate_coverage: dict[str, str] = field(default_factory=dict)
    settings: dict[str, str] = field(default_factory=dict)
    op_profile_init: PhaseStats | None = None
    op_profile_timed: PhaseStats | None = None
    timings_line: str | None = None
    errors: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


# A number as the tool's C++ streams print it (6 significant digits, so 1.23457e+06
# for slow models); an empty phase's mean can come out as nan.
_N = r"(?:[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|-?nan|-?inf)"
# Line prefixes: logcat (threadtime, then brief), glog-style (TF's own benchmark and
# some vendor builds), then TFLite's own severity tag.
_PREFIX = re.compile(
    r"^(?:\d\d-\d\d\s+\d\d:\d\d:\d\d\.\d+\s+\d+\s+\d+\s+(?P<lc>[VDIWEF])\s+[^:]*?\s*:\s"
    r"|(?P<lb>[VDIWEF])/[^(:]*\(\s*\d+\):\s"
    r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+:\s+(?P<gl>[IWEF])\s+\S+:\d+\]\s)?"
    r"(?:(?P<sev>INFO|WARNING|WARN|ERROR|FATAL|VERBOSE):\s)?"
)
_COUNT = re.compile(r"(?<![\w=])count=(\d+)(.*)$")
_PAIR = re.compile(r"(\w+)=(" + _N + r")")
_RUNNING = re.compile(
    rf"^Running benchmark for (?:at least )?(\d+) iterations?"
    rf"(?: and at least ({_N}) seconds?)?(?: but terminate if exceeding ({_N}) seconds?)?"
)
_TIMINGS = re.compile(
    rf"^Inference timings in us: Init: (?P<init>{_N}), First inference: (?P<first>{_N}), "
    rf"Warmup \(avg\): (?P<warmup>{_N}), Inference \(avg\): (?P<inference>{_N})"
)
_OLD_TIMINGS = re.compile(
    rf"^Average inference timings in us: Warmup: (?P<warmup>{_N})"
    rf"(?:, Init: (?P<init>{_N}))?, (?:Inference|no stats): (?P<inference>{_N})"
)
_SETTING = re.compile(r"^([A-Za-z#][^:\[\]]*?): \[(.*)\]$")
_SIZE = re.compile(rf"^The input model file size \(MB\): ({_N})")
_SESSION = re.compile(rf"^Initialized session in ({_N}) ?ms")
_DELEGATE = re.compile(
    r"Replacing (\d+) (?:out of (\d+) )?node\(s\) with delegate \(([^)]+)\) node"
)
_APPLIED = re.compile(
    r"Explicitly applied (.+?) delegate, and the model graph will be (completely|partially)"
    r" executed by the delegate"
)
_NOT_APPLIED = re.compile(
    r"Though (.+?) delegate is explicitly applied, the model graph will not be executed"
)
_FOOTPRINT = re.compile(
    rf"^(?:Memory footprint delta from the start of the tool|Peak memory footprint) \(MB\): "
    rf"init=({_N}) overall=({_N})"
)
_PEAK = re.compile(rf"^Overall peak memory footprint \(MB\) via periodic monitoring: ({_N})")
_STATM = {
    "vm_rss_end_bytes": re.compile(r"^- VmRSS\s*: (\d+) MB"),
    "rss_anon_end_bytes": re.compile(r"^\+ RssAnnon\s*: (\d+) MB"),
    "rss_file_shmem_end_bytes": re.compile(r"^\+ RssFile \+ RssShmem\s*: (\d+) MB"),
}
_OP_PROFILE_INIT = re.compile(r"Profiling Info for Benchmark Initialization")
_OP_PROFILE_RUNS = re.compile(r"Profiling Info for Regular Benchmark Runs")


# A count the tool prints fits in 64 bits; more digits are garbage (and int() of over
# 4300 digits raises a plain ValueError, which is no parse error).
_MAX_DIGITS = 18


def _count(digits: str) -> int:
    """A printed count (the regexes give only digits)."""
    if len(digits) > _MAX_DIGITS:
        raise BenchmarkModelParseError(f"count {digits[:_MAX_DIGITS]}... is not a number")
    return int(digits)


def _number(value: str | None) -> float | None:
    """A printed number; nan/inf (an empty phase's mean) is not a figure."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _us(value: str | None) -> float | None:
    """A printed time in µs as seconds; a negative one is no time (a corrupted line)."""
    number = _number(value)
    return number / 1e6 if number is not None and number >= 0 else None


def _strip(line: str) -> tuple[str | None, str]:
    """(severity letter or None, message) of one line."""
    line = line.strip()
    match = _PREFIX.match(line)
    if match is None:  # cannot happen (all optional), kept for the type checker
        return None, line
    letter = match.group("lc") or match.group("lb") or match.group("gl")
    if match.group("sev"):
        letter = match.group("sev")[0]
    return letter, line[match.end() :].strip()


# The tool prints either all of these or none (the all-same form); a line with only
# some of them was cut off (a killed process, a truncated capture).
_FULL_FORM = ("first", "curr", "min", "max", "avg", "std")
_PERCENTILES = ("p5", "median", "p95")


def _phase(count: str, rest: str) -> PhaseStats | None:
    """One count= line, or None where it is cut off."""
    pairs = dict(_PAIR.findall(rest))
    if "first" in pairs and not all(key in pairs for key in _FULL_FORM):
        return None
    percentiles = [key in pairs for key in _PERCENTILES]
    if any(percentiles) and not all(percentiles):
        return None
    n = _count(count)
    if n > 0 and "first" not in pairs and "curr" not in pairs:
        # Only "count=0" stands alone; "count=50" and nothing else was cut off after it.
        return None
    # An empty phase prints "count=0" (and, in percentile builds, p5=0 median=0
    # p95=0 from an empty sample): none of that is a time.
    timed = n > 0

    def get(key: str) -> float | None:
        return _us(pairs.get(key)) if timed else None

    return PhaseStats(
        count=n,
        first_s=get("first"),
        min_s=get("min"),
        max_s=get("max"),
        avg_s=get("avg"),
        std_s=get("std"),
        median_s=get("median"),
        p5_s=get("p5"),
        p95_s=get("p95"),
        curr_s=get("curr"),
        all_same=timed and "curr" in pairs and "first" not in pairs,
    )


def parse_benchmark_model(text: str) -> BenchmarkModelResult:
    """Parse benchmark_model's output (stdout and stderr together, or a logcat capture)."""
    # Phase lines keyed by how many "Running benchmark" lines preceded them (1 = warm-up,
    # 2 = timed); logs without those lines (grepped) keep their order in `loose`.
    by_running: dict[int, PhaseStats] = {}
    loose: list[PhaseStats] = []
    requests: dict[int, tuple[int, float | None, float | None]] = {}
    running = 0
    timings: re.Match[str] | None = None
    timings_line: str | None = None
    size = session = peak = None
    footprint: re.Match[str] | None = None
    statm: dict[str, float] = {}
    settings: dict[str, str] = {}
    delegates: list[dict[str, object]] = []
    coverage: dict[str, str] = {}
    op_section = "runs"  # headerless op tables (TF <= 2.1) are the regular runs'
    op_profile: dict[str, PhaseStats] = {}
    errors: list[str] = []
    problems: list[str] = []
    for raw in text.splitlines():
        severity, line = _strip(raw)
        if not line:
            continue
        if _OP_PROFILE_INIT.search(line):
            op_section = "init"
        elif _OP_PROFILE_RUNS.search(line):
            op_section = "runs"
        if m := _COUNT.search(line):
            if line.startswith("Memory (bytes):"):
                continue  # op profiling's per-run memory, always count=0 in practice
            phase = _phase(m.group(1), m.group(2))
            if phase is None:
                problems.append(f"cut off: {line!r}")
            elif line.startswith("Timings (microseconds):"):
                op_profile.setdefault(op_section, phase)
            elif running and running not in by_running:
                by_running[running] = phase
            elif not running:
                loose.append(phase)
        elif m := _RUNNING.match(line):
            running += 1
            requests[running] = (_count(m.group(1)), _number(m.group(2)), _number(m.group(3)))
        elif m := _TIMINGS.match(line):
            timings, timings_line = m, "Inference timings in us"
        elif m := _OLD_TIMINGS.match(line):
            timings, timings_line = m, "Average inference timings in us"
        elif m := _SETTING.match(line):
            settings.setdefault(m.group(1).strip(), m.group(2))
        elif m := _SIZE.match(line):
            size = _number(m.group(1))
        elif m := _SESSION.match(line):
            session = _number(m.group(1))
        elif m := _DELEGATE.search(line):
            total = m.group(2)
            delegates.append(
                {
                    "delegate": m.group(3),
                    "nodes": _count(m.group(1)),
                    "of": _count(total) if total is not None else None,
                }
            )
        elif m := _APPLIED.search(line):
            coverage[m.group(1)] = m.group(2)
        elif m := _NOT_APPLIED.search(line):
            coverage[m.group(1)] = "not"
        elif m := _FOOTPRINT.match(line):
            footprint = m
        elif m := _PEAK.match(line):
            peak = _number(m.group(1))
        elif line.startswith(("- ", "+ ")) and any(p.match(line) for p in _STATM.values()):
            for key, pattern in _STATM.items():
                if sm := pattern.match(line):
                    statm[key] = float(sm.group(1)) * MIB
        elif severity in ("E", "F") or line.startswith("Benchmarking failed"):
            errors.append(line)

    warmup, timed = _phases(by_running, requests, loose)
    if timed is None and timings is None:
        raise BenchmarkModelParseError(
            f"no benchmark_model timings found{_why(errors, warmup, running)}"
        )
    if timed is not None and timed.count == 0:
        raise BenchmarkModelParseError(
            "benchmark_model's timed phase ran no inference (count=0: --num_runs=0 and "
            "--min_secs<=0, or --dry_run)"
        )
    warmup_empty = warmup is not None and warmup.count == 0

    def summary(name: str) -> float | None:
        return _us(timings.group(name)) if timings is not None else None

    # A result stands for a latency: the timed phase's mean or median (or its one time
    # when all runs took the same), else the summary line's mean. A log whose figures
    # are all nan or cut off has none, and must not become a job without one.
    phase_latency = timed is not None and (
        timed.avg_s is not None
        or timed.median_s is not None
        or (timed.all_same and timed.curr_s is not None)
    )
    if not phase_latency and summary("inference") is None:
        raise BenchmarkModelParseError(
            "benchmark_model's log gives no latency of the timed phase (its mean and median "
            f"are missing, nan or cut off){_why(errors, warmup, running)}"
        )

    init_s = summary("init")
    if init_s is None and session is not None and session >= 0:
        init_s = session / 1e3
    if timings is not None and timings_line == "Inference timings in us":
        first_s = summary("first")
    elif warmup is not None and warmup.first_s is not None:
        first_s = warmup.first_s  # the tool's "First inference" is this very figure
    elif warmup is not None and warmup.all_same:
        first_s = warmup.curr_s  # "count=N curr=X": every run, the first too, took X
    else:
        first_s = None
    # "Num threads" is the flag as given (-1: the default); the delegate-provider line
    # "#threads used for CPU inference" is what the CPU path used.
    # isdecimal, not isdigit: int() refuses digits such as "²" that isdigit accepts.
    threads = next(
        (
            value.strip()
            for key in ("Num threads", "#threads used for CPU inference")
            if (value := settings.get(key, "")).strip().isdecimal()
            and len(value.strip()) <= _MAX_DIGITS
        ),
        "",
    )
    return BenchmarkModelResult(
        graph=settings.get("Graph") or None,
        num_threads=int(threads) if threads else None,
        model_size_bytes=size * MODEL_MB if size is not None else None,
        init_s=init_s,
        first_inference_s=None if warmup_empty else first_s,
        warmup_avg_s=None if warmup_empty else summary("warmup"),
        inference_avg_s=summary("inference"),
        warmup=warmup,
        timed=timed,
        delegates=delegates,
        memory_init_bytes=_mib(footprint.group(1)) if footprint else None,
        memory_overall_bytes=_mib(footprint.group(2)) if footprint else None,
        peak_memory_bytes=peak * MIB if peak is not None and peak > 0 else None,
        vm_rss_end_bytes=statm.get("vm_rss_end_bytes"),
        rss_anon_end_bytes=statm.get("rss_anon_end_bytes"),
        rss_file_shmem_end_bytes=statm.get("rss_file_shmem_end_bytes"),
        delegate_coverage=coverage,
        settings=settings,
        op_profile_init=op_profile.get("init"),
        op_profile_timed=op_profile.get("runs"),
        timings_line=timings_line,
        errors=errors,
        problems=problems,
    )


def _mib(value: str) -> float | None:
    number = _number(value)
    return number * MIB if number is not None else None


def _phases(
    by_running: dict[int, PhaseStats],
    requests: dict[int, tuple[int, float | None, float | None]],
    loose: list[PhaseStats],
) -> tuple[PhaseStats | None, PhaseStats | None]:
    """(warm-up, timed) phase lines.

    Each run prints a "Running benchmark" line before the warm-up and another before
    the timed phase; the last run's pair is taken. A log that ends after an odd number
    of them stopped in (or before) its timed phase: that phase is unknown, never the
    warm-up. Without "Running" lines at all the last two count lines are the phases
    and a lone one is the timed phase.
    """
    if not requests:
        return (loose[-2] if len(loose) >= 2 else None), (loose[-1] if loose else None)
    last = max(requests)
    timed_index = last if last % 2 == 0 else None
    warmup_index = last - 1 if timed_index is not None else last

    def with_request(index: int | None) -> PhaseStats | None:
        if index is None or index not in by_running:
            return None
        runs, min_s, max_s = requests[index]
        return dataclasses.replace(
            by_running[index],
            requested_min_runs=runs,
            requested_min_s=min_s,
            requested_max_s=max_s,
        )

    return with_request(warmup_index), with_request(timed_index)


def _why(errors: list[str], warmup: PhaseStats | None, running: int) -> str:
    # The first ERROR line says why; "Benchmarking failed." only that it did.
    specific = [e for e in errors if not e.startswith("Benchmarking failed")]
    if specific:
        return f" ({specific[0]})"
    if errors:
        return f" ({errors[0]})"
    if warmup is not None or running % 2 == 1:
        return " (the log ends before the timed phase finished: only the warm-up ran)"
    return ""
