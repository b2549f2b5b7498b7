"""An emulated microcontroller: the firmware runs in ``qemu-system-arm`` and its
UART is a TCP socket on 127.0.0.1 (transport ``qemu``).

QEMU runs with ``-icount shift=ICOUNT_SHIFT,sleep=off``: the virtual clock advances
by exactly 2^shift ns per executed instruction and never sleeps, so the firmware's
SysTick readings convert to exact instruction counts (deterministic: the same
firmware and input give the same counts on every run and every boot). The shift
is 7, not 0: at 0 one 25 MHz SysTick tick is 40 instructions, the best resolution
the firmware could offer; with 128 ns per instruction a tick is shorter than an
instruction and the count is exact to one instruction (measured, see
``runners/mcu/firmware/ports/mps2/mps2.c``). The firmware is built for this value
(``runners/mcu/build.py`` passes it as ``-DEB_ICOUNT_SHIFT``).

Every QEMU is started in its own process group and killed with it: by
:meth:`QemuTransport.close`, when a start fails, and (a finalizer) when the
transport is dropped or the interpreter exits, so no QEMU outlives its transport.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import weakref
from pathlib import Path
from typing import IO

from devices.boards import BoardSpec, load_board
from devices.errors import TransportError
from devices.serial_line import SerialLine
from devices.transport import DeviceConfig, McuOptions, McuTarget, register_transport

ICOUNT_SHIFT = 7
QEMU = "qemu-system-arm"
QEMU_MISSING = "qemu-system-arm not found on PATH (apt install qemu-system-arm)"
START_TIMEOUT_S = 10.0
# A firmware that says nothing at boot is taken as up after this long.
BOOT_QUIET_S = 1.0


class QemuOptions(McuOptions):
    board: str = "mps2-an386"  # a board profile with a qemu_machine (devices/boards/)
    qemu: str = QEMU  # the qemu-system-arm binary


def qemu_argv(
    qemu: str, machine: str, elf: Path, port: int, *, wait: bool, icount_shift: int = ICOUNT_SHIFT
) -> list[str]:
    """QEMU's command line: the board, the image, and UART0 on a TCP server socket
    (``wait``: the machine starts only once a client has connected). Another
    ``icount_shift`` only with firmware built for it (``-DEB_ICOUNT_SHIFT``)."""
    return [
        qemu,
        "-M",
        machine,
        "-nographic",
        "-monitor",
        "none",
        "-icount",
        f"shift={icount_shift},sleep=off",
        "-kernel",
        str(elf),
        "-chardev",
        # nodelay: the UART writes a byte at a time; with Nagle on, a reply would
        # stall on the host's delayed ACK (~40 ms a reply, measured).
        f"socket,id=uart0,host=127.0.0.1,port={port},server=on,"
        f"wait={'on' if wait else 'off'},nodelay=on",
        "-serial",
        "chardev:uart0",
    ]


def free_port() -> int:
    """A TCP port that was free a moment ago (QEMU may still lose a race for it;
    :class:`QemuProcess` retries then)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # also works on a SIGSTOPped QEMU
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


