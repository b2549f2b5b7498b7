"""The transport interface every device connection implements, and its registry.

A transport is only a connection: it pushes bytes to the device, opens a stream
to it (the agent's JSON lines, a serial line, an adb shell) and, where the device
has a shell, runs a command. It knows nothing of runtimes or measurements; that
is the runners' job (``runners/base.py``).

* :class:`Transport`: what every connection implements (``push``, ``open_stream``,
  ``close``); ``run`` is refused by devices without a shell (a microcontroller
  behind a serial line, an emulator's UART).
* :class:`PosixHost`: a device that runs commands and keeps files (the local
  machine, SSH boards): content-addressed pushes into a work directory, a Python
  to run the agent under, processes as streams.

Transports register themselves by name with :func:`register_transport`; the
registry refuses duplicates so two modules cannot silently claim one name. Each
declares its typed options (:attr:`Transport.Options`, a pydantic model that
forbids unknown keys), validated when a device is added or a lab file loaded, so a
typo such as ``conect_timeout`` is an error, not a silent default.

Adding a transport: one module in ``devices/`` with a class decorated
``@register_transport("name")`` (and its ``Options``), imported by
:func:`_load_builtin_transports`.
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
from typing import IO, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from devices.boards import BoardError, BoardSpec, load_board
from devices.errors import TransportError, TransportTimeout, UnknownTransportError
from devices.power.sources import PowerOptions


class DeviceOptions(PowerOptions):
    """Options every device accepts, whatever its transport (``--option k=v``, a lab
    file's ``options:``): the power options (``devices/power/sources.py``) and these.
    Strings such as ``"50"`` are accepted for numbers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    python: str | None = None  # interpreter the agent runs under
    workdir: str | None = None  # where edgebench keeps its files on the device
    trtexec: str | None = None  # TensorRT's trtexec, when not found on the board
    # Cool-down before each job on a device with thermal zones (Linux boards, phones):
    # wait until the hottest zone is below this many degrees C, at most cooldown_limit_s.
    cooldown_below_c: float | None = None
    cooldown_limit_s: float = Field(300.0, ge=0)


def option_errors(options: BaseModel | type[BaseModel], values: dict[str, Any]) -> list[str]:
    """One ``key: message`` line per problem with ``values`` as these options."""
    model = options if isinstance(options, type) else type(options)
    try:
        model.model_validate(values)
    except ValidationError as e:
        return [
            f"{'.'.join(str(p) for p in err['loc']) or '(options)'}: {err['msg']}"
            for err in e.errors()
        ]
    return []


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


class Stream(ABC):
    """A line stream to the device: a process's stdin/stdout (the agent, a sensor
    tool), and later a serial line or an adb shell.

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
    """How edgebench reaches one device: a connection, nothing more."""

    name: ClassVar[str]
    Options: ClassVar[type[DeviceOptions]] = DeviceOptions

    def __init__(self, device: DeviceConfig, workspace: Path) -> None:
        self.device = device
        self.workspace = workspace
        problems = option_errors(self.Options, dict(device.options))
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise TransportError(f"option {problems[0]}{more}", device=device.name)
        # The device's options as this transport's typed model (read these, not the dict).
        self.options = self.Options.model_validate(dict(device.options))

    @abstractmethod
    def push(self, local: Path, sha256: str, name: str | None = None) -> str:
        """Put a content-addressed file where the device can use it; return the
        device-side name of it (a path, a flash slot)."""

    @abstractmethod
    def open_stream(self, argv: list[str]) -> Stream:
        """Open a line stream to the device (for a shell host: start ``argv`` with
        piped stdin/stdout/stderr)."""

    def run(self, argv: list[str], timeout: float = 60.0) -> CommandResult:
        """Run ``argv`` (never a shell string) on the device and wait for it."""
        raise TransportError(
            f"transport {self.name!r} does not run commands", device=self.device.name
        )

    def close(self) -> None:  # noqa: B027 - optional hook, most transports hold nothing
        """Release connections; safe to call twice."""


class ByteStream(ABC):
    """A byte stream to a device without a shell: a serial line, an emulator's UART
    on a socket. Unlike :class:`Stream` it is not line-based: the MCU protocols are
    binary frames (``runners/mcu/PROTOCOL.md``) and the EEMBC text protocol."""

    @abstractmethod
    def write(self, data: bytes) -> None:
        """Send ``data`` (all of it)."""

    @abstractmethod
    def read(self, size: int, timeout: float) -> bytes:
        """Up to ``size`` bytes, waiting at most ``timeout`` seconds for the first;
        ``b""`` when nothing arrived in time. Raises ``TransportError`` when the
        line is gone (port unplugged, emulator exited)."""

    @abstractmethod
    def discard_input(self) -> None:
        """Drop whatever has arrived and not been read (stale bytes, boot banner)."""

    @abstractmethod
    def close(self) -> None:
        """Release the line; safe to call twice."""


class McuOptions(DeviceOptions):
    """Options every microcontroller transport takes (real or emulated)."""

    board: str  # a profile in devices/boards/ (`device add --board`)
    baud: int | None = Field(None, gt=0)  # default: the profile's
    # Limits of a smaller part than the profile's (the fit check compares with these).
    ram_bytes: int | None = Field(None, gt=0)
    flash_bytes: int | None = Field(None, gt=0)
    # What the board's firmware speaks: edgebench's framed protocol (edgebench builds
    # and flashes the image per model) or the EEMBC/MLPerf Tiny text protocol (an
    # existing benchmark firmware, e.g. MLPerf Tiny's reference, that holds the model).
    protocol: Literal["framed", "eembc"] = "framed"
    # eembc: the ELF to flash before measuring; unset, the board already runs it.
    firmware: str | None = None
    # A meter on the controller's USB in the board's supply (option power=ppk2 or
    # power=joulescope): its port (PPK2) or serial number (Joulescope), found by USB
    # name when unset; the PPK2's mode (ampere: measure only; source: it powers the
    # board at meter_voltage_mv).
    meter_port: str | None = None
    meter_mode: Literal["ampere", "source"] = "ampere"
    meter_voltage_mv: int = Field(3300, ge=800, le=5000)

    @field_validator("board")
    @classmethod
    def _known_board(cls, value: str) -> str:
        load_board(value)  # BoardError is a ValueError: pydantic reports it on `board`
        return value


class McuTarget(Transport):
    """A microcontroller (real, behind a serial line, or emulated): no shell and no
    file system. ``push`` flashes a firmware image; the runner then talks to the
    firmware over :meth:`open_serial`. The board's limits and build flags come from
    its profile (``devices/boards.py``)."""

    # True for QEMU and Renode: counts are executed instructions, not a board's own
    # timing, and every figure derived from them is labelled emulated.
    emulated: ClassVar[bool] = False
    Options: ClassVar[type[DeviceOptions]] = McuOptions
    options: McuOptions

    def __init__(self, device: DeviceConfig, workspace: Path) -> None:
        super().__init__(device, workspace)
        try:
            self._board = load_board(self.options.board).limited(
                self.options.ram_bytes, self.options.flash_bytes
            )
        except BoardError as e:
            raise TransportError(str(e), device=device.name) from None

    @property
    def board(self) -> BoardSpec:
        """The board's profile, with the part's own limits where the options give them."""
        return self._board

    @property
    def baud(self) -> int:
        return self.options.baud or self._board.baud

    @property
    def ram_limit_bytes(self) -> int:
        return self._board.ram_bytes

    @property
    def flash_limit_bytes(self) -> int:
        return self._board.flash_bytes

    @abstractmethod
    def flash(self, firmware: Path, sha256: str) -> None:
        """Make ``firmware`` (an ELF) the image the board runs, and reset it.
        Flashing the image that is already there may be skipped."""

    @abstractmethod
    def open_serial(self) -> ByteStream:
        """The board's UART, connected to the running firmware."""

    def push(self, local: Path, sha256: str, name: str | None = None) -> str:
        self.flash(local, sha256)
        return f"flash:{sha256}"

    def open_stream(self, argv: list[str]) -> Stream:
        raise TransportError(
            f"transport {self.name!r} is a microcontroller: it runs firmware, not {argv[:1]}",
            device=self.device.name,
        )


class PosixHost(Transport):
    """A device with a shell and a file system (local, SSH)."""

    # Bytes this connection has copied to the device (push): an unchanged suite run
    # again copies none, which the overhead benchmark counts.
    pushed_bytes: int = 0

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
    def remote_sha256(self, remote_path: str) -> str | None:
        """sha256 of a file on the device, or None if it is not there."""

    @abstractmethod
    def _copy_to_device(self, local: Path, remote_path: str) -> None:
        """Copy one file; the caller has already decided it is needed."""

    def push(self, local: Path, sha256: str, name: str | None = None) -> str:
        """Put a content-addressed file on the device once; return its remote path.

        The remote path embeds the hash, so a file already there with the right
        hash is never sent again, and a damaged one is replaced. Within one
        connection a file is checked once: later pushes of it cost nothing (over SSH
        each check is a remote command). Whoever finds it damaged after all (the
        agent verifies a model's hash before loading it) calls :meth:`forget`.
        """
        remote = self.artifact_path(local, sha256, name)
        verified = self.__dict__.setdefault("_verified", {})
        if verified.get(remote) == sha256:
            return remote
        if self.remote_sha256(remote) == sha256:
            verified[remote] = sha256
            return remote
        self._copy_to_device(local, remote)
        self.pushed_bytes += local.stat().st_size
        got = self.remote_sha256(remote)
        if got != sha256:
            raise TransportError(
                f"pushed {local.name} but the device reports sha256 {got}, expected {sha256}",
                device=self.device.name,
            )
        verified[remote] = sha256
        return remote

    def artifact_path(self, local: Path, sha256: str, name: str | None = None) -> str:
        """Where :meth:`push` puts (or has put) this file on the device."""
        return f"{self.workdir}/artifacts/{sha256}/{name or local.name}"

    def forget(self, remote: str) -> None:
        """The file at ``remote`` is not what it was: check (and copy) it again."""
        self.__dict__.get("_verified", {}).pop(remote, None)


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


def transport_class(name: str) -> type[Transport]:
    _load_builtin_transports()
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise UnknownTransportError(f"unknown transport {name!r} (known: {known})") from None


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
    from devices import adb, local, memory, qemu, serial, ssh  # noqa: F401
    from devices.emulators import renode  # noqa: F401


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
