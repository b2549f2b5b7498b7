"""Android phones over ADB: a shell, files and streams, without Python on the device.

Two routes, chosen by the device's options:

* **through an adb server** (the usual lab set-up: phones on USB, or on Wi-Fi after
  ``adb connect``): option ``serial`` (``emulator-5554``, ``R58M...``,
  ``192.168.1.20:5555``; without options the device's address is the serial) and
  ``adb_server`` (``host:port``, default ``127.0.0.1:5037``). The transport speaks the
  server's host protocol itself (AOSP ``SERVICES.TXT``): each request is a 4-hex-digit
  length and the text, answered ``OKAY`` or ``FAIL`` + a 4-hex-digit length + message.
  Every command is one TCP connection to the server: ``host:transport:<serial>``, then
  the device service (``shell,v2,raw:<command>``, ``sync:``), after which the socket
  is that service's byte stream. ``host:devices-l`` turns a refusal into a clear
  "not found (the server lists ...) / unauthorized / offline" naming the serial. The
  ``adb`` binary is never run.
* **directly to adbd over TCP** (a phone in ``adb tcpip 5555`` mode, edgebench's
  emulated phone): option ``host`` (``host[:port]``, port 5555 by default) and
  ``adb_key`` (the RSA private key, default ``~/.android/adbkey``, the key the adb
  server uses, so a phone that trusts this computer trusts edgebench too). The
  handshake (CNXN, AUTH token signed with the key, or the public key offered for the
  user to accept) is adb-shell's (``AdbDevice`` over its ``TcpTransport``, i.e.
  ``AdbDeviceTcp``, and ``PythonRSASigner``). After it, this module runs the ADB
  wire protocol itself (AOSP ``protocol.txt``: OPEN / OKAY / WRTE / CLSE) with one
  reader thread that hands each packet to its stream, because adb-shell has neither
  shell protocol v2 (exit codes, separate stderr) nor concurrent streams, and the
  runner needs both (a power sampler and a kill run beside the benchmark). A missing
  key is an error unless ``generate_key=true`` (then adb-shell's ``keygen`` writes
  ``adbkey`` and ``adbkey.pub``). USB without an adb server (adb-shell's
  ``AdbDeviceUsb`` over libusb) is not supported: run an adb server for USB phones.

Both routes:

* ``run(argv, timeout)``: the command runs under the shell protocol v2 (Android 7+),
  so its exit code and stderr come back apart. argv is quoted with ``shlex.join`` for
  the device's ``sh`` (mksh: POSIX quoting); no shell string is built from input.
  The command is started as ``exec sh -c WRAPPER sh CWD ARGV...``: adbd starts each
  shell in a new session (setsid), and ``exec`` keeps that pid through ``sh`` and the
  command, so the pid the wrapper prints first (read and removed here) is the
  command's process group. A timeout kills the group (``kill -KILL -PGID``) through
  a second shell, then raises :class:`~devices.errors.TransportTimeout`.
* ``open_stream(argv)``: the same start, as a :class:`~devices.transport.Stream`
  (stdout lines, stdin writes, ``terminate`` kills the group), run in ``workdir``.
* ``push(local, sha256, name)``: content-addressed into
  ``<workdir>/artifacts/<sha256>/<name>`` over the sync service (``SEND`` to a
  temporary name, then ``mv``), skipped when ``sha256sum`` on the device already
  reports the hash, and verified after the copy. ``pull(remote, local)``: ``RECV``.
  ``stat(remote)``: ``STAT``.
* ``getprop()``: the system properties as a dict.

Errors are one line, name the device, and say what to do: no adb server / adbd at the
address (connection refused), the key refused ("accept the prompt on the phone"), the
serial unknown / unauthorized / offline, and a connection that dropped mid-command (a
:class:`~devices.errors.TransportError`; the scheduler retries the job).

Options (typed, :class:`AdbOptions`; unknown keys are refused) also carry what the
Android runner (``runners/android_runner.py``) reads: the benchmark tools to push, the
cool-down policy and the battery calibration overrides.
"""

from __future__ import annotations

import os
import posixpath
import queue
import re
import select
import shlex
import socket
import stat as stat_module
import struct
import threading
import time
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from devices.errors import CommandError, TransportError, TransportTimeout
from devices.transport import (
    CommandResult,
    DeviceConfig,
    DeviceOptions,
    Stream,
    Transport,
    register_transport,
)

DEFAULT_SERVER = "127.0.0.1:5037"
DEFAULT_ADBD_PORT = 5555
DEFAULT_KEY = "~/.android/adbkey"
DEFAULT_WORKDIR = "/data/local/tmp/edgebench"
ANDROID_ABIS = ("arm64-v8a", "armeabi-v7a", "x86_64", "x86")

# The only shell text the transport sends; user input travels as positional arguments.
WRAPPER = 'echo "edgebench-pid $$"; cd "$1" || exit 125; shift; exec "$@"'
KILL_GROUP = 'kill -KILL -"$1" 2>/dev/null || kill -KILL "$1"'
_PID_LINE = re.compile(rb"^edgebench-pid (\d+)\r?$")

_SYNC_DATA_MAX = 64 * 1024  # SYNC.TXT: a DATA chunk holds at most 64 KiB
_HASH_TIMEOUT_S = 300.0
_PUSH_MODE = 0o100644  # regular file, rw-r--r--; executables are chmod'ed by the runner

# Shell protocol v2 packet ids (AOSP adb/shell_protocol.h).
_SH_STDIN, _SH_STDOUT, _SH_STDERR, _SH_EXIT, _SH_CLOSE_STDIN = 0, 1, 2, 3, 4


def _tool_field(tool: str, abi: str) -> str:
    return f"{tool}_{abi.replace('-', '_')}"


