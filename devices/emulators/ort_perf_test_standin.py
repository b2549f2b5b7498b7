"""A stand-in for onnxruntime's ``onnxruntime_perf_test`` on the emulated phone.

The emulated phone (:mod:`devices.emulators.phone`) copies this file to its
``/system/bin/onnxruntime_perf_test`` (with a ``#!`` line naming the host's Python),
so it must import only the standard library, numpy and ``onnxruntime``. It runs the
model with onnxruntime **on the host** and prints what the real tool prints
(:mod:`runners.ort_perf_test` parses it), in the layout of onnxruntime 1.20's tool:

* the first line says it is a stand-in, not the real tool;
* ``onnxruntime_perf_test [options...] model_path [result_file]`` with the real
  tool's short options (getopt, options and operands in any order); a bad option or
  value prints the usage and exits 255 (the real tool's ``return -1``). Real options
  whose effect is not emulated (``-c`` > 1, ``-C``, ``-i``, ``-f``, ...) are refused
  by name, never ignored;
* ``-m times|duration`` (default ``duration``), ``-r N`` (default 1000, selects
  ``times``), ``-t S`` (default 600, selects ``duration``): one warm-up request
  (``First inference time cost``, whole ms, truncated as the tool does), then the
  timed requests; the summary after the run: ``Session creation time cost`` (s),
  ``Total inference time cost`` (the sum of the requests' times, s), ``Total
  inference requests``, ``Average inference time cost total`` (ms), ``Total
  inference run time`` (the timed phase's wall clock, s), ``Number of inferences
  per second``, ``Avg CPU usage`` (% of all the host's cores, as the tool's Linux
  build measures it), ``Peak working set size`` (ru_maxrss in bytes, as on Linux),
  the ``Avg CPU usage:N`` / ``Peak working set size:N`` / ``Runs:N`` lines, and the
  statistics ``Min/Max Latency`` and ``P50 ... P999 Latency`` (s; the sample at
  0-based index ``floor(n * p)`` of the sorted times). The statistics are printed
  with ``-s`` or when no result file is named; a result file gets one CSV line per
  request (``model,time_s,peak_bytes,cpu_pct,index``), appended;
* ``-x N`` prints ``Setting intra_op_num_threads to N`` (``-y`` likewise), ``-Z``
  ``Disabling intra-op thread spinning between runs``; ``-v`` prints
  ``iteration:N,time_cost:S`` for each timed request;
* ``-I`` generates the inputs once (random, free dimensions as 1, seeded by ``-S``);
  without it the real tool reads ``test_data_set_*`` next to the model, which is
  not emulated (a model without them fails as the real tool fails);
* ``-p PREFIX``: onnxruntime's own profiler (``SessionOptions.enable_profiling``, as
  the real tool's ``EnableProfiling``) writes ``PREFIX_<date>_<time>.json``, the real
  tool's file name, when the session ends.

Execution providers: the stand-in is a CPU build. ``-e cpu`` runs onnxruntime's CPU
provider; ``-e xnnpack`` runs XNNPACK where the host's onnxruntime has it. Every
other provider (NNAPI above all: the emulated phone has no NNAPI accelerator) fails
as the real tool fails when the provider is not in its build: ``<EP> is not
supported in this build`` on stderr, exit 255. A model that does not load fails
with onnxruntime's message, exit 255.
"""

from __future__ import annotations

import getopt
import math
import os
import re
import resource
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from typing import Any

PROGRAM = "onnxruntime_perf_test"
EXIT_FAILED = 255  # the real tool returns -1 from main
STANDIN_FIRST_WORDS = f"edgebench stand-in {PROGRAM}"


def banner() -> str:
    try:
        version = metadata.version("onnxruntime")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return f"{STANDIN_FIRST_WORDS} (onnxruntime {version} on the host), not the real tool"


