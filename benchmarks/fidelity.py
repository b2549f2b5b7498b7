"""Fidelity: does edgebench's latency agree with a bare loop and with the vendors' tools?

For each model file and runtime (one thread, pinned to one CPU), three sides are
measured, each in fresh processes, interleaved A B C, B C A, C A B, ... so that a slow
spell of the VM falls on every side alike:

  A  edgebench: `edgebench run` of a one-variant suite with `cpus:` set; its p50 (the
     median across its 5 repetitions of 50 runs / 0.3 s, inference only);
  B  a bare loop: the runtime's invoke in a plain Python loop, inputs set once, the same
     warm-up and window rule, pinned with taskset; the median of its window medians;
  C  the vendor's tool: LiteRT's `ai_edge_litert.tools.benchmark_litert_model` (its
     median, printed to 0.01 ms) for .tflite; onnxruntime's own profiler for .onnx
     (the median duration of its `model_run` events, in µs).

Each side's figure per process is one number; the ratio A/B (A/C) is the ratio of the
medians over processes, with a percentile-bootstrap 95% CI that resamples processes
(harness.stats.ratio_ci), so it covers between-process variation.

Also measured here: the agent's own timing cost per inference (its timer floor), the
one-process vs fresh-process CI on MobileNetV3-Small (suite option `processes:`), and
the CV with and without pinning.

Usage: .venv/bin/python benchmarks/fidelity.py [--processes 5] [--quick] [--json F]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.machine import machine_line  # noqa: E402
from harness.stats import ratio_ci  # noqa: E402

PYTHON = sys.executable
EDGEBENCH = str(Path(PYTHON).parent / "edgebench")
# The window rule every side uses (edgebench's suite defaults but for 0.3 s windows).
WARMUP_RUNS, WARMUP_MIN_S, MIN_RUNS, MIN_DURATION_S, REPETITIONS = 10, 0.1, 50, 0.3, 5
MEASURE = (
    f"{{warmup_runs: {WARMUP_RUNS}, warmup_min_s: {WARMUP_MIN_S}, min_runs: {MIN_RUNS}, "
    f"min_duration_s: {MIN_DURATION_S}, repetitions: {REPETITIONS}}}"
)
# Built models: the digits CNN and MobileNetV3-Small through edgebench's own builders
# (suite variants), the MCU-sized network as a file (tests/mcu_models.py).
MODELS_SUITE = """\
name: fidelity-models
models:
  - name: digits_cnn
    builder: digits_cnn
    params: {seed: 0, epochs: 15}
  - name: mobilenet_v3_small
    builder: mobilenet_v3_small
    params: {num_classes: 1000, resolution: 224, width_mult: 1.0, seed: 0}
variants:
  - name: fp32-tflite
    recipe: [export_tflite]
  - name: fp32-onnx
    recipe: [export_onnx]
settings:
  - runtime: litert
"""


# --------------------------------------------------------------------------- sides B, C
# Run in a fresh, pinned process: `python fidelity.py --side bare|vendor RUNTIME PATH`.


def _window_medians(call: Any) -> float:
    clock = time.perf_counter_ns
    start, count = clock(), 0
    while count < WARMUP_RUNS or clock() - start < WARMUP_MIN_S * 1e9:
        call()
        count += 1
    medians = []
    for _ in range(REPETITIONS):
        samples: list[int] = []
        start = clock()
        while len(samples) < MIN_RUNS or clock() - start < MIN_DURATION_S * 1e9:
            s = clock()
            call()
            samples.append(clock() - s)
        samples.sort()
        medians.append(samples[(len(samples) + 1) // 2 - 1] / 1e9)
    return statistics.median(medians)


def _random_feed(shape: list[int], dtype: Any) -> Any:
    import numpy as np

    rng = np.random.default_rng(0)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max + 1, size=shape).astype(dtype)
    return rng.random(shape, dtype=np.float32).astype(dtype)


def bare(runtime: str, path: str) -> float:
    """The bare in-process loop around the runtime's invoke (inputs set once)."""
    if runtime == "litert":
        from ai_edge_litert.interpreter import Interpreter

        interp = Interpreter(model_path=path, num_threads=1)
        interp.allocate_tensors()
        for d in interp.get_input_details():
            interp.set_tensor(d["index"], _random_feed(list(d["shape"]), d["dtype"]))
        return _window_medians(interp.invoke)
    import numpy as np
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = 1, 1
    sess = ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])
    binding = sess.io_binding()
    feeds = []
    for arg in sess.get_inputs():
        shape = [d if isinstance(d, int) else 1 for d in arg.shape]
        feeds.append(_random_feed(shape, np.float32))
        binding.bind_cpu_input(arg.name, feeds[-1])
    for arg in sess.get_outputs():
        binding.bind_output(arg.name, "cpu")
    return _window_medians(lambda: sess.run_with_iobinding(binding))