class AdbOptions(DeviceOptions):
    """Options of an ``adb`` device (module doc). Exactly one route: ``serial`` (or the
    device address) through ``adb_server``, or ``host`` straight to adbd."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    serial: str | None = None
    adb_server: str = DEFAULT_SERVER
    host: str | None = None
    adb_key: str = DEFAULT_KEY
    generate_key: bool = False
    connect_timeout: float = Field(10.0, gt=0)
    workdir: str = DEFAULT_WORKDIR
    # Controller-side benchmark tools pushed before a job (any ABI, or per ABI).
    benchmark_model: str | None = None
    benchmark_model_arm64_v8a: str | None = Field(None, alias="benchmark_model_arm64-v8a")
    benchmark_model_armeabi_v7a: str | None = Field(None, alias="benchmark_model_armeabi-v7a")
    benchmark_model_x86_64: str | None = None
    benchmark_model_x86: str | None = None
    onnxruntime_perf_test: str | None = None
    onnxruntime_perf_test_arm64_v8a: str | None = Field(
        None, alias="onnxruntime_perf_test_arm64-v8a"
    )
    onnxruntime_perf_test_armeabi_v7a: str | None = Field(
        None, alias="onnxruntime_perf_test_armeabi-v7a"
    )
    onnxruntime_perf_test_x86_64: str | None = None
    onnxruntime_perf_test_x86: str | None = None
    # cooldown_below_c / cooldown_limit_s: DeviceOptions (every device with thermal zones).
    # Battery power calibration; "auto" infers it from the readings (runner doc).
    battery_current_unit: Literal["auto", "uA", "mA"] = "auto"
    battery_discharge_sign: Literal["auto", "positive", "negative"] = "auto"
    memory_poll_ms: int = Field(100, gt=0)

    @field_validator("workdir")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must be an absolute path on the phone, e.g. /data/local/tmp/x")
        return value.rstrip("/") or "/"

    @field_validator("adb_server")
    @classmethod
    def _hostport(cls, value: str) -> str:
        parse_hostport(value, 5037)
        return value

    @field_validator("host")
    @classmethod
    def _host(cls, value: str | None) -> str | None:
        if value is not None:
            parse_hostport(value, DEFAULT_ADBD_PORT)
        return value

    @model_validator(mode="after")
    def _one_route(self) -> AdbOptions:
        if self.serial and self.host:
            raise ValueError(
                "give either serial (through the adb server) or host (straight to adbd), not both"
            )
        return self

    def tool_path(self, tool: str, abi: str | None) -> str | None:
        """The controller-side path of ``tool`` for a phone with this ABI, if given."""
        if abi in ANDROID_ABIS:
            specific = getattr(self, _tool_field(tool, abi), None)
            if specific:
                return str(specific)
        general = getattr(self, tool, None)
        return str(general) if general else None


def parse_hostport(text: str, default_port: int) -> tuple[str, int]:
    """``host[:port]`` (``[v6]:port``) -> (host, port); ValueError naming the text."""
    raw = text.strip()
    if raw.startswith("["):
        host, bracket, rest = raw[1:].partition("]")
        port_text = rest[1:] if bracket and rest.startswith(":") else ""
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"bad address {text!r}; expected [ipv6]:port")
    elif raw.count(":") == 1:
        host, _, port_text = raw.partition(":")
    else:
        host, port_text = raw, ""
    if not host or any(c.isspace() for c in host):
        raise ValueError(f"no host in {text!r}; expected host[:port]")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"bad port {port_text!r} in {text!r}")
    return host, int(port_text)


def _reason(e: BaseException) -> str:
    text = (getattr(e, "strerror", None) or str(e)).strip() or type(e).__name__
    return text.splitlines()[0]


# --------------------------------------------------------------------------- channels


class _Channel(ABC):
    """One service's byte stream on the device (a shell, a sync session)."""

    @abstractmethod
    def send(self, data: bytes) -> None: ...

    @abstractmethod
    def recv(self, timeout: float | None) -> bytes:
        """Some bytes; ``b""`` when the device closed the stream. Raises
        :class:`TransportTimeout` when nothing came in time and
        :class:`TransportError` when the connection is gone."""

    @abstractmethod
    def close(self) -> None: ...


class _Reader:
    """Exact-size reads on top of a channel's chunks."""

    def __init__(self, channel: _Channel) -> None:
        self.channel = channel
        self._buf = bytearray()

    def read(self, n: int, deadline: float | None) -> bytes | None:
        """``n`` bytes, or None at a clean end of stream before any of them."""
        while len(self._buf) < n:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if left == 0.0:
                raise TransportTimeout("no data from the device in time")
            chunk = self.channel.recv(left)
            if not chunk:
                if self._buf:
                    raise TransportError(f"stream ended inside a {n}-byte record")
                return None
            self._buf += chunk
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out


class _SocketChannel(_Channel):
    """A service stream through the adb server: the socket itself after both OKAYs."""

    def __init__(self, sock: socket.socket, what: str) -> None:
        self.sock = sock
        self.what = what
        self._lock = threading.Lock()

    def send(self, data: bytes) -> None:
        with self._lock:
            try:
                self.sock.settimeout(60.0)
                self.sock.sendall(data)
            except OSError as e:
                raise TransportError(f"{self.what}: connection dropped ({_reason(e)})") from None

    def recv(self, timeout: float | None) -> bytes:
        try:
            ready, _, _ = select.select([self.sock], [], [], timeout)
        except (OSError, ValueError):
            raise TransportError(f"{self.what}: connection closed") from None
        if not ready:
            raise TransportTimeout(f"{self.what}: no data within {timeout:g} s")
        try:
            return self.sock.recv(1 << 16)
        except OSError as e:
            raise TransportError(f"{self.what}: connection dropped ({_reason(e)})") from None

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


# --------------------------------------------------------------------------- route: server


class _Route(ABC):
    @abstractmethod
    def open(self, service: str) -> _Channel: ...

    @abstractmethod
    def describe(self) -> str: ...

    def close(self) -> None:  # noqa: B027 - the server route holds nothing between calls
        pass


@dataclass(frozen=True)
class ServerDevice:
    """One line of ``host:devices-l``."""

    serial: str
    state: str  # device | unauthorized | offline | recovery | ...
    attributes: dict[str, str]


def parse_devices_l(text: str) -> list[ServerDevice]:
    """``host:devices-l`` (``SERIAL STATE key:value ...`` per line)."""
    out = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 2:
            continue
        attrs = dict(f.split(":", 1) for f in fields[2:] if ":" in f)
        out.append(ServerDevice(fields[0], fields[1], attrs))
    return out