# -e name -> (the provider's name in onnxruntime, the name the real tool's
# "... is not supported in this build" says).
PROVIDERS: dict[str, tuple[str, str]] = {
    "cpu": ("CPUExecutionProvider", "CPU"),
    "xnnpack": ("XnnpackExecutionProvider", "Xnnpack"),
    "nnapi": ("NnapiExecutionProvider", "NNAPI"),
    "cuda": ("CUDAExecutionProvider", "CUDA"),
    "tensorrt": ("TensorrtExecutionProvider", "TensorRT"),
    "dnnl": ("DnnlExecutionProvider", "DNNL"),
    "openvino": ("OpenVINOExecutionProvider", "OpenVINO"),
    "coreml": ("CoreMLExecutionProvider", "CoreML"),
    "dml": ("DmlExecutionProvider", "DirectML"),
    "acl": ("ACLExecutionProvider", "ACL"),
    "armnn": ("ArmNNExecutionProvider", "ArmNN"),
    "qnn": ("QNNExecutionProvider", "QNN"),
    "snpe": ("SNPEExecutionProvider", "SNPE"),
    "rocm": ("ROCMExecutionProvider", "ROCM"),
    "migraphx": ("MIGraphXExecutionProvider", "MIGraphX"),
    "vitisai": ("VitisAIExecutionProvider", "VitisAI"),
    "webgpu": ("WebGpuExecutionProvider", "WebGPU"),
}
# What a phone-side CPU build can have; a host GPU provider must not run "on the phone".
PHONE_BUILD = ("cpu", "xnnpack")
# Where the real tool throws when a provider is missing (ORT_THROW's "file:line func").
THROW_SITE = (
    "onnxruntime/test/perftest/ort_test_session.cc "
    "onnxruntime::perftest::OnnxRuntimeTestSession::OnnxRuntimeTestSession"
)

# The real tool's options (getopt letters); ":" takes a value.
OPTIONS = "m:e:r:t:p:x:y:c:d:o:u:i:f:F:S:T:C:R:AMPIDZvhsqznlX"
# Real options whose effect the stand-in does not reproduce: refused by name.
NOT_EMULATED = {
    "-d": "cuDNN convolution algorithm",
    "-u": "optimized model path",
    "-i": "execution provider options",
    "-f": "free dimension override by name",
    "-F": "free dimension override by denotation",
    "-T": "intra-op thread affinities",
    "-C": "session config entries",
    "-R": "custom op library",
    "-q": "CUDA copy stream",
    "-z": "denormals as zero",
    "-l": "model loaded from bytes",
    "-X": "onnxruntime-extensions",
}
GRAPH_LEVELS = {"0": "ORT_DISABLE_ALL", "1": "ORT_ENABLE_BASIC", "2": "ORT_ENABLE_EXTENDED",
                "99": "ORT_ENABLE_ALL"}  # fmt: skip

USAGE = f"""\
perf_test [options...] model_path [result_file]
Options:
	-m [test_mode]: 'duration' (run for -t seconds) or 'times' (run -r requests).
	-r [repeated_times]: requests in 'times' mode. Default:1000.
	-t [seconds_to_run]: seconds in 'duration' mode. Default:600.
	-p [profile_file]: enable profiling; the profile goes to profile_file_<time>.json.
	-s: print the latency statistics (on by default without a result_file).
	-S [seed]: random seed of the generated inputs.
	-v: verbose (one line per request).
	-x [intra_op_num_threads]: 0 lets onnxruntime choose. Must >=0.
	-y [inter_op_num_threads]: 0 lets onnxruntime choose. Must >=0.
	-e [{"|".join(PROVIDERS)}]: the execution provider.
	-c [parallel runs]: only 1 is emulated.
	-o [optimization level]: 0 (disable), 1 (basic), 2 (extended), 99 (all). Default:99.
	-A: disable the memory arena. -M: disable the memory pattern.
	-P: parallel executor. -D: no thread spinning. -Z: no spinning between runs.
	-I: generate the inputs (free dimensions are 1).
	-n: exit after session creation.
	-h: help
({PROGRAM} here is edgebench's stand-in: onnxruntime on the host, CPU build)
"""


