"""A stand-in for LiteRT's ``benchmark_model`` on the emulated phone.

The emulated phone (:mod:`devices.emulators.adbd`) copies this file to its
``/system/bin/benchmark_model`` (with a ``#!`` line naming the host's Python), so
it must import only the standard library, numpy and ``ai_edge_litert``. It runs the
model with LiteRT **on the host** and prints what the real tool prints, line for
line where the figure is known (:mod:`runners.benchmark_model` parses it):

* the first line says it is a stand-in, not the real tool;
* ``STARTING!``, the settings that differ from the defaults (``Num threads: [4]``),
  ``Unconsumed cmdline flags: ...`` (a WARNING, the run goes on) for flags the real
  tool does not know, ``Failed to parse flag ...`` + exit 1 for a bad value;
* ``The input model file size (MB)``, ``Initialized session in X ms.``, the two
  ``Running benchmark ...`` / ``count= first= curr= min= max= avg= std= p5= median=
  p95=`` phases in µs (the real tool's statistics: mean, population std truncated to
  whole µs, percentiles as ``sorted[floor(n*p/100)]``), ``Inference timings in us:``;
* the memory footprint delta (ru_maxrss, as the real tool), and with
  ``--report_peak_memory_footprint`` the periodic monitor's peak and the
  ``/proc/self/statm`` lines;
* with ``--enable_op_profiling`` the two profiling sections. The Python interpreter
  API has no op profiler, so the regular-runs table has one row for the whole
  ``Invoke`` (named so) instead of one per op; its ``Timings (microseconds)`` line
  is the timed runs'.

Delegates: the emulated phone has no GPU driver, no NNAPI accelerator and cannot
``dlopen`` device libraries, so ``--use_gpu``, ``--use_nnapi`` and
``--external_delegate_path`` fail as the real tool fails when a delegate cannot be
applied: ``ERROR:`` lines, ``Benchmarking failed.``, exit status 1. ``--use_xnnpack``
(default on, as in LiteRT) selects the interpreter's default XNNPACK delegate;
``--use_xnnpack=false`` runs the built-in kernels. ``--num_threads=-1`` (the
default) runs one thread.
"""

from __future__ import annotations

import math
import os
import resource
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

STANDIN_BANNER = "INFO: edgebench stand-in benchmark_model (LiteRT on the host), not the real tool"

# name -> (kind, default, echo label). The labels are the real tool's.
FLAGS: dict[str, tuple[str, object, str]] = {
    "graph": ("str", "", "Graph"),
    "num_threads": ("int", -1, "Num threads"),
    "warmup_runs": ("int", 1, "Min warmup runs"),
    "warmup_min_secs": ("float", 0.5, "Min warmup runs duration (seconds)"),
    "num_runs": ("int", 50, "Min num runs"),
    "min_secs": ("float", 1.0, "Min runs duration (seconds)"),
    "max_secs": ("float", 150.0, "Max runs duration (seconds)"),
    "run_delay": ("float", -1.0, "Inter-run delay (seconds)"),
    "use_xnnpack": ("bool", True, "Use xnnpack"),
    "use_gpu": ("bool", False, "Use gpu"),
    "use_nnapi": ("bool", False, "Use NNAPI"),
    "enable_op_profiling": ("bool", False, "Enable op profiling"),
    "report_peak_memory_footprint": ("bool", False, "Report the peak memory footprint"),
    "memory_footprint_check_interval_ms": (
        "int",
        50,
        "Memory footprint check interval (ms)",
    ),
    "external_delegate_path": ("str", "", "External delegate path"),
    "external_delegate_options": ("str", "", "External delegate options"),
    "verbose": ("bool", False, "Log parameter values verbosely"),
    "benchmark_name": ("str", "", "Benchmark name"),
    "output_prefix": ("str", "", "Output prefix"),
    "input_layer": ("str", "", "Input layers"),
    "input_layer_shape": ("str", "", "Input shapes"),
    "input_layer_value_range": ("str", "", "Input value ranges"),
    "signature_to_run_for": ("str", "", "Signature to run"),
    "dry_run": ("bool", False, "Dry run"),
    "help": ("bool", False, "Help"),
}


class FlagError(ValueError):
    """A known flag with a value the real tool would not parse."""