def vendor(runtime: str, path: str, runs: int) -> float:
    """The vendor's own figure: LiteRT's Python benchmark tool, or onnxruntime's
    profiler (model_run events)."""
    if runtime == "litert":
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "result.json"
            argv = [PYTHON, "-m", "ai_edge_litert.tools.benchmark_litert_model"]
            argv += ["--model", path, "--num_runs", str(runs), "--warmup_runs", str(WARMUP_RUNS)]
            argv += ["--num_threads", "1", "--result_json", str(out)]
            subprocess.run(argv, check=True, capture_output=True, text=True)
            return json.loads(out.read_text())["latency"]["median_ms"] / 1e3
    import numpy as np
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = 1, 1
        opts.enable_profiling = True
        opts.profile_file_prefix = str(Path(tmp) / "ort")
        sess = ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])
        feed = {
            a.name: _random_feed([d if isinstance(d, int) else 1 for d in a.shape], np.float32)
            for a in sess.get_inputs()
        }
        for _ in range(WARMUP_RUNS + runs):
            sess.run(None, feed)
        events = json.loads(Path(sess.end_profiling()).read_text())
    durations = [e["dur"] for e in events if e.get("name") == "model_run"][WARMUP_RUNS:]
    return statistics.median(durations) / 1e6


# --------------------------------------------------------------------------- side A


