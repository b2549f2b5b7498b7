"""Drive NVIDIA ``trtexec`` and read what it prints.

Two halves:

* argv builders - :func:`build_engine_argv` (ONNX -> serialized engine) and
  :func:`time_engine_argv` (time a serialized engine), with the flags documented in
  the TensorRT developer guide's trtexec section - and :func:`engine_cache_key`.
  They return argv lists, never shell strings.
* parsers - :func:`parse_trtexec_log` for the console log and
  :func:`parse_export_times` for the ``--exportTimes`` JSON. All times come back in
  **seconds**.

Log formats handled (the log lines carry a ``[MM/DD/YYYY-HH:MM:SS] [I]`` prefix):

* TensorRT 8.x / 10.x: an ``=== Performance summary ===`` block with
  ``Throughput: N qps``, one ``Name: min = x ms, max = ..., mean = ..., median = ...,
  percentile(P%) = ...`` line per metric (``Latency``, ``End-to-End Host Latency``
  (8.0-8.2 only), ``Enqueue Time``, ``H2D Latency``, ``GPU Compute Time``,
  ``D2H Latency``), then ``Total Host Walltime`` and ``Total GPU Compute Time``.
  Up to 8.2 there is one ``percentile(99%)``; from 8.4 there are as many as
  ``--percentile`` asked for (default 90, 95, 99).
* TensorRT 7.x: no summary header; blocks titled ``Host Latency``, ``Enqueue Time``,
  ``GPU Compute``, each followed by ``min: x ms``, ``max: ...``, ``mean: ...``,
  ``median: ...``, ``percentile: x ms at 99%`` lines (host latency with ``(end to
  end y ms)`` appended), plus ``throughput: N qps``, ``walltime: N s`` and
  ``total compute time: N s``.
* Both print ``Average on N runs - GPU latency: ... ms - Host latency: ... ms (end to
  end ... ms, enqueue ... ms)`` trace lines; they are kept in ``trace_averages``.

A section that is missing is None; a log without any performance figures (the build
failed, trtexec was killed, ``--skipInference``) raises :class:`TrtexecParseError`
naming the last error trtexec printed.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from devices.errors import DeviceError

# Where JetPack installs trtexec; it is not on PATH there.
JETSON_TRTEXEC = "/usr/src/tensorrt/bin/trtexec"

Precision = Literal["fp32", "fp16", "int8"]
PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8")

# trtexec flags that change the precision of the built engine.
PRECISION_FLAGS: tuple[str, ...] = (
    "--fp16",
    "--bf16",
    "--int8",
    "--fp8",
    "--int4",
    "--best",
    "--noTF32",
    "--stronglyTyped",
)


class TrtexecParseError(DeviceError, ValueError):
    """A trtexec log or ``--exportTimes`` file that cannot be read as such."""


# --------------------------------------------------------------------------- argv


def _check_path(path: str, what: str) -> None:
    if not path or path != path.strip() or "\n" in path:
        raise ValueError(f"{what} must be a non-empty path without surrounding spaces: {path!r}")


def _number(value: float) -> str:
    """A flag value: integers without a decimal point (trtexec 7 parses some as int)."""
    if not math.isfinite(value):
        raise ValueError(f"not a finite number: {value}")
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def build_engine_argv(
    onnx_remote: str,
    engine_remote: str,
    *,
    precision: Precision,
    trt_major: int,
    calib_cache: str | None = None,
    workspace_mib: int | None = None,
    extra: Sequence[str] = (),
    trtexec: str = JETSON_TRTEXEC,
) -> list[str]:
    """argv that builds ``engine_remote`` from ``onnx_remote`` on the device.

    ``precision`` adds ``--fp16`` or ``--int8`` (fp32 adds nothing; TF32 stays
    trtexec's default on Ampere+). ``calib_cache`` (``--calib``) is only meaningful
    with int8; an int8 build without it is valid for a Q/DQ (explicitly quantized)
    model, and otherwise times an engine whose accuracy means nothing.
    ``workspace_mib`` becomes ``--memPoolSize=workspace:NM`` on TensorRT >= 10 and
    ``--workspace=N`` (MiB) before: 10 removed ``--workspace``, and 7.x and 8.0-8.3
    lack ``--memPoolSize`` (8.4-8.6 accept both).
    """
    _check_path(onnx_remote, "onnx_remote")
    _check_path(engine_remote, "engine_remote")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if trt_major < 7:
        raise ValueError(f"TensorRT {trt_major} is not supported (7 or later)")
    argv = [trtexec, f"--onnx={onnx_remote}", f"--saveEngine={engine_remote}"]
    if precision == "fp16":
        argv.append("--fp16")
    elif precision == "int8":
        argv.append("--int8")
    if calib_cache is not None:
        if precision != "int8":
            raise ValueError(f"calib_cache is for int8 builds, not {precision}")
        _check_path(calib_cache, "calib_cache")
        argv.append(f"--calib={calib_cache}")
    if workspace_mib is not None:
        if workspace_mib <= 0:
            raise ValueError(f"workspace_mib must be positive, got {workspace_mib}")
        if trt_major >= 10:
            argv.append(f"--memPoolSize=workspace:{int(workspace_mib)}M")
        else:
            argv.append(f"--workspace={int(workspace_mib)}")
    argv.extend(extra)
    return argv


def time_engine_argv(
    engine_remote: str,
    *,
    iterations: int,
    warmup_ms: float,
    duration_s: float,
    avg_runs: int,
    export_times: str | None = None,
    separate_profile_run: bool = False,
    extra: Sequence[str] = (),
    trtexec: str = JETSON_TRTEXEC,
) -> list[str]:
    """argv that times a serialized engine.

    trtexec runs ``--warmUp`` ms of warm-up, then at least ``--iterations``
    inferences *and* at least ``--duration`` seconds; ``--avgRuns`` sets how many
    iterations each "Average on N runs" trace line covers. ``export_times`` writes
    every iteration's timing as JSON (read it with :func:`parse_export_times`).
    ``separate_profile_run`` keeps the layer profiler (``--dumpProfile`` in
    ``extra``) out of the timed run.
    """
    _check_path(engine_remote, "engine_remote")
    if iterations < 1 or avg_runs < 1:
        raise ValueError(f"iterations and avg_runs must be >= 1, got {iterations}, {avg_runs}")
    if warmup_ms < 0 or duration_s < 0:
        raise ValueError(f"warmup_ms and duration_s must be >= 0, got {warmup_ms}, {duration_s}")
    argv = [
        trtexec,
        f"--loadEngine={engine_remote}",
        f"--iterations={int(iterations)}",
        f"--warmUp={_number(warmup_ms)}",
        f"--duration={_number(duration_s)}",
        f"--avgRuns={int(avg_runs)}",
    ]
    if export_times is not None:
        _check_path(export_times, "export_times")
        argv.append(f"--exportTimes={export_times}")
    if separate_profile_run:
        argv.append("--separateProfileRun")
    argv.extend(extra)
    return argv


_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


def engine_cache_key(
    model_sha256: str,
    device_fingerprint: str,
    trt_version: str,
    precision: str,
    *,
    extra: Sequence[str] = (),
) -> str:
    """A sha256 hex key for a built engine.

    An engine is only valid for the exact TensorRT version and GPU it was built
    with, so both are in the key. Put anything else the build depended on in
    ``extra`` (build flags, the calibration cache's sha256); order matters.
    """
    digest = model_sha256.lower()
    if not _SHA256_RE.match(digest):
        raise ValueError(f"model_sha256 is not a sha256 hex digest: {model_sha256!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if not device_fingerprint or not trt_version:
        raise ValueError("device_fingerprint and trt_version must not be empty")
    payload = json.dumps(
        {
            "kind": "tensorrt-engine",
            "model_sha256": digest,
            "device": device_fingerprint,
            "tensorrt": trt_version,
            "precision": precision,
            "extra": list(extra),
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode()).hexdigest()


# ------------------------------------------------------------------------ parsing


@dataclass(frozen=True)
class TimingStats:
    """One metric of the summary, in seconds. ``mean_s`` is missing for TRT 7's Enqueue Time."""

    min_s: float
    max_s: float
    median_s: float
    mean_s: float | None = None
    percentiles_s: Mapping[float, float] = field(default_factory=dict)  # percent -> s

    def percentile(self, percent: float) -> float | None:
        return self.percentiles_s.get(float(percent))


@dataclass(frozen=True)
class TraceAverage:
    """One "Average on N runs" line."""

    runs: int
    gpu_latency_s: float
    host_latency_s: float
    end_to_end_s: float | None = None
    enqueue_s: float | None = None


@dataclass(frozen=True)
class TrtexecResult:
    """What a trtexec log says. Times in seconds; absent sections are None.

    ``precision`` and ``precision_flags`` describe *this invocation*: a
    ``--loadEngine`` run prints "Precision: FP32" whatever the engine was built
    with, so take an engine's precision from its build log or its cache key.
    ``problems`` lists summary lines that were present but unreadable (a log cut
    off mid-line) and figures not reported because they are known to be wrong.
    """

    style: Literal["summary", "legacy"]  # TRT >= 8 summary block, or TRT 7 blocks
    trt_version: str | None
    command: str | None  # as echoed on the "&&&& RUNNING" line
    argv: list[str]
    status: Literal["PASSED", "FAILED"] | None
    precision: str | None  # Build Options "Precision:", e.g. "FP32+FP16"
    precision_flags: tuple[str, ...]
    options: dict[str, dict[str, str]]  # "=== X Options ===" sections
    device_name: str | None
    throughput_qps: float | None
    latency: TimingStats | None  # H2D + GPU compute + D2H of one query
    end_to_end: TimingStats | None
    enqueue_time: TimingStats | None
    h2d_latency: TimingStats | None
    gpu_compute_time: TimingStats | None
    d2h_latency: TimingStats | None
    total_host_walltime_s: float | None
    total_gpu_compute_time_s: float | None
    warmup_queries: int | None
    warmup_s: float | None
    timed_queries: int | None
    timed_s: float | None
    gpu_compute_cv_pct: float | None
    trace_averages: list[TraceAverage]
    problems: tuple[str, ...]


_PREFIX_RE = re.compile(r"\[\d{2}/\d{2}/\d{4}-\d{2}:\d{2}:\d{2}\] \[([A-Z])\] ?")
_RUNNING_RE = re.compile(
    r"^&&&& (RUNNING|PASSED|FAILED) TensorRT\.trtexec(?: \[TensorRT v(\d+)\])?"
)
# "8.6.2" from 8.2 on; 8.0 printed the packed form "8001".
_VERSION_LINE_RE = re.compile(r"^TensorRT version: (\d+(?:\.\d+)*)$")
_SECTION_RE = re.compile(r"^=== (.+?) ===$")
_OPTION_RE = re.compile(r"^([^:]+?)\s*:\s?(.*)$")
_NUM = r"(-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|inf|nan)"
_PER_SECOND = {"s": 1.0, "ms": 1e3, "us": 1e6}  # divide by these to get seconds
_STAT_ITEM_RE = re.compile(
    r"(min|max|mean|median|percentile\((\d+(?:\.\d+)?)%\))\s*=?\s*" + _NUM + r"\s*(ms|us|s)\b"
)
_SUMMARY_METRICS = {
    "Latency": "latency",
    "End-to-End Host Latency": "end_to_end",
    "Enqueue Time": "enqueue_time",
    "H2D Latency": "h2d_latency",
    "GPU Compute Time": "gpu_compute_time",
    "D2H Latency": "d2h_latency",
}
_SUMMARY_LINE_RE = re.compile(r"^(" + "|".join(map(re.escape, _SUMMARY_METRICS)) + r"): (.*)$")
_THROUGHPUT_RE = re.compile(r"^[Tt]hroughput: " + _NUM + r" qps")
_WALLTIME_RE = re.compile(r"^(?:Total Host Walltime|walltime): " + _NUM + r" s\b")
_TOTAL_GPU_RE = re.compile(r"^(?:Total GPU Compute Time|total compute time): " + _NUM + r" s\b")
_WARMUP_RE = re.compile(r"^Warmup completed (\d+) queries over " + _NUM + r" ms")
_TIMED_RE = re.compile(r"^Timing trace has (\d+) queries over " + _NUM + r" s")
_CV_RE = re.compile(r"coefficient of variance = " + _NUM + r"%")
_SUMMARY_SCALARS = {
    "throughput_qps": _THROUGHPUT_RE,
    "total_host_walltime_s": _WALLTIME_RE,
    "total_gpu_compute_time_s": _TOTAL_GPU_RE,
}
_AVERAGE_RE = re.compile(
    rf"^Average on (\d+) runs - GPU latency: {_NUM} ms - Host latency: {_NUM} ms "
    rf"\((?:end to end {_NUM} ms, )?enqueue {_NUM} ms\)"
)
# TRT 7 blocks: a title line, then "key: value ms" lines.
_LEGACY_TITLES = {
    "Host Latency": "latency",
    "Enqueue Time": "enqueue_time",
    "H2D Latency": "h2d_latency",
    "GPU Compute": "gpu_compute_time",
    "D2H Latency": "d2h_latency",
}
_LEGACY_ITEM_RE = re.compile(
    r"^(min|max|mean|median|percentile): " + _NUM + r" ms(?: at (\d+(?:\.\d+)?)%)?"
    r"(?: \(end to end " + _NUM + r" ms(?: at \d+(?:\.\d+)?%)?\))?$"
)


# A count or version trtexec prints fits in 64 bits; more digits are garbage (and int()
# of over 4300 digits raises a plain ValueError, which is no parse error).
_MAX_DIGITS = 18


def _count(digits: str) -> int:
    if len(digits) > _MAX_DIGITS:
        raise TrtexecParseError(f"{digits[:_MAX_DIGITS]}... is not a number trtexec prints")
    return int(digits)


def _version_from_banner(code: str) -> str:
    """Packed version to dotted: ``8602`` -> ``8.6.2``, ``100300`` -> ``10.3.0``.

    Used for the ``[TensorRT vNNNN]`` banner tag and TRT 8.0's version line.
    """
    n = _count(code)
    if n >= 10000:
        return f"{n // 10000}.{n // 100 % 100}.{n % 100}"
    return f"{n // 1000}.{n // 100 % 10}.{n % 100}"


def _stats_from_items(
    items: Mapping[str, float], percentiles: Mapping[float, float]
) -> TimingStats | None:
    # "nan"/"inf" (an empty timing set) is no figure: it is left out like a missing one;
    # so is a negative time (a corrupted line).
    items = {k: v for k, v in items.items() if _is_time(v)}
    if not {"min", "max", "median"} <= items.keys():
        return None
    return TimingStats(
        min_s=items["min"],
        max_s=items["max"],
        median_s=items["median"],
        mean_s=items.get("mean"),
        percentiles_s={p: v for p, v in percentiles.items() if _is_time(v)},
    )


def _is_time(value: float) -> bool:
    return math.isfinite(value) and value >= 0


def _summary_scalar(message: str) -> tuple[str, str] | None:
    """(name, number as printed) of a Throughput / Total ... line."""
    for name, pattern in _SUMMARY_SCALARS.items():
        if (match := pattern.match(message)) is not None:
            return name, match.group(1)
    return None


def _parse_summary_stats(text: str) -> TimingStats | None:
    items: dict[str, float] = {}
    percentiles: dict[float, float] = {}
    consumed = 0
    for match in _STAT_ITEM_RE.finditer(text):
        value = float(match.group(3)) / _PER_SECOND[match.group(4)]
        if match.group(2) is not None:
            percentiles[float(match.group(2))] = value
        else:
            items[match.group(1)] = value
        consumed = match.end()
    if text[consumed:].strip(" ,"):
        return None  # something after the last complete item: cut off mid-value
    return _stats_from_items(items, percentiles)


def _strip_prefix(line: str) -> tuple[str | None, str]:
    """(severity letter or None, message) of one log line."""
    match = _PREFIX_RE.search(line)
    if match is None:
        return None, line.strip()
    return match.group(1), line[match.end() :].strip()


def parse_trtexec_log(text: str) -> TrtexecResult:
    """Parse a trtexec console log (stdout and stderr together, as trtexec prints them)."""
    version = command = status = device_name = None
    options: dict[str, dict[str, str]] = {}
    section: str | None = None
    metrics: dict[str, TimingStats | None] = {}
    scalars: dict[str, float] = {}
    trace: list[TraceAverage] = []
    problems: list[str] = []
    errors: list[str] = []
    style: str | None = None
    legacy_block: str | None = None
    legacy_items: dict[str, float] = {}
    legacy_e2e: dict[str, float] = {}
    legacy_pct: dict[float, float] = {}
    legacy_e2e_pct: dict[float, float] = {}

    def close_legacy_block() -> None:
        nonlocal legacy_block
        if legacy_block is not None:
            stats = _stats_from_items(legacy_items, legacy_pct)
            if stats is None:
                problems.append(f"TRT 7 block {legacy_block!r} is incomplete")
            metrics[_LEGACY_TITLES[legacy_block]] = stats
            if legacy_block == "Host Latency" and legacy_e2e:
                metrics["end_to_end"] = _stats_from_items(legacy_e2e, legacy_e2e_pct)
        legacy_block = None
        legacy_items.clear()
        legacy_e2e.clear()
        legacy_pct.clear()
        legacy_e2e_pct.clear()

    for raw in text.splitlines():
        severity, message = _strip_prefix(raw)
        if severity == "E":
            errors.append(message)
        running = _RUNNING_RE.match(message)
        if running is not None:
            if running.group(1) == "RUNNING":
                command = message.split(" # ", 1)[1].strip() if " # " in message else None
            else:
                status = running.group(1)
            if running.group(2) and version is None:
                version = _version_from_banner(running.group(2))
            continue
        header = _SECTION_RE.match(message)
        if header is not None:
            close_legacy_block()
            section = header.group(1)
            if section == "Performance summary":
                style = "summary"
            continue
        if not message:
            section = None if section and section.endswith("Options") else section
            continue
        if (match := _VERSION_LINE_RE.match(message)) is not None:
            number = match.group(1)
            version = number if "." in number else _version_from_banner(number)
            continue
        if message.startswith("Selected Device: "):
            device_name = message.split(": ", 1)[1].strip()
            continue
        if section is not None and section.endswith("Options"):
            option = _OPTION_RE.match(message)
            if option is not None:
                values = options.setdefault(section.removesuffix(" Options"), {})
                key, value = option.group(1), option.group(2).strip()
                values[key] = f"{values[key]}; {value}" if key in values else value
            continue
        if (match := _AVERAGE_RE.match(message)) is not None:
            end_to_end = match.group(4)
            trace.append(
                TraceAverage(
                    runs=_count(match.group(1)),
                    gpu_latency_s=float(match.group(2)) / 1000,
                    host_latency_s=float(match.group(3)) / 1000,
                    end_to_end_s=float(end_to_end) / 1000 if end_to_end else None,
                    enqueue_s=float(match.group(5)) / 1000,
                )
            )
            continue
        if (match := _WARMUP_RE.match(message)) is not None:
            scalars["warmup_queries"] = _count(match.group(1))
            scalars["warmup_s"] = float(match.group(2)) / 1000
            continue
        if (match := _TIMED_RE.match(message)) is not None:
            scalars["timed_queries"] = _count(match.group(1))
            scalars["timed_s"] = float(match.group(2))
            continue
        if (match := _CV_RE.search(message)) is not None:
            scalars["gpu_compute_cv_pct"] = float(match.group(1))
            continue
        # TRT 7 blocks.
        if message in _LEGACY_TITLES and style != "summary":
            close_legacy_block()
            style = "legacy"
            legacy_block = message
            continue
        if legacy_block is not None and (match := _LEGACY_ITEM_RE.match(message)):
            key, value = match.group(1), float(match.group(2)) / 1000
            if key == "percentile":
                percent = float(match.group(3)) if match.group(3) else 99.0
                legacy_pct[percent] = value
                if match.group(4):
                    legacy_e2e_pct[percent] = float(match.group(4)) / 1000
            else:
                legacy_items[key] = value
                if match.group(4):
                    legacy_e2e[key] = float(match.group(4)) / 1000
            continue
        in_results = style == "summary" and section == "Performance summary"
        if in_results or style == "legacy":
            if (scalar := _summary_scalar(message)) is not None:
                name, printed = scalar
                value = float(printed)
                if _is_time(value):  # a rate too: finite, not negative
                    scalars[name] = value
                else:
                    problems.append(f"{name} reads {printed!r}: not a figure")
                if name == "total_gpu_compute_time_s":
                    close_legacy_block()
                continue
        if in_results and (match := _SUMMARY_LINE_RE.match(message)) is not None:
            stats = _parse_summary_stats(match.group(2))
            if stats is None:
                problems.append(f"cannot read {match.group(1)!r}: {match.group(2)!r}")
            metrics[_SUMMARY_METRICS[match.group(1)]] = stats
            continue
        if (
            in_results
            and severity == "I"
            and message.startswith(
                ("Throughput", "Latency", "Total", "GPU Compute", "Enqueue", "H2D", "D2H")
            )
        ):
            problems.append(f"cannot read summary line {message!r}")
    close_legacy_block()

    found_any = metrics or "throughput_qps" in scalars
    if style is None or not found_any:
        last_error = f"; last error: {errors[-1]!r}" if errors else ""
        state = f"trtexec {status}" if status else "log ends without PASSED/FAILED"
        raise TrtexecParseError(f"no performance summary in the trtexec log ({state}{last_error})")

    try:
        argv = shlex.split(command) if command else []
    except ValueError:  # an unbalanced quote (a cut-off or edited line): words as printed
        argv = command.split() if command else []
        problems.append(f"cannot split the command line {command!r} as a shell would")
    flags = tuple(a.split("=", 1)[0] for a in argv[1:] if a.split("=", 1)[0] in PRECISION_FLAGS)
    throughput = scalars.get("throughput_qps")
    if style == "legacy" and throughput == 0.0:
        # TRT 7 multiplies by the implicit batch size, which is 0 for explicit-batch
        # (ONNX) engines: the printed 0 is a bug, not a measurement.
        problems.append("TRT 7 printed 'throughput: 0 qps' (explicit batch); not reported")
        throughput = None

    def count(key: str) -> int | None:
        return int(scalars[key]) if key in scalars else None

    return TrtexecResult(
        style=style,  # type: ignore[arg-type]
        trt_version=version,
        command=command,
        argv=argv,
        status=status,  # type: ignore[arg-type]
        precision=options.get("Build", {}).get("Precision"),
        precision_flags=flags,
        options=options,
        device_name=device_name,
        throughput_qps=throughput,
        latency=metrics.get("latency"),
        end_to_end=metrics.get("end_to_end"),
        enqueue_time=metrics.get("enqueue_time"),
        h2d_latency=metrics.get("h2d_latency"),
        gpu_compute_time=metrics.get("gpu_compute_time"),
        d2h_latency=metrics.get("d2h_latency"),
        total_host_walltime_s=scalars.get("total_host_walltime_s"),
        total_gpu_compute_time_s=scalars.get("total_gpu_compute_time_s"),
        warmup_queries=count("warmup_queries"),
        warmup_s=scalars.get("warmup_s"),
        timed_queries=count("timed_queries"),
        timed_s=scalars.get("timed_s"),
        gpu_compute_cv_pct=scalars.get("gpu_compute_cv_pct"),
        trace_averages=trace,
        problems=tuple(problems),
    )


# Per-iteration fields of --exportTimes; before TensorRT 10 the transfers were
# named "inMs"/"outMs" instead of "h2dMs"/"d2hMs".
EXPORT_TIME_FIELDS: dict[str, tuple[str, ...]] = {
    "latencyMs": ("latencyMs",),
    "computeMs": ("computeMs",),
    "endToEndMs": ("endToEndMs",),
    "h2dMs": ("h2dMs", "inMs"),
    "d2hMs": ("d2hMs", "outMs"),
}


def parse_export_times(json_text: str, field: str = "latencyMs") -> list[float]:
    """Per-iteration times in seconds from a ``--exportTimes`` JSON file.

    ``field`` is ``latencyMs`` (H2D + compute + D2H, the summary's "Latency"),
    ``computeMs``, ``endToEndMs``, ``h2dMs`` or ``d2hMs``. Some versions (the 8.2
    sources do) export the warm-up iterations too; where that matters, compare the
    count with the log's ``timed_queries`` and drop the first records, or filter on
    ``startComputeMs`` with :func:`parse_export_trace`.
    """
    if field not in EXPORT_TIME_FIELDS:
        raise ValueError(f"field must be one of {sorted(EXPORT_TIME_FIELDS)}, got {field!r}")
    names = EXPORT_TIME_FIELDS[field]
    values = []
    for index, record in enumerate(parse_export_trace(json_text)):
        key = next((n for n in names if n in record), None)
        if key is None:
            raise TrtexecParseError(f"exportTimes record {index} has no {field!r}")
        if not _is_time(record[key]):
            # A raw sample becomes edgebench's statistics: NaN or a negative time would
            # make every one of them meaningless.
            raise TrtexecParseError(f"exportTimes record {index}: {key} = {record[key]!r}")
        values.append(record[key] / 1000)
    return values


def parse_export_trace(json_text: str) -> list[dict[str, float]]:
    """The raw records of a ``--exportTimes`` file (times in ms, as trtexec wrote them)."""
    try:
        data = json.loads(json_text)
    except json.JSONDecodeError as exc:
        raise TrtexecParseError(f"exportTimes is not valid JSON ({exc}); truncated?") from None
    except RecursionError:  # "[[[[..." thousands deep: no trtexec file
        raise TrtexecParseError("exportTimes is nested too deeply to be trtexec's") from None
    if not isinstance(data, list):
        raise TrtexecParseError(f"exportTimes must be a JSON list, got {type(data).__name__}")
    records = []
    for index, record in enumerate(data):
        if not isinstance(record, dict):
            raise TrtexecParseError(f"exportTimes record {index} is not an object")
        if set(record) == {"count"}:
            continue  # a header some versions write
        for key, value in record.items():
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise TrtexecParseError(f"exportTimes record {index}: {key} = {value!r}")
        records.append({k: float(v) for k, v in record.items()})
    return records


_BANNER_VERSION_RE = re.compile(r"\[TensorRT v(\d+)\]")


def trt_version_from_text(text: str) -> str | None:
    """TensorRT version from any trtexec output (its ``&&&& RUNNING`` banner)."""
    match = _BANNER_VERSION_RE.search(text)
    return _version_from_banner(match.group(1)) if match else None
