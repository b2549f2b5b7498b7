"""An emulated Android phone whose adbd speaks the real ADB wire protocol (for CI).

A phone after ``adb tcpip 5555`` listens for the ADB transport protocol on TCP;
:class:`EmulatedPhone` does the same on a loopback port, so the stock ``adb`` client
(``adb connect 127.0.0.1:PORT``) and ``adb-shell``'s ``AdbDeviceTcp`` work against it.
What is behind the port - the file system, the shell, the battery, ``getprop``,
``benchmark_model`` - is :mod:`devices.emulators.phone` (read its doc for the
sandbox: how shell commands run on the host and are kept inside it).

Wire format (AOSP ``adb/protocol.txt``): 24-byte little-endian headers ``command,
arg0, arg1, data_length, data_crc32 (the byte sum), magic (command ^ 0xffffffff)``,
then the payload. Implemented:

* ``CNXN``: versions 0x01000000 (payload checksums checked) and 0x01000001 (skipped,
  still sent: adb-shell checks them); the payload size is the smaller of the
  client's ``maxdata`` and 1 MiB. The banner is ``device::ro.product.name=..;
  ro.product.model=..;ro.product.device=..;features=shell_v2,cmd,stat_v2,ls_v2,
  fixed_push_mkdir`` (only what is implemented is advertised).
* ``AUTH``: TOKEN (20 random bytes) / SIGNATURE (RSA PKCS#1 v1.5 over the token with
  the SHA-1 DigestInfo prefix, verified against the authorized keys) /
  RSAPUBLICKEY (Android's mincrypt ``RSAPublicKey`` struct, base64, then
  `` user@host``). A new key is accepted - the phone's "Allow USB debugging?" - only
  with ``accept_new_keys=True`` and only if it verifies a signature the client sent
  on this connection (proof that it holds the private key); otherwise the
  connection is closed with a log line (a real phone would leave the client
  "unauthorized"; closing lets tests fail fast).
* ``OPEN``/``OKAY``/``WRTE``/``CLSE`` with any number of streams per connection,
  one ``WRTE`` in flight per stream (the protocol's flow control).
* services: ``shell:CMD`` (v1: stdout+stderr merged, no exit status), ``shell,v2,
  raw:CMD`` and ``shell,v2,pty:CMD`` (shell protocol packets ``id u8, length u32``:
  0 stdin, 1 stdout, 2 stderr, 3 exit, 4 close-stdin, 5 window size; ``pty`` merges
  stderr into stdout, as a terminal does, but allocates no terminal), ``exec:CMD``
  (binary-clean, output untranslated), ``sync:`` (``STAT``, ``STA2``, ``LST2``,
  ``LIST``, ``LIS2``, ``SEND`` path,mode / ``DATA``... / ``DONE`` mtime -> ``OKAY``,
  ``RECV`` -> ``DATA``... ``DONE``, ``QUIT``, ``FAIL`` + message),
  ``root:``/``unroot:``/``remount:`` answered as a user build answers, ``reboot:``
  refused (the stream is closed unopened). An interactive shell (no command) is
  offered only where the Landlock fence is up.

Malformed input (bad magic, unknown command, oversized or corrupt payload, an OPEN
with id 0) closes that connection with a log line; the server goes on.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import errno
import hmac
import logging
import os
import secrets
import signal
import stat
import struct
import sys
import threading
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from devices.emulators.phone import OutputTranslator, PhoneSandbox, PhoneSimulation

log = logging.getLogger("edgebench.adbd")


def _id(text: str) -> int:
    return struct.unpack("<I", text.encode())[0]


A_SYNC, A_CNXN, A_AUTH, A_OPEN = _id("SYNC"), _id("CNXN"), _id("AUTH"), _id("OPEN")
A_OKAY, A_CLSE, A_WRTE, A_STLS = _id("OKAY"), _id("CLSE"), _id("WRTE"), _id("STLS")
COMMANDS = {A_SYNC, A_CNXN, A_AUTH, A_OPEN, A_OKAY, A_CLSE, A_WRTE, A_STLS}
A_VERSION_MIN = 0x01000000
A_VERSION_SKIP_CHECKSUM = 0x01000001
A_VERSION = A_VERSION_SKIP_CHECKSUM
MAX_PAYLOAD = 1024 * 1024
MAX_PAYLOAD_V1 = 4096  # what every client accepts before the CNXN says more
AUTH_TOKEN, AUTH_SIGNATURE, AUTH_RSAPUBLICKEY = 1, 2, 3
TOKEN_SIZE = 20
FEATURES = ("shell_v2", "cmd", "stat_v2", "ls_v2", "fixed_push_mkdir")
HEADER = struct.Struct("<6I")

# Shell protocol (shell_v2) packet ids.
SHELL_STDIN, SHELL_STDOUT, SHELL_STDERR, SHELL_EXIT = 0, 1, 2, 3
SHELL_CLOSE_STDIN, SHELL_WINDOW_SIZE = 4, 5
SHELL_HEADER = struct.Struct("<BI")

SYNC_DATA_MAX = 64 * 1024
SYNC_PATH_MAX = 1024
STAT_V1 = struct.Struct("<4sIII")
STAT_V2 = struct.Struct("<4sIQQIIIIQqqq")
DENT_V1 = struct.Struct("<4sIIII")
DENT_V2 = struct.Struct("<4sIQQIIIIQqqqI")

# DigestInfo of SHA-1 (RFC 8017 9.2): adb signs the 20-byte token as if it were the digest.
SHA1_DIGEST_INFO = bytes.fromhex("3021300906052b0e03021a05000414")


class ProtocolError(Exception):
    """Input that breaks the protocol: the connection is closed."""


# -- RSA (adb's authentication) ---------------------------------------------------------


@dataclass(frozen=True)
class AndroidPublicKey:
    """An adb public key: mincrypt ``RSAPublicKey`` (``len, n0inv, n[len], rr[len],
    exponent``, little-endian 32-bit words) in base64, then `` user@host``."""

    modulus: int
    exponent: int
    comment: str

    @classmethod
    def parse(cls, text: str | bytes) -> AndroidPublicKey:
        if isinstance(text, bytes):
            text = text.rstrip(b"\0").decode("ascii", errors="replace")
        b64, _, comment = text.strip().partition(" ")
        try:
            blob = base64.b64decode(b64, validate=True)
        except ValueError as error:
            raise ValueError(f"public key is not base64: {error}") from error
        if len(blob) < 12:
            raise ValueError("public key too short")
        words = struct.unpack_from("<I", blob)[0]
        if words not in (32, 64, 96, 128) or len(blob) != 4 + 4 + 8 * words + 4:
            raise ValueError(f"public key has {len(blob)} bytes for {words} words")
        n0inv = struct.unpack_from("<I", blob, 4)[0]
        modulus = int.from_bytes(blob[8 : 8 + 4 * words], "little")
        exponent = struct.unpack_from("<I", blob, 8 + 8 * words)[0]
        # n0inv = -1 / n mod 2^32: a cheap consistency check of the struct.
        if (modulus * n0inv) % (1 << 32) != (1 << 32) - 1 or modulus % 2 == 0:
            raise ValueError("public key n0inv does not match its modulus")
        return cls(modulus, exponent, comment.strip())

    def verify(self, token: bytes, signature: bytes) -> bool:
        """RSA PKCS#1 v1.5 verification of ``signature`` over the raw 20-byte token."""
        size = (self.modulus.bit_length() + 7) // 8
        if len(signature) != size:
            return False
        value = int.from_bytes(signature, "big")
        if value >= self.modulus:
            return False
        decoded = pow(value, self.exponent, self.modulus).to_bytes(size, "big")
        suffix = b"\x00" + SHA1_DIGEST_INFO + token
        expected = b"\x00\x01" + b"\xff" * (size - 2 - len(suffix)) + suffix
        return hmac.compare_digest(decoded, expected)


