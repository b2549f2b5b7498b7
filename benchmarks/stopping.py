"""Time to a trustworthy number: adaptive stopping against fixed measurement rules.

edgebench's agent (the real one, over the local transport, one thread, pinned to one
CPU) measures each model under four rules, interleaved over rounds:

  benchmark_model   one window of at least 50 runs and 1 s (LiteRT's defaults)
  MLPerf Tiny       5 windows of 10 s (the performance mode's five runs)
  edgebench fixed   5 windows of at least 50 runs and 0.5 s (edgebench's default)
  adaptive          one window that ends once the median's 95% CI is within the
                    target width (suite option target_rel_ci), capped at 10 s

For each, the runs and seconds spent and the width it reached: (CI high - CI low) /
median, the exact binomial CI of the median of all its samples (harness.stats). The
question a user has is "how long until the number is good to X%": a fixed rule spends
its time whatever the width it reaches; adaptive spends what the width needs.

Usage: .venv/bin/python benchmarks/stopping.py [--rounds 3] [--quick] [--json F]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.fidelity import MODELS_SUITE, Workspace  # noqa: E402
from benchmarks.machine import machine_line  # noqa: E402
from devices.local import LocalTransport  # noqa: E402
from devices.transport import DeviceConfig, sha256_file  # noqa: E402
from harness.stats import median_ci  # noqa: E402
from runners.agent_client import AgentClient  # noqa: E402

WARMUP = {"warmup_runs": 10, "warmup_min_s": 0.1}
RULES: dict[str, dict[str, Any]] = {
    "benchmark_model (50 runs, 1 s)": {"min_runs": 50, "min_duration_s": 1.0, "repetitions": 1},
    "MLPerf Tiny (5 x 10 s)": {"min_runs": 1, "min_duration_s": 10.0, "repetitions": 5},
    "edgebench fixed (5 x 50 runs, 0.5 s)": {
        "min_runs": 50,
        "min_duration_s": 0.5,
        "repetitions": 5,
    },
}
TARGETS = (0.01, 0.005)  # adaptive widths asked for: 1% and 0.5%
# The adaptive windows' floor: a tenth of benchmark_model's second, so that a CI is
# never judged on a few milliseconds of a noisy machine.
ADAPTIVE_FLOOR_S = 0.1


def width(samples: list[float]) -> float:
    low, high = median_ci(samples)
    ordered = sorted(samples)
    return (high - low) / ordered[(len(ordered) + 1) // 2 - 1]


def measure(agent: AgentClient, fields: dict[str, Any]) -> dict[str, float]:
    t0 = time.perf_counter()
    reply = agent.bench(timeout=600, io_window=False, max_runs=10**7, **WARMUP, **fields)
    spent = sum(w["duration_s"] for w in reply["windows"])
    samples = [s for w in reply["windows"] for s in w["samples_s"]]
    return {
        "runs": len(samples),
        "seconds": spent,
        "wall_s": time.perf_counter() - t0,
        "width": width(samples),
    }


def model_rules(agent: AgentClient, rounds: int, quick: bool) -> dict[str, list[dict]]:
    rules = dict(RULES)
    if quick:
        rules = {k: v for k, v in rules.items() if "MLPerf" not in k}
    for target in TARGETS:
        rules[f"adaptive {target:.1%}"] = {
            "min_runs": 50,
            "min_duration_s": ADAPTIVE_FLOOR_S,
            "repetitions": 1,
            "target_rel_ci": target,
            "max_window_s": 10.0,
        }
    out: dict[str, list[dict]] = {name: [] for name in rules}
    for round_ in range(rounds):
        for name, fields in rules.items():
            if round_ and "MLPerf" in name:
                continue  # 50 s a time: once is the budget (its width varies little)
            out[name].append(measure(agent, fields))
    return out


def markdown(results: dict, command: str, before: str, after: str) -> str:
    lines = [
        "### Time to a trustworthy number: adaptive stopping vs fixed rules",
        "",
        f"{time.strftime('%Y-%m-%d')}; {before}; after: {after}. Command: `{command}`.",
        "",
        "Medians over interleaved rounds; seconds = time inside the measured windows "
        "(warm-up excluded, the same for every rule); width = (CI high - CI low) / median, "
        "exact 95% binomial CI of the median of all the rule's samples.",
        "",
        "| model | rule | runs | seconds | CI width |",
        "|---|---|---|---|---|",
    ]
    verdicts = []
    for model, rules in results["models"].items():
        med = {
            name: {k: statistics.median(r[k] for r in rows) for k in ("runs", "seconds", "width")}
            for name, rows in rules.items()
        }
        for name, m in med.items():
            lines.append(
                f"| {model} | {name} | {m['runs']:.0f} | {m['seconds']:.3f} | {m['width']:.2%} |"
            )
        for target in TARGETS:
            adaptive = med[f"adaptive {target:.1%}"]
            for name, m in med.items():
                if name.startswith("adaptive"):
                    continue
                if m["width"] > target:
                    verdicts.append(
                        f"- {model}, {target:.1%}: {name} does not reach it "
                        f"({m['width']:.2%} in {m['seconds']:.1f} s); adaptive: "
                        f"{adaptive['seconds']:.3f} s"
                    )
                    continue
                speedup = m["seconds"] / adaptive["seconds"]
                verdicts.append(
                    f"- {model}, {target:.1%}: {name} {m['seconds']:.3f} s vs adaptive "
                    f"{adaptive['seconds']:.3f} s: {speedup:.1f}x less time "
                    + ("(target 3x: met)" if speedup >= 3 else "(target 3x: missed)")
                    + f"; adaptive reached {adaptive['width']:.2%}"
                )
    return "\n".join([*lines, "", *verdicts]) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the short rules")
    parser.add_argument("--quick", action="store_true", help="digits only, no MLPerf rule")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--workdir", type=Path, default=REPO / ".edgebench-bench" / "fidelity")
    args = parser.parse_args()
    before = machine_line()
    built = Workspace(args.workdir).build(MODELS_SUITE)
    models = {
        "digits_cnn fp32 LiteRT": built[("digits_cnn", "fp32-tflite")],
        "mobilenet_v3_small fp32 LiteRT": built[("mobilenet_v3_small", "fp32-tflite")],
    }
    if args.quick:
        models = dict(list(models.items())[:1])
    cpu = sorted(os.sched_getaffinity(0))[-1]
    results: dict[str, Any] = {"models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        transport = LocalTransport(DeviceConfig("bench", "local"), Path(tmp))
        for name, path in models.items():
            sha = sha256_file(Path(path))
            remote = transport.push(Path(path), sha)
            agent = AgentClient.start(transport, timeout=600)
            try:
                agent.load(remote, sha, runtime="litert", threads=1, cpus=[cpu])
                rounds = 1 if args.quick else args.rounds
                results["models"][name] = model_rules(agent, rounds, args.quick)
            finally:
                agent.close()
    command = "python benchmarks/stopping.py" + (" --quick" if args.quick else "")
    text = markdown(results, command, before, machine_line(short=True))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