class _ServerRoute(_Route):
    """Through an adb server's host protocol; one TCP connection per service."""

    def __init__(self, server: str, serial: str, device: str, timeout: float) -> None:
        self.server = server
        self.host, self.port = parse_hostport(server, 5037)
        self.serial = serial
        self.device = device
        self.timeout = timeout

    def describe(self) -> str:
        return f"{self.serial} via the adb server at {self.server}"

    def _err(self, message: str, timeout: bool = False) -> TransportError:
        cls = TransportTimeout if timeout else TransportError
        return cls(message, device=self.device)

    def _connect(self) -> socket.socket:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except ConnectionRefusedError:
            raise self._err(
                f"no adb server at {self.server} (connection refused); start one with "
                "`adb start-server` or set the option adb_server"
            ) from None
        except TimeoutError:
            raise self._err(f"the adb server at {self.server} did not answer", True) from None
        except OSError as e:
            raise self._err(f"cannot reach the adb server at {self.server}: {_reason(e)}") from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def _read_exact(self, sock: socket.socket, n: int) -> bytes:
        data = bytearray()
        while len(data) < n:
            try:
                chunk = sock.recv(n - len(data))
            except TimeoutError:
                raise self._err(
                    f"the adb server at {self.server} stopped answering", True
                ) from None
            except OSError as e:
                raise self._err(f"adb server connection dropped: {_reason(e)}") from None
            if not chunk:
                raise self._err(f"the adb server at {self.server} closed the connection")
            data += chunk
        return bytes(data)

    def _request(self, sock: socket.socket, text: str) -> str | None:
        """Send one request; None on OKAY, the server's message on FAIL."""
        payload = text.encode()
        try:
            sock.sendall(b"%04x" % len(payload) + payload)
        except OSError as e:
            raise self._err(f"adb server connection dropped: {_reason(e)}") from None
        status = self._read_exact(sock, 4)
        if status == b"OKAY":
            return None
        if status == b"FAIL":
            length = int(self._read_exact(sock, 4), 16)
            return self._read_exact(sock, length).decode("utf-8", "replace")
        raise self._err(f"the adb server at {self.server} answered {status!r} to {text!r}")

    def query(self, request: str) -> str:
        """A ``host:`` request answered with a length-prefixed text."""
        sock = self._connect()
        try:
            failed = self._request(sock, request)
            if failed is not None:
                raise self._err(f"adb server refused {request}: {failed}")
            return self._read_exact(sock, int(self._read_exact(sock, 4), 16)).decode()
        finally:
            sock.close()

    def devices(self) -> list[ServerDevice]:
        return parse_devices_l(self.query("host:devices-l"))

    def version(self) -> int:
        return int(self.query("host:version"), 16)

    def _refused(self, message: str) -> TransportError:
        first = message.strip().splitlines()[0] if message.strip() else "refused"
        if "unauthorized" in message:
            return self._err(
                f"device {self.serial!r} is unauthorized: accept the 'Allow USB debugging?' "
                "prompt on the phone for this computer's adb key, then retry"
            )
        if "offline" in message:
            return self._err(
                f"device {self.serial!r} is offline: replug it or run `adb reconnect`, "
                "and check that the phone is unlocked"
            )
        if "not found" in message:
            try:
                listed = ", ".join(f"{d.serial} ({d.state})" for d in self.devices()) or "none"
            except TransportError:
                listed = "unknown"
            return self._err(
                f"device {self.serial!r} not found by the adb server at {self.server} (it "
                f"lists: {listed}); check the cable, or `adb connect HOST:PORT` for Wi-Fi"
            )
        return self._err(f"the adb server refused device {self.serial!r}: {first}")

    def open(self, service: str) -> _Channel:
        sock = self._connect()
        try:
            failed = self._request(sock, f"host:transport:{self.serial}")
            if failed is not None:
                raise self._refused(failed)
            failed = self._request(sock, service)
            if failed is not None:
                raise self._err(
                    f"{self.serial} refused service {service.split(':')[0]}: "
                    f"{failed.strip().splitlines()[0] if failed.strip() else '?'}"
                )
        except BaseException:
            sock.close()
            raise
        sock.settimeout(None)
        return _SocketChannel(sock, f"{self.serial} via {self.server}")


# --------------------------------------------------------------------------- route: adbd


_A_SYNC, _A_CNXN, _A_OPEN, _A_OKAY, _A_CLSE, _A_WRTE, _A_AUTH = (
    0x434E5953,
    0x4E584E43,
    0x4E45504F,
    0x59414B4F,
    0x45534C43,
    0x45545257,
    0x48545541,
)
_HEADER = struct.Struct("<6I")


def _message(command: int, arg0: int, arg1: int, data: bytes = b"") -> bytes:
    # The data checksum is still sent: adbd older than protocol 0x01000001 checks it.
    return (
        _HEADER.pack(command, arg0, arg1, len(data), sum(data) & 0xFFFFFFFF, command ^ 0xFFFFFFFF)
        + data
    )


class _AdbdStream(_Channel):
    """One OPENed stream on a direct adbd connection."""

    _EOF = b""

    def __init__(self, conn: _AdbdConnection, local_id: int, what: str) -> None:
        self.conn = conn
        self.local_id = local_id
        self.remote_id = 0
        self.what = what
        self.incoming: queue.Queue[bytes | None] = queue.Queue()  # None: connection lost
        self.ready = threading.Event()  # the device acknowledged our last WRTE (or OPEN)
        self.opened = threading.Event()
        self.refused = False
        self.closed = False
        self._send_lock = threading.Lock()

    def send(self, data: bytes) -> None:
        with self._send_lock:
            for i in range(0, len(data), self.conn.max_payload) or [0]:
                chunk = data[i : i + self.conn.max_payload]
                # protocol.txt: one WRTE in flight per stream until the device's OKAY
                deadline = time.monotonic() + 60.0
                while not self.ready.wait(0.5):
                    self._check(deadline)
                self._check(deadline)
                self.ready.clear()
                self.conn.write(_message(_A_WRTE, self.local_id, self.remote_id, chunk))

    def _check(self, deadline: float) -> None:
        if self.conn.lost is not None:
            raise TransportError(f"{self.what}: connection dropped ({self.conn.lost})")
        if self.closed:
            raise TransportError(f"{self.what}: the device closed the stream")
        if time.monotonic() > deadline:
            raise TransportTimeout(f"{self.what}: the device stopped reading")

    def recv(self, timeout: float | None) -> bytes:
        try:
            item = self.incoming.get(timeout=timeout)
        except queue.Empty:
            raise TransportTimeout(f"{self.what}: no data within {timeout:g} s") from None
        if item is None:
            self.incoming.put(None)
            raise TransportError(f"{self.what}: connection dropped ({self.conn.lost})")
        if item == self._EOF:
            self.incoming.put(self._EOF)
        return item

    def close(self) -> None:
        self.incoming.put(self._EOF)  # a reader blocked on this stream sees its end
        if not self.closed:
            self.closed = True
            if self.conn.lost is None and self.opened.is_set():
                try:
                    self.conn.write(_message(_A_CLSE, self.local_id, self.remote_id))
                except TransportError:
                    pass  # the connection is gone: nothing to close
        self.conn.forget(self.local_id)


