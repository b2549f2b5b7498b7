"""Phones end to end, as a user runs them: the emulated phone (a real-protocol adbd with
a stand-in benchmark_model) registered through both routes, directly over TCP with RSA
keys (`--adb-host`) and through a real Debian adb server by serial (`--adb-serial`),
and the digits suite's LiteRT variants run on both with `edgebench run`; then
`edgebench emulate phone` reached by hand with the real `adb` client."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from tests import adb_phone
from tests.conftest import EDGEBENCH, make_runner

ADB = shutil.which("adb")
if ADB is None:
    if os.environ.get("CI") == "true":
        raise RuntimeError("CI=true: the Debian adb client is not installed (make test does)")
    pytest.skip("adb not installed (apt install adb)", allow_module_level=True)

pytestmark = pytest.mark.slow
# The emulated phone and the private adb server that has connected it, shared with the
# transport tests.
phone = adb_phone.phone
adb_server = adb_phone.adb_server
free_port = adb_phone.free_port

SUITE = """\
name: phone-digits
models:
  - name: digits_cnn
    builder: digits_cnn
    params: {seed: 0, epochs: 15}
variants:
  - name: fp32-tflite
    recipe: [export_tflite]
  - name: int8-tflite
    recipe: [export_tflite, tflite_int8_full]
settings:
  - runtime: benchmark_model
    threads: [1, 2]
measure: {warmup_runs: 2, warmup_min_s: 0.0, min_runs: 20, min_duration_s: 0.05, repetitions: 3}
accuracy: {dataset: digits, split: test}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def lab(
    shared_home: Path, tmp_path_factory: pytest.TempPathFactory, phone: Any, adb_server: Any
) -> dict[str, Any]:
    """The emulated phone (tests/adb_phone.py) registered twice: directly over TCP with
    its own RSA key, and by serial through the private adb server that has connected it."""
    work = tmp_path_factory.mktemp("android-e2e")
    edgebench = make_runner(shared_home, work)
    key = work / "adbkey"  # the direct route's own key, not ~/.android/adbkey
    edgebench(
        "device", "add", "phone-tcp", "--adb-host", phone.serial,
        "--option", f"adb_key={key}", "--option", "generate_key=true",
    )  # fmt: skip
    edgebench(
        "device", "add", "phone-usb", "--adb-serial", phone.serial,
        "--option", f"adb_server=127.0.0.1:{adb_server.port}",
    )  # fmt: skip
    checks = {
        name: json.loads(edgebench("device", "check", name, "--json").stdout)["facts"]
        for name in ("phone-tcp", "phone-usb")
    }
    suite = work / "phone.yaml"
    suite.write_text(textwrap.dedent(SUITE))
    edgebench(
        "run", str(suite), "--device", "phone-tcp", "--device", "phone-usb", "--no-report",
        timeout=1200,
    )  # fmt: skip
    run_id = json.loads(edgebench("runs", "list", "--json").stdout)[0]["id"]
    out = work / "jobs.csv"
    edgebench("export", run_id, "--format", "csv", "-o", str(out))
    with open(out, newline="") as f:
        jobs = list(csv.DictReader(f))
    return {
        "edgebench": edgebench,
        "checks": checks,
        "jobs": jobs,
        "work": work,
        "home": shared_home,
    }


def test_device_check_through_both_routes(lab: dict[str, Any]) -> None:
    tcp, usb = lab["checks"]["phone-tcp"], lab["checks"]["phone-usb"]
    for facts in (tcp, usb):
        assert facts["os"] == "android" and facts["arch"] == "arm64-v8a" and facts["sdk"]
        assert facts["emulated"] is True and facts["cpu_cores"] == 8
        assert facts["big_little"]["big"] == [4, 5, 6, 7]
        assert facts["battery"] and facts["thermal_zones"]
    # The same phone, reached two ways.
    assert tcp["board_model"] == usb["board_model"] and tcp["route"] != usb["route"]


