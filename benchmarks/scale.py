"""Controller cost at scale (issue 10): the `edgebench run` controller driving many SSH
devices, the results store's size per 1,000 jobs, and the time of `edgebench report`
on a 1,000-job run and of `edgebench publish` on a 10,000-job history.

How, exactly:

(a) Fleet. N devices (default 10, then 100) are registered with one `edgebench lab
    import` (a lab YAML file): transport ssh, key login, host keys checked against a
    known_hosts file, each with its own fresh workdir, spread over several real sshd
    servers on 127.0.0.1 (tests/sshd.py, loopback). tests/sshd.py writes `MaxStartups
    50` (at most 50 connections still logging in per server) and SSHLab offers no way
    to change it, so there is one server per DEVICES_PER_SERVER devices: every device
    connects at once when the run starts. Each device runs one tiny job: the digits CNN
    (tests/conftest.py FAST_SUITE's model) as fp32 ONNX, onnxruntime threads=1, one
    short window, no accuracy pass, retries 0. The controller is the `edgebench run`
    process alone: its CPU seconds (user + sys) and peak RSS come from os.wait4 (the
    kernel's rusage of exactly that child), and VmHWM/VmRSS of /proc/PID/status are
    polled every 0.1 s as a cross-check. The agents run in the sshd sessions, not in
    the controller; their CPU (with the login shells and sshd's own) is the growth of
    the sshd listeners' reaped-children CPU time over the run. The machine's total busy
    CPU (/proc/stat, every process, other users' too) is reported beside it. A count
    whose agents would not fit in the memory available is not run; a count that cannot
    finish gives the largest that did, and 100 devices is then extrapolated from the
    slope between the two largest counts, labelled so.
(b) Store size. A fresh SQLite file gets one 1,000-job run written through the Store
    API as the scheduler writes it (create_run, mark_job_started, finish_job with the
    record, the statistics and the metrics of harness.figures, set_run_status). Each
    job is a real record from (a) with its windows replaced by 5 windows x 200 synthetic
    samples (lognormal around the measured median; 64 distinct sample sets cycled).
    The database lives on /dev/shm where that exists (so 11,000 one-transaction
    commits take seconds instead of minutes of fsync); its size does not depend on it.
(c) `edgebench report RUN -o DIR` on that 1,000-job run (10 devices x 25 variants x 4
    settings): wall time, CPU, peak RSS, output size. Then a history of --history-runs
    x --history-jobs jobs (100 x 100: 10 devices x 10 variants per run) written the
    same way, and `edgebench publish -o SITE` into an empty folder: wall time, site
    size; publishing again with nothing changed is timed too.
    Both commands render every job, and what they cost changes as the renderers do,
    so the script keeps to --budget-s (225 s in all): it reports one device's share
    first (a 100-job run) and publishes the first --probe-runs (2) runs first, and
    goes on to the whole run / the whole history only when that is projected to fit;
    otherwise the figure is extrapolated linearly (per device's share, per run page)
    and labelled so. A command still running when the budget is spent (but never
    before it has had 30 s) is stopped: its time is then a lower bound, marked ">",
    and a stopped publish is extrapolated from the pages it had written.

Targets (issue 10): controller under 500 MiB RSS at 100 devices; publish of 10,000
jobs under 10 s and under 20 MB. Nothing here asserts a time.

    .venv/bin/python benchmarks/scale.py [--json PATH] [--quick] [--devices 10,100]
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import math
import os
import shutil
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import sqlalchemy as sa  # noqa: E402
import yaml  # noqa: E402
from harness_cost import (  # noqa: E402
    ProcessCost,
    Section,
    SSHBoards,
    Target,
    Workspace,
    build_digits_fp32_onnx,
    edgebench_argv,
    measure_process,
    median,
    memory_available_bytes,
    mib,
    table,
)

from harness import figures  # noqa: E402
from harness.store import Store  # noqa: E402
from runners.records import JobMeasurement  # noqa: E402
from tests.sshd import SSHDUnavailable, descendants  # noqa: E402

DEVICES_PER_SERVER = 25  # half of tests/sshd.py's MaxStartups 50
FLEET_MEASURE = (
    "{warmup_runs: 1, warmup_min_s: 0.0, min_runs: 10, min_duration_s: 0.0,"
    " repetitions: 1, io_window: false, timeout_s: 300}"
)
# Memory one more agent process may take, before a count has measured it (the digits
# model under onnxruntime peaks near 70 MiB here), plus its sshd session and shell.
AGENT_BYTES_GUESS = 120 * 2**20
MEMORY_RESERVE = 2 * 2**30  # left to everything else on the machine

RSS_TARGET_MIB = 500.0
PUBLISH_TARGET_S = 10.0
PUBLISH_TARGET_MB = 20.0


# --------------------------------------------------------------------------- (a) fleet


def write_fleet_suite(path: Path, model: Path) -> None:
    path.write_text(
        "name: fleet\n"
        f"models:\n  - name: digits_cnn\n    file: {model}\n"
        "variants:\n  - name: fp32-onnx\n    recipe: [identity]\n"
        "settings:\n  - runtime: onnxruntime\n    threads: [1]\n"
        f"measure: {FLEET_MEASURE}\n"
        "retries: 0\n"
    )


def write_lab(path: Path, boards: SSHBoards, count: int, devices_root: Path) -> list[str]:
    """A lab file of ``count`` ssh devices tagged fleet=n<count>, round-robin over the
    servers; returns the device names."""
    names = [f"n{count}-dev{i:03d}" for i in range(count)]
    per_server = max(1, math.ceil(count / len(boards.servers)))
    devices = []
    for i, name in enumerate(names):
        server = boards.servers[i // per_server]
        devices.append(
            {
                "name": name,
                "transport": "ssh",
                "address": server.address,
                "tags": {"fleet": f"n{count}"},
                "options": {
                    "identity_file": str(boards.lab.client_key),
                    "known_hosts": str(boards.known_hosts),
                    "workdir": str(devices_root / name),  # fresh: nothing pushed yet
                    "python": sys.executable,
                    "connect_timeout": 60,
                },
            }
        )
    path.write_text(yaml.safe_dump({"version": 1, "devices": devices}, sort_keys=False))
    return names


def children_cpu_s(pid: int) -> float:
    """CPU seconds of the reaped children of ``pid`` (cutime + cstime of /proc/PID/stat):
    for an sshd listener, every finished session with what ran in it."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    # After the command name: state is field 3 of stat(5); cutime, cstime are 16, 17.
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")