def parse_flags(argv: list[str]) -> tuple[dict[str, object], list[str]]:
    """(values, unconsumed): ``--name=value`` as the real tool takes them."""
    values: dict[str, object] = {name: spec[1] for name, spec in FLAGS.items()}
    unconsumed: list[str] = []
    for arg in argv:
        name, eq, raw = arg.removeprefix("--").partition("=")
        if not arg.startswith("--") or name not in FLAGS:
            unconsumed.append(arg)
            continue
        kind = FLAGS[name][0]
        try:
            if kind == "bool":
                if not eq:
                    values[name] = True
                elif raw.lower() in ("true", "1"):
                    values[name] = True
                elif raw.lower() in ("false", "0"):
                    values[name] = False
                else:
                    raise ValueError(raw)
            elif kind == "int":
                values[name] = int(raw)
            elif kind == "float":
                values[name] = float(raw)
            else:
                values[name] = raw
        except ValueError as error:
            raise FlagError(f"Failed to parse flag '{name}' against argv '{arg}'") from error
    return values, unconsumed


@dataclass
class Phase:
    """One phase's run times in µs (integers, as the real tool records them)."""

    runs_us: list[int]

    def line(self) -> str:
        """The ``count=...`` line the real tool prints for this phase."""
        runs = self.runs_us
        n = len(runs)
        if n == 0:
            return "count=0"
        if len(set(runs)) == 1:
            return f"count={n} curr={runs[-1]}" + (" (all same)" if n > 1 else "")
        mean = sum(runs) / n
        variance = max(0.0, sum(r * r for r in runs) / n - mean * mean)
        ordered = sorted(runs)

        def pct(p: int) -> int:
            return ordered[min(n - 1, math.floor(n * p / 100))]

        return (
            f"count={n} first={runs[0]} curr={runs[-1]} min={ordered[0]} max={ordered[-1]} "
            f"avg={mean:.6g} std={int(math.sqrt(variance))} "
            f"p5={pct(5)} median={pct(50)} p95={pct(95)}"
        )

    def avg(self) -> float:
        return sum(self.runs_us) / len(self.runs_us) if self.runs_us else math.nan


def _rss_mib() -> float:
    """ru_maxrss (KiB on Linux) in the tool's MB (KiB / 1024)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _statm_mib() -> tuple[int, int, int]:
    """(VmRSS, RssAnon, RssFile + RssShmem) in whole MiB from /proc/self/status."""
    fields: dict[str, int] = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
                fields[key] = int(rest.split()[0])
    return (
        fields.get("VmRSS", 0) // 1024,
        fields.get("RssAnon", 0) // 1024,
        (fields.get("RssFile", 0) + fields.get("RssShmem", 0)) // 1024,
    )


class PeakMonitor:
    """The real tool's periodic memory monitor: VmRSS every interval, peak kept."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = max(0.001, interval_s)
        self.peak_mib = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="peak-memory", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_mib = max(self.peak_mib, float(_statm_mib()[0]))
            self._stop.wait(self.interval_s)

    def __enter__(self) -> PeakMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mib = max(self.peak_mib, _rss_mib())


