"""Host side of edgebench's framed MCU protocol (``runners/mcu/PROTOCOL.md``).

:class:`FramedClient` sends one request frame at a time over a
:class:`~devices.transport.ByteStream` and waits for the reply with the same seq.
A reply that does not arrive in time (lost, or its request was damaged on the way)
is asked for again by resending the *same* frame, up to ``retries`` times; the
firmware answers a repeated seq from its reply cache, so a retried INFER is never
run twice. Replies with a bad CRC or another seq are skipped. After the last
retry the client raises :class:`~devices.errors.TransportTimeout`; an error reply
from the firmware raises :class:`ProtocolError`.
"""

from __future__ import annotations

import random
import struct
import time
import zlib
from dataclasses import dataclass, field

from devices.errors import TransportError, TransportTimeout
from devices.transport import ByteStream

PROTOCOL_VERSION = 1
SYNC = b"\xa5\x5a"
MAX_PAYLOAD = 1024
INPUT_CHUNK = 1000  # INPUT payload: 5 header bytes + data <= 1024
MAX_RUNS = 64
MAX_LAYERS = 120

HELLO, INPUT, INFER, OUTPUT, LAYERS, STACK = 0x01, 0x02, 0x03, 0x04, 0x05, 0x06
REPLY, ERROR = 0x80, 0xFF
REQUEST_NAMES = {
    HELLO: "HELLO",
    INPUT: "INPUT",
    INFER: "INFER",
    OUTPUT: "OUTPUT",
    LAYERS: "LAYERS",
    STACK: "STACK",
}


class ProtocolError(TransportError):
    """The firmware answered, but not as the protocol says: an error reply, a
    reply of the wrong shape, or another protocol version."""


def encode_frame(seq: int, kind: int, payload: bytes = b"") -> bytes:
    """One frame: sync, length, seq, type, payload, CRC-32 of length..payload."""
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes is over {MAX_PAYLOAD}")
    body = struct.pack("<HBB", len(payload), seq & 0xFF, kind) + payload
    return SYNC + body + struct.pack("<I", zlib.crc32(body))


@dataclass(frozen=True)
class TensorSpec:
    """One ``input<i>=`` / ``output<i>=`` line of HELLO."""

    bytes: int
    dtype: str
    scale: float
    zero_point: int
    shape: tuple[int, ...]

    @classmethod
    def parse(cls, text: str) -> TensorSpec:
        size, dtype, scale, zero_point, dims = text.split(",")
        shape = tuple(int(d) for d in dims.split("x")) if dims else ()
        return cls(int(size), dtype, float(scale), int(zero_point), shape)


_INT_KEYS = (
    "protocol",
    "clock_hz",
    "counter_hz",
    "arena_bytes",
    "weights_bytes",
    "macs",
    "ops",
    "inputs",
    "outputs",
    "stack_bytes",
    "flash_used",
    "ram_used",
)
_STR_KEYS = ("engine", "engine_version", "board", "counter", "model", "model_sha256")