def wait_for_sessions_to_end(boards: SSHBoards, timeout: float = 30.0) -> None:
    """The per-connection sshd processes exit after the controller closes; their CPU is
    counted into the listener only once they are reaped."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(s.proc and descendants(s.proc.pid) for s in boards.servers):
            return
        time.sleep(0.1)


@dataclasses.dataclass
class FleetResult:
    devices: int
    jobs_done: int
    jobs_failed: int
    errors: list[str]
    cost: ProcessCost
    device_side_cpu_s: float
    agent_peak_rss_bytes: float | None  # the largest agent (peak_rss metric)
    job_wall_median_s: float | None
    run_id: str | None

    def as_json(self) -> dict[str, Any]:
        cost = dataclasses.asdict(self.cost)
        cost.pop("stdout")
        cost["stderr_tail"] = cost.pop("stderr")[-2000:]
        cost["cpu_s"] = self.cost.cpu_s
        return {**dataclasses.asdict(self), "cost": cost}


def run_fleet(ws: Workspace, boards: SSHBoards, suite: Path, count: int, root: Path) -> FleetResult:
    lab = root / f"lab-n{count}.yaml"
    write_lab(lab, boards, count, root / "devices")
    ws.eb("lab", "import", str(lab))
    listeners = [s.proc.pid for s in boards.servers if s.proc is not None]
    sessions_before = sum(children_cpu_s(pid) for pid in listeners)
    cost = measure_process(
        edgebench_argv("run", str(suite), "--tag", f"fleet=n{count}", "--no-report"),
        env=ws.env,
        cwd=ws.root,
        timeout=900,
    )
    wait_for_sessions_to_end(boards)
    device_cpu = sum(children_cpu_s(pid) for pid in listeners) - sessions_before
    store = Store(ws.db_url)
    run = next((r for r in store.list_runs() if r["suite_name"] == "fleet"), None)
    jobs = store.jobs_for_run(run["id"]) if run else []
    done = [j for j in jobs if j["status"] == "done"]
    errors = sorted({f"{j['error']['type']}: {j['error']['message']}"[:200] for j in jobs
                     if j["status"] != "done" and j["error"]})  # fmt: skip
    peaks = [store.job_metrics(j["id"]).get("peak_rss") for j in done]
    walls = [(_ts(j["finished_at"]) - _ts(j["started_at"])) for j in done if j["started_at"]]
    return FleetResult(
        devices=count,
        jobs_done=len(done),
        jobs_failed=len(jobs) - len(done),
        errors=errors[:5],
        cost=cost,
        device_side_cpu_s=device_cpu,
        agent_peak_rss_bytes=max((p.value for p in peaks if p and p.value), default=None),
        job_wall_median_s=median(walls),
        run_id=run["id"] if run else None,
    )


def _ts(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


# --------------------------------------------------------------------------- (b)+(c) store


@dataclasses.dataclass
class Template:
    """A real finished job of (a), what the synthetic jobs are made of."""

    record: JobMeasurement
    device: dict[str, Any]
    artifact: dict[str, Any]
    suite: dict[str, Any]
    median_s: float


def template_from(store: Store, run_id: str) -> Template:
    run = store.get_run(run_id)
    assert run is not None
    job = next(j for j in store.jobs_for_run(run_id) if j["status"] == "done")
    record = store.job_measurement(job)
    assert record is not None
    samples = [s for w in store.job_samples(job["id"]) for s in w]
    return Template(
        record=record,
        device=store.get_device(job["device"]) or {},
        artifact=store.get_artifact(job["artifact_sha256"]) or {},
        suite=run["suite"],
        median_s=float(np.median(samples)) if samples else 2e-5,
    )


@dataclasses.dataclass
class SyntheticJob:
    measurement: JobMeasurement
    summary: dict[str, Any] | None
    metrics: list[Any]


def synthetic_jobs(
    template: Template, windows: int, per_window: int, count: int = 64
) -> list[SyntheticJob]:
    """``count`` different jobs: the template's record with ``windows`` x ``per_window``
    lognormal samples around its median, and the statistics the scheduler would store."""
    rng = np.random.default_rng(0)
    out = []
    for k in range(count):
        center = template.median_s * float(1 + 0.05 * rng.standard_normal())
        samples = [list(rng.lognormal(math.log(center), 0.15, per_window)) for _ in range(windows)]
        durations = [float(sum(w)) for w in samples]
        spans, t = [], 1000.0 + k
        for d in durations:
            spans.append([t, t + d])
            t += d + 1e-4
        measurement = dataclasses.replace(
            template.record,
            windows=samples,
            window_spans=spans,
            window_processes=None,
            details={**template.record.details, "window_durations_s": durations},
        )
        summary = figures.summarize(measurement)
        out.append(
            SyntheticJob(
                measurement,
                summary.to_dict() if summary else None,
                figures.job_metrics(
                    measurement, summary, int(template.artifact.get("size_bytes") or 0)
                ),
            )
        )
    return out


class SyntheticLab:
    """Writes runs into a store exactly through the calls the scheduler makes."""

    def __init__(self, store: Store, template: Template, jobs: list[SyntheticJob]) -> None:
        self.store = store
        self.template = template
        self.jobs = jobs
        self._next = 0

    def add_devices(self, names: list[str]) -> None:
        row = self.template.device
        for name in names:
            self.store.add_device(
                {
                    "name": name,
                    "transport": row.get("transport") or "ssh",
                    "address": row.get("address") or "",
                    "device_type": row.get("device_type"),
                    "options": row.get("options") or {},
                    "tags": row.get("tags") or {},
                },
                replace=True,
            )
            if row.get("facts"):
                self.store.set_device_facts(name, row["facts"])

    def add_variants(self, names: list[str]) -> dict[str, str]:
        """An artifact row per variant (the template's meta, its own sha256)."""
        art = self.template.artifact
        shas = {}
        for name in names:
            sha = hashlib.sha256(name.encode()).hexdigest()
            meta = {**(art.get("meta") or {}), "variant": name}
            self.store.record_artifact(
                sha,
                f"{name}.onnx",
                art.get("format") or "onnx",
                int(art.get("size_bytes") or 0),
                meta,
            )
            shas[name] = sha
        return shas

    def write_run(
        self, suite_name: str, devices: list[str], variants: dict[str, str], threads: list[int]
    ) -> str:
        suite = {
            **self.template.suite,
            "name": suite_name,
            "variants": [{"name": v, "recipe": [{"name": "identity", "params": {}}],
                          "description": ""} for v in variants],
        }  # fmt: skip
        planned = [
            {
                "key": f"{d}|digits_cnn|{v}|onnxruntime t={t}",
                "device": d,
                "model": "digits_cnn",
                "variant": v,
                "runtime": "onnxruntime",
                "setting": {"runtime": "onnxruntime", "threads": t},
                "artifact_sha256": sha,
            }
            for d in devices
            for v, sha in variants.items()
            for t in threads
        ]
        run_id = self._create_run(suite, planned)
        for job in self.store.jobs_for_run(run_id):
            synthetic = self.jobs[self._next % len(self.jobs)]
            self._next += 1
            self.store.mark_job_started(job["id"])
            self.store.finish_job(
                job["id"],
                measurement=synthetic.measurement,
                summary=synthetic.summary,
                job_metrics=synthetic.metrics,
            )
        self.store.set_run_status(run_id, "finished")
        return run_id

    def _create_run(self, suite: dict[str, Any], planned: list[dict[str, Any]]) -> str:
        # Run ids are the second plus 4 random hex digits: runs written many a second
        # can collide, which a real lab never does; take another id then.
        for attempt in range(5):
            try:
                return self.store.create_run(
                    suite_name=suite["name"],
                    suite_path=f"/synthetic/{suite['name']}.yaml",
                    suite=suite,
                    version=self.template.record.provenance.edgebench_version or "0",
                    commit=self.template.record.provenance.commit,
                    host=self.template.record.provenance.controller or "controller",
                    planned_jobs=planned,
                )
            except sa.exc.IntegrityError:
                if attempt == 4:
                    raise
        raise AssertionError("unreachable")


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def fast_db_dir(fallback: Path) -> Path:
    """Where the synthetic databases go: tmpfs when there is one (see the module doc)."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        return Path(tempfile.mkdtemp(prefix="eb-scale-", dir=shm))
    fallback.mkdir(parents=True, exist_ok=True)
    return fallback


def file_bytes(db: Path) -> int:
    """The SQLite file and any journal beside it."""
    return sum(p.stat().st_size for p in db.parent.glob(db.name + "*") if p.is_file())


@dataclasses.dataclass
class CommandTiming:
    what: str
    jobs: int
    runs: int
    cost: ProcessCost | None  # None: extrapolated
    output_bytes: int
    note: str = ""
    wall_s: float | None = None  # the figure (measured, or extrapolated when cost is None)

    def as_json(self) -> dict[str, Any]:
        out = {k: v for k, v in dataclasses.asdict(self).items() if k != "cost"}
        if self.cost is not None:
            out |= {
                "cpu_s": self.cost.cpu_s,
                "maxrss_bytes": self.cost.maxrss_bytes,
                "returncode": self.cost.returncode,
            }
        return out


class Budget:
    """The script's wall-time budget (--budget-s): what is left, and whether a step
    projected to take so long still fits."""

    FLOOR_S = 30.0  # a command always gets this long, even past the budget

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def fits(self, projected_s: float) -> bool:
        return projected_s * 1.1 < self.left()

    def why(self, projected_s: float) -> str:
        return f"was projected at {projected_s:,.0f} s, with {max(0, self.left()):,.0f} s left"

    def timeout(self) -> float:
        return max(self.FLOOR_S, self.left())


def bounded_command(ws: Workspace, db: Path, budget: Budget, *args: str) -> ProcessCost:
    """`edgebench ARGS` against ``db``, killed when the budget runs out (then
    ``timed_out``: its wall time is a lower bound)."""
    env = {**ws.env, "EDGEBENCH_DB": f"sqlite:///{db}"}
    cost = measure_process(edgebench_argv(*args), env=env, cwd=ws.root, timeout=budget.timeout())
    if cost.returncode != 0 and not cost.timed_out:
        raise RuntimeError(
            f"edgebench {' '.join(args)} exited {cost.returncode}:\n{cost.stderr[-3000:]}"
        )
    return cost


def wall_cell(t: CommandTiming) -> str:
    if t.wall_s is None:
        return "-"
    return f"> {t.wall_s:,.1f}" if t.cost is not None and t.cost.timed_out else f"{t.wall_s:,.1f}"


def timing(what: str, jobs: int, runs: int, cost: ProcessCost, output_bytes: int) -> CommandTiming:
    return CommandTiming(
        what + (" (stopped at the budget)" if cost.timed_out else ""),
        jobs,
        runs,
        cost,
        output_bytes,
        wall_s=cost.wall_s,
    )


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="write the raw numbers here")
    parser.add_argument("--quick", action="store_true", help="smoke test: everything tiny")
    parser.add_argument("--devices", help="device counts of (a), comma-separated (10,100)")
    parser.add_argument("--store-jobs", type=int, help="jobs of the (b)/(c) run (1000)")
    parser.add_argument("--history-runs", type=int, help="runs of the publish history (100)")
    parser.add_argument("--history-jobs", type=int, help="jobs per history run (100)")
    parser.add_argument("--probe-runs", type=int, help="runs published first (2)")
    parser.add_argument(
        "--budget-s",
        type=float,
        default=225.0,
        help="wall time the whole script aims to stay within; decides whether the full"
        " history is written and published or extrapolated from the probe (225)",
    )
    parser.add_argument(
        "--build-home",
        type=Path,
        help="EDGEBENCH_HOME to build the digits model in (kept, so a second run finds"
        " it built). Default: inside the temporary workspace",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary workspace")
    args = parser.parse_args()
    quick = args.quick
    counts = sorted({int(c) for c in (args.devices or ("2,4" if quick else "10,100")).split(",")})
    store_jobs = args.store_jobs or (100 if quick else 1000)
    history_runs = args.history_runs or (3 if quick else 100)
    history_jobs = args.history_jobs or (10 if quick else 100)
    probe_runs = min(history_runs, args.probe_runs or 2)
    if store_jobs % 100 or history_jobs % 10:
        parser.error("--store-jobs must be a multiple of 100 and --history-jobs of 10")

    began = time.monotonic()
    section = Section("Controller cost at scale (issue 10)")
    tmp = Path(tempfile.mkdtemp(prefix="eb-scale-"))
    db_dir = fast_db_dir(tmp / "db")
    boards: SSHBoards | None = None
    try:
        ws = Workspace(tmp / "ws")
        builder = Workspace(args.build_home) if args.build_home else ws
        fp32 = build_digits_fp32_onnx(builder)
        suite = tmp / "fleet.yaml"
        write_fleet_suite(suite, fp32)
        ws.build_variants(suite)

        # (a) ------------------------------------------------------------------
        fleet: list[FleetResult] = []
        skipped: dict[int, str] = {}
        try:
            boards = SSHBoards.start(tmp / "ssh", math.ceil(max(counts) / DEVICES_PER_SERVER))
        except SSHDUnavailable as e:
            skipped = dict.fromkeys(counts, f"no sshd: {e}")
        if boards is not None:
            for count in counts:
                per_agent = AGENT_BYTES_GUESS
                if fleet and fleet[-1].agent_peak_rss_bytes:
                    per_agent = int(fleet[-1].agent_peak_rss_bytes) + 50 * 2**20
                available = memory_available_bytes()
                need = count * per_agent + MEMORY_RESERVE
                if available is not None and available < need:
                    skipped[count] = (
                        f"not run: {count} agents need about {mib(need)}, {mib(available)}"
                        " available"
                    )
                    continue
                fleet.append(run_fleet(ws, boards, suite, count, tmp))
            boards.close()
            boards = None
        fleet_store = Store(ws.db_url)
        template_run = next((f.run_id for f in fleet if f.jobs_done), None)
        if template_run is None:
            raise RuntimeError(
                "no fleet run finished a job, so there is no real record to build the"
                f" synthetic store from: {[f.errors for f in fleet]} {skipped}"
            )
        template = template_from(fleet_store, template_run)
        synthetic = synthetic_jobs(template, windows=5, per_window=200)

        # (b) ------------------------------------------------------------------
        store_db = db_dir / "store-1000.db"
        store_b = Store(f"sqlite:///{store_db}")
        lab_b = SyntheticLab(store_b, template, synthetic)
        devices_b = [f"board{i:02d}" for i in range(store_jobs // 100)]
        lab_b.add_devices(devices_b)
        variants_b = lab_b.add_variants([f"variant{i:02d}" for i in range(25)])
        empty_bytes = file_bytes(store_db)
        write_start = time.perf_counter()
        run_b = lab_b.write_run("lab-1000", devices_b, variants_b, [1, 2, 3, 4])
        write_b_s = time.perf_counter() - write_start
        full_bytes = file_bytes(store_db)
        samples_bytes = store_jobs * 5 * 200 * 8

        # (c) report -------------------------------------------------------------
        # The 1,000-job report is 10 devices' sections of 100 jobs each: one device's
        # share (a 100-job run) is reported first, and the whole run only when that
        # projects into the budget; otherwise it is extrapolated per device, labelled.
        budget = Budget(began + args.budget_s)
        report_runs = [("whole", run_b, store_jobs)]
        if store_jobs > 100:
            probe_run = lab_b.write_run("lab-probe", devices_b[:1], variants_b, [1, 2, 3, 4])
            report_runs.insert(0, ("probe", probe_run, 100))
        reports: list[CommandTiming] = []
        for role, run_id, jobs in report_runs:
            what = f"`edgebench report RUN -o DIR`, one {jobs:,}-job run"
            if role == "whole" and reports:
                probe = reports[0]
                projected = (probe.wall_s or 0) * jobs / 100
                if probe.cost is None or probe.cost.timed_out or not budget.fits(projected):
                    reports.append(
                        CommandTiming(
                            what + " (**extrapolated**)",
                            jobs,
                            1,
                            None,
                            probe.output_bytes * jobs // 100,
                            note=f"the 100-job report x {jobs / 100:g}: {budget.why(projected)}",
                            wall_s=projected,
                        )
                    )
                    continue
            out = tmp / f"report-{role}"
            cost = bounded_command(ws, store_db, budget, "report", run_id, "-o", str(out))
            reports.append(timing(what, jobs, 1, cost, folder_bytes(out)))

        # (c) publish --------------------------------------------------------------
        history_db = db_dir / "history.db"
        store_h = Store(f"sqlite:///{history_db}")
        lab_h = SyntheticLab(store_h, template, synthetic)
        devices_h = [f"board{i:02d}" for i in range(history_jobs // 10)]
        lab_h.add_devices(devices_h)
        variants_h = lab_h.add_variants([f"variant{i:02d}" for i in range(10)])
        write_start = time.perf_counter()
        for _ in range(probe_runs):
            lab_h.write_run("nightly", devices_h, variants_h, [1])
        write_per_run_s = (time.perf_counter() - write_start) / probe_runs
        probe_site = tmp / "site-probe"
        probe_cost = bounded_command(ws, history_db, budget, "publish", "-o", str(probe_site))
        # Killed at the budget, the pages already written still give a rate per run.
        pages = len(list((probe_site / "runs").glob("*/index.html")))
        probe_bytes = folder_bytes(probe_site)
        publishes = [
            timing(
                f"`edgebench publish -o SITE`, {probe_runs} runs x {history_jobs} jobs",
                probe_runs * history_jobs,
                probe_runs,
                probe_cost,
                probe_bytes,
            )
        ]
        if not probe_cost.timed_out and budget.fits(probe_cost.wall_s / 2):
            again = bounded_command(ws, history_db, budget, "publish", "-o", str(probe_site))
            publishes.append(
                timing(
                    "the same again, nothing changed (pages up to date)",
                    probe_runs * history_jobs,
                    probe_runs,
                    again,
                    folder_bytes(probe_site),
                )
            )
        full: CommandTiming
        if probe_runs == history_runs and not probe_cost.timed_out:
            full = publishes[0]
        else:
            per_run_s = probe_cost.wall_s / max(1, pages)
            per_run_bytes = probe_bytes / max(1, pages)
            rest = history_runs - probe_runs
            projected = rest * write_per_run_s + per_run_s * history_runs
            what = f"`edgebench publish -o SITE`, {history_runs} runs x {history_jobs} jobs"
            if not probe_cost.timed_out and budget.fits(projected):
                for _ in range(rest):
                    lab_h.write_run("nightly", devices_h, variants_h, [1])
                site = tmp / "site"
                cost = bounded_command(ws, history_db, budget, "publish", "-o", str(site))
                full = timing(what, history_runs * history_jobs, history_runs, cost,
                              folder_bytes(site))  # fmt: skip
            else:
                basis = (
                    f"{pages} of {probe_runs} run pages written when it was stopped at the"
                    f" budget ({probe_cost.wall_s:,.0f} s)"
                    if probe_cost.timed_out
                    else f"the {probe_runs}-run publish"
                )
                full = CommandTiming(
                    what + " (**extrapolated**)",
                    history_runs * history_jobs,
                    history_runs,
                    None,
                    int(per_run_bytes * history_runs),
                    note=(
                        f"{basis}, per run x {history_runs}: the whole history"
                        f" {budget.why(projected)}"
                    ),
                    wall_s=per_run_s * history_runs if pages else None,
                )
            publishes.append(full)

        report_fleet(section, fleet, skipped)
        section.blocks.append(
            table(
                [
                    "jobs",
                    "samples per job",
                    "SQLite file",
                    "per job",
                    "per 1,000 jobs",
                    "of which raw samples",
                    "written in",
                ],
                [
                    [
                        f"{store_jobs:,}",
                        "5 x 200",
                        f"{full_bytes / 1e6:,.1f} MB",
                        f"{(full_bytes - empty_bytes) / store_jobs / 1e3:,.1f} kB",
                        f"{(full_bytes - empty_bytes) / store_jobs * 1000 / 1e6:,.1f} MB",
                        f"{samples_bytes / (full_bytes - empty_bytes):.0%}",
                        f"{write_b_s:,.1f} s ({write_b_s / store_jobs * 1e3:.1f} ms/job)",
                    ]
                ],
            )  # fmt: skip
            + "\n\nStore size: one run written through the Store API as the scheduler"
            " writes it (mark_job_started, finish_job with record, statistics, metrics),"
            " on "
            + ("tmpfs" if str(db_dir).startswith("/dev/shm") else "disk")
            + "; sizes exclude the empty database's"
            f" {empty_bytes / 1e3:,.0f} kB (schema, devices, artifacts). MB = 10^6 bytes."
        )
        timings = [*reports, *publishes]
        section.blocks.append(
            table(
                [
                    "command",
                    "jobs",
                    "runs",
                    "wall (s)",
                    "per run (s)",
                    "controller CPU (s)",
                    "peak RSS",
                    "output size",
                ],
                [
                    [
                        t.what,
                        f"{t.jobs:,}",
                        t.runs,
                        wall_cell(t),
                        f"{t.wall_s / t.runs:,.2f}" if t.wall_s is not None else "-",
                        f"{t.cost.cpu_s:,.1f}" if t.cost else "-",
                        mib(t.cost.maxrss_bytes) if t.cost else "-",
                        f"{t.output_bytes / 1e6:,.1f} MB",
                    ]
                    for t in timings
                ],
            )  # fmt: skip
            + "\n\nReport and publish read synthetic databases written as above (the history:"
            f" {history_runs} runs of suite `nightly`, {history_jobs // 10} device(s) x 10"
            " variants, 5 x 200 samples per job); each publish writes into an empty folder"
            " except the one marked nothing changed."
            + "".join(
                f" {t.what.split(',')[0]}, {t.jobs:,} jobs: extrapolated from {t.note}."
                for t in timings
                if t.note
            )
            + " A wall time marked > is a command stopped at the budget: a lower bound."
        )
        how = ["**extrapolated**"] if full.cost is None else []
        if full.cost is not None and full.cost.timed_out:
            how.append("a lower bound: stopped at the budget")
        if history_runs * history_jobs != 10_000:
            how.append("not the target's 10,000 jobs")  # --quick or sizes given
        section.targets += [
            Target(
                f"`edgebench publish` of {history_runs * history_jobs:,} jobs",
                full.wall_s,
                PUBLISH_TARGET_S,
                "s",
                note=", ".join(how),
            ),
            Target(
                f"site size for {history_runs * history_jobs:,} jobs",
                full.output_bytes / 1e6,
                PUBLISH_TARGET_MB,
                "MB",
                note=", ".join(how),
            ),
        ]
        section.raw.update(
            {
                "fleet": [f.as_json() for f in fleet],
                "fleet_skipped": skipped,
                "store": {
                    "jobs": store_jobs,
                    "windows": 5,
                    "samples_per_window": 200,
                    "file_bytes": full_bytes,
                    "empty_bytes": empty_bytes,
                    "write_s": write_b_s,
                    "on_tmpfs": str(db_dir).startswith("/dev/shm"),
                },
                "commands": [t.as_json() for t in timings],
                "history_write_per_run_s": write_per_run_s,
                "elapsed_s": time.monotonic() - began,
            }
        )
    finally:
        if boards is not None:
            boards.close()
        section.finish()
        shutil.rmtree(db_dir, ignore_errors=True)
        if args.keep:
            print(f"workspace kept: {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(section.markdown(), end="")
    section.write_json(args.json)


def report_fleet(section: Section, fleet: list[FleetResult], skipped: dict[int, str]) -> None:
    rows = []
    for f in fleet:
        c = f.cost
        rows.append(
            [
                f.devices,
                f"{f.jobs_done} / {f.jobs_failed}",
                mib(c.maxrss_bytes),
                mib(c.vmhwm_bytes),
                f"{c.cpu_s:,.1f}",
                f"{c.wall_s:,.1f}",
                f"{f.device_side_cpu_s:,.1f}",
                f"{c.machine_cpu_s:,.1f}" if c.machine_cpu_s is not None else "-",
                f"{f.job_wall_median_s:,.1f}" if f.job_wall_median_s is not None else "-",
            ]
        )
    for count, why in sorted(skipped.items()):
        rows.append([count, why, "", "", "", "", "", "", ""])
    section.blocks.append(
        table(
            [
                "devices",
                "jobs done / failed",
                "controller peak RSS (wait4)",
                "VmHWM (polled)",
                "controller CPU (s)",
                "run wall (s)",
                "device side CPU: agents, shells, sshd (s)",
                "machine busy CPU, all processes (s)",
                "job wall, median (s)",
            ],
            rows,
        )  # fmt: skip
    )
    notes = [
        "Fleet: `edgebench run SUITE --tag fleet=nN --no-report`, one tiny job per device"
        f" (digits fp32 ONNX, one window of 10 runs), {DEVICES_PER_SERVER} devices per"
        " loopback sshd, every device's workdir fresh (agent and model pushed)."
    ]
    for f in fleet:
        if f.errors:
            notes.append(f"{f.devices} devices, failures: " + "; ".join(f.errors))
    good = [f for f in fleet if f.jobs_done == f.devices]
    rss_at_100: float | None = None
    note = ""
    at_100 = next((f for f in fleet if f.devices == 100), None)
    if len(good) >= 2:
        a, b = good[-2], good[-1]
        per_device = (b.cost.maxrss_bytes - a.cost.maxrss_bytes) / (b.devices - a.devices)
        cpu_per_device = (b.cost.cpu_s - a.cost.cpu_s) / (b.devices - a.devices)
        notes.append(
            f"Slope between {a.devices} and {b.devices} devices: {per_device / 2**20:+.2f} MiB"
            f" and {cpu_per_device:+.2f} controller CPU s per device."
        )
        if at_100 is None or at_100.jobs_done < 100:
            rss_at_100 = b.cost.maxrss_bytes + per_device * (100 - b.devices)
            note = f"**extrapolated** from {a.devices} and {b.devices} devices"
            notes.append(
                f"100 devices **extrapolated** from that slope: {mib(rss_at_100)} controller"
                " peak RSS."
            )
    if at_100 is not None and rss_at_100 is None:
        rss_at_100 = float(at_100.cost.maxrss_bytes)
        if at_100.jobs_failed:
            note = f"{at_100.jobs_failed} of 100 jobs failed"
    section.blocks.append(" ".join(notes))
    section.targets.append(
        Target(
            "controller peak RSS at 100 devices",
            rss_at_100 / 2**20 if rss_at_100 is not None else None,
            RSS_TARGET_MIB,
            "MiB",
            note=note
            or (
                "100 devices not run, and fewer than two counts that finished for a slope"
                if rss_at_100 is None
                else ""
            ),
        )
    )


if __name__ == "__main__":
    main()
