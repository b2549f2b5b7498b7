"""An in-memory device: a real implementation of the transport interface with no
process, socket or file system behind it, for fast unit tests of what drives
transports (the scheduler, runners, protocols), httpx-style.

The far end is a :class:`MemoryDevice` attached by address (``attach``): it keeps
pushed files in a dict, answers a stream's lines with its ``handler`` (a callable
from one line to the lines it replies), and can be made to die
(``alive = False``): every call then fails as a vanished board's would, with a
:class:`~devices.errors.TransportError`. It runs no commands unless given some
(``commands``), like a microcontroller behind a serial line.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from devices.errors import TransportError, TransportTimeout
from devices.transport import CommandResult, DeviceConfig, Stream, Transport, register_transport

LineHandler = Callable[[str], Iterable[str]]


@dataclass
class MemoryDevice:
    """The device end of a memory transport."""

    handler: LineHandler | None = None
    commands: dict[str, Callable[[list[str]], CommandResult]] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    alive: bool = True
    pushes: int = 0  # files actually copied (a push of a file already there copies nothing)

    def check(self, name: str) -> None:
        if not self.alive:
            raise TransportError("connection lost (in-memory device is down)", device=name)


_DEVICES: dict[str, MemoryDevice] = {}
_LOCK = threading.Lock()


def attach(address: str, device: MemoryDevice) -> MemoryDevice:
    """Make ``device`` reachable as transport ``memory`` at ``address``."""
    with _LOCK:
        _DEVICES[address] = device
    return device


def detach(address: str) -> None:
    with _LOCK:
        _DEVICES.pop(address, None)


class MemoryStream(Stream):
    def __init__(self, device: MemoryDevice, name: str) -> None:
        self._device = device
        self._name = name
        self._replies: queue.Queue[str | None] = queue.Queue()
        self._closed = False

    def write_line(self, line: str) -> None:
        self._device.check(self._name)
        if self._closed or self._device.handler is None:
            raise TransportError("stream is closed", device=self._name)
        for reply in self._device.handler(line):
            self._replies.put(reply)

    def read_line(self, timeout: float) -> str | None:
        if not self._device.alive:
            return None  # the far end vanished: end of stream
        try:
            item = self._replies.get(timeout=timeout)
        except queue.Empty:
            raise TransportTimeout(f"no reply within {timeout:g} s", device=self._name) from None
        return item

    def stderr_tail(self) -> str:
        return ""

    def terminate(self) -> None:
        self._closed = True
        self._replies.put(None)

    def wait(self, timeout: float) -> int | None:
        return 0 if self._closed else None


@register_transport("memory")
class MemoryTransport(Transport):
    """Transport ``memory``: the address names an attached :class:`MemoryDevice`."""

    def __init__(self, device: DeviceConfig, workspace: Path) -> None:
        super().__init__(device, workspace)
        self.address = device.address or device.name

    @property
    def far(self) -> MemoryDevice:
        with _LOCK:
            found = _DEVICES.get(self.address)
        if found is None:
            raise TransportError(
                f"no in-memory device is attached at {self.address!r}", device=self.device.name
            )
        return found

    def push(self, local: Path, sha256: str, name: str | None = None) -> str:
        far = self.far
        far.check(self.device.name)
        remote = f"mem://{sha256}/{name or local.name}"
        if remote not in far.files:
            far.files[remote] = local.read_bytes()
            far.pushes += 1
        return remote

    def open_stream(self, argv: list[str]) -> Stream:
        far = self.far
        far.check(self.device.name)
        return MemoryStream(far, self.device.name)

    def run(self, argv: list[str], timeout: float = 60.0) -> CommandResult:
        far = self.far
        far.check(self.device.name)
        command = far.commands.get(argv[0]) if argv else None
        if command is None:
            return super().run(argv, timeout)
        return command(argv)