class Workspace:
    """An edgebench workspace with the local device, reused between invocations so
    the models are built once (the build cache is content-addressed)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.env = {
            **os.environ,
            "EDGEBENCH_HOME": str(root / "home"),
            "EDGEBENCH_DB": f"sqlite:///{root / 'results.db'}",
            "COLUMNS": "200",
        }
        if "local" not in self.eb("device", "list"):
            self.eb("device", "add", "local", "--transport", "local")

    def eb(self, *args: str) -> str:
        proc = subprocess.run(
            [EDGEBENCH, *args], env=self.env, capture_output=True, text=True, cwd=self.root
        )
        if proc.returncode != 0:
            raise RuntimeError(f"edgebench {' '.join(args)}: {proc.stderr.strip()[-500:]}")
        return proc.stdout

    def build(self, suite_text: str) -> dict[tuple[str, str], str]:
        suite = self.root / "models.yaml"
        suite.write_text(suite_text)
        rows = json.loads(self.eb("variants", str(suite), "--json"))
        return {(r["model"], r["variant"]): r["path"] for r in rows}

    def run(self, path: str, runtime: str, extra: str = "", measure: str = MEASURE) -> dict:
        """One `edgebench run` of the file as it is; its exported job row."""
        suite = self.root / "one.yaml"
        suite.write_text(
            "name: fidelity\n"
            f"models: [{{name: m, file: {json.dumps(path)}}}]\n"
            "variants: [{name: v, recipe: [identity]}]\n"
            f"settings: [{{runtime: {runtime}, threads: 1{extra}}}]\n"
            f"measure: {measure}\n"
        )
        self.eb("run", str(suite), "--device", "local")
        run_id = json.loads(self.eb("runs", "list", "--json"))[0]["id"]
        out = self.root / "job.csv"
        self.eb("export", run_id, "--format", "csv", "-o", str(out))
        (row,) = list(csv.DictReader(out.open()))
        return row


def _pinned(cpu: int, *argv: str) -> float:
    proc = subprocess.run(
        ["taskset", "-c", str(cpu), PYTHON, __file__, *argv],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- driver


def fidelity(ws: Workspace, name: str, runtime: str, path: str, processes: int, cpu: int) -> dict:
    sides: dict[str, list[float]] = {"edgebench": [], "bare": [], "vendor": []}
    floors: list[float] = []
    io_ratio: list[float] = []
    vendor_runs = 0
    order = list(sides)
    for i in range(processes):
        for side in order[i % 3 :] + order[: i % 3]:  # A B C, B C A, C A B, ...
            if side == "edgebench":
                row = ws.run(path, runtime, f", cpus: '{cpu}'")
                p50 = float(row["latency_p50_s"])
                sides[side].append(p50)
                floors.append(float(row["timer_floor_s"]))
                if row["latency_io_p50_s"]:
                    io_ratio.append(float(row["latency_io_p50_s"]) / p50)
                # The vendor tool gets as many runs as one edgebench window had.
                vendor_runs = max(MIN_RUNS, int(int(row["latency_n"]) / REPETITIONS))
            elif side == "bare":
                sides[side].append(_pinned(cpu, "--side", "bare", runtime, path))
            else:
                runs = vendor_runs or MIN_RUNS
                sides[side].append(_pinned(cpu, "--side", "vendor", runtime, path, str(runs)))
    out: dict[str, Any] = {"model": name, "runtime": runtime, "processes": processes, **sides}
    out["timer_floor_s"] = statistics.median(floors)
    out["io_over_invoke"] = statistics.median(io_ratio) if io_ratio else None
    for other in ("bare", "vendor"):
        out[f"vs_{other}"] = ratio_ci(sides["edgebench"], sides[other])
    return out


def process_variance(ws: Workspace, path: str, cpu: int) -> dict:
    """One job's 10 repetitions in one agent process vs over 10 fresh ones."""
    rule = "{warmup_runs: 10, warmup_min_s: 0.1, min_runs: 50, min_duration_s: 0.3, "
    out = {}
    for processes in (1, 10):
        measure = rule + f"repetitions: 10, processes: {processes}}}"
        row = ws.run(path, "litert", f", cpus: '{cpu}'", measure)
        out[processes] = {k: float(row[f"latency_{k}_s"]) for k in ("p50", "ci_low", "ci_high")}
    return out


def pinning(ws: Workspace, path: str, cpu: int, rounds: int) -> dict:
    """CV (median per-window CV) with and without cpus:, interleaved."""
    cvs: dict[str, list[float]] = {"pinned": [], "unpinned": []}
    for _ in range(rounds):
        cvs["pinned"].append(float(ws.run(path, "litert", f", cpus: '{cpu}'")["latency_cv"]))
        cvs["unpinned"].append(float(ws.run(path, "litert")["latency_cv"]))
    return cvs


def _ms(x: float) -> str:
    return f"{x * 1e3:.3f}" if x >= 1e-4 else f"{x * 1e6:.2f} µs"