def test_the_suite_runs_on_the_phone_through_both_routes(lab: dict[str, Any]) -> None:
    jobs = lab["jobs"]
    assert {j["device"] for j in jobs} == {"phone-tcp", "phone-usb"}
    assert len(jobs) == 2 * 2 * 2  # 2 variants x 2 thread counts x 2 devices
    for job in jobs:
        assert job["status"] == "done", job
        assert 0 < float(job["latency_p50_s"]) < 0.1
        assert job["setting"].startswith("benchmark_model t=")


def test_emulate_phone_is_reachable_with_adb_connect(tmp_path: Path, adb_server: Any) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [EDGEBENCH, "emulate", "phone", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "EDGEBENCH_HOME": str(tmp_path / "home")},
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == f"adb connect 127.0.0.1:{port}"
        adb_server.connect(f"127.0.0.1:{port}")  # the real adb client, as a person would
        model = adb_server.adb("-s", f"127.0.0.1:{port}", "shell", "getprop", "ro.product.model")
        assert "edgebench" in model.stdout
        adb_server.adb("disconnect", f"127.0.0.1:{port}")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    assert proc.returncode == 0


def _benchmark_running() -> bool:
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = (Path("/proc") / pid / "cmdline").read_bytes()
        except OSError:
            continue  # the process ended while we looked
        if b"benchmark_model" in cmdline and b"--graph" in cmdline:
            return True
    return False


def test_a_connection_dropped_mid_job_is_retried_and_nothing_is_lost(
    lab: dict[str, Any], phone: Any
) -> None:
    """The phone drops every connection while a job is in flight: that attempt fails
    with an error naming the device, the job is retried, and the run finishes with
    every job done exactly once (runs last in this module: the drop hits every user)."""
    import sqlite3

    work: Path = lab["work"]
    suite = work / "drop.yaml"
    suite.write_text(
        textwrap.dedent(SUITE)
        .replace("name: phone-digits", "name: phone-drop")
        .replace("min_duration_s: 0.05", "min_duration_s: 1.0")
        + "retries: 2\n"
    )
    db = work / "results.db"
    env = {**os.environ, "EDGEBENCH_HOME": str(lab["home"]), "EDGEBENCH_DB": f"sqlite:///{db}"}
    proc = subprocess.Popen(
        [EDGEBENCH, "run", str(suite), "--device", "phone-tcp", "--no-report"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=work,
    )
    try:
        deadline = time.monotonic() + 300
        in_flight = None
        while time.monotonic() < deadline and in_flight is None and proc.poll() is None:
            with sqlite3.connect(db) as conn:
                in_flight = conn.execute(
                    "SELECT j.id FROM jobs j JOIN runs r ON r.id = j.run_id"
                    " WHERE r.suite_name = 'phone-drop' AND j.status = 'pending'"
                    " AND j.attempts = 1 ORDER BY j.id LIMIT 1"
                ).fetchone()
            time.sleep(0.05)
        assert in_flight is not None, "no job was ever in flight"
        # Drop while benchmark_model itself runs (the stand-in is a host process).
        while time.monotonic() < deadline and proc.poll() is None and not _benchmark_running():
            time.sleep(0.02)
        assert proc.poll() is None, "the run ended before benchmark_model was seen"
        phone.drop_connections()  # the first job's first repetition: others follow it
        out, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out + err
    with sqlite3.connect(db) as conn:
        jobs = conn.execute(
            "SELECT j.status, j.attempts FROM jobs j JOIN runs r ON r.id = j.run_id"
            " WHERE r.suite_name = 'phone-drop'"
        ).fetchall()
        events = [
            m for (m,) in conn.execute("SELECT message FROM events WHERE message LIKE '%failed%'")
        ]
    assert jobs and all(status == "done" for status, _ in jobs)
    assert max(attempts for _, attempts in jobs) >= 2  # the dropped attempt, then a retry
    assert any("phone-tcp" in m for m in events), events