# -- packets --------------------------------------------------------------------------


def checksum(data: bytes) -> int:
    return sum(data) & 0xFFFFFFFF


def encode_packet(command: int, arg0: int, arg1: int, data: bytes = b"") -> bytes:
    return HEADER.pack(command, arg0, arg1, len(data), checksum(data), command ^ 0xFFFFFFFF) + data


@dataclass
class Packet:
    command: int
    arg0: int
    arg1: int
    data: bytes
    crc: int = 0

    @property
    def name(self) -> str:
        return struct.pack("<I", self.command).decode("ascii", errors="replace")


async def read_packet(reader: asyncio.StreamReader, *, check_sum: bool) -> Packet:
    header = await reader.readexactly(HEADER.size)
    command, arg0, arg1, length, crc, magic = HEADER.unpack(header)
    if magic != command ^ 0xFFFFFFFF:
        raise ProtocolError(f"bad magic {magic:#x} for command {command:#x}")
    if command not in COMMANDS:
        raise ProtocolError(f"unknown command {command:#x}")
    if length > MAX_PAYLOAD:
        raise ProtocolError(f"payload of {length} bytes exceeds {MAX_PAYLOAD}")
    data = await reader.readexactly(length) if length else b""
    if check_sum and checksum(data) != crc:
        raise ProtocolError(f"payload checksum {checksum(data):#x} != {crc:#x}")
    return Packet(command, arg0, arg1, data, crc)