class _AdbdConnection:
    """One authenticated TCP connection to adbd, its packets routed by a reader thread."""

    def __init__(self, host: str, port: int, signer: Any, timeout: float, what: str) -> None:
        from adb_shell.adb_device import AdbDevice
        from adb_shell.exceptions import AdbTimeoutError, DeviceAuthError, TcpTimeoutException
        from adb_shell.transport.tcp_transport import TcpTransport

        self.what = what
        self.lost: str | None = None
        self.max_payload = 4096
        self._streams: dict[int, _AdbdStream] = {}
        self._next_id = 1
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        # AdbDeviceTcp is exactly AdbDevice over a TcpTransport; holding the transport
        # lets the reader below take the connection over after adb-shell's handshake.
        self._tcp = TcpTransport(host, port)
        handshake = AdbDevice(self._tcp, default_transport_timeout_s=timeout, banner="edgebench")
        try:
            handshake.connect(
                rsa_keys=[signer], transport_timeout_s=timeout, auth_timeout_s=timeout,
                read_timeout_s=timeout,
            )  # fmt: skip
        except ConnectionRefusedError:
            raise TransportError(
                f"no adbd at {what} (connection refused); on the phone run `adb tcpip "
                f"{port}` over USB first, or check host/port"
            ) from None
        except (DeviceAuthError, AdbTimeoutError, TcpTimeoutException) as e:
            self._tcp.close()
            raise TransportError(
                f"adbd at {what} did not accept the key ({_reason(e)}): accept the 'Allow "
                "USB debugging?' prompt on the phone, or add adbkey.pub to "
                "/data/misc/adb/adb_keys"
            ) from None
        except OSError as e:
            self._tcp.close()
            raise TransportError(f"cannot connect to adbd at {what}: {_reason(e)}") from None
        # Payloads up to half the device's maxdata, as adb-shell's own chunks.
        self.max_payload = max(1024, handshake.max_chunk_size)
        self._sock: socket.socket = self._tcp._connection  # noqa: SLF001 - see above
        self._sock.setblocking(True)
        self._sock.settimeout(None)
        self._reader = threading.Thread(target=self._read_loop, daemon=True)
        self._reader.start()

    # -- wire
    def write(self, data: bytes) -> None:
        with self._write_lock:
            if self.lost is not None:
                raise TransportError(f"{self.what}: connection dropped ({self.lost})")
            try:
                self._sock.sendall(data)
            except OSError as e:
                self._lose(_reason(e))
                raise TransportError(f"{self.what}: connection dropped ({self.lost})") from None

    def _read_exact(self, n: int) -> bytes:
        data = bytearray()
        while len(data) < n:
            chunk = self._sock.recv(n - len(data))
            if not chunk:
                raise ConnectionResetError("adbd closed the connection")
            data += chunk
        return bytes(data)

    def _read_loop(self) -> None:
        try:
            while True:
                command, arg0, arg1, length, _check, _magic = _HEADER.unpack(self._read_exact(24))
                data = self._read_exact(length) if length else b""
                self._dispatch(command, arg0, arg1, data)
        except (OSError, struct.error, ValueError) as e:
            self._lose(_reason(e))

    def _dispatch(self, command: int, arg0: int, arg1: int, data: bytes) -> None:
        with self._lock:
            stream = self._streams.get(arg1)
        if command == _A_AUTH or command == _A_CNXN:
            self._lose("adbd restarted the connection")
            return
        if stream is None:
            if command == _A_WRTE:  # a stream we have forgotten: tell adbd it is closed
                self.write(_message(_A_CLSE, 0, arg0))
            return
        if command == _A_OKAY:
            stream.remote_id = arg0
            stream.opened.set()
            stream.ready.set()
        elif command == _A_WRTE:
            stream.incoming.put(data)
            self.write(_message(_A_OKAY, stream.local_id, arg0))
        elif command == _A_CLSE:
            stream.refused = not stream.opened.is_set()
            stream.closed = True
            stream.opened.set()
            stream.incoming.put(_AdbdStream._EOF)

    def _lose(self, reason: str) -> None:
        with self._lock:
            if self.lost is None:
                self.lost = reason
            streams = list(self._streams.values())
        for s in streams:
            s.incoming.put(None)
            s.opened.set()
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # -- streams
    def open(self, service: str, timeout: float) -> _AdbdStream:
        with self._lock:
            local_id = self._next_id
            self._next_id += 1
            stream = _AdbdStream(self, local_id, f"{self.what} {service.split(':')[0]}")
            self._streams[local_id] = stream
        self.write(_message(_A_OPEN, local_id, 0, service.encode() + b"\0"))
        if not stream.opened.wait(timeout):
            stream.close()
            raise TransportTimeout(f"{self.what}: adbd did not open {service.split(':')[0]}")
        if self.lost is not None:
            raise TransportError(f"{self.what}: connection dropped ({self.lost})")
        if stream.refused:
            self.forget(local_id)
            raise TransportError(f"adbd at {self.what} refused service {service.split(':')[0]}")
        return stream

    def forget(self, local_id: int) -> None:
        with self._lock:
            self._streams.pop(local_id, None)

    def close(self) -> None:
        self._lose("closed")
        self._sock.close()


