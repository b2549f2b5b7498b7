"""The controller killed with SIGKILL at reproducibly chosen points of a two-device run.

The points are states of the run, read from the results database while the
controller works (not times, which depend on the machine): the run planned but no
job started, the n-th job attempt started (a job in flight), the n-th job committed.
After each kill: every agent the controller started is gone within a second, and
`edgebench run --resume` carries on; the next point kills that resume in turn. At the
end every job is in the store exactly once with its samples, and every artifact in
the cache and on the devices still has the hash it is stored under.
"""

from __future__ import annotations

import hashlib
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

from tests.conftest import EDGEBENCH, Runner, write_suite

DEVICES = ("fault-a", "fault-b")
# (what is counted, how many): the run's jobs planned, job attempts started, jobs done.
KILL_POINTS = [
    ("planned", 1),
    ("started", 1),
    ("done", 1),
    ("started", 4),
    ("done", 3),
    ("started", 7),
    ("done", 5),
    ("started", 9),
    ("done", 7),
    ("started", 11),
    ("done", 9),
    ("done", 11),
]


def _counts(db: Path) -> dict[str, int]:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            planned, started, done = conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(attempts), 0), "
                "COALESCE(SUM(status = 'done'), 0) FROM jobs"
            ).fetchone()
    except sqlite3.OperationalError:  # no database or no jobs table yet, or busy
        return {"planned": 0, "started": 0, "done": 0}
    return {"planned": planned, "started": started, "done": done}


def _agents(home: Path) -> list[int]:
    """Agent processes started for this test's devices (their argv names the file in
    the device's work dir)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(b"edgebench_agent.py" in a and str(home).encode() in a for a in argv):
            pids.append(int(entry.name))
    return pids


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_sigkill_at_a_dozen_points_then_resume_loses_nothing(eb: Runner, tmp_path: Path) -> None:
    env = eb.env  # type: ignore[attr-defined]
    db = Path(env["EDGEBENCH_DB"].removeprefix("sqlite:///"))
    home = tmp_path / "devices"
    for name in DEVICES:
        eb("device", "add", name, "--transport", "local", "--option", f"workdir={home / name}")
    suite = write_suite(
        tmp_path / "faults.yaml",
        settings="  - runtime: onnxruntime\n    threads: [1, 2]\n  - runtime: litert\n",
        measure="{warmup_runs: 2, warmup_min_s: 0, min_runs: 20, min_duration_s: 0.15, "
        "repetitions: 2}",
    )
    eb("variants", str(suite))  # built once: the kill points are in the run itself
    run_id: str | None = None
    survived = []
    for what, count in KILL_POINTS:
        argv = [EDGEBENCH, "run", str(suite), "--no-report"]
        if run_id:
            argv += ["--resume", run_id]
        else:
            argv += [arg for d in DEVICES for arg in ("--device", d)]
        proc = subprocess.Popen(
            argv, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 120
        while proc.poll() is None and _counts(db)[what] < count:
            assert time.monotonic() < deadline, f"never reached {what} >= {count}"
            time.sleep(0.005)
        if proc.poll() is not None:  # the run finished before the point: nothing to kill
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        survived.append((what, count))
        # No agent outlives its controller by more than a second.
        gone_by = time.monotonic() + 1.0
        while _agents(home) and time.monotonic() < gone_by:
            time.sleep(0.02)
        assert _agents(home) == [], f"agents still running after a kill at {what} >= {count}"
        if run_id is None:
            with sqlite3.connect(db) as conn:
                row = conn.execute("SELECT id FROM runs").fetchone()
            assert row is not None, "the run was not stored before its first job"
            run_id = row[0]
    assert len(survived) >= 10, survived
    print(f"kill points survived: {len(survived)}: {survived}")

    # Finish it: every job done, each once, with its samples.
    eb("run", str(suite), "--resume", run_id, "--no-report")
    with sqlite3.connect(db) as conn:
        query = "SELECT id, key, status FROM jobs WHERE run_id = ?"
        jobs = conn.execute(query, (run_id,)).fetchall()
        (runs,) = conn.execute("SELECT COUNT(*) FROM runs").fetchone()
        artifacts = conn.execute("SELECT sha256 FROM artifacts").fetchall()
    assert runs == 1
    # Per device: 2 ONNX variants x 2 thread counts + 2 LiteRT variants x 1.
    assert len(jobs) == 2 * 6 and {s for _, _, s in jobs} == {"done"}
    assert len({k for _, k, _ in jobs}) == len(jobs)
    from harness.store import Store

    store = Store(env["EDGEBENCH_DB"])
    for job_id, _, _ in jobs:
        windows = store.job_samples(job_id)
        assert len(windows) == 2 and all(len(w) >= 20 for w in windows)
    # No cached or pushed artifact is damaged: each file still has its hash.
    cache = Path(env["EDGEBENCH_HOME"]) / "artifacts"
    for (sha,) in artifacts:
        files = [p for p in (cache / sha[:2] / sha).iterdir() if not p.name.endswith(".part")]
        assert files and all(_sha256(p) == sha for p in files), sha
    pushed = list(home.rglob("artifacts/*/*"))
    assert len(pushed) >= 2 * 4  # per device: the agent file and 3 models at least
    for path in pushed:
        assert _sha256(path) == path.parent.name, path