# -- streams --------------------------------------------------------------------------


class StreamClosed(Exception):
    """The stream (or its connection) is gone."""


class _Stream:
    """One adb stream: our ``local_id``, the client's ``remote_id``."""

    def __init__(self, connection: _Connection, local_id: int, remote_id: int) -> None:
        self.connection = connection
        self.local_id = local_id
        self.remote_id = remote_id
        self.inbox = asyncio.StreamReader(limit=2**31)
        self.ready = asyncio.Event()
        self.ready.set()  # an OPEN implies the opener is ready for one WRTE
        self.closed = False
        self._write_lock = asyncio.Lock()
        self.task: asyncio.Task[None] | None = None

    async def write(self, data: bytes) -> None:
        """Send ``data`` in WRTE packets, each after the client's OKAY of the last."""
        async with self._write_lock:
            view = memoryview(data)
            while view:
                await self.ready.wait()
                if self.closed:
                    raise StreamClosed
                self.ready.clear()
                size = self.connection.max_payload
                chunk, view = bytes(view[:size]), view[size:]
                await self.connection.send(A_WRTE, self.local_id, self.remote_id, chunk)

    def on_okay(self) -> None:
        self.ready.set()

    def on_remote_close(self) -> None:
        self.closed = True
        self.ready.set()  # wake a writer so that it sees `closed`
        self.inbox.feed_eof()

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.ready.set()
            self.inbox.feed_eof()
            with contextlib.suppress(ConnectionError):
                await self.connection.send(A_CLSE, self.local_id, self.remote_id)
        self.connection.streams.pop(self.local_id, None)


# -- connections ----------------------------------------------------------------------