class _DirectRoute(_Route):
    def __init__(
        self, hostport: str, key: Path, generate: bool, device: str, timeout: float
    ) -> None:
        self.hostport = hostport
        self.host, self.port = parse_hostport(hostport, DEFAULT_ADBD_PORT)
        self.key = key
        self.generate = generate
        self.device = device
        self.timeout = timeout
        self._conn: _AdbdConnection | None = None
        self._lock = threading.Lock()

    def describe(self) -> str:
        return f"adbd at {self.host}:{self.port}"

    def _signer(self) -> Any:
        try:
            from adb_shell.auth.keygen import keygen
            from adb_shell.auth.sign_pythonrsa import PythonRSASigner
        except ImportError as e:
            raise TransportError(
                f"the direct adbd route needs adb-shell with rsa ({e}); pip install "
                "adb-shell==0.4.4, or use an adb server (option serial)",
                device=self.device,
            ) from None
        if not self.key.is_file():
            if not self.generate:
                raise TransportError(
                    f"no adb key at {self.key}: set adb_key=PATH to an existing adbkey, or "
                    "generate_key=true to create one (the phone must then accept it)",
                    device=self.device,
                )
            self.key.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            keygen(str(self.key))
        try:
            return PythonRSASigner.FromRSAKeyPath(str(self.key))
        except (OSError, ValueError) as e:
            raise TransportError(
                f"cannot read the adb key {self.key}: {_reason(e)}", device=self.device
            ) from None

    def connection(self) -> _AdbdConnection:
        with self._lock:
            if self._conn is None or self._conn.lost is not None:
                try:
                    self._conn = _AdbdConnection(
                        self.host, self.port, self._signer(), self.timeout,
                        f"{self.host}:{self.port}",
                    )  # fmt: skip
                except TransportError as e:
                    if e.device:
                        raise
                    raise TransportError(str(e), device=self.device) from None
            return self._conn

    def open(self, service: str) -> _Channel:
        try:
            return self.connection().open(service, self.timeout)
        except TransportError as e:
            if e.device:
                raise
            raise type(e)(str(e), device=self.device) from None

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


# --------------------------------------------------------------------------- shell v2


class _ShellV2:
    """Packets of the shell protocol v2 on a channel: id (1 byte), length (LE u32), data."""

    def __init__(self, channel: _Channel) -> None:
        self.channel = channel
        self._reader = _Reader(channel)

    def read(self, deadline: float | None) -> tuple[int, bytes] | None:
        head = self._reader.read(5, deadline)
        if head is None:
            return None
        kind, length = head[0], struct.unpack("<I", head[1:])[0]
        body = self._reader.read(length, deadline) if length else b""
        if body is None:
            raise TransportError("stream ended inside a shell packet")
        return kind, body

    def write(self, kind: int, data: bytes = b"") -> None:
        self.channel.send(bytes([kind]) + struct.pack("<I", len(data)) + data)


class AdbProcess(Stream):
    """A command on the phone as a line stream (see the module doc)."""

    def __init__(
        self, owner: AdbTransport, shell: _ShellV2, pid: int, argv: list[str], early: bytes
    ) -> None:
        self._owner = owner
        self._shell = shell
        self.pid = pid
        self.argv = argv
        self._exit: int | None = None
        self._done = threading.Event()
        self._lost: str | None = None
        self._terminated = False
        out_r, self._out_w = os.pipe()
        err_r, self._err_w = os.pipe()
        if early:
            os.write(self._out_w, early)
        self._start_readers(os.fdopen(out_r, "rb"), os.fdopen(err_r, "rb"))
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        try:
            while True:
                packet = self._shell.read(None)
                if packet is None:
                    break
                kind, data = packet
                if kind == _SH_STDOUT:
                    os.write(self._out_w, data)
                elif kind == _SH_STDERR:
                    os.write(self._err_w, data)
                elif kind == _SH_EXIT:
                    self._exit = data[0] if data else -1
                    break
        except TransportError as e:
            self._lost = str(e)
        except OSError:
            pass  # our pipe's reader went away: nobody is listening
        finally:
            if self._exit is None and self._lost is None and not self._terminated:
                self._lost = "the stream ended without an exit status"
            for fd in (self._out_w, self._err_w):
                try:
                    os.close(fd)
                except OSError:
                    pass
            self._done.set()

    def write_line(self, line: str) -> None:
        if self._done.is_set():
            raise TransportError(
                f"{self.argv[0]} is gone (exit {self._exit}): {self.stderr_tail()[-300:]}",
                device=self._owner.device.name,
            )
        try:
            self._shell.write(_SH_STDIN, line.encode() + b"\n")
        except TransportError as e:
            raise TransportError(
                f"cannot write to {self.argv[0]}: {e}", device=self._owner.device.name
            ) from None

    def read_line(self, timeout: float) -> str | None:
        line = super().read_line(timeout)
        if line is None and not self._terminated:
            self._done.wait(2.0)
            if self._lost is not None:
                raise TransportError(
                    f"connection to {self._owner.route.describe()} dropped while "
                    f"{self.argv[0]} was running ({self._lost})",
                    device=self._owner.device.name,
                )
        return line

    def terminate(self) -> None:
        if self._terminated:
            return
        self._terminated = True
        if not self._done.is_set():
            self._owner.kill_group(self.pid)
            self._done.wait(2.0)
        self._shell.channel.close()

    def wait(self, timeout: float) -> int | None:
        """Exit code; -1 when the connection was lost (or the process was killed)."""
        if not self._done.wait(timeout):
            return None
        return self._exit if self._exit is not None else -1

    @property
    def lost(self) -> str | None:
        return self._lost


# --------------------------------------------------------------------------- transport


