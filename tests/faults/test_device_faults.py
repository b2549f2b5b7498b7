"""Devices that hang, lose their disk or hold a damaged file, injected for real on the
local device (its work dir and EDGEBENCH_HOME on small tmpfs mounts where a mount is
possible). Each fault: the job fails with an error naming the device and what
happened (or is repaired), the other jobs go on, the store stays intact, the device
is usable again. An SSH server killed mid-run is tests/test_ssh_run.py; a dropped phone
connection tests/test_android_e2e.py; QEMU killed and a board rebooting are here too.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import EDGEBENCH, Runner, make_runner, write_suite
from tests.faults.test_kill_points import _agents

QUICK = "{warmup_runs: 2, warmup_min_s: 0, min_runs: 20, min_duration_s: 0.05, repetitions: 2}"


def _jobs(db: Path) -> list[tuple[str, str, str | None]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT variant, status, error FROM jobs ORDER BY id").fetchall()


def _db(eb: Runner) -> Path:
    return Path(eb.env["EDGEBENCH_DB"].removeprefix("sqlite:///"))  # type: ignore[attr-defined]


def _model_files(eb: Runner, suite: Path) -> dict[str, Path]:
    rows = json.loads(eb("variants", str(suite), "--json").stdout)
    return {r["variant"]: Path(r["path"]) for r in rows}


def test_a_hanging_runner_times_out_is_killed_and_the_device_works_again(
    eb: Runner, tmp_path: Path
) -> None:
    home = tmp_path / "dev"
    eb("device", "add", "slow", "--transport", "local", "--option", f"workdir={home}")
    # Windows of 30 s against a 3 s job timeout: the agent "hangs" as far as the
    # controller can tell.
    suite = write_suite(
        tmp_path / "hang.yaml",
        variants="\n  - name: fp32-onnx\n    recipe: [export_onnx]\n",
        settings="  - runtime: onnxruntime\n",
        measure="{warmup_runs: 1, warmup_min_s: 0, min_runs: 1, min_duration_s: 30, "
        "repetitions: 1, max_runs: 1000000000, timeout_s: 3}",
    )
    suite.write_text(suite.read_text() + "retries: 0\n")
    started = time.monotonic()
    proc = eb("run", str(suite), "--device", "slow", "--no-report", check=False)
    assert proc.returncode == 1
    assert time.monotonic() - started < 60
    ((_, status, error),) = _jobs(_db(eb))
    message = json.loads(error)["message"]
    assert status == "failed" and "'slow'" in message and "within 3 s" in message
    assert "agent terminated" in message
    assert _agents(home) == []  # the remote process was killed, not left measuring
    # The device is usable again at once.
    eb(
        "run",
        str(
            write_suite(
                tmp_path / "ok.yaml",
                settings="  - runtime: onnxruntime\n",
                measure=QUICK,
                variants="\n  - name: fp32-onnx\n    recipe: [export_onnx]\n",
            )
        ),
        "--device",
        "slow",
        "--no-report",
    )


def test_an_artifact_damaged_on_the_device_is_replaced_before_it_is_loaded(
    eb: Runner, tmp_path: Path
) -> None:
    home = tmp_path / "dev"
    eb("device", "add", "board", "--transport", "local", "--option", f"workdir={home}")
    suite = write_suite(
        tmp_path / "s.yaml",
        variants="\n  - name: fp32-onnx\n    recipe: [export_onnx]\n",
        settings="  - runtime: onnxruntime\n",
        measure=QUICK,
    )
    eb("run", str(suite), "--device", "board", "--no-report")
    (pushed,) = [p for p in home.rglob("artifacts/*/*") if p.suffix == ".onnx"]
    pushed.write_bytes(b"\0" * pushed.stat().st_size)  # a flipped SD card, a bad copy
    eb("run", str(suite), "--device", "board", "--no-report")
    assert hashlib.sha256(pushed.read_bytes()).hexdigest() == pushed.parent.name
    assert [s for _, s, _ in _jobs(_db(eb))] == ["done", "done"]


# --------------------------------------------------------------------------- disk full


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[callable]:
    """mount(path, megabytes): a tmpfs of that size at path, unmounted afterwards."""
    mounted: list[Path] = []

    def mount(path: Path, megabytes: int) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        argv = ["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(path)]
        if os.geteuid() != 0:
            argv = ["sudo", "-n", *argv]
        proc = subprocess.run(argv, capture_output=True, text=True)
        if proc.returncode != 0:
            message = f"cannot mount a tmpfs for the disk-full test: {proc.stderr.strip()}"
            if os.environ.get("CI") == "true":
                pytest.fail(message)
            pytest.skip(message)
        mounted.append(path)
        return path

    yield mount
    for path in reversed(mounted):
        argv = ["umount", "-l", str(path)]
        subprocess.run(argv if os.geteuid() == 0 else ["sudo", "-n", *argv], check=False)


def _fill(path: Path) -> Path:
    """Fill the file system at path to the last byte."""
    filler = path / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 20, 4096, 1):  # big writes, then the last bytes
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                pass
    finally:
        os.close(fd)
    return filler


def test_disk_full_in_edgebench_home_is_one_line_and_the_store_survives(
    eb: Runner, tmp_path: Path, small_disk: callable
) -> None:
    # The models are built in the shared workspace; this one gets them as files.
    models = _model_files(
        eb,
        write_suite(
            tmp_path / "models.yaml",
            variants="\n  - name: fp32-onnx\n    recipe: [export_onnx]\n",
            settings="  - runtime: onnxruntime\n",
            measure=QUICK,
        ),
    )
    home = small_disk(tmp_path / "home", 16)
    full = make_runner(home, home)  # workspace and its SQLite database on the small disk
    full(
        "device", "add", "local", "--transport", "local", "--option", f"workdir={tmp_path / 'dev'}"
    )
    model = shutil.copy(models["fp32-onnx"], tmp_path / "m.onnx")
    suite = tmp_path / "file.yaml"
    suite.write_text(
        "name: full\nmodels: [{name: m, file: m.onnx}]\n"
        "variants: [{name: v, recipe: [identity]}, {name: w, recipe: [onnx_fp16]}]\n"
        f"settings: [{{runtime: onnxruntime}}]\nmeasure: {QUICK}\n"
    )
    assert Path(model).exists()
    full("run", str(suite), "--no-report")
    filler = _fill(home)
    proc = full("run", str(suite), "--no-report", check=False)
    assert proc.returncode != 0
    # (stderr also has the build's progress lines: one error line among them.)
    err = [line for line in proc.stderr.splitlines() if line.startswith("edgebench: error")]
    assert len(err) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "no space left on device" in err[0], err[0]
    # The store is intact: the first run and its jobs are all there, the file checks.
    filler.unlink()
    with sqlite3.connect(home / "results.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    runs = json.loads(full("runs", "list", "--json").stdout)
    first = [r for r in runs if r["status"] == "finished"]
    assert first, runs
    full("report", first[-1]["id"], "-o", str(tmp_path / "report"))


def test_disk_full_on_the_device_fails_the_push_naming_the_device(
    eb: Runner, tmp_path: Path, small_disk: callable
) -> None:
    dev = small_disk(tmp_path / "dev", 1)  # then filled: nothing more fits
    eb("device", "add", "tiny", "--transport", "local", "--option", f"workdir={dev}")
    suite = write_suite(
        tmp_path / "s.yaml",
        variants="\n  - name: fp32-onnx\n    recipe: [export_onnx]\n",
        settings="  - runtime: onnxruntime\n",
        measure=QUICK,
    )
    _fill(dev)
    proc = eb("run", str(suite), "--device", "tiny", "--no-report", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    ((_, status, error),) = _jobs(_db(eb))
    message = json.loads(error)["message"]
    assert status == "failed" and "'tiny'" in message and "space" in message.lower(), message


# --------------------------------------------------------------------------- emulators


def _qemu_of(pid: int) -> list[int]:
    from tests.sshd import descendants

    found = []
    for child in descendants(pid):
        try:
            argv0 = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            continue
        if argv0.endswith(b"qemu-system-arm"):
            found.append(child)
    return found


def test_qemu_killed_mid_job_is_retried_on_a_fresh_emulator(eb: Runner, tmp_path: Path) -> None:
    from tests.test_mcu_e2e import TOOLS

    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        message = f"missing {', '.join(missing)} (make test installs them)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    eb("device", "add", "m4", "--transport", "qemu", "--board", "mps2-an386")
    suite = tmp_path / "mcu.yaml"
    suite.write_text(
        "name: mcu-fault\n"
        "models: [{name: net, builder: digits_cnn_small, params: {seed: 0, epochs: 15}}]\n"
        "variants: [{name: int8-tflite, recipe: [export_tflite, tflite_int8_full]}]\n"
        "settings: [{runtime: mcu}]\n"
        "measure: {warmup_runs: 1, warmup_min_s: 0, min_runs: 5, min_duration_s: 0,"
        " repetitions: 2}\n"
        "accuracy: {dataset: digits, split: test}\n"
        "retries: 2\nretry_backoff_s: 0.5\n"
    )
    eb("variants", str(suite), timeout=1200)
    proc = subprocess.Popen(
        [EDGEBENCH, "run", str(suite), "--device", "m4", "--no-report"],
        env=eb.env,  # type: ignore[attr-defined]
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 600

        def started() -> bool:  # the job's first attempt is under way (not a probe)
            with sqlite3.connect(_db(eb)) as conn:
                try:
                    return conn.execute("SELECT SUM(attempts) FROM jobs").fetchone()[0] >= 1
                except (sqlite3.OperationalError, TypeError):
                    return False

        while not (started() and (qemus := _qemu_of(proc.pid))):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.02)
        time.sleep(0.3)  # booted and talking: the job is in flight
        for pid in qemus:
            os.kill(pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out + err
    with sqlite3.connect(_db(eb)) as conn:
        ((status, attempts),) = conn.execute("SELECT status, attempts FROM jobs").fetchall()
        events = [m for (m,) in conn.execute("SELECT message FROM events WHERE level = 'warning'")]
    assert status == "done" and attempts >= 2
    # The failed attempt said which device and what happened.
    assert any("'m4'" in m and "attempt 1 failed" in m for m in events), events


def test_a_model_damaged_mid_run_is_copied_again_before_the_next_load(
    eb: Runner, tmp_path: Path
) -> None:
    # Within one connection a pushed file is checked once; the agent's own hash check
    # on load is what finds it damaged later, and the runner copies it again.
    from devices.local import LocalTransport
    from devices.transport import DeviceConfig, sha256_file
    from runners.agent_runner import AgentRunner
    from runners.base import Job, MeasureRules, ModelFile

    models = _model_files(
        eb,
        write_suite(
            tmp_path / "models.yaml",
            variants="\n  - name: fp32-onnx\n    recipe: [export_onnx]\n",
            settings="  - runtime: onnxruntime\n",
            measure=QUICK,
        ),
    )
    path = models["fp32-onnx"]
    model = ModelFile(path, sha256_file(path), "onnx", path.stat().st_size)
    rules = MeasureRules(1, 0.0, 5, 0.0, 1, 100, 60.0, io_window=False)
    job = Job(1, "m", model, {"runtime": "onnxruntime", "threads": 1}, rules)
    transport = LocalTransport(DeviceConfig("board", "local"), tmp_path / "dev")
    runner = AgentRunner(transport)
    try:
        runner.measure(job)
        (pushed,) = [p for p in (tmp_path / "dev").rglob("*.onnx")]
        pushed.write_bytes(b"\0" * 64)
        again = runner.measure(job)  # same connection: the push does not look again
    finally:
        runner.close()
    assert again.windows and again.details["pushed_bytes"] == model.size_bytes
    assert sha256_file(pushed) == model.sha256
