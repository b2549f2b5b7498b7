"""Fixtures (not tests): edgebench's emulated phone and a private Debian adb server,
and an adb transport to the phone through either route. Imported by
tests/test_adb_transport.py and tests/test_android_runner.py.

Missing ``adb`` or adb-shell skips these tests, except under ``CI=true``, where it
fails them: CI must exercise both routes.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devices.adb import AdbTransport
from devices.transport import DeviceConfig

ADB = shutil.which("adb")


def need(what: str, ok: bool) -> None:
    if ok:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is required under CI=true")
    pytest.skip(f"{what} is not installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class AdbServer:
    port: int
    env: dict[str, str]

    def adb(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        assert ADB is not None
        return subprocess.run(
            [ADB, "-P", str(self.port), *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
        )

    def connect(self, serial: str) -> None:
        """``adb connect`` and wait until the server lists the phone as ``device``."""
        self.adb("connect", serial)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            listed = self.adb("devices").stdout
            if f"{serial}\tdevice" in listed:
                return
            time.sleep(0.2)
        raise AssertionError(f"adb server never saw {serial} as a device: {listed!r}")


@pytest.fixture(scope="module")
def adb_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        from adb_shell.auth.keygen import keygen
    except ImportError:
        need("adb-shell", False)
        raise
    key = tmp_path_factory.mktemp("adbkey") / "adbkey"
    keygen(str(key))
    return key


@pytest.fixture(scope="module")
def phone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from devices.emulators.adbd import EmulatedPhone

    # The battery/thermal clock runs 20x, so that the simulated phone warms up and its
    # fuel gauge moves within a short test.
    emulated = EmulatedPhone(accept_new_keys=True, battery_time_scale=20.0)
    with emulated:
        yield emulated


@pytest.fixture(scope="module")
def adb_server(tmp_path_factory: pytest.TempPathFactory, phone: object) -> Iterator[AdbServer]:
    need("adb (Debian package adb)", ADB is not None)
    home = tmp_path_factory.mktemp("adb-home")
    env = {**os.environ, "HOME": str(home), "ANDROID_SDK_HOME": str(home)}
    env.pop("ADB_VENDOR_KEYS", None)
    server = AdbServer(free_port(), env)
    started = server.adb("start-server", timeout=60)
    assert started.returncode == 0, started.stderr
    try:
        server.connect(phone.serial)  # type: ignore[attr-defined]
        yield server
    finally:
        server.adb("kill-server")


def make(tmp_path: Path, name: str = "phone", **options: object) -> AdbTransport:
    return AdbTransport(DeviceConfig(name=name, transport="adb", options=dict(options)), tmp_path)


@pytest.fixture(scope="module", params=["direct", "server"])
def route(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def transport(
    request: pytest.FixtureRequest, route: str, phone: object, adb_key: Path, tmp_path: Path
) -> Iterator[AdbTransport]:
    if route == "direct":
        t = make(tmp_path, host=phone.serial, adb_key=str(adb_key))  # type: ignore[attr-defined]
    else:
        server: AdbServer = request.getfixturevalue("adb_server")
        t = make(tmp_path, serial=phone.serial, adb_server=f"127.0.0.1:{server.port}")  # type: ignore[attr-defined]
    try:
        yield t
    finally:
        t.close()


TINY_MODEL = """\
import sys, torch, litert_torch
torch.manual_seed(0)
m = torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.ReLU(), torch.nn.Linear(64, 4)).eval()
litert_torch.convert(m, (torch.randn(1, 16),)).export(sys.argv[1])
"""


@pytest.fixture(scope="module")
def tiny_tflite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import sys

    path = tmp_path_factory.mktemp("model") / "tiny.tflite"
    done = subprocess.run(
        [sys.executable, "-c", TINY_MODEL, str(path)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return path