@register_transport("adb")
class AdbTransport(Transport):
    """An Android device over ADB (module doc). Not a PosixHost: the phone runs
    commands and keeps files, but has no Python for the agent."""

    Options: ClassVar[type[DeviceOptions]] = AdbOptions
    options: AdbOptions

    def __init__(self, device: DeviceConfig, workspace: Path) -> None:
        super().__init__(device, workspace)
        o = self.options
        if o.host:
            self.route: _Route = _DirectRoute(
                o.host, Path(o.adb_key).expanduser(), o.generate_key, device.name,
                o.connect_timeout,
            )  # fmt: skip
        else:
            serial = o.serial or device.address.strip()
            if not serial:
                raise TransportError(
                    "no serial: give option serial=SERIAL (see `adb devices`) or "
                    "host=HOST[:PORT] for adbd over TCP",
                    device=device.name,
                )
            self.route = _ServerRoute(o.adb_server, serial, device.name, o.connect_timeout)
        self.files_copied = 0
        self._workdir_made = False

    @property
    def workdir(self) -> str:
        return self.options.workdir

    def _err(self, message: str, timeout: bool = False) -> TransportError:
        return (TransportTimeout if timeout else TransportError)(message, device=self.device.name)

    # ------------------------------------------------------------------ commands

    def _open_shell(
        self, argv: list[str], cwd: str, deadline: float
    ) -> tuple[_ShellV2, int, bytes]:
        """Start ``argv`` under the wrapper; the shell, the pid and stdout read past it."""
        if not argv or not all(isinstance(a, str) for a in argv):
            raise ValueError(f"argv must be a non-empty list of strings, not {argv!r}")
        command = shlex.join(["exec", "sh", "-c", WRAPPER, "sh", cwd, *argv])
        shell = _ShellV2(self.route.open(f"shell,v2,raw:{command}"))
        stdout = bytearray()
        stderr = bytearray()
        try:
            while b"\n" not in stdout:
                packet = self._read(shell, deadline, argv)
                if packet is None or packet[0] == _SH_EXIT:
                    code = packet[1][0] if packet and packet[1] else None
                    raise self._err(
                        f"cannot start {argv[0]} (exit {code}): "
                        f"{stderr.decode('utf-8', 'replace').strip()[-300:] or 'no output'}"
                    )
                kind, data = packet
                (stdout if kind == _SH_STDOUT else stderr).extend(data)
        except BaseException:
            shell.channel.close()
            raise
        first, _, rest = bytes(stdout).partition(b"\n")
        match = _PID_LINE.match(first)
        if match is None:
            shell.channel.close()
            raise self._err(f"the phone's shell did not run the command wrapper: {first[:200]!r}")
        return shell, int(match.group(1)), rest

    def _read(
        self, shell: _ShellV2, deadline: float | None, argv: list[str]
    ) -> tuple[int, bytes] | None:
        try:
            return shell.read(deadline)
        except TransportTimeout:
            raise
        except TransportError as e:
            raise self._err(
                f"connection to {self.route.describe()} dropped while running {argv[0]} "
                f"({str(e).split(': ', 1)[-1]})"
            ) from None

    def run(self, argv: list[str], timeout: float = 60.0) -> CommandResult:
        deadline = time.monotonic() + timeout
        try:
            shell, pid, early = self._open_shell(argv, "/", deadline)
        except TransportTimeout:
            raise self._err(f"{argv[0]} did not start within {timeout:g} s", True) from None
        out, err = bytearray(early), bytearray()
        code: int | None = None
        try:
            shell.write(_SH_CLOSE_STDIN)  # stdin at EOF: a command that reads it ends
            while True:
                try:
                    packet = self._read(shell, deadline, argv)
                except TransportTimeout:
                    self.kill_group(pid)
                    raise self._err(
                        f"{argv[0]} did not finish within {timeout:g} s; its process group "
                        "was killed",
                        True,
                    ) from None
                if packet is None:
                    raise self._err(
                        f"connection to {self.route.describe()} dropped while running "
                        f"{argv[0]} (no exit status)"
                    )
                kind, data = packet
                if kind == _SH_STDOUT:
                    out += data
                elif kind == _SH_STDERR:
                    err += data
                elif kind == _SH_EXIT:
                    code = data[0] if data else -1
                    break
        finally:
            shell.channel.close()
        return CommandResult(
            list(argv), code, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
        )

    def check(self, argv: list[str], timeout: float = 60.0) -> str:
        """``run`` that raises :class:`CommandError` on a non-zero exit; its stdout."""
        done = self.run(argv, timeout)
        if done.returncode != 0:
            raise CommandError(argv, done.returncode, done.stderr, device=self.device.name)
        return done.stdout

    def open_stream(self, argv: list[str]) -> AdbProcess:
        self._ensure_workdir()
        deadline = time.monotonic() + self.options.connect_timeout * 3
        shell, pid, early = self._open_shell(argv, self.workdir, deadline)
        return AdbProcess(self, shell, pid, list(argv), early)

    def kill_group(self, pgid: int) -> None:
        """SIGKILL a process group on the phone through a second shell; best effort."""
        if pgid <= 1:  # never kill -1 / -0
            return
        try:
            self.run(["sh", "-c", KILL_GROUP, "sh", str(pgid)], self.options.connect_timeout)
        except TransportError:
            pass  # the connection is gone: adbd ends the shell's session with it

    def _ensure_workdir(self) -> None:
        if not self._workdir_made:
            self.check(["mkdir", "-p", self.workdir], self.options.connect_timeout * 3)
            self._workdir_made = True

    def getprop(self) -> dict[str, str]:
        """System properties (``getprop``: ``[key]: [value]`` lines)."""
        out = self.check(["getprop"], 30)
        return dict(re.findall(r"^\[([^\]]+)\]: \[(.*)\]\s*$", out, flags=re.M))

    # ------------------------------------------------------------------ files

    def remote_sha256(self, remote_path: str) -> str | None:
        done = self.run(["sha256sum", remote_path], _HASH_TIMEOUT_S)
        if done.returncode == 127:
            raise self._err("the phone has no sha256sum (toybox on Android 8+ has it)")
        if done.returncode != 0:
            return None
        first = done.stdout.strip().split()[0].lstrip("\\") if done.stdout.strip() else ""
        return first.lower() if re.fullmatch(r"[0-9a-fA-F]{64}", first) else None

    def push(self, local: Path, sha256: str, name: str | None = None) -> str:
        """Put a content-addressed file on the phone once; return its path there."""
        remote = f"{self.workdir}/artifacts/{sha256}/{name or local.name}"
        if self.remote_sha256(remote) == sha256:
            return remote
        self.check(["mkdir", "-p", posixpath.dirname(remote)], 60)
        tmp = f"{remote}.part-{uuid.uuid4().hex[:12]}"
        try:
            self._sync_send(local, tmp)
            self.check(["mv", "-f", tmp, remote], 60)  # never leave half a file named right
        except TransportError:
            try:
                self.run(["rm", "-f", tmp], 30)
            except TransportError:
                pass
            raise
        got = self.remote_sha256(remote)
        if got != sha256:
            raise self._err(
                f"pushed {local.name} but the phone reports sha256 {got}, expected {sha256}"
            )
        self.files_copied += 1
        return remote

    def _sync(self) -> tuple[_Channel, _Reader]:
        channel = self.route.open("sync:")
        return channel, _Reader(channel)

    def _sync_send(self, local: Path, remote: str) -> None:
        channel, reader = self._sync()
        try:
            spec = f"{remote},{_PUSH_MODE}".encode()
            channel.send(b"SEND" + struct.pack("<I", len(spec)) + spec)
            with open(local, "rb") as f:
                for block in iter(lambda: f.read(_SYNC_DATA_MAX), b""):
                    channel.send(b"DATA" + struct.pack("<I", len(block)) + block)
            channel.send(b"DONE" + struct.pack("<I", int(time.time())))
            reply = reader.read(8, time.monotonic() + 120)
            if reply is None:
                raise self._err(f"the phone closed the sync session while receiving {local.name}")
            if reply[:4] == b"FAIL":
                text = reader.read(struct.unpack("<I", reply[4:])[0], time.monotonic() + 30)
                raise self._err(f"cannot write {remote}: {(text or b'').decode(errors='replace')}")
            if reply[:4] != b"OKAY":
                raise self._err(f"unexpected sync reply {reply[:4]!r} to SEND {remote}")
            channel.send(b"QUIT" + struct.pack("<I", 0))
        except TransportTimeout:
            raise
        except TransportError as e:
            if e.device:
                raise
            raise self._err(f"connection dropped while pushing {local.name} ({e})") from None
        finally:
            channel.close()

    def stat(self, remote: str) -> tuple[int, int, int] | None:
        """(mode, size, mtime) of a path on the phone, or None when it is not there."""
        channel, reader = self._sync()
        try:
            path = remote.encode()
            channel.send(b"STAT" + struct.pack("<I", len(path)) + path)
            reply = reader.read(16, time.monotonic() + 30)
            if reply is None or reply[:4] != b"STAT":
                raise self._err(f"unexpected sync reply to STAT {remote}")
            mode, size, mtime = struct.unpack("<III", reply[4:])
            channel.send(b"QUIT" + struct.pack("<I", 0))
        finally:
            channel.close()
        return None if mode == 0 else (mode, size, mtime)

    def pull(self, remote: str, local: Path) -> None:
        """Copy a file from the phone (written to ``local`` atomically)."""
        channel, reader = self._sync()
        tmp = local.with_name(local.name + ".part")
        try:
            path = remote.encode()
            channel.send(b"RECV" + struct.pack("<I", len(path)) + path)
            with open(tmp, "wb") as f:
                while True:
                    head = reader.read(8, time.monotonic() + 120)
                    if head is None:
                        raise self._err(f"the phone closed the sync session during {remote}")
                    kind, length = head[:4], struct.unpack("<I", head[4:])[0]
                    if kind == b"DONE":
                        break
                    body = reader.read(length, time.monotonic() + 120) if length else b""
                    if kind == b"FAIL":
                        raise self._err(
                            f"cannot read {remote}: {(body or b'').decode(errors='replace')}"
                        )
                    if kind != b"DATA":
                        raise self._err(f"unexpected sync reply {kind!r} while pulling {remote}")
                    f.write(body or b"")
            os.replace(tmp, local)
            channel.send(b"QUIT" + struct.pack("<I", 0))
        except TransportTimeout:
            raise
        except TransportError as e:
            if e.device:
                raise
            raise self._err(f"connection dropped while pulling {remote} ({e})") from None
        finally:
            channel.close()
            tmp.unlink(missing_ok=True)

    def is_executable(self, remote: str) -> bool:
        found = self.stat(remote)
        return found is not None and stat_module.S_ISREG(found[0]) and bool(found[0] & 0o111)

    # ------------------------------------------------------------------ lifetime

    def close(self) -> None:
        self.route.close()