def _phase(
    invoke: Callable[[], None], min_runs: int, min_s: float, max_s: float, delay_s: float
) -> Phase:
    """Run until both minima are met, stopping past ``max_s`` (the real loop)."""
    print(
        f"INFO: Running benchmark for at least {min_runs} iterations and at least "
        f"{min_s:g} seconds but terminate if exceeding {max_s:g} seconds.",
        flush=True,
    )
    runs: list[int] = []
    start = time.perf_counter()
    while True:
        elapsed = time.perf_counter() - start
        if not (len(runs) < min_runs or elapsed < min_s) or elapsed > max_s:
            break
        t0 = time.perf_counter_ns()
        invoke()
        runs.append((time.perf_counter_ns() - t0) // 1000)
        if delay_s > 0:
            time.sleep(delay_s)
    print(f"INFO: {Phase(runs).line()}\n", flush=True)
    return Phase(runs)


def _fail(lines: list[str]) -> int:
    for line in lines:
        print(f"ERROR: {line}", flush=True)
    print("Benchmarking failed.", flush=True)
    return 1


def main(argv: list[str] | None = None) -> int:
    """Run like ``benchmark_model --graph=M ...``; the exit status is the real tool's."""
    args = sys.argv[1:] if argv is None else argv
    rss_at_start = _rss_mib()
    print(STANDIN_BANNER, flush=True)
    print("INFO: STARTING!", flush=True)
    try:
        values, unconsumed = parse_flags(args)
    except FlagError as error:
        print(f"ERROR: {error}", flush=True)
        return 1
    if unconsumed:
        print(f"WARNING: Unconsumed cmdline flags: {' '.join(unconsumed)}", flush=True)
    if values["help"]:
        print("usage: benchmark_model --graph=MODEL.tflite [--flag=value ...]", flush=True)
        return 1
    print(f"INFO: Log parameter values verbosely: [{int(bool(values['verbose']))}]")
    for name, (kind, default, label) in FLAGS.items():
        value = values[name]
        if name in ("verbose", "help") or (value == default and not values["verbose"]):
            continue
        shown = int(value) if kind == "bool" else (f"{value:g}" if kind == "float" else value)
        print(f"INFO: {label}: [{shown}]")
    threads = int(values["num_threads"])  # type: ignore[call-overload]
    print(f"INFO: #threads used for CPU inference: [{threads}]", flush=True)
    graph = str(values["graph"])
    if not graph:
        return _fail(["Please specify the name of your TF Lite input file with --graph"])
    if not os.path.isfile(graph):
        return _fail([f"Could not open '{graph}'.", "Failed to load the model."])
    print(f"INFO: Loaded model {graph}", flush=True)

    # Imported late so that flag errors answer fast, as the real tool does.
    import numpy as np
    from ai_edge_litert import interpreter as litert

    print("INFO: Initialized TensorFlow Lite runtime.", flush=True)
    if values["external_delegate_path"]:
        path = values["external_delegate_path"]
        return _fail(
            [
                f"Failed to load external delegate library {path}: dlopen failed: the "
                "emulated phone cannot load device libraries",
                "Failed to create the external delegate.",
            ]
        )
    if values["use_gpu"]:
        print("INFO: Created TensorFlow Lite delegate for GPU.", flush=True)
        return _fail(
            [
                "Can not open OpenCL library on this device - dlopen failed: library "
                '"libOpenCL.so" not found (emulated phone: no GPU driver)',
                "Falling back to OpenGL",
                "TfLiteGpuDelegate Init: OpenGL-based API disabled",
                "TfLiteGpuDelegate Prepare: delegate is not initialized",
                "Node number 0 (TfLiteGpuDelegateV2) failed to prepare.",
                "Restored original execution plan after delegate application failure.",
                "Failed to apply GPU delegate.",
            ]
        )
    if values["use_nnapi"]:
        return _fail(
            [
                "NNAPI acceleration is unsupported on this platform (emulated phone: "
                "no NNAPI accelerator).",
                "Failed to apply NNAPI delegate.",
            ]
        )

    resolver = (
        litert.OpResolverType.AUTO
        if values["use_xnnpack"]
        else litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    )
    size_mb = os.path.getsize(graph) / 1e6
    monitor = PeakMonitor(int(values["memory_footprint_check_interval_ms"]) / 1000.0)  # type: ignore[call-overload]
    with monitor:
        t_init = time.perf_counter()
        interpreter = litert.Interpreter(
            model_path=graph,
            num_threads=max(1, threads),
            experimental_op_resolver_type=resolver,
        )
        t_allocate = time.perf_counter()
        interpreter.allocate_tensors()
        t_done = time.perf_counter()
        init_us = int((t_done - t_init) * 1e6)
        print(f"INFO: The input model file size (MB): {size_mb:g}")
        print(f"INFO: Initialized session in {init_us / 1000:g}ms.", flush=True)
        rss_after_init = _rss_mib()

        rng = np.random.default_rng(0)
        for detail in interpreter.get_input_details():
            dtype = np.dtype(detail["dtype"])
            shape = detail["shape"]
            if np.issubdtype(dtype, np.integer):
                info = np.iinfo(dtype)
                data = rng.integers(max(info.min, -128), min(info.max, 127) + 1, shape)
            elif dtype == np.bool_:
                data = rng.integers(0, 2, shape)
            else:
                data = rng.uniform(-1.0, 1.0, shape)
            interpreter.set_tensor(detail["index"], data.astype(dtype))

        if values["dry_run"]:
            warmup = timed = Phase([])
        else:
            delay = float(values["run_delay"])  # type: ignore[arg-type]
            max_s = float(values["max_secs"])  # type: ignore[arg-type]
            warmup = _phase(
                interpreter.invoke,
                int(values["warmup_runs"]),  # type: ignore[call-overload]
                float(values["warmup_min_secs"]),  # type: ignore[arg-type]
                max_s,
                delay,
            )
            timed = _phase(
                interpreter.invoke,
                int(values["num_runs"]),  # type: ignore[call-overload]
                float(values["min_secs"]),  # type: ignore[arg-type]
                max_s,
                delay,
            )
    first = warmup.runs_us[0] if warmup.runs_us else 0
    warm_avg = warmup.avg() if warmup.runs_us else 0
    timed_avg = timed.avg() if timed.runs_us else 0
    print(
        f"INFO: Inference timings in us: Init: {init_us}, First inference: {first}, "
        f"Warmup (avg): {warm_avg:g}, Inference (avg): {timed_avg:g}"
    )
    print(
        "INFO: Note: as the benchmark tool itself affects memory footprint, the following "
        "is only APPROXIMATE to the actual memory footprint of the model at runtime. Take "
        "the information at your discretion."
    )
    print(
        "INFO: Memory footprint delta from the start of the tool (MB): "
        f"init={rss_after_init - rss_at_start:g} overall={_rss_mib() - rss_at_start:g}"
    )
    if values["report_peak_memory_footprint"]:
        vm_rss, anon, file_shmem = _statm_mib()
        print(
            "INFO: Overall peak memory footprint (MB) via periodic monitoring: "
            f"{monitor.peak_mib:g}"
        )
        print("INFO: Memory status at the end of exeution:")  # sic: the real tool's typo
        print(f"INFO: - VmRSS              : {vm_rss} MB")
        print(f"INFO: + RssAnnon           : {anon} MB")  # sic
        print(f"INFO: + RssFile + RssShmem : {file_shmem} MB")
    if values["enable_op_profiling"]:
        _print_profile(
            modify_ms=(t_allocate - t_init) * 1e3,
            allocate_ms=(t_done - t_allocate) * 1e3,
            timed=timed,
        )
    sys.stdout.flush()
    return 0


def _print_profile(*, modify_ms: float, allocate_ms: float, timed: Phase) -> None:
    """The two op-profiling sections (see the module doc for what is not per op)."""
    header = (
        "\t             [node type]\t  [first]\t [avg ms]\t     [%]\t  [cdf%]\t  [mem KB]"
        "\t[times called]\t[Name]"
    )
    total = modify_ms + allocate_ms or 1.0
    print("INFO: Profiling Info for Benchmark Initialization:")
    print("============================== Run Order ==============================")
    print(header)
    cdf = 0.0
    for name, ms in (("ModifyGraphWithDelegate", modify_ms), ("AllocateTensors", allocate_ms)):
        share = 100.0 * ms / total
        cdf += share
        print(
            f"\t{name:>24}\t{ms:9.3f}\t{ms:9.3f}\t{share:7.3f}%\t{cdf:7.3f}%\t"
            f"{0.0:10.3f}\t{1:9d}\t{name}/0"
        )
    init_line = Phase([int(total * 1000)]).line()
    print(f"\nTimings (microseconds): {init_line}\nMemory (bytes): count=0\n2 nodes observed\n")
    print("INFO: Operator-wise Profiling Info for Regular Benchmark Runs:")
    print("============================== Run Order ==============================")
    print(header)
    if timed.runs_us:
        first_ms = timed.runs_us[0] / 1000
        avg_ms = timed.avg() / 1000
        print(
            f"\t{'Invoke':>24}\t{first_ms:9.3f}\t{avg_ms:9.3f}\t{100.0:7.3f}%\t{100.0:7.3f}%\t"
            f"{0.0:10.3f}\t{1:9d}\t[whole graph: the stand-in has no per-op profiler]"
        )
    print(f"\nTimings (microseconds): {timed.line()}\nMemory (bytes): count=0\n1 nodes observed\n")


if __name__ == "__main__":
    sys.exit(main())