class UsageError(ValueError):
    """A command line the real tool would answer with its usage."""


@dataclass
class Config:
    """The parsed command line (the real tool's defaults)."""

    model: str
    result_file: str | None = None
    mode: str = "duration"
    repeated_times: int = 1000
    duration_s: float = 600.0
    provider: str = "cpu"
    profile_prefix: str | None = None
    intra_op_threads: int = 0
    inter_op_threads: int = 0
    generate_inputs: bool = False
    show_statistics: bool = False
    verbose: bool = False
    seed: int | None = None
    graph_level: str = "ORT_ENABLE_ALL"
    disable_arena: bool = False
    disable_memory_pattern: bool = False
    parallel_executor: bool = False
    disable_spinning: bool = False
    disable_spinning_between_runs: bool = False
    exit_after_session_creation: bool = False


def _count(flag: str, raw: str, minimum: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise UsageError(f"{flag} {raw}: not a number") from None
    if value < minimum:
        raise UsageError(f"{flag} {raw}: must be >= {minimum}")
    return value


def parse_args(argv: list[str]) -> Config:
    """The real tool's command line (glibc getopt: options and operands mix)."""
    try:
        pairs, operands = getopt.gnu_getopt(argv, OPTIONS)
    except getopt.GetoptError as error:
        raise UsageError(f"{PROGRAM}: {error}") from None
    values: dict[str, Any] = {}
    for flag, raw in pairs:
        if flag in NOT_EMULATED:
            raise UsageError(
                f"option {flag} ({NOT_EMULATED[flag]}) is not emulated by the stand-in"
            )
        if flag == "-h":
            raise UsageError("")
        if flag == "-m":
            if raw not in ("times", "duration"):
                raise UsageError(f"-m {raw}: expected 'times' or 'duration'")
            values["mode"] = raw
        elif flag == "-r":
            values["repeated_times"] = _count(flag, raw, 1)
            values["mode"] = "times"
        elif flag == "-t":
            values["duration_s"] = float(_count(flag, raw, 1))
            values["mode"] = "duration"
        elif flag == "-e":
            if raw not in PROVIDERS:
                raise UsageError(f"-e {raw}: not a provider the tool knows")
            values["provider"] = raw
        elif flag == "-p":
            values["profile_prefix"] = raw
        elif flag == "-x":
            values["intra_op_threads"] = _count(flag, raw, 0)
        elif flag == "-y":
            values["inter_op_threads"] = _count(flag, raw, 0)
        elif flag == "-c":
            if _count(flag, raw, 1) != 1:
                raise UsageError("-c: only one run at a time is emulated by the stand-in")
        elif flag == "-o":
            if raw not in GRAPH_LEVELS:
                raise UsageError(f"-o {raw}: expected 0, 1, 2 or 99")
            values["graph_level"] = GRAPH_LEVELS[raw]
        elif flag == "-S":
            values["seed"] = _count(flag, raw, 0)
        else:
            switch = {"-I": "generate_inputs", "-s": "show_statistics", "-v": "verbose",
                      "-A": "disable_arena", "-M": "disable_memory_pattern",
                      "-P": "parallel_executor", "-D": "disable_spinning",
                      "-Z": "disable_spinning_between_runs",
                      "-n": "exit_after_session_creation"}  # fmt: skip
            values[switch[flag]] = True
    if not 1 <= len(operands) <= 2:
        raise UsageError("expected model_path [result_file]")
    return Config(
        model=operands[0], result_file=operands[1] if len(operands) == 2 else None, **values
    )


# --------------------------------------------------------------------------- the run


def fail(message: str) -> int:
    """The real tool's way out: the exception's text on stderr, exit 255."""
    sys.stdout.flush()
    print(message, file=sys.stderr, flush=True)
    return EXIT_FAILED


def ort_message(error: Exception) -> str:
    # Python's "[ONNXRuntimeError] : 7 : INVALID_PROTOBUF : " is not in the C++ text.
    return re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", str(error))


def peak_working_set_bytes() -> int:
    # The real tool's Linux build: ru_maxrss (KiB) x 1024.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def cpu_seconds() -> float:
    # process_time, not os.times(): the latter counts in 10 ms clock ticks, which over
    # a run of a few milliseconds reads as several hundred percent.
    return time.process_time()


def _dtype(ort_type: str) -> Any:
    import numpy as np

    names = {
        "float": np.float32, "float16": np.float16, "double": np.float64,
        "int8": np.int8, "uint8": np.uint8, "int16": np.int16, "uint16": np.uint16,
        "int32": np.int32, "uint32": np.uint32, "int64": np.int64, "uint64": np.uint64,
        "bool": np.bool_,
    }  # fmt: skip
    m = re.fullmatch(r"tensor\((\w+)\)", ort_type)
    if not m or m.group(1) not in names:
        raise ValueError(f"input type {ort_type} cannot be generated with -I")
    return names[m.group(1)]


def generated_inputs(session: Any, seed: int | None) -> dict[str, Any]:
    """One random feed for every input, free dimensions as 1 (``-I``)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    feeds = {}
    for node in session.get_inputs():
        dtype = _dtype(node.type)
        shape = [d if isinstance(d, int) and d > 0 else 1 for d in node.shape]
        if np.issubdtype(dtype, np.integer):
            data = rng.integers(0, 100, size=shape)
        elif dtype is np.bool_:
            data = rng.integers(0, 2, size=shape)
        else:
            data = rng.uniform(-1.0, 1.0, size=shape)
        feeds[node.name] = data.astype(dtype)
    return feeds


def percentile(ordered: list[float], p: float) -> float:
    # The real tool's index: static_cast<size_t>(n * p), 0-based.
    return ordered[min(len(ordered) - 1, math.floor(len(ordered) * p))]


def print_summary(
    config: Config,
    *,
    creation_s: float,
    first_s: float,
    times_s: list[float],
    run_s: float,
    cpu_pct: int,
    peak: int,
) -> None:
    total = sum(times_s)
    n = len(times_s)
    print(f"Session creation time cost: {creation_s:g} s")
    print(f"First inference time cost: {int(first_s * 1000)} ms")
    print(f"Total inference time cost: {total:g} s")
    print(f"Total inference requests: {n}")
    print(f"Average inference time cost total: {total / n * 1000:.6f} ms")
    print(f"Total inference run time: {run_s:g} s")
    print(f"Number of inferences per second: {n / run_s:g}")
    print(f"Avg CPU usage: {cpu_pct} %")
    print(f"Peak working set size: {peak} bytes")
    print(f"Avg CPU usage:{cpu_pct}")
    print(f"Peak working set size:{peak}")
    print(f"Runs:{n}")
    if config.result_file:
        name = os.path.splitext(os.path.basename(config.model))[0]
        with open(config.result_file, "a") as out:
            for index, t in enumerate(times_s):
                out.write(f"{name},{t:g},{peak},{cpu_pct},{index}\n")
    if config.show_statistics or not config.result_file:
        ordered = sorted(times_s)
        print(f"Min Latency: {ordered[0]:g} s")
        print(f"Max Latency: {ordered[-1]:g} s")
        for label, p in (("P50", 0.5), ("P90", 0.9), ("P95", 0.95), ("P99", 0.99),
                         ("P999", 0.999)):  # fmt: skip
            print(f"{label} Latency: {percentile(ordered, p):g} s")
    sys.stdout.flush()


def session_options(config: Config) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    if config.intra_op_threads > 0:
        print(f"Setting intra_op_num_threads to {config.intra_op_threads}")
        options.intra_op_num_threads = config.intra_op_threads
    if config.inter_op_threads > 0:
        print(f"Setting inter_op_num_threads to {config.inter_op_threads}")
        options.inter_op_num_threads = config.inter_op_threads
    if config.disable_spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    if config.disable_spinning_between_runs:
        print("Disabling intra-op thread spinning between runs")
        options.add_session_config_entry("session.force_spinning_stop", "1")
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, config.graph_level)
    options.enable_cpu_mem_arena = not config.disable_arena
    options.enable_mem_pattern = not config.disable_memory_pattern
    if config.parallel_executor:
        options.execution_mode = ort.ExecutionMode.ORT_PARALLEL
    if config.profile_prefix:
        # The real tool's EnableProfiling(prefix): onnxruntime names the file
        # PREFIX_<date>_<time>.json itself.
        options.enable_profiling = True
        options.profile_file_prefix = config.profile_prefix
    return options


def main(argv: list[str] | None = None) -> int:
    """Run like ``onnxruntime_perf_test [options] model``; the real tool's exit status."""
    args = sys.argv[1:] if argv is None else argv
    print(banner(), flush=True)
    try:
        config = parse_args(args)
    except UsageError as error:
        if str(error):
            print(error, file=sys.stderr)
        print(USAGE, end="", flush=True)
        return EXIT_FAILED

    # Imported late so that usage mistakes answer fast, as the real tool does.
    import onnxruntime as ort
    from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

    # onnxruntime's Python errors are its status codes as exception classes (Fail,
    # InvalidProtobuf, NoSuchFile, ...); the C++ tool would print their message.
    ort_errors = tuple(
        value
        for value in vars(ort_state).values()
        if isinstance(value, type) and issubclass(value, Exception)
    ) + (RuntimeError, ValueError)

    provider_name, build_label = PROVIDERS[config.provider]
    if config.provider not in PHONE_BUILD or provider_name not in ort.get_available_providers():
        return fail(f"{THROW_SITE} {build_label} is not supported in this build")
    providers = (
        [provider_name]
        if provider_name == "CPUExecutionProvider"
        else [
            provider_name,
            "CPUExecutionProvider",
        ]
    )
    try:
        options = session_options(config)
        t0 = time.perf_counter()
        session = ort.InferenceSession(config.model, sess_options=options, providers=providers)
        creation_s = time.perf_counter() - t0
    except ort_errors as error:
        return fail(ort_message(error))
    if config.exit_after_session_creation:
        print(f"Session creation time cost: {creation_s:g} s", flush=True)
        return 0
    if not config.generate_inputs:
        model_dir = os.path.dirname(os.path.abspath(config.model))
        if any(entry.startswith("test_data_set_") for entry in os.listdir(model_dir)):
            return fail("edgebench stand-in: test_data_set_* inputs are not emulated; pass -I")
        name = os.path.splitext(os.path.basename(config.model))[0]
        return fail(f"there is no test data for model {name}")
    try:
        feeds = generated_inputs(session, config.seed)
        outputs = [node.name for node in session.get_outputs()]
        # The warm-up request, then the timed ones (the real tool's RunImpl).
        t0 = time.perf_counter()
        session.run(outputs, feeds)
        first_s = time.perf_counter() - t0
        times_s: list[float] = []
        cpu0, start = cpu_seconds(), time.perf_counter()
        while True:
            if config.mode == "times" and len(times_s) >= config.repeated_times:
                break
            if config.mode == "duration" and time.perf_counter() - start >= config.duration_s:
                break
            t0 = time.perf_counter()
            session.run(outputs, feeds)
            times_s.append(time.perf_counter() - t0)
            if config.verbose:
                print(f"iteration:{len(times_s)},time_cost:{times_s[-1]:g}")
        run_s = time.perf_counter() - start
        busy = (cpu_seconds() - cpu0) / run_s / (os.cpu_count() or 1) * 100
        cpu_pct = max(0, min(100, int(busy)))  # a share of the machine, as the tool prints
    except ort_errors as error:
        return fail(ort_message(error))
    print_summary(
        config,
        creation_s=creation_s,
        first_s=first_s,
        times_s=times_s,
        run_s=run_s,
        cpu_pct=cpu_pct,
        peak=peak_working_set_bytes(),
    )
    if config.profile_prefix:
        session.end_profiling()  # the real tool's profile is written when the session ends
    return 0


if __name__ == "__main__":
    sys.exit(main())