class QemuProcess:
    """One running QEMU with its UART on ``127.0.0.1:port``."""

    def __init__(
        self,
        qemu: str,
        machine: str,
        elf: Path,
        *,
        port: int | None = None,
        wait_for_client: bool = True,
        icount_shift: int = ICOUNT_SHIFT,
        device: str | None = None,
    ) -> None:
        self.device = device
        binary = shutil.which(qemu)
        if binary is None:
            raise TransportError(
                QEMU_MISSING if qemu == QEMU else f"QEMU binary {qemu!r} not found", device=device
            )
        attempts = 1 if port is not None else 3
        for attempt in range(attempts):
            self.port = port if port is not None else free_port()
            self.argv = qemu_argv(
                binary, machine, elf, self.port, wait=wait_for_client, icount_shift=icount_shift
            )
            self._stderr: IO[bytes] = tempfile.TemporaryFile()
            # Own session: killing the group takes anything QEMU started with it.
            # stdin from /dev/null: -nographic must never read the caller's terminal.
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=self._stderr,
                start_new_session=True,
            )
            self._finalizer = weakref.finalize(self, _kill_group, self.proc)
            try:
                self._wait_listening()
                if wait_for_client:
                    self._wait_booted()
                return
            except TransportError:
                lost_race = "Address already in use" in self.stderr_tail()
                self.stop()
                if not lost_race or attempt == attempts - 1:
                    raise

    def stderr_tail(self, limit: int = 2000) -> str:
        try:
            self._stderr.seek(0)
            return self._stderr.read().decode("utf-8", "replace")[-limit:].strip()
        except (OSError, ValueError):
            return ""

    def _wait_listening(self) -> None:
        """Until the UART socket is listening (QEMU prints a line on stderr then,
        when it waits for a client) or QEMU has exited."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                raise TransportError(
                    f"QEMU exited with {code} at start: {self.stderr_tail() or '(no stderr)'}\n"
                    f"command: {' '.join(self.argv)}",
                    device=self.device,
                )
            if self._listening():
                return
            time.sleep(0.02)
        raise TransportError(
            f"QEMU's UART socket 127.0.0.1:{self.port} was not listening after "
            f"{START_TIMEOUT_S:g} s: {self.stderr_tail() or '(no stderr)'}",
            device=self.device,
        )

    def _wait_booted(self) -> None:
        """Be QEMU's first client until the firmware says something (or stays
        alive a while without a word): QEMU loads the image only once a client
        is there, so a bad image or machine fails here and not on first use.
        What the firmware said (its boot banner) is dropped with the probe."""
        try:
            probe = socket.create_connection(("127.0.0.1", self.port), timeout=START_TIMEOUT_S)
        except OSError as e:
            raise TransportError(
                f"cannot connect to QEMU's UART 127.0.0.1:{self.port}: {e}", device=self.device
            ) from None
        deadline = time.monotonic() + BOOT_QUIET_S
        with probe:
            probe.settimeout(0.02)
            while time.monotonic() < deadline:
                try:
                    if probe.recv(256):
                        return
                except TimeoutError:
                    pass
                except OSError:
                    break
                if self.proc.poll() is not None:
                    break
                time.sleep(0.01)
        code = self.proc.poll() if self.proc.poll() is not None else self._exit_soon()
        if code is not None:
            raise TransportError(
                f"QEMU exited with {code} at boot: {self.stderr_tail() or '(no stderr)'}\n"
                f"command: {' '.join(self.argv)}",
                device=self.device,
            )

    def _exit_soon(self) -> int | None:
        try:
            return self.proc.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            return None

    def _listening(self) -> bool:
        # Without connecting: a probe connection would be QEMU's client and could
        # swallow the first bytes. Linux lists listening sockets in /proc/net/tcp.
        try:
            table = Path("/proc/net/tcp").read_text()
        except OSError:
            return "waiting for connection" in self.stderr_tail()
        hex_port = f":{self.port:04X}"
        for line in table.splitlines()[1:]:
            fields = line.split()
            if len(fields) > 3 and fields[1].endswith(hex_port) and fields[3] == "0A":
                return True  # 0A = TCP_LISTEN
        return False

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        """Kill QEMU and its process group; safe to call twice."""
        _kill_group(self.proc)
        self._finalizer.detach()
        with contextlib.suppress(OSError):
            self._stderr.close()


@register_transport("qemu")
class QemuTransport(McuTarget):
    """Transport ``qemu``: options ``board`` (a profile with a ``qemu_machine``),
    ``ram_bytes`` / ``flash_bytes`` (smaller limits than the profile's) and
    ``qemu`` (the binary). ``flash`` (re)starts QEMU on the image; ``open_serial``
    connects to its UART."""

    Options = QemuOptions

    emulated = True
    options: QemuOptions

    def __init__(self, device: DeviceConfig, workspace: Path) -> None:
        super().__init__(device, workspace)  # validates the options, loads the board
        if self._board.qemu_machine is None:
            raise TransportError(
                f"board {self._board.name!r} has no qemu_machine: QEMU cannot emulate it",
                device=device.name,
            )
        self._qemu: QemuProcess | None = None
        self._image: tuple[Path, str] | None = None

    @property
    def qemu_pid(self) -> int | None:
        """The running QEMU's pid (its process group id too), or None."""
        return self._qemu.proc.pid if self._qemu is not None and self._qemu.alive else None

    @property
    def port(self) -> int | None:
        return self._qemu.port if self._qemu is not None else None

    def flash(self, firmware: Path, sha256: str) -> None:
        if (
            self._qemu is not None
            and self._qemu.alive
            and self._image is not None
            and self._image[1] == sha256
        ):
            return  # that image is running already
        # A private copy: QEMU reads the file at each (re)boot, and the build cache
        # may be cleaned in between.
        images = self.workspace / "qemu-images"
        images.mkdir(parents=True, exist_ok=True)
        local = images / f"{sha256}.elf"
        if not local.is_file():
            tmp = images / f".{sha256}.{os.getpid()}.tmp"
            shutil.copyfile(firmware, tmp)
            os.replace(tmp, local)
        self._image = (local, sha256)
        self.reboot()

    def reboot(self) -> None:
        """Start a fresh QEMU on the flashed image (a power cycle)."""
        if self._image is None:
            raise TransportError("no firmware flashed yet", device=self.device.name)
        self._stop()
        assert self._board.qemu_machine is not None
        self._qemu = QemuProcess(
            self.options.qemu, self._board.qemu_machine, self._image[0], device=self.device.name
        )

    def open_serial(self) -> SerialLine:
        if self._qemu is None or not self._qemu.alive:
            tail = f": {self._qemu.stderr_tail()}" if self._qemu is not None else ""
            raise TransportError(f"QEMU is not running{tail}", device=self.device.name)
        return SerialLine(
            f"socket://127.0.0.1:{self._qemu.port}", baud=self._board.baud, device=self.device.name
        )

    def _stop(self) -> None:
        if self._qemu is not None:
            self._qemu.stop()
            self._qemu = None

    def close(self) -> None:
        self._stop()


def run_foreground(board: BoardSpec | str, elf: Path, port: int, *, qemu: str = QEMU) -> int:
    """``edgebench emulate mcu``: run ``elf`` on ``board`` with its UART listening on
    127.0.0.1:``port`` (clients may disconnect and connect again) until Ctrl-C,
    SIGTERM or QEMU's own exit; returns QEMU's exit code (0 when stopped)."""
    spec = load_board(board) if isinstance(board, str) else board
    if spec.qemu_machine is None:
        raise TransportError(f"board {spec.name!r} has no qemu_machine: QEMU cannot emulate it")

    def stop_on_sigterm(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # the same clean stop as Ctrl-C

    # QEMU is in its own session (a Ctrl-C at the terminal does not reach it), so
    # this process must stop it; SIGTERM would otherwise leave it running.
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, stop_on_sigterm)
    try:
        proc = QemuProcess(qemu, spec.qemu_machine, Path(elf), port=port, wait_for_client=False)
        try:
            while proc.alive:
                time.sleep(0.2)
            code = int(proc.proc.returncode or 0)
            if code:
                tail = proc.stderr_tail() or "(no stderr)"
                raise TransportError(f"QEMU exited with {code}: {tail}")
            return code
        except KeyboardInterrupt:
            return 0
        finally:
            proc.stop()
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