@dataclass(frozen=True)
class Hello:
    """The HELLO reply. A key the firmware did not send is None; keys this host
    does not know are kept in ``extra`` (firmware may add its own)."""

    protocol: int | None = None
    engine: str | None = None
    engine_version: str | None = None
    board: str | None = None
    clock_hz: int | None = None
    counter: str | None = None  # cycles, instructions or ticks
    counter_hz: int | None = None
    model: str | None = None
    model_sha256: str | None = None
    arena_bytes: int | None = None
    weights_bytes: int | None = None
    macs: int | None = None
    ops: int | None = None
    inputs: int | None = None  # counts; the tensors are in input_tensors
    outputs: int | None = None
    stack_bytes: int | None = None
    flash_used: int | None = None
    ram_used: int | None = None
    input_tensors: tuple[TensorSpec, ...] = ()
    output_tensors: tuple[TensorSpec, ...] = ()
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str, *, device: str | None = None) -> Hello:
        values: dict[str, object] = {}
        extra: dict[str, str] = {}
        tensors: dict[str, dict[int, TensorSpec]] = {"input": {}, "output": {}}
        for line in text.splitlines():
            key, sep, value = line.partition("=")
            key = key.strip()
            if not sep or not key:
                continue
            try:
                if key in _INT_KEYS:
                    values[key] = int(value)
                elif key in _STR_KEYS:
                    values[key] = value
                elif key[:5] == "input" and key[5:].isdigit():
                    tensors["input"][int(key[5:])] = TensorSpec.parse(value)
                elif key[:6] == "output" and key[6:].isdigit():
                    tensors["output"][int(key[6:])] = TensorSpec.parse(value)
                else:
                    extra[key] = value
            except ValueError:
                raise ProtocolError(
                    f"HELLO: bad value for {key}: {value!r}", device=device
                ) from None
        return cls(
            **values,  # type: ignore[arg-type]
            input_tensors=tuple(v for _, v in sorted(tensors["input"].items())),
            output_tensors=tuple(v for _, v in sorted(tensors["output"].items())),
            extra=extra,
        )


