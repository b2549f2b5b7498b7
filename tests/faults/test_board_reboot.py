"""A board that reboots mid-run (its SSH server and every session gone, back a couple
of seconds later): the job in flight fails naming the board, is retried after the
back-off, and the run finishes with every job done and nothing measured twice."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import EDGEBENCH, Runner, write_suite
from tests.sshd import SSHDUnavailable, SSHLab

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHLab]:
    try:
        the_lab = SSHLab(tmp_path_factory.mktemp("reboot"))
    except SSHDUnavailable as e:
        pytest.skip(str(e))
    yield the_lab
    the_lab.close()


def test_a_board_rebooting_mid_run_is_waited_for_and_the_run_finishes(
    eb: Runner, lab: SSHLab, tmp_path: Path
) -> None:
    board = lab.server("pi-reboot")
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(board.known_hosts_line())
    eb(
        "device", "add", "pi", "--transport", "ssh", "--host", board.address,
        "--identity", str(lab.client_key), "--python", sys.executable,
        "--option", f"known_hosts={known_hosts}", "--option", f"workdir={tmp_path / 'pi'}",
        "--option", "connect_timeout=3",
    )  # fmt: skip
    suite = write_suite(
        tmp_path / "s.yaml",
        settings="  - runtime: onnxruntime\n    threads: [1, 2]\n",
        measure="{warmup_runs: 2, warmup_min_s: 0, min_runs: 20, min_duration_s: 0.3, "
        "repetitions: 2}",
    )
    suite.write_text(suite.read_text() + "retries: 3\nretry_backoff_s: 1\n")
    eb("variants", str(suite))
    db = Path(eb.env["EDGEBENCH_DB"].removeprefix("sqlite:///"))  # type: ignore[attr-defined]
    proc = subprocess.Popen(
        [EDGEBENCH, "run", str(suite), "--device", "pi", "--no-report"],
        env=eb.env,  # type: ignore[attr-defined]
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 300
        while True:  # the second job in flight
            with sqlite3.connect(db) as conn:
                try:
                    (started,) = conn.execute(
                        "SELECT COALESCE(SUM(attempts), 0) FROM jobs"
                    ).fetchone()
                except sqlite3.OperationalError:
                    started = 0
            if started >= 2:
                break
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.02)
        time.sleep(0.3)
        board.stop()  # power cycle: server and sessions gone ...
        threading.Timer(2.0, board.start).start()  # ... and back two seconds later
        out, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out + err
    with sqlite3.connect(db) as conn:
        jobs = conn.execute("SELECT key, status, attempts FROM jobs").fetchall()
        warnings = [
            m for (m,) in conn.execute("SELECT message FROM events WHERE level = 'warning'")
        ]
    assert {s for _, s, _ in jobs} == {"done"} and len({k for k, _, _ in jobs}) == len(jobs)
    assert any(a >= 2 for _, _, a in jobs), jobs  # the job in flight was tried again
    assert any("'pi'" in m and "failed" in m for m in warnings), warnings
    assert json.loads(eb("runs", "list", "--json").stdout)[0]["status"] == "finished"