class _Connection:
    """One client's transport: handshake, authentication, stream dispatch."""

    def __init__(
        self, server: AdbdServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.peer = writer.get_extra_info("peername")
        self.version = A_VERSION_MIN
        self.max_payload = MAX_PAYLOAD_V1
        self.connected = False  # CNXN received from the client
        self.authorized = False
        self.token = b""
        self.signatures: list[tuple[bytes, bytes]] = []  # (token, signature) tried
        self.streams: dict[int, _Stream] = {}
        self._next_id = 1

    async def send(self, command: int, arg0: int, arg1: int, data: bytes = b"") -> None:
        if self.writer.is_closing():
            raise ConnectionError("connection closed")
        self.writer.write(encode_packet(command, arg0, arg1, data))
        await self.writer.drain()

    async def serve(self) -> None:
        try:
            while True:
                # Checksums: a v1 client's are checked; before the CNXN the version is
                # unknown and the CNXN's own is checked only if it says v1.
                packet = await read_packet(
                    self.reader, check_sum=self.connected and self.version < A_VERSION
                )
                await self._dispatch(packet)
        except ProtocolError as error:
            log.warning("adbd: closing connection from %s: %s", self.peer, error)
        except (asyncio.IncompleteReadError, ConnectionError):
            log.debug("adbd: connection from %s ended", self.peer)
        finally:
            await self.teardown()

    async def teardown(self) -> None:
        for stream in list(self.streams.values()):
            stream.on_remote_close()
            if stream.task is not None:
                stream.task.cancel()
        tasks = [s.task for s in self.streams.values() if s.task is not None]
        self.streams.clear()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()

    def banner(self) -> bytes:
        props = self.server.sandbox.props
        keys = ("ro.product.name", "ro.product.model", "ro.product.device")
        fields = "".join(f"{key}={props[key]};" for key in keys)
        return f"device::{fields}features={','.join(FEATURES)}".encode()

    async def _send_cnxn(self) -> None:
        self.authorized = True
        await self.send(A_CNXN, self.version, MAX_PAYLOAD, self.banner())

    async def _send_token(self) -> None:
        self.token = secrets.token_bytes(TOKEN_SIZE)
        await self.send(A_AUTH, AUTH_TOKEN, 0, self.token)

    async def _dispatch(self, packet: Packet) -> None:
        if packet.command == A_CNXN:
            if packet.arg0 < A_VERSION_MIN:
                raise ProtocolError(f"CNXN version {packet.arg0:#x} is unknown")
            if packet.arg1 < 256:
                raise ProtocolError(f"CNXN maxdata {packet.arg1} is too small")
            if packet.arg0 < A_VERSION and checksum(packet.data) != packet.crc:
                raise ProtocolError("CNXN payload checksum")
            self.connected = True
            self.version = min(packet.arg0, A_VERSION)
            self.max_payload = min(packet.arg1, MAX_PAYLOAD)
            log.info("adbd: CNXN from %s: %r", self.peer, packet.data[:120])
            if self.authorized or not self.server.auth_required:
                await self._send_cnxn()
            else:
                await self._send_token()
            return
        if not self.connected:
            return  # "Any messages received before a CONNECT message MUST be ignored."
        if packet.command == A_AUTH:
            await self._auth(packet)
            return
        if not self.authorized:
            return
        if packet.command == A_OPEN:
            await self._open(packet)
        elif packet.command == A_OKAY:
            stream = self.streams.get(packet.arg1)
            if stream is not None:
                if stream.remote_id == 0:
                    stream.remote_id = packet.arg0
                stream.on_okay()
        elif packet.command == A_WRTE:
            stream = self.streams.get(packet.arg1)
            if stream is None or stream.closed:
                return  # closed while in flight: ignored, as the protocol says
            stream.inbox.feed_data(packet.data)
            await self.send(A_OKAY, stream.local_id, stream.remote_id)
        elif packet.command == A_CLSE:
            stream = self.streams.pop(packet.arg1, None)
            if stream is not None:
                stream.on_remote_close()
                if stream.task is not None:
                    stream.task.cancel()
                # protocol.txt says not to answer, but adbd does (its local socket
                # closes and says so), and adb-shell waits for that CLSE.
                await self.send(A_CLSE, stream.local_id, stream.remote_id)
        # A_SYNC (obsolete) and A_STLS (TLS is not offered) are ignored.

    async def _auth(self, packet: Packet) -> None:
        keys = self.server.authorized_keys
        if packet.arg0 == AUTH_SIGNATURE:
            if not self.token:
                raise ProtocolError("AUTH SIGNATURE before any token")
            if len(self.signatures) < 16:
                self.signatures.append((self.token, packet.data))
            if any(key.verify(self.token, packet.data) for key in keys):
                log.info("adbd: %s authenticated with a known key", self.peer)
                await self._send_cnxn()
            else:
                await self._send_token()  # let the client try its next key
        elif packet.arg0 == AUTH_RSAPUBLICKEY:
            try:
                key = AndroidPublicKey.parse(packet.data)
            except ValueError as error:
                raise ProtocolError(f"AUTH RSAPUBLICKEY: {error}") from error
            if not self.server.accept_new_keys:
                raise ProtocolError(
                    f"new key {key.comment!r} refused (accept_new_keys=False: the user "
                    "did not allow USB debugging)"
                )
            if not any(key.verify(token, sig) for token, sig in self.signatures):
                raise ProtocolError(
                    f"new key {key.comment!r} refused: it verifies none of the signatures "
                    "this client sent"
                )
            log.info("adbd: %s: accepted new key %r", self.peer, key.comment)
            self.server.add_key(key)
            await self._send_cnxn()
        else:
            raise ProtocolError(f"AUTH type {packet.arg0} from a client")

    async def _open(self, packet: Packet) -> None:
        remote_id = packet.arg0
        if remote_id == 0:
            raise ProtocolError("OPEN with local-id 0")
        destination = packet.data.rstrip(b"\0").decode("utf-8", errors="replace")
        handler = self.server.service(destination)
        if handler is None:
            log.info("adbd: %s: refused service %r", self.peer, destination)
            await self.send(A_CLSE, 0, remote_id)
            return
        local_id = self._next_id
        self._next_id = self._next_id % 0x7FFFFFFF + 1
        stream = _Stream(self, local_id, remote_id)
        self.streams[local_id] = stream
        await self.send(A_OKAY, local_id, remote_id)
        stream.task = asyncio.create_task(self._run_service(stream, handler, destination))

    async def _run_service(
        self, stream: _Stream, handler: Callable[[_Stream], Awaitable[None]], name: str
    ) -> None:
        try:
            await handler(stream)
        except (StreamClosed, ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug in one service must not take the server down
            log.exception("adbd: service %r failed", name)
        finally:
            await stream.close()


# -- services -------------------------------------------------------------------------


class _Services:
    """What a stream's destination string opens."""

    def __init__(self, server: AdbdServer) -> None:
        self.server = server
        self.sandbox = server.sandbox

    def lookup(self, destination: str) -> Callable[[_Stream], Awaitable[None]] | None:
        name, _, rest = destination.partition(":")
        base, *args = name.split(",")
        if base == "shell":
            v2 = "v2" in args
            pty = "pty" in args or ("raw" not in args and not rest)
            term = next((a[5:] for a in args if a.startswith("TERM=")), None)
            mode = "v2" if v2 else "v1"
            return lambda s: self.command(s, rest or None, mode, pty=pty, term=term)
        if base == "exec":
            return lambda s: self.command(s, rest, "exec", pty=False, term=None)
        if base == "sync":
            return self.sync
        if base in ("root", "unroot", "remount"):
            message = {
                "root": "adbd cannot run as root in production builds\n",
                "unroot": "adbd not running as root\n",
                "remount": "remount is not supported by the emulated phone\n",
            }[base]
            return lambda s: s.write(message.encode())
        return None  # reboot:, tcpip:, jdwp:, ... are refused

    async def command(
        self, stream: _Stream, command: str | None, mode: str, *, pty: bool, term: str | None
    ) -> None:
        v2 = mode == "v2"
        if command is None and not self.sandbox.landlock_abi:
            message = (
                b"edgebench emulated phone: an interactive shell needs Landlock on this "
                b"host; give a command\n"
            )
            if v2:
                await stream.write(SHELL_HEADER.pack(SHELL_STDERR, len(message)) + message)
                await stream.write(SHELL_HEADER.pack(SHELL_EXIT, 1) + b"\x01")
            else:
                await stream.write(message)
            return
        argv = self.sandbox.shell_argv(command)
        merged = not v2 or pty
        self.sandbox.simulation.add_load(+1)
        self.sandbox.refresh()
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT if merged else asyncio.subprocess.PIPE,
                cwd=self.sandbox.cwd(),
                env=self.sandbox.environment(term),
                start_new_session=True,  # its own process group, killed as a whole
            )
        except OSError as error:
            self.sandbox.simulation.add_load(-1)
            message = f"/system/bin/sh: {error.strerror}\n".encode()
            await stream.write(_shell_packet(SHELL_STDERR, message) if v2 else message)
            return
        self.server.processes.add(process)
        pumps: list[asyncio.Task[None]] = []
        try:
            assert process.stdout is not None and process.stdin is not None
            translate = mode != "exec"
            pumps.append(
                asyncio.create_task(
                    self._pump_out(stream, process.stdout, SHELL_STDOUT, v2, translate)
                )
            )
            if process.stderr is not None:
                pumps.append(
                    asyncio.create_task(
                        self._pump_out(stream, process.stderr, SHELL_STDERR, v2, translate)
                    )
                )
            feeder = asyncio.create_task(self._pump_in(stream, process.stdin, v2))
            await asyncio.gather(*pumps)
            status = await process.wait()
            feeder.cancel()
            await asyncio.gather(feeder, return_exceptions=True)
            if v2:
                code = status if status >= 0 else 128 - status
                await stream.write(_shell_packet(SHELL_EXIT, bytes([code & 0xFF])))
        finally:
            for pump in pumps:
                pump.cancel()
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
            self.server.processes.discard(process)
            self.sandbox.simulation.add_load(-1)
            self.sandbox.refresh()

    async def _pump_out(
        self, stream: _Stream, source: asyncio.StreamReader, kind: int, v2: bool, translate: bool
    ) -> None:
        translator = OutputTranslator(str(self.sandbox.root)) if translate else None
        while True:
            chunk = await source.read(SYNC_DATA_MAX)
            data = (
                (translator.feed(chunk) if chunk else translator.flush()) if translator else chunk
            )
            if data:
                await stream.write(_shell_packet(kind, data) if v2 else data)
            if not chunk:
                return

    async def _pump_in(self, stream: _Stream, sink: asyncio.StreamWriter, v2: bool) -> None:
        try:
            while True:
                if v2:
                    kind, length = SHELL_HEADER.unpack(await stream.inbox.readexactly(5))
                    data = await stream.inbox.readexactly(length) if length else b""
                    if kind == SHELL_STDIN and data:
                        sink.write(data)
                        await sink.drain()
                    elif kind == SHELL_CLOSE_STDIN:
                        break
                    # SHELL_WINDOW_SIZE: no terminal to resize.
                else:
                    data = await stream.inbox.read(SYNC_DATA_MAX)
                    if not data:
                        break
                    sink.write(data)
                    await sink.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            sink.close()

    # -- sync: --

    def _host(self, device_path: str) -> str:
        return self.sandbox.device_to_host(device_path)

    async def sync(self, stream: _Stream) -> None:
        inbox = stream.inbox
        while True:
            request, length = struct.unpack("<4sI", await inbox.readexactly(8))
            if request == b"QUIT":
                return
            if length > SYNC_PATH_MAX:
                await _sync_fail(stream, f"path too long: {length}")
                return
            path = (await inbox.readexactly(length)).decode("utf-8", errors="replace")
            if request == b"STAT":
                await stream.write(self._stat_v1(path))
            elif request in (b"STA2", b"LST2"):
                await stream.write(self._stat_v2(path, request, follow=request == b"STA2"))
            elif request in (b"LIST", b"LIS2"):
                if not await self._list(stream, path, v2=request == b"LIS2"):
                    return
            elif request == b"SEND":
                if not await self._send(stream, path):
                    return
            elif request == b"RECV":
                if not await self._recv(stream, path):
                    return
            else:
                await _sync_fail(stream, f"unknown sync request {request!r}")
                return

    def _stat_v1(self, path: str) -> bytes:
        try:
            st = os.lstat(self._host(path))
        except OSError:
            return STAT_V1.pack(b"STAT", 0, 0, 0)
        return STAT_V1.pack(b"STAT", st.st_mode, st.st_size & 0xFFFFFFFF, int(st.st_mtime))

    def _stat_v2(self, path: str, request: bytes, *, follow: bool) -> bytes:
        try:
            host = self._host(path)
            st = os.stat(host) if follow else os.lstat(host)
        except OSError as error:
            return STAT_V2.pack(request, error.errno or errno.EIO, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        return STAT_V2.pack(request, 0, *_stat_fields(st))

    async def _list(self, stream: _Stream, path: str, *, v2: bool) -> bool:
        host = self._host(path)
        if not self.sandbox.is_safe_host_path(host):
            await _sync_fail(stream, f"{path}: Permission denied")
            return False
        out: list[bytes] = []
        try:
            names = [".", "..", *sorted(os.listdir(host))]
        except OSError:
            names = []  # adbd lists nothing for a path it cannot open
        for name in names:
            try:
                st = os.lstat(os.path.join(host, name))
            except OSError:
                continue
            encoded = name.encode()
            if v2:
                out.append(DENT_V2.pack(b"DNT2", 0, *_stat_fields(st), len(encoded)) + encoded)
            else:
                fields = (st.st_mode, st.st_size & 0xFFFFFFFF, int(st.st_mtime))
                out.append(DENT_V1.pack(b"DENT", *fields, len(encoded)) + encoded)
        done = DENT_V2.pack(b"DONE", 0, *([0] * 11)) if v2 else DENT_V1.pack(b"DONE", 0, 0, 0, 0)
        await stream.write(b"".join(out) + done)
        return True

    async def _send(self, stream: _Stream, spec: str) -> bool:
        path, comma, mode_text = spec.rpartition(",")
        if not comma:
            path, mode_text = spec, "33188"  # 0o100644
        try:
            mode = int(mode_text)
        except ValueError:
            await _sync_fail(stream, f"bad mode in {spec!r}")
            return False
        host = self._host(path)
        inbox = stream.inbox
        if stat.S_ISLNK(mode) or not self.sandbox.is_safe_host_path(host):
            reason = "symlinks are not supported" if stat.S_ISLNK(mode) else "Permission denied"
            await _sync_fail(stream, f"{path}: {reason}")
            return False
        try:
            os.makedirs(os.path.dirname(host), exist_ok=True)  # adbd makes parent dirs
            file = open(host, "wb")  # noqa: SIM115 - closed below on every path
        except OSError as error:
            await _sync_fail(stream, f"couldn't create file: {error.strerror}")
            return False
        with file:
            while True:
                chunk_id, size = struct.unpack("<4sI", await inbox.readexactly(8))
                if chunk_id == b"DATA":
                    if size > MAX_PAYLOAD:
                        await _sync_fail(stream, f"DATA chunk of {size} bytes")
                        return False
                    file.write(await inbox.readexactly(size))
                elif chunk_id == b"DONE":
                    mtime = size
                    break
                else:
                    await _sync_fail(stream, f"unexpected {chunk_id!r} in SEND")
                    return False
        with contextlib.suppress(OSError):
            os.chmod(host, stat.S_IMODE(mode) or 0o644)
            if mtime:
                os.utime(host, (mtime, mtime))
        await stream.write(b"OKAY" + struct.pack("<I", 0))
        return True

    async def _recv(self, stream: _Stream, path: str) -> bool:
        host = self._host(path)
        if not self.sandbox.is_safe_host_path(host):
            await _sync_fail(stream, f"{path}: Permission denied")
            return False
        try:
            file = open(host, "rb")  # noqa: SIM115 - closed below
        except OSError as error:
            await _sync_fail(stream, error.strerror or "open failed")
            return False
        with file:
            while chunk := file.read(SYNC_DATA_MAX):
                await stream.write(b"DATA" + struct.pack("<I", len(chunk)) + chunk)
        await stream.write(b"DONE" + struct.pack("<I", 0))
        return True


def _stat_fields(st: os.stat_result) -> tuple[int, ...]:
    return (
        st.st_dev,
        st.st_ino,
        st.st_mode,
        st.st_nlink,
        st.st_uid,
        st.st_gid,
        st.st_size,
        int(st.st_atime),
        int(st.st_mtime),
        int(st.st_ctime),
    )


def _shell_packet(kind: int, data: bytes) -> bytes:
    return SHELL_HEADER.pack(kind, len(data)) + data


async def _sync_fail(stream: _Stream, message: str) -> None:
    encoded = message.encode()
    await stream.write(b"FAIL" + struct.pack("<I", len(encoded)) + encoded)


# -- the server -----------------------------------------------------------------------


class AdbdServer:
    """The asyncio adbd: a listening socket, its connections, their processes."""

    def __init__(
        self,
        sandbox: PhoneSandbox,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        accept_new_keys: bool = True,
        authorized_keys: Iterable[str | AndroidPublicKey] = (),
        auth_required: bool = True,
    ) -> None:
        self.sandbox = sandbox
        self.host = host
        self.requested_port = port
        self.accept_new_keys = accept_new_keys
        self.auth_required = auth_required
        self.authorized_keys: list[AndroidPublicKey] = [
            k if isinstance(k, AndroidPublicKey) else AndroidPublicKey.parse(k)
            for k in authorized_keys
        ]
        self.connections: set[_Connection] = set()
        self.processes: set[asyncio.subprocess.Process] = set()
        self._services = _Services(self)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._ticker: asyncio.Task[None] | None = None
        self.port = 0

    def add_key(self, key: AndroidPublicKey) -> None:
        if all(k.modulus != key.modulus for k in self.authorized_keys):
            self.authorized_keys.append(key)

    def service(self, destination: str) -> Callable[[_Stream], Awaitable[None]] | None:
        return self._services.lookup(destination)

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, self.host, self.requested_port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ticker = asyncio.create_task(self._tick())

    async def _tick(self) -> None:
        # The battery and thermal files change while nobody runs a command too.
        while True:
            await asyncio.sleep(1.0)
            self.sandbox.refresh()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = _Connection(self, reader, writer)
        self.connections.add(connection)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await connection.serve()
        except asyncio.CancelledError:
            # Cancelled by shutdown(): end quietly, since asyncio's start_server asks
            # this task for its exception and would log a cancelled one.
            pass
        finally:
            self.connections.discard(connection)
            if task is not None:
                self._tasks.discard(task)

    def drop_connections(self) -> None:
        """Cut every client connection now, as a pulled cable or a Wi-Fi drop does."""
        for connection in list(self.connections):
            connection.writer.transport.abort()

    async def shutdown(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
        if self._server is not None:
            self._server.close()
        self.drop_connections()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for process in list(self.processes):  # normally gone with their streams
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
        if self._server is not None:
            await self._server.wait_closed()


class EmulatedPhone:
    """An emulated phone on a loopback port, served from a background thread.

    For test fixtures::

        with EmulatedPhone() as phone:          # port 0: a free port
            subprocess.run(["adb", "connect", phone.serial])
            phone.set_charging(True)
            phone.drop_connections()            # a connection lost mid-job

    ``sandbox`` is the phone's file system on the host (``phone.sandbox_path``); a
    temp dir removed on :meth:`stop` when not given. ``battery_time_scale`` speeds
    the battery/thermal clock.
    """

    def __init__(
        self,
        port: int = 0,
        *,
        sandbox: Path | None = None,
        accept_new_keys: bool = True,
        authorized_keys: Iterable[str] = (),
        props: dict[str, str] | None = None,
        battery_time_scale: float = 1.0,
        use_landlock: bool | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.sandbox = PhoneSandbox(
            sandbox,
            props=props,
            simulation=PhoneSimulation(time_scale=battery_time_scale),
            use_landlock=use_landlock,
        )
        self.server = AdbdServer(
            self.sandbox,
            host=host,
            port=port,
            accept_new_keys=accept_new_keys,
            authorized_keys=authorized_keys,
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def serial(self) -> str:
        return f"{self.server.host}:{self.port}"

    @property
    def sandbox_path(self) -> Path:
        return self.sandbox.root

    def start(self) -> EmulatedPhone:
        self._thread = threading.Thread(target=self._run, name="edgebench-adbd", daemon=True)
        self._thread.start()
        self._started.wait(30)
        if self._error is not None:
            raise self._error
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self.server.start())
        except OSError as error:
            self._error = error
            self._started.set()
            loop.close()
            return
        self._started.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self.server.shutdown())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    def _call(self, function: Callable[[], object]) -> None:
        if self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(function)

    def drop_connections(self) -> None:
        """Abort every client connection (the server keeps listening)."""
        done = threading.Event()

        def drop() -> None:
            self.server.drop_connections()
            done.set()

        self._call(drop)
        done.wait(5)

    def authorize_key(self, public_key: str) -> None:
        """Add an adb public key (``adbkey.pub`` text) as if it had been allowed before."""
        self.server.add_key(AndroidPublicKey.parse(public_key))

    def set_charging(self, on: bool) -> None:
        self.sandbox.simulation.set_charging(on)
        self.sandbox.refresh()

    def stop(self) -> None:
        """Stop serving: connections closed, processes killed, the thread joined."""
        if self._loop is not None and self._thread is not None:
            self._call(self._loop.stop)
            self._thread.join(30)
            self._thread = None
        self.sandbox.cleanup()

    def __enter__(self) -> EmulatedPhone:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_foreground(port: int, *, sandbox: Path | None = None, accept_new_keys: bool = True) -> int:
    """Serve an emulated phone on 127.0.0.1:``port`` until SIGINT/SIGTERM (exit 0)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    phone_sandbox = PhoneSandbox(sandbox)
    server = AdbdServer(phone_sandbox, port=port, accept_new_keys=accept_new_keys)

    async def main() -> None:
        # Handlers first: whoever reads the connect line may stop us at once.
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await server.start()
        print(f"adb connect 127.0.0.1:{server.port}", flush=True)
        print(
            f"edgebench emulated phone: sandbox {phone_sandbox.root} "
            f"(fence: {phone_sandbox.props['edgebench.sandbox']}); Ctrl-C stops",
            file=sys.stderr,
            flush=True,
        )
        try:
            await stop.wait()
        finally:
            await server.shutdown()

    try:
        asyncio.run(main())
    finally:
        phone_sandbox.cleanup()
    return 0


def android_public_key(modulus: int, exponent: int = 65537, comment: str = "user@host") -> str:
    """The adb public key text for an RSA key (mincrypt struct, base64, comment)."""
    words = (modulus.bit_length() + 31) // 32
    n0inv = (-pow(modulus, -1, 1 << 32)) % (1 << 32)
    rr = pow(2, 64 * words, modulus)
    blob = (
        struct.pack("<II", words, n0inv)
        + modulus.to_bytes(4 * words, "little")
        + rr.to_bytes(4 * words, "little")
        + struct.pack("<I", exponent)
    )
    return base64.b64encode(blob).decode() + " " + comment


__all__ = [
    "AdbdServer",
    "AndroidPublicKey",
    "EmulatedPhone",
    "ProtocolError",
    "android_public_key",
    "run_foreground",
]