class FramedClient:
    """Requests to the runner firmware over its framed protocol."""

    def __init__(
        self,
        line: ByteStream,
        *,
        timeout: float = 2.0,
        retries: int = 3,
        device: str | None = None,
    ) -> None:
        self.line = line
        self.timeout = timeout
        self.retries = retries
        self.device = device
        # A random first seq: a fresh client must not repeat the seq of the last
        # request an earlier client sent, which the firmware would answer from
        # its reply cache.
        self._seq = random.randrange(256)
        self.resends = 0  # frames sent again because no valid reply came in time

    # -- the exchange --

    def request(self, kind: int, payload: bytes = b"", *, timeout: float | None = None) -> bytes:
        """Send one request and return its reply payload."""
        self._seq = (self._seq + 1) & 0xFF
        seq = self._seq
        frame = encode_frame(seq, kind, payload)
        wait = self.timeout if timeout is None else timeout
        name = REQUEST_NAMES.get(kind, f"0x{kind:02x}")
        # Whatever is waiting is stale: late replies to earlier requests, text.
        self.line.discard_input()
        for attempt in range(1 + self.retries):
            if attempt:
                self.resends += 1
            self.line.write(frame)
            reply = self._await_reply(seq, time.monotonic() + wait)
            if reply is None:
                continue
            reply_kind, body = reply
            if reply_kind == ERROR:
                raise ProtocolError(
                    f"{name} refused: {body.decode('utf-8', 'replace')}", device=self.device
                )
            if reply_kind != kind | REPLY:
                raise ProtocolError(
                    f"{name}: reply type 0x{reply_kind:02x}, expected 0x{kind | REPLY:02x}",
                    device=self.device,
                )
            return body
        raise TransportTimeout(
            f"no valid reply to {name} (seq {seq}) after {1 + self.retries} attempts of {wait:g} s",
            device=self.device,
        )

    def _await_reply(self, seq: int, deadline: float) -> tuple[int, bytes] | None:
        """The first intact frame with ``seq`` before ``deadline``, or None."""
        buf = bytearray()
        while True:
            found = self._scan(buf, seq)
            if found is not None:
                return found
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            buf += self.line.read(4096, min(left, 0.25))

    @staticmethod
    def _scan(buf: bytearray, seq: int) -> tuple[int, bytes] | None:
        """Consume complete frames from ``buf``; the one with ``seq`` if any. Bytes
        before a sync, frames with a bad CRC and other seqs are dropped."""
        while True:
            start = buf.find(SYNC)
            if start < 0:
                del buf[: max(0, len(buf) - 1)]  # keep a trailing 0xA5
                return None
            del buf[:start]
            if len(buf) < 4:
                return None
            (length,) = struct.unpack_from("<H", buf, 2)
            if length > MAX_PAYLOAD:
                del buf[:1]
                continue
            total = 6 + length + 4
            if len(buf) < total:
                return None
            body = bytes(buf[2 : 6 + length])
            (crc,) = struct.unpack_from("<I", buf, 6 + length)
            if zlib.crc32(body) != crc:
                del buf[:1]  # resynchronise: a sync may hide inside
                continue
            del buf[:total]
            if body[2] == seq:
                return body[3], body[4:]

    # -- requests --

    def hello(self) -> Hello:
        text = self.request(HELLO).decode("utf-8", "replace")
        hello = Hello.parse(text, device=self.device)
        if hello.protocol is None or hello.engine is None:
            raise ProtocolError(
                "HELLO reply without protocol/engine keys: not edgebench runner firmware",
                device=self.device,
            )
        if hello.protocol != PROTOCOL_VERSION:
            raise ProtocolError(
                f"firmware speaks protocol {hello.protocol}, this host speaks "
                f"{PROTOCOL_VERSION}: rebuild the firmware with this edgebench",
                device=self.device,
            )
        return hello

    def write_input(self, index: int, data: bytes) -> None:
        for offset in range(0, len(data), INPUT_CHUNK):
            chunk = data[offset : offset + INPUT_CHUNK]
            self.request(INPUT, struct.pack("<BI", index, offset) + chunk)

    def infer(self, runs: int, warmup: int = 0, timeout: float | None = None) -> list[int]:
        """``warmup`` unmeasured inferences, then ``runs`` measured ones; one count
        per run. More than 64 runs go as several requests (warm-ups in the first).
        ``timeout`` is per request and must cover its inferences."""
        if runs < 1:
            raise ValueError("runs must be >= 1")
        counts: list[int] = []
        while len(counts) < runs:
            batch = min(MAX_RUNS, runs - len(counts))
            body = self.request(
                INFER, struct.pack("<HH", batch, warmup if not counts else 0), timeout=timeout
            )
            if len(body) < 2:
                raise ProtocolError("INFER: short reply", device=self.device)
            (n,) = struct.unpack_from("<H", body)
            if n != batch or len(body) != 2 + 8 * n:
                raise ProtocolError(
                    f"INFER: reply holds {n} counts in {len(body)} bytes, asked for {batch}",
                    device=self.device,
                )
            counts += struct.unpack_from(f"<{n}Q", body, 2)
        return counts

    def read_output(self, index: int, nbytes: int) -> bytes:
        out = bytearray()
        while len(out) < nbytes:
            n = min(MAX_PAYLOAD, nbytes - len(out))
            body = self.request(OUTPUT, struct.pack("<BIH", index, len(out), n))
            if len(body) != n:
                raise ProtocolError(
                    f"OUTPUT: got {len(body)} bytes, asked for {n}", device=self.device
                )
            out += body
        return bytes(out)

    def layers(self, n_ops: int) -> list[int]:
        """Each operator's counts in the last measured run."""
        counts: list[int] = []
        while len(counts) < n_ops:
            ask = min(MAX_LAYERS, n_ops - len(counts))
            body = self.request(LAYERS, struct.pack("<HH", len(counts), ask))
            if len(body) < 2:  # not even the count: struct would raise its own error
                raise ProtocolError("LAYERS: short reply", device=self.device)
            (n,) = struct.unpack_from("<H", body)
            if n != ask or len(body) != 2 + 8 * n:
                raise ProtocolError(
                    f"LAYERS: reply holds {n} counts, asked for {ask} (does the model "
                    f"have {n_ops} operators?)",
                    device=self.device,
                )
            counts += struct.unpack_from(f"<{n}Q", body, 2)
        return counts

    def stack(self) -> tuple[int, int]:
        """(stack bytes reserved, stack bytes ever used)."""
        body = self.request(STACK)
        if len(body) != 8:
            raise ProtocolError(f"STACK: reply of {len(body)} bytes", device=self.device)
        reserved, used = struct.unpack("<II", body)
        return reserved, used

    def close(self) -> None:
        """Release the line; safe to call twice."""
        self.line.close()
