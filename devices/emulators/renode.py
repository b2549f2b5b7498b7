"""Antmicro Renode as a microcontroller (transport ``renode``).

A board profile with ``renode_platform`` (a ``.repl`` shipped with Renode, e.g.
``platforms/cpus/stm32f746.repl``) can be emulated: :func:`renode_script` writes a
monitor script (``.resc``) that creates the machine, loads the platform and the
firmware ELF, connects the board's console UART to a TCP server socket, and starts
the emulation. :class:`RenodeTarget` runs it headless::

    renode --disable-xwt --plain --pid-file FILE -P MONITOR_PORT SCRIPT.resc

(``--disable-xwt`` is spelled ``--disable-gui`` too since Renode 1.15; the old
name is kept for older releases). The monitor listens on ``MONITOR_PORT`` (telnet
text), which is how the driver asks for the executed-instruction count and says
``quit``; the runner talks to the firmware over ``socket://127.0.0.1:UART_PORT``.

Timing: Renode advances virtual time by executed instructions at the CPU's
``PerformanceInMips``. The script sets it to the board's clock in MHz, so one
instruction is one cycle of virtual time and ``ExecutedInstructions`` / clock is an
estimated latency at the board clock - an emulated figure, labelled so.

Options (besides ``board``, ``ram_bytes``, ``flash_bytes`` of every MCU):

``renode``
    The Renode executable (default ``renode`` from PATH).
``uart``
    The UART peripheral to connect (default: the board's, from :data:`CONSOLE_UARTS`).
``uart_port`` / ``monitor_port``
    Local TCP ports; 0 (default) picks free ones.
``start_timeout_s``
    Seconds Renode may take to listen on the UART socket (default 60: it is a .NET
    program and loads the platform first).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from pydantic import Field

from devices.boards import BoardError, BoardSpec, board_names, load_board
from devices.errors import TransportError
from devices.serial_line import SerialLine
from devices.transport import DeviceConfig, McuOptions, McuTarget, register_transport

# The UART each board's console (the runner's line) is wired to. It is a property of
# the board, not of the chip: a NUCLEO-F746ZG's ST-LINK virtual COM port is USART3,
# a 32F746G-DISCOVERY's is USART1, on the same stm32f746.repl.
CONSOLE_UARTS: dict[str, str] = {
    "nucleo-f746zg": "sysbus.usart3",
}
UART_TERMINAL = "edgebench_uart"
# Renode's monitor parses `@path` up to whitespace, and `"` would end a quoted
# argument: paths in the script are kept to characters that need no quoting.
_SAFE_PATH = re.compile(r"^[A-Za-z0-9_./+:-]+$")


def renode_script(board: BoardSpec, elf: Path, *, uart_port: int, uart: str | None = None) -> str:
    """The ``.resc`` monitor script that runs ``elf`` on ``board`` (see module doc)."""
    if not board.renode_platform:
        raise BoardError(f"board {board.name!r} has no renode_platform")
    uart = uart or CONSOLE_UARTS.get(board.name)
    if uart is None:
        raise BoardError(
            f"board {board.name!r}: which UART is its console is not known; "
            "give --option uart=sysbus.usartN"
        )
    if not _SAFE_PATH.match(str(elf)):
        raise BoardError(f"firmware path {str(elf)!r} has characters Renode cannot take")
    mips = max(1, round(board.clock_hz / 1_000_000))
    return "\n".join(
        [
            f"# edgebench: {board.name} under Renode (generated; do not edit)",
            f'mach create "{board.name}"',
            f"machine LoadPlatformDescription @{board.renode_platform}",
            "# the console UART as a raw TCP server (false: no telnet negotiation bytes)",
            f'emulation CreateServerSocketTerminal {uart_port} "{UART_TERMINAL}" false',
            f"connector Connect {uart} {UART_TERMINAL}",
            "# one instruction per cycle at the board clock: virtual time estimates latency",
            f"sysbus.cpu PerformanceInMips {mips}",
            f"sysbus LoadELF @{elf}",
            "start",
            "",
        ]
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RenodeOptions(McuOptions):
    renode: str = "renode"
    uart: str | None = None
    uart_port: int = Field(0, ge=0, le=65535)
    monitor_port: int = Field(0, ge=0, le=65535)
    start_timeout_s: float = Field(60.0, gt=0)


@register_transport("renode")
class RenodeTarget(McuTarget):
    """A board emulated by Renode; ``flash`` (re)starts the emulation with the ELF."""

    Options = RenodeOptions

    emulated = True
    options: RenodeOptions

    def __init__(self, device: DeviceConfig, workspace: Path) -> None:
        super().__init__(device, workspace)  # validates the options, loads the board
        if not self._board.renode_platform:
            emulated = [b for b in board_names() if load_board(b).renode_platform]
            raise TransportError(
                f"board {self._board.name!r} has no renode_platform, so Renode cannot "
                f"emulate it (boards that have one: {', '.join(emulated) or 'none'})",
                device=device.name,
            )
        self.state_dir = workspace / "devices" / device.name / "renode"
        self._proc: subprocess.Popen[bytes] | None = None
        self._flashed: str | None = None
        self.uart_port = 0
        self.monitor_port = 0

    # ----------------------------------------------------------------- lifecycle
    def flash(self, firmware: Path, sha256: str) -> None:
        if self._flashed == sha256 and self._running():
            return
        self.close()
        exe = shutil.which(self.options.renode)
        if exe is None:
            raise TransportError(
                f"Renode not found ({self.options.renode!r}): install it from "
                "https://renode.io or give --option renode=/path/to/renode",
                device=self.device.name,
            )
        self.state_dir.mkdir(parents=True, exist_ok=True)
        elf = self.state_dir / "firmware.elf"
        shutil.copyfile(firmware, elf)  # a fixed, quotable path whatever the cache's is
        self.uart_port = self.options.uart_port or free_port()
        self.monitor_port = self.options.monitor_port or free_port()
        try:
            script = renode_script(
                self._board, elf.resolve(), uart_port=self.uart_port, uart=self.options.uart
            )
        except BoardError as e:
            raise TransportError(str(e), device=self.device.name) from None
        resc = self.state_dir / "run.resc"
        resc.write_text(script)
        log = self.state_dir / "renode.log"
        argv = [
            exe,
            "--disable-xwt",
            "--plain",
            "--pid-file",
            str(self.state_dir / "renode.pid"),
            "-P",
            str(self.monitor_port),
            str(resc),
        ]
        with open(log, "wb") as out:
            # Its own session: close() signals the whole group (Renode's launcher
            # script and the .NET process under it).
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_for_uart(log)
        except BaseException:
            self.close()
            raise
        self._flashed = sha256

    def _running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _wait_for_uart(self, log: Path) -> None:
        deadline = time.monotonic() + self.options.start_timeout_s
        while True:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise TransportError(
                    f"renode exited with {self._proc.returncode} before its UART socket "
                    f"listened: {_last_line(log)}",
                    device=self.device.name,
                )
            try:
                # Renode's server terminal takes one client and drops this probe's
                # connection cleanly; the runner connects for real afterwards.
                socket.create_connection(("127.0.0.1", self.uart_port), timeout=0.5).close()
                return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TransportError(
                    f"renode did not listen on UART port {self.uart_port} within "
                    f"{self.options.start_timeout_s:g} s: {_last_line(log)}",
                    device=self.device.name,
                )
            time.sleep(0.1)

    def open_serial(self) -> SerialLine:
        if not self._running():
            raise TransportError(
                "renode is not running: flash a firmware first", device=self.device.name
            )
        return SerialLine(f"socket://127.0.0.1:{self.uart_port}", device=self.device.name)

    def monitor(self, command: str, timeout: float = 10.0) -> str:
        """Run one monitor command; the text Renode printed for it."""
        if not self._running():
            raise TransportError("renode is not running", device=self.device.name)
        try:
            with socket.create_connection(("127.0.0.1", self.monitor_port), timeout=timeout) as s:
                s.sendall(command.encode() + b"\n")
                s.shutdown(socket.SHUT_WR)  # Renode answers, then sees the end and hangs up
                chunks = []
                while data := s.recv(4096):
                    chunks.append(data)
        except OSError as e:
            raise TransportError(f"renode monitor: {e}", device=self.device.name) from None
        return b"".join(chunks).decode("utf-8", "replace")

    def executed_instructions(self) -> int:
        """Instructions the emulated CPU has executed since the emulation started."""
        reply = self.monitor("sysbus.cpu ExecutedInstructions")
        numbers = re.findall(r"(?<![\w.])(0x[0-9A-Fa-f]+|\d+)(?![\w.])", reply)
        if not numbers:
            raise TransportError(
                f"renode monitor gave no instruction count: {reply.strip()[-200:]!r}",
                device=self.device.name,
            )
        return int(numbers[-1], 0)

    def close(self) -> None:
        proc, self._proc = self._proc, None
        self._flashed = None
        if proc is None:
            return
        if proc.poll() is None:
            try:
                self._send_quit()
                proc.wait(timeout=5)
            except (TransportError, subprocess.TimeoutExpired):
                pass  # ask nicely failed: signal the group below
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if proc.poll() is not None:
                break
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                continue
        proc.wait()

    def _send_quit(self) -> None:
        try:
            with socket.create_connection(("127.0.0.1", self.monitor_port), timeout=2) as s:
                s.sendall(b"quit\n")
        except OSError as e:
            raise TransportError(f"renode monitor: {e}", device=self.device.name) from None


def _last_line(log: Path) -> str:
    try:
        lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except FileNotFoundError:
        return "(no output)"
    return lines[-1].strip() if lines else "(no output)"
