"""The SSH transport and device provisioning, against real OpenSSH servers.

Servers come from ``tests/sshd.py``: one per network namespace where ``ip netns`` works
(root), otherwise several on 127.0.0.1. The "device" is this machine either way, so the
agent runs under this venv's python and files pushed there can be checked directly.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from devices.errors import TransportError, TransportTimeout
from devices.provision import download_wheels, setup_device
from devices.ssh import SSHTarget, SSHTransport, parse_address
from devices.transport import DeviceConfig, make_transport, sha256_file
from runners.agent_client import AgentClient
from tests.sshd import (
    SSHDUnavailable,
    SSHLab,
    SSHServer,
    eventually,
    free_port,
    keygen,
    live_processes,
)

pytestmark = pytest.mark.slow

FAST_BENCH = {
    "warmup_runs": 2,
    "warmup_min_s": 0.0,
    "min_runs": 5,
    "min_duration_s": 0.02,
    "repetitions": 2,
}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHLab]:
    try:
        the_lab = SSHLab(tmp_path_factory.mktemp("sshlab"))
    except SSHDUnavailable as e:
        pytest.skip(f"no OpenSSH server for the ssh tests: {e}")
    try:
        yield the_lab
    finally:
        the_lab.close()


@pytest.fixture(scope="module")
def server_a(lab: SSHLab) -> SSHServer:
    try:
        return lab.server("a")
    except SSHDUnavailable as e:
        pytest.skip(f"sshd cannot be started here: {e}")


@pytest.fixture(scope="module")
def server_b(lab: SSHLab, server_a: SSHServer) -> SSHServer:
    return lab.server("b", behind=server_a)


@pytest.fixture
def known_hosts(tmp_path: Path, server_a: SSHServer, server_b: SSHServer) -> Path:
    path = tmp_path / "known_hosts"
    path.write_text(server_a.known_hosts_line() + server_b.known_hosts_line())
    return path


Maker = Callable[..., SSHTransport]


@pytest.fixture
def make(lab: SSHLab, tmp_path: Path, known_hosts: Path) -> Iterator[Maker]:
    """SSHTransport factory: key auth with the lab's client key, our known_hosts, a
    workdir under tmp_path; every transport made is closed after the test."""
    made: list[SSHTransport] = []

    def make_one(server: SSHServer | str, name: str = "board", **options: Any) -> SSHTransport:
        opts = {
            "identity_file": str(lab.client_key),
            "known_hosts": str(known_hosts),
            "workdir": str(tmp_path / f"device-{name}"),
            "connect_timeout": 5,
            **options,
        }
        opts = {k: v for k, v in opts.items() if v is not None}
        address = server if isinstance(server, str) else server.address
        t = make_transport(DeviceConfig(name, "ssh", address, opts), tmp_path)
        assert isinstance(t, SSHTransport)
        made.append(t)
        return t

    yield make_one
    for t in made:
        t.close()


@pytest.fixture
def local_pip(monkeypatch: pytest.MonkeyPatch) -> None:
    """pip on the controller may take wheels only from local indexes (file://) and
    find-links, as configured on the lab machines: the tests never download."""
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True
    ).stdout
    values = re.findall(r"index-url='([^']*)'", listed)
    urls = [u for v in values for u in v.split() if u.startswith("file:")]
    links = re.findall(r"find-links='([^']*)'", listed)
    if not urls and not links:
        pytest.skip("pip has no local index or find-links here, and these tests never download")
    if urls:
        monkeypatch.setenv("PIP_INDEX_URL", urls[0])
        monkeypatch.setenv("PIP_EXTRA_INDEX_URL", " ".join(urls[1:] or urls[:1]))
    else:
        monkeypatch.setenv("PIP_NO_INDEX", "1")


def tiny_onnx(path: Path) -> np.ndarray:
    """A 1x1x4x4 -> 1x10 linear model; returns its (16, 10) weight (bias is 0.5)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(3).standard_normal((16, 10)).astype(np.float32)
    nodes = [
        helper.make_node("Flatten", ["input"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "w", "b"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, 4, 4])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.full(10, 0.5, "f"), "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return w


# --------------------------------------------------------------------------- addresses


def test_parse_address() -> None:
    assert parse_address("pi@board.lab") == SSHTarget("pi", "board.lab", 22)
    assert parse_address("pi@10.0.0.7:2222") == SSHTarget("pi", "10.0.0.7", 2222)
    assert parse_address("me@[fe80::1]:22").host == "fe80::1"
    assert parse_address("me@[fe80::1]:2200").known_hosts_name == "[fe80::1]:2200"
    assert parse_address("pi@board").known_hosts_name == "board"
    for bad in ("", "pi@", "@host", "pi@host:x", "pi@host:70000"):
        with pytest.raises(ValueError):
            parse_address(bad)
    with pytest.raises(TransportError, match="not a boolean"):
        SSHTransport(DeviceConfig("x", "ssh", "u@h", {"trust_on_first_use": "maybe"}), Path("."))


def test_known_hosts_patterns_and_revocation(tmp_path: Path) -> None:
    if shutil.which("ssh-keygen") is None:
        pytest.skip("ssh-keygen not installed (apt-get install openssh-client)")
    import base64

    import paramiko

    from devices.ssh import KnownHosts, record_host_key

    def public(name: str) -> tuple[str, paramiko.PKey]:
        private = keygen(tmp_path / name, name)
        kind, b64 = private.with_name(name + ".pub").read_text().split()[:2]
        return f"{kind} {b64}", paramiko.PKey.from_type_string(kind, base64.b64decode(b64))

    (text1, key1), (text2, key2) = public("k1"), public("k2")
    path = tmp_path / "known_hosts"
    path.write_text(
        "# comment\n"
        f"*.lab,!bad.lab {text1}\n"
        f"[10.0.0.1]:2222 {text2}\n"
        f"@revoked * {text2}\n"
        f"@cert-authority *.lab {text1}\n"
        "garbage line\n"
    )
    known = KnownHosts([path])
    assert [e.key.asbytes() for e in known.lookup("board.lab")] == [key1.asbytes()]
    assert known.lookup("bad.lab") == [] and known.lookup("lab") == []
    assert [e.key.asbytes() for e in known.lookup("[10.0.0.1]:2222")] == [key2.asbytes()]
    assert known.lookup("10.0.0.1") == [] and known.lookup("[10.0.0.1]:22222") == []
    assert known.revoked("anything", key2) is not None and known.revoked("x", key1) is None

    t = SSHTransport(
        DeviceConfig("rv", "ssh", "u@10.0.0.1:2222", {"known_hosts": str(path)}), tmp_path
    )
    with pytest.raises(TransportError, match="@revoked"):
        t._verify_host_key(t.target, key2, "device")
    assert parse_address("u@Board.LAB").known_hosts_name == "board.lab"

    fresh = tmp_path / "sub" / "known_hosts"
    record_host_key(fresh, "[h.lab]:2", key1)
    assert (fresh.stat().st_mode & 0o777) == 0o600
    assert [e.key.asbytes() for e in KnownHosts([fresh]).lookup("[h.lab]:2")] == [key1.asbytes()]
    found = subprocess.run(["ssh-keygen", "-F", "[h.lab]:2", "-f", str(fresh)], capture_output=True)
    assert found.returncode == 0


# --------------------------------------------------------------------------- commands


def test_run_quoting_exit_codes_stderr(make: Maker, server_a: SSHServer, lab: SSHLab) -> None:
    t = make(server_a)
    tricky = "a b;$(id)"
    assert t.run(["echo", tricky]).stdout == tricky + "\n"
    for arg in ["'", '"', "`id`", "*", "$HOME", "x\ny", "", "--", "a\\b"]:
        assert t.run(["printf", "%s", arg]).stdout == arg
    done = t.run(["sh", "-c", 'echo out; echo "err $1" >&2; exit 3', "sh", "arg one"])
    assert (done.returncode, done.stdout, done.stderr) == (3, "out\n", "err arg one\n")
    missing = t.run(["edgebench-no-such-command"])
    assert missing.returncode == 127 and "edgebench-no-such-command" in missing.stderr
    assert t.run(["sh", "-c", "cat; echo done"]).stdout == "done\n"  # stdin is at EOF
    # One connection for everything (the scheduler keeps the transport for a whole run).
    assert t.connections_opened == 1
    # workdir as configured; the default resolves ~ on the device.
    assert t.workdir.endswith("/device-board")
    default = make(server_a, "dflt", workdir=None)
    home = Path(os.path.expanduser(f"~{lab.user}"))
    assert default.workdir == str(home / ".edgebench")


def test_auth_failure_and_refused_connection(
    make: Maker, server_a: SSHServer, lab: SSHLab, tmp_path: Path
) -> None:
    stranger = keygen(tmp_path / "stranger", "not-authorized")
    with pytest.raises(TransportError) as err:
        make(server_a, "stranger", identity_file=str(stranger)).run(["true"])
    message = str(err.value)
    assert "authentication failed" in message and "'stranger'" in message
    assert "Traceback" not in message and "\n" not in message

    with pytest.raises(TransportError, match="does not exist"):
        make(server_a, "nokey", identity_file=str(tmp_path / "absent")).run(["true"])

    # A port nothing listens on, on an address the lab made (or loopback).
    port = 2 if lab.mode == "netns" else free_port()
    with pytest.raises(TransportError, match="connection refused") as err:
        make(f"{lab.user}@{server_a.host}:{port}", "closed").run(["true"])
    assert not isinstance(err.value, TransportTimeout)


def test_run_timeout_and_terminate_kill_the_process_group(make: Maker, server_a: SSHServer) -> None:
    t = make(server_a)
    marker = "301.7"
    proc = t.open_stream(["sh", "-c", f"sleep {marker} & sleep {marker}"])
    assert eventually(lambda: len(live_processes("sleep", marker)) == 2)
    proc.terminate()
    proc.terminate()  # idempotent
    assert eventually(lambda: live_processes("sleep", marker) == [])
    assert proc.wait(1) is not None

    marker = "302.3"
    started = time.monotonic()
    with pytest.raises(TransportTimeout, match="process group was killed"):
        t.run(["sh", "-c", f"sleep {marker} & sleep {marker}"], timeout=1)
    assert time.monotonic() - started < 5
    assert eventually(lambda: live_processes("sleep", marker) == [])
    # The connection survives a timeout and is still the only one.
    assert t.run(["true"]).returncode == 0 and t.connections_opened == 1

    # close() kills what is still running.
    marker = "303.9"
    t.open_stream(["sh", "-c", f"sleep {marker} & sleep {marker}"])
    assert eventually(lambda: len(live_processes("sleep", marker)) == 2)
    t.close()
    t.close()
    assert eventually(lambda: live_processes("sleep", marker) == [])


# --------------------------------------------------------------------------- host keys


def test_unknown_host_key_refused_then_trusted_on_first_use(
    make: Maker, server_a: SSHServer, tmp_path: Path
) -> None:
    empty = tmp_path / "empty_known_hosts"
    with pytest.raises(TransportError) as err:
        make(server_a, "new", known_hosts=str(empty)).run(["true"])
    message = str(err.value)
    assert f"host key for {server_a.known_hosts_name} is not known" in message
    assert "ssh-ed25519" in message and server_a.fingerprint() in message
    assert "--trust-on-first-use" in message and "trust_on_first_use" in message
    assert not empty.exists()  # nothing recorded without TOFU

    tofu = make(server_a, "tofu", known_hosts=str(empty), trust_on_first_use="true")
    assert tofu.run(["echo", "hi"]).stdout == "hi\n"
    lines = empty.read_text().splitlines()
    assert len(lines) == 1 and lines[0].startswith("|1|")  # hashed, like HashKnownHosts
    # OpenSSH itself finds the recorded key.
    found = subprocess.run(
        ["ssh-keygen", "-F", server_a.known_hosts_name, "-f", str(empty)],
        capture_output=True,
        text=True,
    )
    assert found.returncode == 0 and "ssh-ed25519" in found.stdout

    again = make(server_a, "again", known_hosts=str(empty))
    assert again.run(["true"]).returncode == 0
    assert len(empty.read_text().splitlines()) == 1


def test_changed_host_key_refused_even_with_tofu(make: Maker, lab: SSHLab, tmp_path: Path) -> None:
    server = lab.server("hk")
    kh = tmp_path / "hk_known_hosts"
    first = make(server, "hk1", known_hosts=str(kh), trust_on_first_use=True)
    assert first.run(["true"]).returncode == 0
    first.close()
    old = server.fingerprint()
    server.restart_with_new_host_key()
    new = server.fingerprint()
    assert old != new
    for tofu in (False, True):
        t = make(server, f"hk-{tofu}", known_hosts=str(kh), trust_on_first_use=tofu)
        with pytest.raises(TransportError) as err:
            t.run(["true"])
        message = str(err.value)
        assert f"host key for {server.known_hosts_name} changed" in message
        assert old in message and new in message
        assert "ssh-keygen -R" in message
    assert len(kh.read_text().splitlines()) == 1  # the new key was not recorded
    server.stop()


# --------------------------------------------------------------------------- files


def test_push_is_content_addressed(make: Maker, server_a: SSHServer, tmp_path: Path) -> None:
    t = make(server_a)
    local = tmp_path / "model.bin"
    local.write_bytes(os.urandom(300_000))
    sha = sha256_file(local)
    remote = t.push(local, sha)
    assert remote == f"{t.workdir}/artifacts/{sha}/model.bin"
    assert t.files_copied == 1
    assert t.remote_sha256(remote) == sha
    assert Path(remote).read_bytes() == local.read_bytes()  # the "device" is this machine
    assert not list(Path(remote).parent.glob("*.part-*"))
    mtime = Path(remote).stat().st_mtime_ns

    assert t.push(local, sha) == remote
    assert t.files_copied == 1  # no second upload
    assert Path(remote).stat().st_mtime_ns == mtime

    # Checked once per connection: a copy damaged since is found by whoever uses it
    # (the agent hashes a model before loading it), who says so; then it is replaced.
    Path(remote).write_bytes(b"damaged")
    assert t.push(local, sha) == remote and t.files_copied == 1
    t.forget(remote)
    assert t.push(local, sha) == remote and t.files_copied == 2
    assert sha256_file(Path(remote)) == sha

    assert t.remote_sha256(f"{t.workdir}/no/such/file") is None
    # Devices without sha256sum hash with python3.
    t._hasher = "python3"
    assert t.remote_sha256(remote) == sha
    assert t.remote_sha256(f"{t.workdir}/no/such/file") is None
    assert t.connections_opened == 1


# --------------------------------------------------------------------------- the agent


def test_agent_over_ssh(make: Maker, server_a: SSHServer, tmp_path: Path) -> None:
    model = tmp_path / "tiny.onnx"
    w = tiny_onnx(model)
    t = make(server_a, python=sys.executable)
    with AgentClient.start(t, timeout=60) as client:
        facts = client.facts
        assert facts["python_executable"] == sys.executable
        assert facts["os"] == "Linux" and facts["runtimes"]["onnxruntime"]
        sha = sha256_file(model)
        info = client.load(t.push(model, sha), sha, "onnxruntime", threads=1)
        assert info["inputs"][0]["shape"] == [1, 1, 4, 4]
        bench = client.bench(timeout=60, **FAST_BENCH)
        assert len(bench["windows"]) == FAST_BENCH["repetitions"]
        x = np.random.default_rng(1).standard_normal((6, 1, 4, 4)).astype(np.float32)
        expected = x.reshape(6, 16) @ w + 0.5
        labels = expected.argmax(axis=1)
        result = client.evaluate(x, labels, batch_size=4, return_outputs=True)
        np.testing.assert_allclose(result["outputs"], expected, rtol=1e-5, atol=1e-5)
        assert result["count"] == 6 and result["top1"] == 1.0
        # A request that times out kills the agent on the device, not just the channel.
        pid = client.hello["pid"]
        assert b"edgebench_agent.py" in Path(f"/proc/{pid}/cmdline").read_bytes()
        with pytest.raises(TransportTimeout):
            client.bench(timeout=0.5, min_duration_s=30, repetitions=1, max_runs=10**9)
        assert eventually(lambda: _state(pid) in ("gone", "Z"))
    assert t.connections_opened == 1


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return "gone"


def test_killed_server_gives_transport_error_not_hang(
    make: Maker, lab: SSHLab, tmp_path: Path
) -> None:
    server = lab.server("dies")
    kh = tmp_path / "dies_known_hosts"
    kh.write_text(server.known_hosts_line())
    t = make(server, "dies", python=sys.executable, known_hosts=str(kh))
    client = AgentClient.start(t, timeout=60)
    server.stop()  # listener, session and agent: gone, as on a power cut
    started = time.monotonic()
    with pytest.raises(TransportError) as err:
        client.request("hello", timeout=20)
    assert time.monotonic() - started < 10
    assert "'dies'" in str(err.value)
    with pytest.raises(TransportError):
        client.request("hello", timeout=20)
    client.close()
    # The transport reconnects on the next call, which now fails cleanly.
    with pytest.raises(TransportError, match="connection refused|no answer|not known"):
        t.run(["true"])


def test_frozen_server_times_out(make: Maker, lab: SSHLab, tmp_path: Path) -> None:
    import signal

    server = lab.server("hangs")
    kh = tmp_path / "hangs_known_hosts"
    kh.write_text(server.known_hosts_line())
    t = make(server, "hangs", python=sys.executable, known_hosts=str(kh), connect_timeout=1)
    client = AgentClient.start(t, timeout=60)
    server.signal_all(signal.SIGSTOP)  # alive for TCP, silent for SSH
    try:
        started = time.monotonic()
        with pytest.raises(TransportTimeout):
            client.request("hello", timeout=2)
        with pytest.raises(TransportError):
            t.run(["true"], timeout=2)
        client.close()
        t.close()
        assert time.monotonic() - started < 10
    finally:
        server.stop()


# --------------------------------------------------------------------------- ProxyJump


def test_proxy_jump(
    make: Maker, lab: SSHLab, server_a: SSHServer, server_b: SSHServer, tmp_path: Path
) -> None:
    t = make(server_b, "behind", proxy_jump=server_a.address)
    conn = t.run(["sh", "-c", 'echo "$SSH_CONNECTION"']).stdout.split()
    # client-ip client-port server-ip server-port, as B's sshd saw the connection
    assert conn[2:] == [server_b.host, str(server_b.port)]
    if lab.mode == "netns":
        assert conn[0] != server_a.host  # it came from A's side of the A-B link
        # The host has an "unreachable" route for B's subnet: no packet can leave.
        route = subprocess.run(["ip", "route", "get", server_b.host], capture_output=True)
        assert route.returncode != 0 and b"No route to host" in route.stderr
        with pytest.raises(TransportError, match="cannot connect .*No route to host"):
            make(server_b, "direct", connect_timeout=2).run(["true"])
    remote = t.push(Path(__file__), sha256_file(Path(__file__)))
    assert t.remote_sha256(remote) == sha256_file(Path(__file__))

    # The gateway's host key is checked too.
    kh = tmp_path / "only_b"
    kh.write_text(server_b.known_hosts_line())
    with pytest.raises(TransportError, match="gateway host key for .* is not known"):
        make(server_b, "gw-unknown", proxy_jump=server_a.address, known_hosts=str(kh)).run(["true"])


# --------------------------------------------------------------------------- provisioning


@pytest.mark.usefixtures("local_pip")
def test_setup_device_from_carried_wheels(make: Maker, server_a: SSHServer, tmp_path: Path) -> None:
    wheels = download_wheels(["six"], tmp_path / "wheels", platform=None, python_version=None)
    assert [w.name.split("-")[0] for w in wheels] == ["six"]
    t = make(server_a, "prov", python=sys.executable)
    result = setup_device(t, ["six"], tmp_path / "wheels")
    assert result["python"] == f"{t.workdir}/venv/bin/python"
    assert "six" in result["installed"]
    check = t.run([result["python"], "-c", "import six, sys; print(six.__version__, sys.prefix)"])
    assert check.returncode == 0, check.stderr
    version, prefix = check.stdout.split()
    assert version == result["installed"]["six"] and prefix == result["venv"]
    copied = t.files_copied
    again = setup_device(t, ["six"], tmp_path / "wheels")  # idempotent, nothing re-sent
    assert again["installed"] == result["installed"] and t.files_copied == copied


@pytest.mark.usefixtures("local_pip")
def test_setup_device_bootstraps_pip_from_its_wheel(
    make: Maker, server_a: SSHServer, tmp_path: Path
) -> None:
    # With a pip wheel among the wheels the venv is made --without-pip (no ensurepip
    # needed on the device) and pip is run from its wheel to install itself.
    wheels = download_wheels(["six", "pip"], tmp_path / "w", platform=None, python_version=None)
    assert sorted(w.name.split("-")[0] for w in wheels) == ["pip", "six"]
    t = make(server_a, "prov2", python=sys.executable)
    result = setup_device(t, ["six"], tmp_path / "w", venv=f"{t.workdir}/env")
    assert result["python"] == f"{t.workdir}/env/bin/python"
    pip_version = next(w.name.split("-")[1] for w in wheels if w.name.startswith("pip-"))
    assert result["installed"]["pip"] == pip_version
    assert "six" in result["installed"]
    assert t.run([result["python"], "-c", "import six"]).returncode == 0