def markdown(results: dict, command: str, before: str, after: str) -> str:
    lines = [
        "### Fidelity: edgebench vs a bare loop and the vendors' tools",
        "",
        f"{time.strftime('%Y-%m-%d')}; {before}; after: {after}. Command: `{command}`.",
        "",
        "Each cell: median over fresh processes (ms unless marked); ratios with a 95% "
        "bootstrap CI over processes; all sides 1 thread, pinned to one CPU.",
        "",
        "| model | runtime | processes | edgebench p50 | bare loop | vendor tool | "
        "edgebench / bare [95% CI] | edgebench / vendor [95% CI] | with I/O / invoke | "
        "timer floor |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    met = []
    for r in results["fidelity"]:
        med = {k: statistics.median(r[k]) for k in ("edgebench", "bare", "vendor")}
        vb, vv = r["vs_bare"], r["vs_vendor"]
        io = f"{r['io_over_invoke']:.3f}" if r["io_over_invoke"] else "-"
        lines.append(
            f"| {r['model']} | {r['runtime']} | {r['processes']} | {_ms(med['edgebench'])} | "
            f"{_ms(med['bare'])} | {_ms(med['vendor'])} | "
            f"{vb[0]:.3f} [{vb[1]:.3f}, {vb[2]:.3f}] | {vv[0]:.3f} [{vv[1]:.3f}, {vv[2]:.3f}] | "
            f"{io} | {r['timer_floor_s'] * 1e9:.0f} ns |"
        )
        if med["edgebench"] >= 1e-3:
            for label, (_, lo, hi) in (("bare", vb), ("vendor", vv)):
                ok = 0.97 <= lo and hi <= 1.03
                met.append(
                    f"- {r['model']} {r['runtime']} vs {label}: CI [{lo:.3f}, {hi:.3f}] "
                    + ("inside 0.97-1.03: met" if ok else "NOT inside 0.97-1.03: missed")
                )
    floors = [r["timer_floor_s"] for r in results["fidelity"]]
    met.append(
        f"- agent timing cost per inference: {max(floors) * 1e9:.0f} ns at most "
        f"(target under 2 µs): {'met' if max(floors) < 2e-6 else 'missed'}"
    )
    lines += ["", "Targets (models of 1 ms and more):", *met]
    pv = results.get("process_variance")
    if pv:
        lines += [
            "",
            "Process-level variance (MobileNetV3-Small fp32 LiteRT, 10 repetitions):",
            "",
            "| repetitions in | p50 | 95% CI | CI width |",
            "|---|---|---|---|",
        ]
        for processes, label in ((1, "one agent process"), (10, "10 fresh processes")):
            f = pv[processes]
            width = (f["ci_high"] - f["ci_low"]) / f["p50"]
            lines.append(
                f"| {label} | {_ms(f['p50'])} | [{_ms(f['ci_low'])}, {_ms(f['ci_high'])}] | "
                f"{width:.2%} |"
            )
    cv = results.get("pinning")
    if cv:
        lines += [
            "",
            "CV (median per-window) of MobileNetV3-Small fp32 LiteRT, interleaved runs: "
            f"pinned {', '.join(f'{x:.3f}' for x in cv['pinned'])}; "
            f"unpinned {', '.join(f'{x:.3f}' for x in cv['unpinned'])}.",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="digits only, 2 processes")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--workdir", type=Path, default=REPO / ".edgebench-bench" / "fidelity")
    parser.add_argument("--side", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:  # a measuring child process
        kind, runtime, path, *rest = args.side
        value = bare(runtime, path) if kind == "bare" else vendor(runtime, path, int(rest[0]))
        print(value)
        return
    before = machine_line()
    cpu = sorted(os.sched_getaffinity(0))[-1]
    ws = Workspace(args.workdir)
    built = ws.build(MODELS_SUITE)
    from tests import mcu_models

    resnet8 = mcu_models.build("resnet8", args.workdir / "mcu-models", float_model=True)
    cases = [
        ("digits_cnn", "litert", built[("digits_cnn", "fp32-tflite")]),
        ("digits_cnn", "onnxruntime", built[("digits_cnn", "fp32-onnx")]),
        ("mobilenet_v3_small", "litert", built[("mobilenet_v3_small", "fp32-tflite")]),
        ("mobilenet_v3_small", "onnxruntime", built[("mobilenet_v3_small", "fp32-onnx")]),
        ("resnet8 (MLPerf Tiny shape)", "litert", str(resnet8)),
    ]
    processes = 2 if args.quick else args.processes
    if args.quick:
        cases = cases[:2]
    results: dict[str, Any] = {
        "fidelity": [fidelity(ws, *case, processes, cpu) for case in cases],
        "machine": platform.platform(),
    }
    if not args.quick:
        mobilenet = built[("mobilenet_v3_small", "fp32-tflite")]
        results["process_variance"] = process_variance(ws, mobilenet, cpu)
        results["pinning"] = pinning(ws, mobilenet, cpu, rounds=3)
    command = "python benchmarks/fidelity.py" + (" --quick" if args.quick else "")
    text = markdown(results, command, before, machine_line(short=True))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
