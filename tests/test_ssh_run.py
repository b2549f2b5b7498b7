"""Suites over SSH, end to end through the `edgebench` command, against real sshd
servers (separate lab hosts in network namespaces where the machine allows).

The "boards" are this machine behind sshd, so the agent runs under this venv's
Python with the same runtimes a provisioned board would have.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import scheduler
from tests.conftest import EDGEBENCH, Runner
from tests.sshd import SSHDUnavailable, SSHLab, SSHServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHLab]:
    try:
        the_lab = SSHLab(tmp_path_factory.mktemp("sshrun"))
    except SSHDUnavailable as e:
        pytest.skip(str(e))
    yield the_lab
    the_lab.close()


@pytest.fixture(scope="module")
def boards(lab: SSHLab) -> dict[str, SSHServer]:
    return {name: lab.server(name) for name in ("pi", "jetson")}


def _add(
    eb: Runner,
    lab: SSHLab,
    server: SSHServer,
    name: str,
    known_hosts: Path,
    tmp_path: Path,
    *extra: str,
    check: bool = True,
) -> subprocess.CompletedProcess:
    return eb(
        "device",
        "add",
        name,
        "--transport",
        "ssh",
        "--host",
        server.address,
        "--identity",
        str(lab.client_key),
        "--python",
        sys.executable,
        "--option",
        f"known_hosts={known_hosts}",
        "--option",
        f"workdir={tmp_path / name}",
        "--option",
        "connect_timeout=5",
        "--tag",
        "lab=ssh",
        *extra,
        check=check,
    )


def _db(eb: Runner) -> str:
    return eb.env["EDGEBENCH_DB"].removeprefix("sqlite:///")  # type: ignore[attr-defined]


def test_unknown_host_key_refused_then_trusted_on_first_use(
    eb: Runner, lab: SSHLab, boards: dict[str, SSHServer], tmp_path: Path
) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    _add(eb, lab, boards["pi"], "pi", known_hosts, tmp_path)
    refused = eb("device", "check", "pi", check=False)
    assert refused.returncode != 0
    line = refused.stderr.strip().splitlines()[-1]
    assert "Traceback" not in refused.stderr
    assert boards["pi"].fingerprint() in line and "trust" in line.lower()

    _add(eb, lab, boards["pi"], "pi", known_hosts, tmp_path, "--replace", "--trust-on-first-use")
    assert (
        boards["pi"].known_hosts_name
        in subprocess.run(
            ["ssh-keygen", "-F", boards["pi"].known_hosts_name, "-f", str(known_hosts)],
            capture_output=True,
            text=True,
        ).stdout
    )
    facts = json.loads(eb("device", "check", "pi", "--json").stdout)["facts"]
    assert facts["python_executable"] == sys.executable
    assert "onnxruntime" in facts["runtimes"]


def test_suite_over_ssh_survives_a_board_dying_mid_run(
    eb: Runner, lab: SSHLab, boards: dict[str, SSHServer], fast_suite: Path, tmp_path: Path
) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(boards["pi"].known_hosts_line() + boards["jetson"].known_hosts_line())
    _add(eb, lab, boards["pi"], "pi", known_hosts, tmp_path)
    _add(eb, lab, boards["jetson"], "jetson", known_hosts, tmp_path)
    fast_suite.write_text(
        fast_suite.read_text().replace("min_duration_s: 0.02", "min_duration_s: 0.15")
    )
    eb("variants", str(fast_suite))  # build first: the run starts at once
    proc = subprocess.Popen(
        [EDGEBENCH, "run", str(fast_suite), "--tag", "lab=ssh", "--no-report"],
        env=eb.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,  # type: ignore[attr-defined]
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            with sqlite3.connect(_db(eb)) as conn:
                try:
                    (done,) = conn.execute(
                        "SELECT COUNT(*) FROM jobs WHERE device = 'jetson' AND status = 'done'"
                    ).fetchone()
                except sqlite3.OperationalError:
                    done = 0
            if done >= 2:
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        boards["jetson"].stop()  # power cut: server and sessions gone
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
    assert proc.returncode == 1, out + err  # some jobs failed

    with sqlite3.connect(_db(eb)) as conn:
        rows = conn.execute("SELECT device, status, attempts, error FROM jobs").fetchall()
        run_id, run_status = conn.execute("SELECT id, status FROM runs").fetchone()
    by_device: dict[str, list[tuple]] = {}
    for device, status, attempts, error in rows:
        by_device.setdefault(device, []).append((status, attempts, error))
    assert [s for s, _, _ in by_device["pi"]] == ["done"] * 6, by_device["pi"]  # still finished
    jetson = by_device["jetson"]
    done = [j for j in jetson if j[0] == "done"]
    failed = [j for j in jetson if j[0] == "failed"]
    assert len(done) >= 2 and len(done) + len(failed) == 6 and failed
    # Each failure was retried once (suite default retries: 1) until the board had
    # failed QUARANTINE_AFTER jobs in a row; the rest were failed at once, saying why.
    tried = failed[: scheduler.QUARANTINE_AFTER]
    assert all(attempts == 2 for _, attempts, _ in tried)
    for _, attempts, error in failed[scheduler.QUARANTINE_AFTER :]:
        assert attempts == 0 and "quarantined" in json.loads(error)["message"]
    for _, _, error in failed:
        assert "jetson" in json.loads(error)["message"]
    assert "failed" in err and "jetson" in err
    assert run_status == "finished"

    # The board comes back: resume runs only what failed.
    boards["jetson"].start()
    eb("run", str(fast_suite), "--resume", run_id, "--no-report")
    with sqlite3.connect(_db(eb)) as conn:
        statuses = conn.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall()
        (n_jobs,) = conn.execute("SELECT COUNT(*) FROM jobs").fetchone()
    assert statuses == [("done", 12)] and n_jobs == 12


from tests.test_ssh import local_pip  # noqa: E402, F401  (fixture: pip sees only local indexes)


@pytest.mark.usefixtures("local_pip")
def test_device_setup_provisions_a_venv_from_carried_wheels(
    eb: Runner, lab: SSHLab, boards: dict[str, SSHServer], tmp_path: Path
) -> None:
    import os

    for key in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_NO_INDEX"):
        if key in os.environ:
            eb.env[key] = os.environ[key]  # type: ignore[attr-defined]
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(boards["pi"].known_hosts_line())
    _add(eb, lab, boards["pi"], "pi", known_hosts, tmp_path)
    no_facts = eb("device", "setup", "pi", "--package", "six", check=False)
    assert no_facts.returncode == 2 and "device check pi" in no_facts.stderr
    eb("device", "check", "pi")
    eb("device", "setup", "pi", "--package", "six")
    shown = json.loads(eb("device", "show", "pi", "--json").stdout)
    venv_python = shown["options"]["python"]
    assert venv_python.startswith(str(tmp_path / "pi")) and venv_python.endswith("/bin/python")
    check = subprocess.run(
        [venv_python, "-c", "import six; print(six.__version__)"], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr
    # The agent now runs under the provisioned venv.
    facts = json.loads(eb("device", "check", "pi", "--json").stdout)["facts"]
    assert facts["python_executable"] == venv_python