# --------------------------------------------------------------------------- facts

# Set by edgebench's emulated phone (devices/emulators/adbd.py).
EMULATED_PROPERTY = "edgebench.emulated"
BATTERY_DIR = "/sys/class/power_supply/battery"

# One shell round trip for the sysfs/procfs facts; it takes no input.
_FACTS_SCRIPT = f"""\
echo "== meminfo"; cat /proc/meminfo 2>/dev/null
echo "== cpus"
for d in /sys/devices/system/cpu/cpu[0-9]*; do
  f="$d/cpufreq/cpuinfo_max_freq"
  if [ -r "$f" ]; then echo "${{d##*cpu}} $(cat "$f")"; else echo "${{d##*cpu}} -"; fi
done
echo "== thermal"
{{THERMAL}}
echo "== battery"
for k in present status capacity current_now voltage_now temp; do
  [ -r {BATTERY_DIR}/$k ] && echo "$k $(cat {BATTERY_DIR}/$k 2>/dev/null)"
done
"""
_THERMAL_SCRIPT = """\
for z in /sys/class/thermal/thermal_zone*; do
  [ -r "$z/temp" ] && echo "${z##*/} $(cat "$z/temp" 2>/dev/null) $(cat "$z/type" 2>/dev/null)"
done
"""
_FACTS_SCRIPT = _FACTS_SCRIPT.replace("{THERMAL}", _THERMAL_SCRIPT.strip())


