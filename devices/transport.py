"""The transport interface every device connection implements, and its registry.

A transport knows how to put a file on a device, run a command there, and start
a long-lived process whose stdin/stdout carry JSON lines (the runner agent).
Transports register themselves by name with :func:`register_transport`; the
registry refuses duplicates so two modules cannot silently claim one name.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, ClassVar

from devices.errors import TransportError, TransportTimeout, UnknownTransportError


@dataclass(frozen=True)
class DeviceConfig:
    """What is needed to reach a device: everything else is discovered by probing."""

    name: str
    transport: str
    address: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    device_type: str | None = None


@dataclass(frozen=True)
class CommandResult:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str


class RemoteProcess(ABC):
    """A process on the device that talks in lines over stdin/stdout.

    Subclasses hand their stdout/stderr file objects to :meth:`_start_readers`;
    reader threads turn blocking reads into a queue so that every read can time
    out, which is what lets the host notice a hung or vanished device.
    """

    _EOF = object()

    def _start_readers(self, stdout: IO[bytes], stderr: IO[bytes] | None) -> None:
        self._lines: queue.Queue[object] = queue.Queue()
        self._stderr_tail: deque[str] = deque(maxlen=50)

        def pump_stdout() -> None:
            try:
                for raw in iter(stdout.readline, b""):
                    self._lines.put(raw.decode("utf-8", "replace"))
            except (OSError, ValueError):
                pass  # stream closed under us: the EOF marker below says so
            finally:
                self._lines.put(self._EOF)

        def pump_stderr() -> None:
            assert stderr is not None
            try:
                for raw in iter(stderr.readline, b""):
                    self._stderr_tail.append(raw.decode("utf-8", "replace").rstrip("\n"))
            except (OSError, ValueError):
                pass

        threading.Thread(target=pump_stdout, daemon=True).start()
        if stderr is not None:
            threading.Thread(target=pump_stderr, daemon=True).start()

    @abstractmethod
    def write_line(self, line: str) -> None:
        """Send one line (a newline is appended)."""

    def read_line(self, timeout: float) -> str | None:
        """Next stdout line without its newline; None at end of stream."""
        try:
            item = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise TransportTimeout(f"no reply within {timeout:g} s") from None
        if item is self._EOF:
            self._lines.put(self._EOF)  # keep reporting EOF to later readers
            return None
        assert isinstance(item, str)
        return item.rstrip("\r\n")

    def stderr_tail(self) -> str:
        return "\n".join(self._stderr_tail)

    @abstractmethod
    def terminate(self) -> None:
        """Stop the process (and its children) now."""

    @abstractmethod
    def wait(self, timeout: float) -> int | None:
        """Exit code, or None if it is still running after ``timeout``."""


class Transport(ABC):
    """How edgebench reaches one device."""

    name: ClassVar[str]

    def __init__(self, device: DeviceConfig, workspace: Path) -> None:
        self.device = device
        self.workspace = workspace

    # Where edgebench keeps its files on the device (agent, artifacts).
    @property
    @abstractmethod
    def workdir(self) -> str: ...

    @property
    def python(self) -> str:
        """Interpreter the agent runs under; per-device option ``python``."""
        return str(self.device.options.get("python") or "python3")

    @abstractmethod
    def run(self, argv: list[str], timeout: float = 60.0) -> CommandResult:
        """Run ``argv`` (never a shell string) on the device and wait for it."""

    @abstractmethod
    def spawn(self, argv: list[str]) -> RemoteProcess:
        """Start ``argv`` on the device with piped stdin/stdout/stderr."""

    @abstractmethod
    def remote_sha256(self, remote_path: str) -> str | None:
        """sha256 of a file on the device, or None if it is not there."""

    @abstractmethod
    def _copy_to_device(self, local: Path, remote_path: str) -> None:
        """Copy one file; the caller has already decided it is needed."""

    def push(self, local: Path, sha256: str, name: str | None = None) -> str:
        """Put a content-addressed file on the device once; return its remote path.

        The remote path embeds the hash, so a file already there with the right
        hash is never sent again, and a damaged one is replaced.
        """
        remote = f"{self.workdir}/artifacts/{sha256}/{name or local.name}"
        if self.remote_sha256(remote) == sha256:
            return remote
        self._copy_to_device(local, remote)
        got = self.remote_sha256(remote)
        if got != sha256:
            raise TransportError(
                f"pushed {local.name} but the device reports sha256 {got}, expected {sha256}",
                device=self.device.name,
            )
        return remote

    def close(self) -> None:  # noqa: B027 - optional hook, most transports hold nothing
        """Release connections; safe to call twice."""


_REGISTRY: dict[str, type[Transport]] = {}


def register_transport(name: str) -> Callable[[type[Transport]], type[Transport]]:
    """Class decorator: make a transport available under ``name``."""

    def decorate(cls: type[Transport]) -> type[Transport]:
        if name in _REGISTRY:
            raise ValueError(
                f"transport {name!r} is already registered by {_REGISTRY[name].__qualname__}"
            )
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorate


def transport_names() -> list[str]:
    _load_builtin_transports()
    return sorted(_REGISTRY)


def make_transport(device: DeviceConfig, workspace: Path) -> Transport:
    """Instantiate the registered transport a device names."""
    _load_builtin_transports()
    try:
        cls = _REGISTRY[device.transport]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise UnknownTransportError(
            f"unknown transport {device.transport!r} (known: {known})", device=device.name
        ) from None
    return cls(device, workspace)


def _load_builtin_transports() -> None:
    # Importing a transport module runs its @register_transport decorator.
    from devices import local, ssh  # noqa: F401


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
