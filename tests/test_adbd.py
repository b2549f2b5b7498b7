"""The emulated phone (devices/emulators/adbd.py) against two independent real clients.

* Debian's ``adb`` client, through a private adb server on its own port
  (``adb -P PORT``, HOME in a temp dir so that its key is its own);
* the ``adb-shell`` package's ``AdbDeviceTcp`` with a freshly generated RSA key.

Without ``adb`` installed the client tests are skipped, except under ``CI=true``
where they fail (project rule: CI must not silently lose a real peer).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from devices.emulators.adbd import (
    A_CNXN,
    A_VERSION,
    MAX_PAYLOAD,
    AndroidPublicKey,
    EmulatedPhone,
    encode_packet,
)
from devices.emulators.phone import OutputTranslator, PhoneSandbox, PhoneSimulation
from runners.benchmark_model import parse_benchmark_model

ADB = shutil.which("adb")


def _need_adb() -> str:
    if ADB is None:
        if os.environ.get("CI") == "true":
            pytest.fail("adb is not installed (apt-get install adb); CI=true needs it")
        pytest.skip("adb is not installed (apt-get install adb)")
    return ADB


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def phone() -> Iterator[EmulatedPhone]:
    with EmulatedPhone() as emulated:
        yield emulated


AdbRun = Callable[..., subprocess.CompletedProcess]


@pytest.fixture(scope="module")
def adb(phone: EmulatedPhone, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdbRun]:
    """``adb -P PORT -s SERIAL ...`` against the phone, through a private adb server."""
    binary = _need_adb()
    home = tmp_path_factory.mktemp("adb-home")
    port = _free_port()
    env = {**os.environ, "HOME": str(home), "ANDROID_SDK_HOME": str(home)}
    env.pop("ADB_SERVER_SOCKET", None)
    base = [binary, "-P", str(port)]

    def run(*args: str, serial: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
        argv = [*base, *(["-s", phone.serial] if serial else []), *args]
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)

    started = run("start-server", serial=False)
    assert started.returncode == 0, started.stderr
    try:
        # The adb server made its key at start; the phone has "allowed" it before, so
        # that `adb connect` says "connected" (a first-time key is covered below).
        phone.authorize_key((home / ".android" / "adbkey.pub").read_text())
        connected = run("connect", phone.serial, serial=False)
        assert f"connected to {phone.serial}" in connected.stdout, connected
        yield run
    finally:
        run("kill-server", serial=False)


def test_adb_shell_output_exit_code_and_getprop(adb: AdbRun) -> None:
    hi = adb("shell", "echo hi")
    assert (hi.returncode, hi.stdout) == (0, "hi\n")
    # shell_v2: the adb client exits with the device command's status.
    assert adb("shell", "exit 3").returncode == 3
    split = adb("shell", "echo out; echo err >&2; false")
    assert (split.stdout, split.stderr, split.returncode) == ("out\n", "err\n", 1)
    model = adb("shell", "getprop ro.product.model")
    assert model.stdout == "edgebench emulated phone\n"
    assert adb("shell", "getprop edgebench.emulated").stdout == "1\n"
    assert "[ro.product.cpu.abi]: [arm64-v8a]" in adb("shell", "getprop").stdout
    devices = adb("devices", "-l", serial=False).stdout
    assert "model:edgebench_emulated_phone" in devices


def test_concurrent_streams_on_one_connection(adb: AdbRun) -> None:
    # The adb server multiplexes these over its one connection to the phone.
    with ThreadPoolExecutor(8) as pool:
        runs = list(pool.map(lambda i: adb("shell", f"sleep 0.3; echo {i}"), range(8)))
    assert [r.stdout for r in runs] == [f"{i}\n" for i in range(8)]


def test_run_foreground_prints_the_connect_line_and_stops_on_sigterm() -> None:
    code = "from devices.emulators.adbd import run_foreground; raise SystemExit(run_foreground(0))"
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("adb connect 127.0.0.1:")
        port = int(line.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]


def test_adb_push_pull_round_trip(adb: AdbRun, tmp_path: Path, phone: EmulatedPhone) -> None:
    blob = os.urandom(3 * 1024 * 1024)
    src, back = tmp_path / "blob.bin", tmp_path / "back.bin"
    src.write_bytes(blob)
    digest = hashlib.sha256(blob).hexdigest()
    pushed = adb("push", str(src), "/data/local/tmp/edgebench/blob.bin")
    assert pushed.returncode == 0, pushed.stderr
    on_device = adb("shell", "sha256sum /data/local/tmp/edgebench/blob.bin")
    assert on_device.stdout == f"{digest}  /data/local/tmp/edgebench/blob.bin\n"
    pulled = adb("pull", "/data/local/tmp/edgebench/blob.bin", str(back))
    assert pulled.returncode == 0, pulled.stderr
    assert hashlib.sha256(back.read_bytes()).hexdigest() == digest
    assert (phone.sandbox_path / "data/local/tmp/edgebench/blob.bin").stat().st_size == len(blob)
    missing = adb("pull", "/data/local/tmp/nope.bin", str(tmp_path / "x"))
    assert missing.returncode != 0
    assert "No such file" in missing.stdout + missing.stderr  # adb 29 prints it on stdout


def test_sandbox_escapes_do_not_reach_the_host(adb: AdbRun) -> None:
    passwd = adb("shell", "cat /../../etc/passwd")
    assert passwd.returncode != 0 and "root:" not in passwd.stdout
    listing = adb("shell", "ls ../..").stdout.split()
    assert "system" in listing and "data" in listing  # the device's /, not the host's
    assert "usr" not in listing and "home" not in listing
    climbed = adb("shell", "cd /data; cd ../../../..; pwd")
    assert climbed.stdout == "/\n"
    assert adb("shell", "cd /data/local/tmp && pwd").stdout == "/data/local/tmp\n"


def test_device_files_and_tools(adb: AdbRun, phone: EmulatedPhone) -> None:
    cpuinfo = adb("shell", "cat /proc/cpuinfo").stdout
    assert cpuinfo.count("processor\t:") == 8
    freqs = adb("shell", "cat /sys/devices/system/cpu/cpu*/cpufreq/cpuinfo_max_freq").stdout.split()
    assert freqs == ["1800000"] * 4 + ["2400000"] * 4
    assert adb("shell", "nproc").stdout == "8\n"
    assert adb("shell", "taskset f0 nproc").stdout == "4\n"
    assert adb("shell", "id").stdout.startswith("uid=2000(shell)")
    assert "MemTotal:" in adb("shell", "cat /proc/meminfo").stdout
    battery = adb("shell", "dumpsys battery").stdout
    assert "Current Battery Service state:" in battery and "level:" in battery
    # Discharging: negative µA (the BatteryManager convention); charging: positive.
    current = int(adb("shell", "cat /sys/class/power_supply/battery/current_now").stdout)
    assert current < 0
    phone.set_charging(True)
    try:
        status = adb("shell", "cat /sys/class/power_supply/battery/status").stdout
        assert status == "Charging\n"
        assert int(adb("shell", "cat /sys/class/power_supply/battery/current_now").stdout) > 0
    finally:
        phone.set_charging(False)
    zone = adb(
        "shell", "cat /sys/class/thermal/thermal_zone1/type /sys/class/thermal/thermal_zone1/temp"
    )
    kind, millideg = zone.stdout.split()
    assert kind == "cpu-big" and 20_000 < int(millideg) < 90_000


@pytest.fixture(scope="module")
def tiny_tflite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch = pytest.importorskip("torch")
    litert_torch = pytest.importorskip("litert_torch")
    path = tmp_path_factory.mktemp("tflite") / "tiny.tflite"
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 8), torch.nn.ReLU()).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        litert_torch.convert(model, (torch.randn(1, 16),)).export(str(path))
    return path


def test_standin_benchmark_model_output_parses(adb: AdbRun, tiny_tflite: Path) -> None:
    assert adb("push", str(tiny_tflite), "/data/local/tmp/tiny.tflite").returncode == 0
    flags = (
        "--graph=/data/local/tmp/tiny.tflite --num_threads=2 --warmup_runs=3 "
        "--warmup_min_secs=0.01 --num_runs=30 --min_secs=0.05 "
        "--report_peak_memory_footprint=true --enable_op_profiling=true --not_a_flag=1"
    )
    run = adb("shell", f"benchmark_model {flags}")
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.startswith("INFO: edgebench stand-in benchmark_model")
    assert "WARNING: Unconsumed cmdline flags: --not_a_flag=1" in run.stdout
    result = parse_benchmark_model(run.stdout + run.stderr)
    assert result.graph == "/data/local/tmp/tiny.tflite"
    assert result.num_threads == 2
    assert result.timed is not None and result.timed.count >= 30
    assert result.warmup is not None and result.warmup.count >= 3
    assert result.inference_avg_s is not None and result.inference_avg_s > 0
    assert result.init_s is not None and result.model_size_bytes == pytest.approx(
        tiny_tflite.stat().st_size, rel=1e-3
    )
    assert result.peak_memory_bytes is not None and result.vm_rss_end_bytes is not None
    assert result.op_profile_timed is not None and result.op_profile_init is not None
    gpu = adb("shell", "benchmark_model --graph=/data/local/tmp/tiny.tflite --use_gpu=true")
    assert gpu.returncode == 1
    assert "ERROR: Failed to apply GPU delegate." in gpu.stdout
    assert "Benchmarking failed." in gpu.stdout


def test_dumpsys_meminfo_finds_a_running_device_process(adb: AdbRun, tiny_tflite: Path) -> None:
    adb("push", str(tiny_tflite), "/data/local/tmp/tiny.tflite")
    script = (
        "benchmark_model --graph=/data/local/tmp/tiny.tflite --num_runs=1 --min_secs=3 "
        ">/dev/null 2>&1 & sleep 1.5; dumpsys meminfo benchmark_model; wait"
    )
    out = adb("shell", script).stdout
    assert "** MEMINFO in pid" in out and "TOTAL PSS:" in out


# -- adb-shell ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def adb_shell_signer(tmp_path_factory: pytest.TempPathFactory) -> object:
    keygen = pytest.importorskip("adb_shell.auth.keygen")
    sign = pytest.importorskip("adb_shell.auth.sign_pythonrsa")
    key = tmp_path_factory.mktemp("adb-shell-key") / "adbkey"
    keygen.keygen(str(key))
    return sign.PythonRSASigner.FromRSAKeyPath(str(key))


def test_adb_shell_client(phone: EmulatedPhone, adb_shell_signer: object, tmp_path: Path) -> None:
    from adb_shell.adb_device import AdbDeviceTcp

    device = AdbDeviceTcp("127.0.0.1", phone.port, default_transport_timeout_s=10)
    assert device.connect(rsa_keys=[adb_shell_signer], auth_timeout_s=5)
    try:
        assert device.shell("echo hello; getprop ro.product.cpu.abi") == "hello\narm64-v8a\n"
        data = os.urandom(300_000)
        (tmp_path / "up.bin").write_bytes(data)
        device.push(str(tmp_path / "up.bin"), "/data/local/tmp/up.bin")
        mode, size, _mtime = device.stat("/data/local/tmp/up.bin")
        assert size == len(data) and mode & 0o170000 == 0o100000
        names = {entry.filename.decode() for entry in device.list("/data/local/tmp")}
        assert "up.bin" in names
        device.pull("/data/local/tmp/up.bin", str(tmp_path / "down.bin"))
        assert (tmp_path / "down.bin").read_bytes() == data
        assert device.stat("/data/local/tmp/absent")[1] == 0
    finally:
        device.close()


def test_adb_shell_new_key_refused(adb_shell_signer: object) -> None:
    from adb_shell.adb_device import AdbDeviceTcp

    with EmulatedPhone(accept_new_keys=False) as strict:
        device = AdbDeviceTcp("127.0.0.1", strict.port, default_transport_timeout_s=1)
        # The phone closes the connection; adb-shell notices when its read times out.
        with pytest.raises(Exception) as refused:  # noqa: B017 - adb-shell's class varies
            device.connect(rsa_keys=[adb_shell_signer], auth_timeout_s=1, read_timeout_s=1)
        assert not device.available
        device.close()
        assert refused.type.__name__ != "AssertionError"


# -- protocol edges, without a client ------------------------------------------------------


def _raw_connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(encode_packet(A_CNXN, A_VERSION, MAX_PAYLOAD, b"host::features=shell_v2"))
    return sock


def test_malformed_packet_closes_only_that_connection(phone: EmulatedPhone) -> None:
    sock = _raw_connect(phone.port)
    header = sock.recv(24)
    assert struct.unpack("<4s", header[:4])[0] == b"AUTH"
    sock.recv(struct.unpack("<6I", header)[3])
    sock.sendall(b"\x00" * 24)  # magic does not match the command
    sock.settimeout(5)
    assert sock.recv(100) == b""  # closed by the phone
    sock.close()
    again = _raw_connect(phone.port)  # the server still serves
    assert again.recv(4) == b"AUTH"
    again.close()


def test_drop_connections_and_no_thread_left(adb_shell_signer: object) -> None:
    from adb_shell.adb_device import AdbDeviceTcp

    before = set(threading.enumerate())
    with EmulatedPhone() as temporary:
        device = AdbDeviceTcp("127.0.0.1", temporary.port, default_transport_timeout_s=1)
        assert device.connect(rsa_keys=[adb_shell_signer], auth_timeout_s=5)
        result: dict[str, BaseException | str] = {}

        def long_job() -> None:
            try:
                result["out"] = device.shell("sleep 20; echo done", read_timeout_s=1)
            except Exception as error:  # noqa: BLE001 - whatever adb-shell raises
                result["error"] = error

        job = threading.Thread(target=long_job)
        job.start()
        time.sleep(0.5)
        temporary.drop_connections()
        job.join(10)
        assert not job.is_alive() and "error" in result
        deadline = time.monotonic() + 5  # the dropped job's `sleep 20` is killed
        while temporary.server.processes and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not temporary.server.processes
        device.close()
    deadline = time.monotonic() + 5
    while set(threading.enumerate()) - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not set(threading.enumerate()) - before


# -- units -------------------------------------------------------------------------------


def test_public_key_round_trip_and_signature(adb_shell_signer: object) -> None:
    key = AndroidPublicKey.parse(adb_shell_signer.GetPublicKey())  # type: ignore[attr-defined]
    token = os.urandom(20)
    signature = adb_shell_signer.Sign(token)  # type: ignore[attr-defined]
    assert key.verify(token, signature)
    assert not key.verify(os.urandom(20), signature)
    with pytest.raises(ValueError):
        AndroidPublicKey.parse("bm90IGEga2V5 user@host")


def test_output_translator_across_chunks() -> None:
    translator = OutputTranslator("/tmp/sandbox")
    pieces = [b"a /tmp/sa", b"ndbox/data x", b" /tmp/s"]
    out = b"".join(translator.feed(p) for p in pieces) + translator.flush()
    assert out == b"a /data x /tmp/s"


def test_battery_discharges_and_warms_with_load() -> None:
    clock = [0.0]
    sim = PhoneSimulation(time_scale=1.0, clock=lambda: clock[0])
    start = sim.snapshot()
    sim.add_load(+2)
    clock[0] += 3600.0  # an hour at ~1.1 A
    later = sim.snapshot()
    battery = "sys/class/power_supply/battery/"
    assert int(later[battery + "capacity"]) < int(start[battery + "capacity"])
    assert int(later[battery + "current_now"]) == -(180 + 2 * 450) * 1000
    big = "sys/class/thermal/thermal_zone1/temp"
    assert int(later[big]) > int(start[big])


def test_rewrite_keeps_named_paths_inside(tmp_path: Path) -> None:
    sandbox = PhoneSandbox(tmp_path / "phone", use_landlock=False)
    root = str(sandbox.root)
    assert sandbox.rewrite_command("cat /../../etc/passwd") == f"cat {root}/etc/passwd"
    assert sandbox.rewrite_command("ls ../..") == f"ls {root}"
    assert sandbox.rewrite_command("x --graph=/data/m") == f"x --graph={root}/data/m"
    assert sandbox.rewrite_command("echo >/dev/null") == "echo >/dev/null"
    assert sandbox.props["edgebench.sandbox"] == "paths"


def test_escapes_blocked_without_landlock_too(adb_shell_signer: object) -> None:
    # CI kernels may lack Landlock: the path fence alone must stop named paths.
    from adb_shell.adb_device import AdbDeviceTcp

    with EmulatedPhone(use_landlock=False) as fenceless:
        device = AdbDeviceTcp("127.0.0.1", fenceless.port, default_transport_timeout_s=5)
        assert device.connect(rsa_keys=[adb_shell_signer], auth_timeout_s=5)
        try:
            assert "root:" not in device.shell("cat /../../etc/passwd 2>&1")
            listing = device.shell("ls ../..").split()
            assert "system" in listing and "usr" not in listing
            assert device.shell("cd /data; cd ../../../..; pwd 2>&1").endswith("/\n")
            assert device.shell("getprop edgebench.sandbox") == "paths\n"
        finally:
            device.close()
