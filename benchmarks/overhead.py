"""Harness overhead per job (issue 10): what edgebench spends on a job beyond the time
the agent spends measuring it, on this machine as a `local` device and as an `ssh`
device on loopback, with a cold and a warm artifact cache.

How, exactly:

* The model is the digits CNN of tests/conftest.py's FAST_SUITE (builder digits_cnn),
  exported to ONNX once; the measured suite names that file (`file:` model) with
  VARIANTS ONNX variants of it (as is, fp16, int8 dynamic, int8 dynamic per-channel),
  onnxruntime threads=1, short windows and `io_window: false`, and no dataset, so the
  agent measures nothing but the warm-up and the windows (no accuracy pass, no extra
  input/output window).
* Every run is `edgebench run SUITE --device D --no-report` as a subprocess, in a
  temporary EDGEBENCH_HOME with its own SQLite database (tests/conftest.py make_runner).
  Per round, two fresh devices are registered: `local` and `ssh` (a real sshd from
  tests/sshd.py on 127.0.0.1, key login, host key checked against a known_hosts file),
  each with a workdir that does not exist yet. The suite runs twice on each: the first
  run finds nothing on the device (cold: agent and every model are pushed), the second
  is the same suite again (warm).
* Per job, from the store (harness.store.Store, job_measurement): job wall time =
  finished_at - started_at (ISO timestamps with microseconds: mark_job_started before
  the runner is picked, finish_job's update after the samples and metrics are inserted,
  before its commit); measured time = the agent's warm-up time_s (details["bench"]) +
  the sum of details["window_durations_s"]; overhead = wall - measured. Bytes pushed:
  details["pushed_bytes"] per job, split into the model's and the agent file's by their
  sizes.
* Breakdown (when an overhead target is missed, or with --breakdown always): one more
  round of cold + warm runs through benchmarks/controller_trace.py
  (the same `harness.cli.main`, with timestamps around push, agent start, hello, load,
  bench, stop, statistics and commit). The table gives the mean per job of each phase's
  exclusive time, so the rows add up to the mean job wall time.

Targets (issue 10): under 100 ms per job local; under 300 ms per job over SSH warm;
re-running an unchanged suite pushes zero model bytes. Nothing here asserts a time.

    .venv/bin/python benchmarks/overhead.py [--json PATH] [--quick] [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness_cost import (  # noqa: E402
    REPO,
    Section,
    SSHBoards,
    Target,
    Workspace,
    build_digits_fp32_onnx,
    login_shell_seconds,
    median,
    table,
)

from harness.store import Store  # noqa: E402
from runners.agent_client import AGENT_PATH  # noqa: E402
from tests.sshd import SSHDUnavailable  # noqa: E402

TRACE_SCRIPT = REPO / "benchmarks" / "controller_trace.py"

# (variant name, recipe) on the fp32 ONNX file; four different files, so every job of a
# cold run pushes its own model.
VARIANTS = [
    ("fp32-onnx", "[identity]"),
    ("fp16-onnx", "[onnx_fp16]"),
    ("int8dyn-onnx", "[onnx_int8_dynamic]"),
    ("int8dyn-pc-onnx", "[{onnx_int8_dynamic: {per_channel: true}}]"),
]
MEASURE = (
    "{warmup_runs: 3, warmup_min_s: 0.0, min_runs: 20, min_duration_s: 0.05,"
    " repetitions: 3, io_window: false}"
)
QUICK_MEASURE = (
    "{warmup_runs: 1, warmup_min_s: 0.0, min_runs: 5, min_duration_s: 0.01,"
    " repetitions: 2, io_window: false}"
)

LOCAL_TARGET_MS = 100.0
SSH_WARM_TARGET_MS = 300.0


@dataclass
class JobFigures:
    """One finished job as the store has it."""

    run_id: str
    device: str
    kind: str  # local | ssh
    cache: str  # cold | warm
    round: str  # "1", "2", ... or "trace"
    job_id: int
    key: str
    order: int  # position among the run's jobs on that device (0: first)
    wall_s: float
    measured_s: float
    init_s: float | None
    pushed_bytes: int
    model_bytes: int
    agent_bytes: int

    @property
    def overhead_s(self) -> float:
        return self.wall_s - self.measured_s


def write_suite(path: Path, model: Path, variants: list[tuple[str, str]], measure: str) -> None:
    body = "".join(f"  - name: {name}\n    recipe: {recipe}\n" for name, recipe in variants)
    path.write_text(
        "name: harness-overhead\n"
        f"models:\n  - name: digits_cnn\n    file: {model}\n"
        f"variants:\n{body}"
        "settings:\n  - runtime: onnxruntime\n    threads: [1]\n"
        f"measure: {measure}\n"
    )


def run_id_of(stdout: str) -> str:
    found = re.search(r"^run (\S+): \d+ job", stdout, flags=re.M)
    if found is None:
        raise RuntimeError(f"no run id in the output of `edgebench run`:\n{stdout[-2000:]}")
    return found.group(1)


def split_pushed(pushed: int, model_size: int, agent_size: int) -> tuple[int, int]:
    """(model bytes, agent bytes) of a job's pushed_bytes: a job copies its model, the
    agent file, both or neither (content-addressed), so the sum says which."""
    if pushed in (model_size, model_size + agent_size) and model_size:
        return model_size, pushed - model_size
    return 0, pushed  # agent alone, nothing, or something else (then all under "agent")


def job_figures(
    store: Store, run_id: str, kind: str, cache: str, round_name: str
) -> list[JobFigures]:
    agent_size = AGENT_PATH.stat().st_size
    out: list[JobFigures] = []
    per_device: dict[str, int] = defaultdict(int)
    for job in store.jobs_for_run(run_id):
        if job["status"] != "done":
            raise RuntimeError(
                f"job {job['key']} of run {run_id} is {job['status']}: {job['error']}"
            )
        record = store.job_measurement(job)
        assert record is not None
        details = record.details
        warmup = sum(b["warmup"]["time_s"] for b in details["bench"])
        windows = sum(details["window_durations_s"])
        artifact = store.get_artifact(job["artifact_sha256"]) or {}
        pushed = int(details["pushed_bytes"])
        model_bytes, agent_bytes = split_pushed(
            pushed, int(artifact.get("size_bytes") or 0), agent_size
        )
        wall = (
            datetime.fromisoformat(job["finished_at"]) - datetime.fromisoformat(job["started_at"])
        ).total_seconds()
        out.append(
            JobFigures(
                run_id=run_id,
                device=job["device"],
                kind=kind,
                cache=cache,
                round=round_name,
                job_id=job["id"],
                key=job["key"],
                order=per_device[job["device"]],
                wall_s=wall,
                measured_s=warmup + windows,
                init_s=(details.get("load") or {}).get("init_s"),
                pushed_bytes=pushed,
                model_bytes=model_bytes,
                agent_bytes=agent_bytes,
            )
        )
        per_device[job["device"]] += 1
    return out


# --------------------------------------------------------------------------- breakdown

# Phases in the order a job meets them; a label not listed here is appended after them.
PHASE_ORDER = [
    "ssh connect, host key check, login",
    "push model file",
    "push agent file",
    "file hash check (sha256 on the device)",
    "copy a file to the device",
    "remote command (exec channel, login shell, command)",
    "start the agent process",
    "agent start, own work",
    "agent request hello",
    "load: runtime init (the agent's init_s)",
    "load: rest (model sha256 check, reply)",
    "bench: warm-up + windows (measured)",
    "bench: rest (first inference, timer floor, raw samples reply)",
    "agent request bye",
    "stop the agent (bye, wait for exit)",
    "runner: build the record",
    "runner: measure, own work",
    "statistics of the windows (figures.summarize)",
    "metrics of the job (figures.job_metrics)",
    "store: commit the job (finish_job)",
    "outside the traced calls (scheduler, runner setup, progress)",
]
PHASE_NOTES = {
    "agent request hello": "agent request hello (interpreter start, agent import, facts)",
}
MEASURED_PHASE = "bench: warm-up + windows (measured)"


def job_phases(spans: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Per job: wall time (mark_job_started returned -> finish_job returned), each
    phase's exclusive seconds, the worker thread's CPU seconds, remote commands."""
    started = {s["job"]: s for s in spans if s["label"] == "job started"}
    finished = {s["job"]: s for s in spans if s["label"].startswith("store: commit")}
    out: dict[int, dict[str, Any]] = {}
    for job_id, first in started.items():
        last = finished.get(job_id)
        if last is None:
            continue
        begin, end = first["end"], last["end"]
        phases: dict[str, float] = defaultdict(float)
        remote_commands = 0
        for s in spans:
            if (
                s["job"] != job_id
                or s["thread"] != first["thread"]
                or s["label"] == "job started"
                or s["start"] < begin
                or s["end"] > end
            ):
                continue
            label, spent = s["label"], s["exclusive_s"]
            if label == "remote command (exec channel, login shell, command)":
                remote_commands += 1
            if label == "agent request load" and s.get("agent_init_s") is not None:
                init = min(spent, s["agent_init_s"])
                phases["load: runtime init (the agent's init_s)"] += init
                phases["load: rest (model sha256 check, reply)"] += spent - init
            elif label == "agent request bench" and s.get("agent_windows_s") is not None:
                measured = min(spent, (s.get("agent_warmup_s") or 0.0) + s["agent_windows_s"])
                phases[MEASURED_PHASE] += measured
                phases["bench: rest (first inference, timer floor, raw samples reply)"] += (
                    spent - measured
                )
            else:
                phases[label] += spent
        wall = end - begin
        phases["outside the traced calls (scheduler, runner setup, progress)"] = wall - sum(
            phases.values()
        )
        out[job_id] = {
            "wall_s": wall,
            "phases_s": dict(phases),
            "worker_cpu_s": last["cpu_end_s"] - first["cpu_end_s"],
            "remote_commands": remote_commands,
        }
    return out


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="write the raw numbers here")
    parser.add_argument("--quick", action="store_true", help="smoke test: 1 round, 2 variants")
    parser.add_argument("--rounds", type=int, help="cold+warm rounds per device (default 2)")
    parser.add_argument(
        "--breakdown",
        choices=["missed", "always", "never"],
        default="missed",
        help="run the traced round that breaks a job's time down: when an overhead target"
        " is missed (default), always, or never",
    )
    parser.add_argument(
        "--build-home",
        type=Path,
        help="EDGEBENCH_HOME to build the digits model in (kept; a second run finds it"
        " built). Default: inside the temporary workspace",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary workspace")
    args = parser.parse_args()
    rounds = args.rounds or (1 if args.quick else 2)
    variants = VARIANTS[:2] if args.quick else VARIANTS
    measure = QUICK_MEASURE if args.quick else MEASURE

    section = Section("Harness overhead per job (issue 10)")
    tmp = Path(tempfile.mkdtemp(prefix="eb-overhead-"))
    boards: SSHBoards | None = None
    try:
        ws = Workspace(tmp / "ws")
        builder = Workspace(args.build_home) if args.build_home else ws
        fp32 = build_digits_fp32_onnx(builder)
        suite = tmp / "overhead.yaml"
        write_suite(suite, fp32, variants, measure)
        ws.build_variants(suite)  # built before any run: a run then only finds them cached

        kinds = ["local"]
        ssh_missing = ""
        try:
            boards = SSHBoards.start(tmp / "ssh")
            kinds.append("ssh")
        except SSHDUnavailable as e:
            ssh_missing = str(e)

        def register(kind: str, name: str) -> None:
            workdir = tmp / "devices" / name  # does not exist yet: a cold artifact cache
            if kind == "local":
                ws.eb(
                    "device", "add", name, "--transport", "local", "--option", f"workdir={workdir}"
                )
            else:
                assert boards is not None
                boards.add_device(ws, name, boards.servers[0], workdir)

        store = Store(ws.db_url)
        jobs: list[JobFigures] = []
        run_walls: list[dict[str, Any]] = []
        for r in range(1, rounds + 1):
            for kind in kinds:
                name = f"{kind}-r{r}"
                register(kind, name)
                for cache in ("cold", "warm"):
                    wall, done = ws.timed("run", str(suite), "--device", name, "--no-report")
                    run_id = run_id_of(done.stdout)
                    found = job_figures(store, run_id, kind, cache, str(r))
                    jobs += found
                    run_walls.append(
                        {"run_id": run_id, "kind": kind, "cache": cache, "round": r,
                         "command_wall_s": wall, "jobs": len(found)}
                    )  # fmt: skip

        traces: dict[tuple[str, str], dict[int, dict[str, Any]]] = {}
        trace_jobs: list[JobFigures] = []
        if args.breakdown == "always" or (args.breakdown == "missed" and over_target(jobs)):
            for kind in kinds:
                name = f"{kind}-trace"
                register(kind, name)
                for cache in ("cold", "warm"):
                    trace_file = tmp / f"trace-{kind}-{cache}.json"
                    run_id = run_id_of(_traced_run(ws, trace_file, suite, name))
                    trace_jobs += job_figures(store, run_id, kind, cache, "trace")
                    spans = _read_json(trace_file)["spans"]
                    traces[(kind, cache)] = job_phases(spans)

        shell_s = login_shell_seconds() if "ssh" in kinds else None
        report(section, jobs, run_walls, traces, trace_jobs, kinds, ssh_missing, shell_s)
        section.raw.update(
            {
                "suite": suite.read_text(),
                "jobs": [{**asdict(j), "overhead_s": j.overhead_s} for j in [*jobs, *trace_jobs]],
                "runs": run_walls,
                "breakdown": {
                    f"{k}-{c}": {str(job): v for job, v in per_job.items()}
                    for (k, c), per_job in traces.items()
                },
                "login_shell_s": shell_s,
                "agent_file_bytes": AGENT_PATH.stat().st_size,
            }
        )
    finally:
        if boards is not None:
            boards.close()
        section.finish()
        if args.keep:
            print(f"workspace kept: {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(section.markdown(), end="")
    section.write_json(args.json)


def over_target(jobs: list[JobFigures]) -> bool:
    """Does any state's median overhead miss its target (see report())?"""
    limits = {("local", "cold"): LOCAL_TARGET_MS, ("local", "warm"): LOCAL_TARGET_MS,
              ("ssh", "warm"): SSH_WARM_TARGET_MS}  # fmt: skip
    for (kind, cache), limit in limits.items():
        value = median([j.overhead_s * 1e3 for j in jobs if (j.kind, j.cache) == (kind, cache)])
        if value is not None and value >= limit:
            return True
    return False


def _traced_run(ws: Workspace, trace_file: Path, suite: Path, device: str) -> str:
    """`edgebench run` through benchmarks/controller_trace.py; its stdout."""
    done = subprocess.run(
        [sys.executable, str(TRACE_SCRIPT), str(trace_file),
         "run", str(suite), "--device", device, "--no-report"],
        capture_output=True, text=True, env=ws.env, cwd=ws.root, timeout=600,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(
            f"traced run on {device} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
        )
    return done.stdout


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def report(
    section: Section,
    jobs: list[JobFigures],
    run_walls: list[dict[str, Any]],
    traces: dict[tuple[str, str], dict[int, dict[str, Any]]],
    trace_jobs: list[JobFigures],
    kinds: list[str],
    ssh_missing: str,
    login_shell_s: float | None,
) -> None:
    rows = []
    overhead_ms: dict[tuple[str, str], tuple[float | None, int]] = {}
    model_pushed: dict[tuple[str, str], int] = {}
    for kind in kinds:
        for cache in ("cold", "warm"):
            group = [j for j in jobs if j.kind == kind and j.cache == cache]
            walls = [
                w["command_wall_s"] for w in run_walls if (w["kind"], w["cache"]) == (kind, cache)
            ]
            over = [j.overhead_s * 1e3 for j in group]
            later = [j.overhead_s * 1e3 for j in group if j.order > 0]
            med = median(over)
            overhead_ms[(kind, cache)] = (med, len(group))
            model_pushed[(kind, cache)] = sum(j.model_bytes for j in group)
            rows.append(
                [
                    kind,
                    cache,
                    len(group),
                    f"{med:,.0f}" if med is not None else "-",
                    f"{max(over):,.0f}" if over else "-",
                    f"{median(later):,.0f}" if later else "-",
                    f"{median([j.wall_s * 1e3 for j in group]):,.0f}",
                    f"{median([j.measured_s * 1e3 for j in group]):,.0f}",
                    f"{median([(j.init_s or 0) * 1e3 for j in group]):,.0f}",
                    f"{model_pushed[(kind, cache)]:,} + {sum(j.agent_bytes for j in group):,}",
                    f"{median(walls):.1f}" if walls else "-",
                ]
            )
    if ssh_missing:
        rows.append(["ssh", "-", 0, f"not measured: {ssh_missing}", "", "", "", "", "", "", ""])
    section.blocks.append(
        table(
            [
                "device",
                "artifact cache",
                "jobs",
                "overhead / job, median (ms)",
                "max (ms)",
                "median, 2nd+ job of a run (ms)",
                "job wall, median (ms)",
                "measured (warm-up + windows), median (ms)",
                "of the overhead: runtime init (init_s), median (ms)",
                "pushed bytes: model + agent (total)",
                "`edgebench run` wall, median (s)",
            ],
            rows,
        )  # fmt: skip
    )
    rounds = sorted({j.round for j in jobs})
    section.blocks.append(
        f"Jobs: {len(jobs)} over {len(rounds)} round(s); each round registers fresh devices"
        " (cold: nothing on the device yet), runs the suite (cold) and again (warm). Overhead"
        " = store finished_at - started_at minus the agent's warm-up time and window"
        " durations; medians are nearest-rank. The first job of each run also opens the"
        " device connection (SSH) and checks/pushes the agent file; `edgebench run` wall"
        " includes the controller's start, the variant cache check and the summary table."
    )
    if traces:
        section.blocks.append(breakdown_table(traces, kinds, trace_jobs))
    if login_shell_s is not None:
        section.blocks.append(
            "Every remote command over SSH starts the login user's shell; bash as sshd starts"
            f" it (reading ~/.bashrc) costs {login_shell_s * 1e3:,.0f} ms more per command"
            " than a plain `bash -c true` on this machine (measured beside the runs). A"
            " board whose login shell reads nothing slow does not pay that."
        )

    def target(kind: str, cache: str, limit: float, what: str) -> Target:
        value, n = overhead_ms.get((kind, cache), (None, 0))
        return Target(what, value, limit, "ms", note=f"median of {n} jobs" if n else "")

    section.targets += [
        target("local", "cold", LOCAL_TARGET_MS, "overhead per job, local, cold cache"),
        target("local", "warm", LOCAL_TARGET_MS, "overhead per job, local, warm cache"),
        target("ssh", "warm", SSH_WARM_TARGET_MS, "overhead per job, SSH (loopback), warm cache"),
    ]
    for kind in kinds:
        section.targets.append(
            Target(
                f"model bytes pushed re-running an unchanged suite, {kind}",
                float(model_pushed[(kind, "warm")]),
                0,
                "bytes",
                inclusive=True,
                note=f"cold runs pushed {model_pushed[(kind, 'cold')]:,}",
            )
        )


def breakdown_table(
    traces: dict[tuple[str, str], dict[int, dict[str, Any]]],
    kinds: list[str],
    trace_jobs: list[JobFigures],
) -> str:
    columns = [(k, c) for k in kinds for c in ("cold", "warm") if (k, c) in traces]
    labels = list(PHASE_ORDER)
    for per_job in traces.values():
        for job in per_job.values():
            labels += [name for name in job["phases_s"] if name not in labels]

    def mean(values: list[float]) -> float:
        return sum(values) / len(values) if values else 0.0

    rows = []
    for label in labels:
        cells = []
        for col in columns:
            per_job = list(traces[col].values())
            cells.append(mean([j["phases_s"].get(label, 0.0) for j in per_job]) * 1e3)
        if all(abs(c) < 0.05 for c in cells):
            continue  # a phase these jobs never went through
        rows.append([PHASE_NOTES.get(label, label), *(f"{c:,.1f}" for c in cells)])
    overhead_cells, cpu_cells, remote_cells, wall_cells = [], [], [], []
    for col in columns:
        per_job = list(traces[col].values())
        wall = mean([j["wall_s"] for j in per_job])
        measured = mean([j["phases_s"].get(MEASURED_PHASE, 0.0) for j in per_job])
        wall_cells.append(f"**{wall * 1e3:,.1f}**")
        overhead_cells.append(f"**{(wall - measured) * 1e3:,.1f}**")
        cpu_cells.append(f"{mean([j['worker_cpu_s'] for j in per_job]) * 1e3:,.1f}")
        remote_cells.append(f"{mean([j['remote_commands'] for j in per_job]):.1f}")
    store_overhead = []
    for kind, cache in columns:
        group = [j.overhead_s for j in trace_jobs if (j.kind, j.cache) == (kind, cache)]
        store_overhead.append(f"{mean(group) * 1e3:,.1f}")
    rows += [
        ["job wall (sum of the rows above)", *wall_cells],
        ["overhead = wall - measured", *overhead_cells],
        ["overhead from the store's timestamps, same jobs", *store_overhead],
        ["controller worker thread CPU per job", *cpu_cells],
        ["remote commands per job (count)", *remote_cells],
    ]
    header = ["phase: mean per job, exclusive (ms)", *(f"{k} {c}" for k, c in columns)]
    n = {col: len(traces[col]) for col in columns}
    return (
        "Where a job's time goes (one more cold + warm run per device through"
        " benchmarks/controller_trace.py, "
        + ", ".join(f"{k} {c}: {n[(k, c)]} jobs" for k, c in columns)
        + "). Each row is the time inside that step and not inside a step nested in it;"
        " means, so the rows add up to the job wall time.\n\n"
        + table(header, rows)
        + "\n\nLargest parts of the overhead: "
        + "; ".join(f"{k} {c}: {largest_phases(traces[(k, c)])}" for k, c in columns)
        + "."
    )


def largest_phases(per_job: dict[int, dict[str, Any]], top: int = 3) -> str:
    """The ``top`` phases with the largest mean, the measured windows left out."""
    totals: dict[str, float] = defaultdict(float)
    for job in per_job.values():
        for label, spent in job["phases_s"].items():
            if label != MEASURED_PHASE:
                totals[label] += spent / len(per_job)
    overhead = sum(totals.values())
    ranked = sorted(totals.items(), key=lambda kv: -kv[1])[:top]
    return ", ".join(
        f"{label.split(' (')[0]} {spent * 1e3:,.0f} ms ({spent / overhead:.0%})"
        for label, spent in ranked
    )


if __name__ == "__main__":
    main()