def _sections(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    current = ""
    for line in text.splitlines():
        if line.startswith("== "):
            current = line[3:].strip()
            out[current] = []
        elif current:
            out[current].append(line)
    return out


def _millidegrees(raw: str) -> float | None:
    """A thermal zone's ``temp``: millidegrees C on every current kernel, whole degrees
    on a few old ones; the disabled-sensor markers (-273000, huge values) are None."""
    try:
        value = float(raw)
    except ValueError:
        return None
    celsius = value / 1000.0 if abs(value) >= 1000 else value
    return celsius if -40.0 <= celsius <= 200.0 else None


def parse_thermal(lines: list[str]) -> dict[str, dict[str, Any]]:
    """``zone temp type`` lines -> {zone: {"type": type, "temp_c": degrees}}."""
    zones: dict[str, dict[str, Any]] = {}
    for line in lines:
        fields = line.split(maxsplit=2)
        if len(fields) < 2:
            continue
        temp = _millidegrees(fields[1])
        if temp is not None:
            zones[fields[0]] = {
                "type": fields[2].strip() if len(fields) > 2 else "",
                "temp_c": temp,
            }
    return zones


def read_thermal(transport: AdbTransport) -> dict[str, dict[str, Any]]:
    """The phone's thermal zones now: {zone: {"type", "temp_c"}}."""
    return parse_thermal(transport.check(["sh", "-c", _THERMAL_SCRIPT], 30).splitlines())


def zone_temperatures(zones: dict[str, dict[str, Any]]) -> dict[str, float]:
    """{"zone (type)": degrees C}, the shape runners/cooldown.py reads."""
    return {f"{z} ({v['type']})" if v["type"] else z: float(v["temp_c"]) for z, v in zones.items()}


def cpu_clusters(max_khz: dict[int, int | None]) -> list[dict[str, Any]]:
    """Cores grouped by their maximum frequency, slowest group first."""
    groups: dict[int, list[int]] = {}
    for cpu, khz in max_khz.items():
        groups.setdefault(khz or 0, []).append(cpu)
    return [
        {"max_khz": khz or None, "cpus": sorted(cpus), "mask": cpu_mask(cpus)}
        for khz, cpus in sorted(groups.items())
    ]


def cpu_mask(cpus: list[int]) -> str:
    """taskset's hex mask of these cores."""
    return format(sum(1 << c for c in cpus), "x")


def big_little(clusters: list[dict[str, Any]]) -> dict[str, list[int]]:
    """``little`` = the slowest cluster, ``big`` = every other core (big and prime
    cores on tri-cluster SoCs). A phone whose cores all share one maximum frequency
    has no split: both are every core."""
    every = sorted(c for cl in clusters for c in cl["cpus"])
    if len(clusters) < 2:
        return {"big": every, "little": every}
    little = list(clusters[0]["cpus"])
    return {"big": [c for c in every if c not in little], "little": little}


_DUMPSYS_STATUS = {"2": "Charging", "3": "Discharging", "4": "Not charging", "5": "Full"}


def parse_dumpsys_battery(text: str) -> dict[str, Any]:
    """``dumpsys battery``: level, status, powered flags, voltage (mV), temperature."""
    values = dict(re.findall(r"^\s*([A-Za-z][\w ]*?):\s*(.*?)\s*$", text, flags=re.M))
    powered = [k.split()[0] for k in values if k.endswith("powered") and values[k] == "true"]
    out: dict[str, Any] = {"source": "dumpsys battery"}
    if values.get("level", "").isdigit():
        out["level_pct"] = int(values["level"])
    if "status" in values:
        out["status"] = _DUMPSYS_STATUS.get(values["status"], values["status"])
    if values.get("voltage", "").isdigit():
        out["voltage_v"] = int(values["voltage"]) / 1000.0
    if re.fullmatch(r"-?\d+", values.get("temperature", "")):
        out["temp_c"] = int(values["temperature"]) / 10.0
    out["powered_by"] = powered
    out["charging"] = out.get("status") in ("Charging", "Full") or bool(powered)
    return out


def parse_battery_sysfs(lines: list[str]) -> dict[str, Any] | None:
    values = dict(line.split(" ", 1) for line in lines if " " in line)
    if not values:
        return None
    out: dict[str, Any] = {"source": BATTERY_DIR}
    if values.get("capacity", "").strip().isdigit():
        out["level_pct"] = int(values["capacity"])
    if "status" in values:
        out["status"] = values["status"].strip()
        out["charging"] = out["status"] in ("Charging", "Full")
    for key in ("current_now", "voltage_now"):
        if re.fullmatch(r"-?\d+", values.get(key, "").strip()):
            out[key] = int(values[key])
    if re.fullmatch(r"-?\d+", values.get("temp", "").strip()):
        out["temp_c"] = int(values["temp"]) / 10.0  # power_supply temp: tenths of a degree
    out["current_sensor"] = "current_now" in out and "voltage_now" in out
    return out


def read_battery(transport: AdbTransport) -> dict[str, Any] | None:
    """Battery state from sysfs, else ``dumpsys battery``; None when neither answers."""
    lines = transport.run(["sh", "-c", _FACTS_SCRIPT], 30).stdout
    battery = parse_battery_sysfs(_sections(lines).get("battery", []))
    if battery is not None:
        return battery
    done = transport.run(["dumpsys", "battery"], 30)
    return parse_dumpsys_battery(done.stdout) if done.returncode == 0 and done.stdout else None


def _int(text: str) -> int | None:
    return int(text) if re.fullmatch(r"\d+", text.strip()) else None


def probe_android(transport: AdbTransport) -> dict[str, Any]:
    """What the phone says it is (``edgebench device check``)."""
    props = transport.getprop()
    sections = _sections(transport.check(["sh", "-c", _FACTS_SCRIPT], 60))
    meminfo = dict(
        (k, int(v))
        for k, v in re.findall(r"^(\w+):\s+(\d+) kB", "\n".join(sections.get("meminfo", [])), re.M)
    )
    max_khz: dict[int, int | None] = {}
    for line in sections.get("cpus", []):
        cpu, _, khz = line.partition(" ")
        if cpu.isdigit():
            max_khz[int(cpu)] = _int(khz)
    clusters = cpu_clusters(max_khz)
    battery = parse_battery_sysfs(sections.get("battery", []))
    if battery is None:
        done = transport.run(["dumpsys", "battery"], 30)
        if done.returncode == 0 and done.stdout.strip():
            battery = parse_dumpsys_battery(done.stdout)
    thermal = parse_thermal(sections.get("thermal", []))
    abi = props.get("ro.product.cpu.abi") or None
    sdk = props.get("ro.build.version.sdk", "")
    facts: dict[str, Any] = {
        "os": "android",
        "transport": "adb",
        "route": transport.route.describe(),
        "hostname": props.get("ro.serialno") or props.get("net.hostname") or transport.device.name,
        "board_model": props.get("ro.product.model") or None,
        "manufacturer": props.get("ro.product.manufacturer") or None,
        "soc": props.get("ro.soc.model")
        or props.get("ro.board.platform")
        or props.get("ro.hardware")
        or None,
        "soc_manufacturer": props.get("ro.soc.manufacturer") or None,
        "arch": abi,
        "abis": [a for a in props.get("ro.product.cpu.abilist", abi or "").split(",") if a],
        "android_version": props.get("ro.build.version.release") or None,
        "sdk": int(sdk) if sdk.isdigit() else None,
        "os_release": f"Android {props.get('ro.build.version.release', '?')} (SDK {sdk or '?'})",
        "build": props.get("ro.build.fingerprint") or None,
        "kernel": None,
        "cpu_model": props.get("ro.soc.model") or props.get("ro.board.platform") or None,
        "cpu_cores": len(max_khz) or None,
        "cpu_max_khz": {str(k): v for k, v in sorted(max_khz.items())},
        "cpu_clusters": clusters,
        "big_little": big_little(clusters),
        "memory_total_bytes": meminfo["MemTotal"] * 1024 if "MemTotal" in meminfo else None,
        "memory_available_bytes": (
            meminfo["MemAvailable"] * 1024 if "MemAvailable" in meminfo else None
        ),
        "battery": battery,
        "thermal_zones": thermal,
        "emulated": props.get(EMULATED_PROPERTY) in ("1", "true"),
        "sensors": (
            [{"kind": "android_battery", "path": BATTERY_DIR}]
            if battery and battery.get("current_sensor")
            else []
        ),
    }
    uname = transport.run(["uname", "-r"], 30)
    if uname.returncode == 0:
        facts["kernel"] = uname.stdout.strip() or None
    return facts
