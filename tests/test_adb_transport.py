"""The adb transport against edgebench's emulated phone, through both routes: straight
to its adbd with adb-shell's RSA auth, and through a real (Debian) adb server that
has ``adb connect``ed it. Fixtures: tests/adb_phone.py."""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from pathlib import Path

import pytest

from devices.adb import AdbOptions, AdbTransport, probe_android
from devices.errors import TransportError, TransportTimeout
from devices.transport import option_errors
from tests.adb_phone import adb_key, adb_server, free_port, make, phone, route, transport

__all__ = ["adb_key", "adb_server", "phone", "route", "transport"]  # fixtures


def host_processes(marker: str) -> list[int]:
    """Host pids whose command line contains ``marker`` (the phone's shells run on the host)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if marker in cmdline:
                found.append(int(entry.name))
    return found


def test_run_exit_code_stdout_and_stderr_apart(transport: AdbTransport) -> None:
    done = transport.run(["sh", "-c", 'echo out; echo "$1" >&2; exit 3', "sh", "it's err"])
    assert (done.returncode, done.stdout, done.stderr) == (3, "out\n", "it's err\n")
    quoted = transport.run(["echo", "a  b", "$HOME", ";", "`x`"])
    assert quoted.stdout == "a  b $HOME ; `x`\n" and quoted.returncode == 0


def test_timeout_kills_the_remote_process(transport: AdbTransport, route: str) -> None:
    marker = f"30.{len(route)}{int(time.time() * 1000) % 100000}"
    started = time.monotonic()
    with pytest.raises(TransportTimeout, match="did not finish within 1 s"):
        transport.run(["sh", "-c", f"sleep {marker}; echo never"], timeout=1.0)
    assert time.monotonic() - started < 10
    deadline = time.monotonic() + 5
    while host_processes(f"sleep {marker}") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not host_processes(f"sleep {marker}")


def test_push_skips_a_file_already_there_and_pull_round_trips(
    transport: AdbTransport, tmp_path: Path, route: str
) -> None:
    local = tmp_path / "blob.bin"
    local.write_bytes(bytes(range(256)) * 700 + route.encode())  # several 64 KiB sync chunks
    digest = hashlib.sha256(local.read_bytes()).hexdigest()
    remote = transport.push(local, digest, "blob.bin")
    assert remote == f"/data/local/tmp/edgebench/artifacts/{digest}/blob.bin"
    assert transport.files_copied == 1
    assert transport.push(local, digest, "blob.bin") == remote
    assert transport.files_copied == 1  # the hash matched: nothing sent
    back = tmp_path / "back.bin"
    transport.pull(remote, back)
    assert back.read_bytes() == local.read_bytes()
    found = transport.stat(remote)
    assert found is not None and found[1] == local.stat().st_size
    assert transport.stat(remote + ".nope") is None
    with pytest.raises(TransportError, match="cannot read"):
        transport.pull(remote + ".nope", tmp_path / "x")


def test_stream_lines_stdin_and_terminate(transport: AdbTransport) -> None:
    proc = transport.open_stream(["sh", "-c", 'while read l; do echo "got $l"; done'])
    proc.write_line("hello")
    assert proc.read_line(10) == "got hello"
    proc.terminate()
    assert proc.wait(5) is not None


def test_probe_facts(transport: AdbTransport) -> None:
    facts = probe_android(transport)
    assert facts["board_model"] == "edgebench emulated phone"
    assert facts["manufacturer"] == "edgebench" and facts["soc"].startswith("EMU8")
    assert facts["arch"] == "arm64-v8a" and facts["sdk"] == 34
    assert facts["android_version"] == "14" and facts["emulated"] is True
    assert facts["cpu_cores"] == 8
    assert facts["big_little"] == {"big": [4, 5, 6, 7], "little": [0, 1, 2, 3]}
    assert facts["memory_total_bytes"] > 1e9
    assert facts["battery"]["current_sensor"] and 0 < facts["battery"]["level_pct"] <= 100
    assert facts["thermal_zones"] and all(
        "temp_c" in z and z["type"] for z in facts["thermal_zones"].values()
    )
    assert transport.getprop()["ro.product.cpu.abi"] == "arm64-v8a"


def test_dropped_connection_mid_command(
    request: pytest.FixtureRequest, transport: AdbTransport, phone: object, route: str
) -> None:
    failure: list[BaseException] = []

    def run() -> None:
        try:
            transport.run(["sleep", "5"], timeout=20)
        except BaseException as e:  # handed to the test's thread
            failure.append(e)

    worker = threading.Thread(target=run)
    worker.start()
    time.sleep(1.0)
    phone.drop_connections()  # type: ignore[attr-defined]
    worker.join(15)
    assert failure and isinstance(failure[0], TransportError)
    assert not isinstance(failure[0], TransportTimeout)
    assert "dropped" in str(failure[0]) and "'phone'" in str(failure[0])
    if route == "server":  # the server lost the phone with its connection: connect again
        request.getfixturevalue("adb_server").connect(phone.serial)  # type: ignore[attr-defined]
    assert transport.run(["true"]).returncode == 0  # the next call works again


# --------------------------------------------------------------------------- errors


def test_direct_route_errors(tmp_path: Path, adb_key: Path) -> None:
    need_key = make(tmp_path, host="127.0.0.1:1", adb_key=str(tmp_path / "missing"))
    with pytest.raises(TransportError, match="no adb key at .*generate_key=true"):
        need_key.run(["true"])
    port = free_port()
    refused = make(tmp_path, host=f"127.0.0.1:{port}", adb_key=str(adb_key))
    with pytest.raises(TransportError, match="no adbd at 127.0.0.1:.*connection refused"):
        refused.run(["true"])
    generated = tmp_path / "new" / "adbkey"
    with pytest.raises(TransportError, match="connection refused"):
        make(tmp_path, host=f"127.0.0.1:{port}", adb_key=str(generated), generate_key=True).run(
            ["true"]
        )
    assert generated.is_file() and (tmp_path / "new" / "adbkey.pub").is_file()


def test_a_key_the_phone_does_not_accept(tmp_path: Path, adb_key: Path) -> None:
    from devices.emulators.adbd import EmulatedPhone

    with EmulatedPhone(accept_new_keys=False) as strict:
        t = make(tmp_path, host=strict.serial, adb_key=str(adb_key), connect_timeout=3)
        with pytest.raises(TransportError, match="did not accept the key.*Allow USB debugging"):
            t.run(["true"])


def test_server_route_names_the_missing_serial(adb_server: object, tmp_path: Path) -> None:
    port = adb_server.port  # type: ignore[attr-defined]
    t = make(tmp_path, serial="R58M00NOPE", adb_server=f"127.0.0.1:{port}")
    with pytest.raises(TransportError, match=r"'R58M00NOPE' not found .*it lists: 127\.0\.0\.1"):
        t.run(["true"])
    gone = make(tmp_path, serial="x", adb_server=f"127.0.0.1:{free_port()}")
    with pytest.raises(TransportError, match="no adb server at .*adb start-server"):
        gone.run(["true"])


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (
            "device unauthorized.\nThis adb server's $ADB_VENDOR_KEYS is not set\n",
            "is unauthorized: accept the 'Allow USB debugging",
        ),
        ("device offline", "is offline: replug it"),
    ],
)
def test_server_refusals_are_one_clear_line(tmp_path: Path, reply: str, expected: str) -> None:
    # A stand-in adb server that refuses host:transport as the real one does.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            length = int(conn.recv(4), 16)
            conn.recv(length)
            payload = reply.encode()
            conn.sendall(b"FAIL" + b"%04x" % len(payload) + payload)

    threading.Thread(target=serve, daemon=True).start()
    t = make(tmp_path, serial="R58", adb_server=f"127.0.0.1:{listener.getsockname()[1]}")
    with pytest.raises(TransportError) as caught:
        t.run(["true"])
    listener.close()
    assert expected in str(caught.value) and "\n" not in str(caught.value)
    assert str(caught.value).startswith("device 'phone': device 'R58'")


def test_options_are_typed_and_routes_exclusive() -> None:
    assert option_errors(AdbOptions, {"serial": "a", "host": "b"})
    assert option_errors(AdbOptions, {"serail": "a"})[0].startswith("serail")
    assert option_errors(AdbOptions, {"workdir": "relative/dir"})
    assert option_errors(AdbOptions, {"host": "h:99999"})
    assert not option_errors(AdbOptions, {"serial": "a", "cooldown_below_c": "45"})


def test_no_route_at_all(tmp_path: Path) -> None:
    with pytest.raises(TransportError, match="no serial"):
        make(tmp_path)
