"""A real microcontroller board behind a serial line (transport ``serial``).

The board is flashed by a vendor tool run on the controller (OpenOCD, pyOCD,
st-flash, nrfjprog, ...) and then talked to over its UART: a USB CDC port
(``/dev/ttyACM0``), a pty, ``socket://host:port`` (a TCP serial server) or
``rfc2217://host:port`` (ser2net in telnet mode, for a board on another host).

Address: ``DeviceConfig.address`` is the port; the option ``port`` wins over it.

Options (``--option k=v`` or a lab file's ``options:``):

``board``
    Board profile name (``devices/boards/<board>.yaml``), required: it gives the
    firmware build flags, the memory limits, the baud rate and the flash command.
``port``
    The serial line, when the address does not carry it.
``baud``
    Line speed; default the profile's.
``ram_bytes`` / ``flash_bytes``
    Limits of a smaller part than the profile's (the fit check uses them).
``flash_command``
    argv template that flashes the board, overriding the profile's; a list, or one
    string split like a POSIX shell would split it (it is never run by a shell).
    ``{elf}``, ``{hex}`` and ``{bin}`` are replaced inside each argument by the
    firmware's paths; the .hex/.bin files are made with ``arm-none-eabi-objcopy``
    only when the template names them.
``flash_timeout_s``
    Seconds the flash tool may run (default 120); it is killed, with its children,
    after that.
``reset_delay_s``
    Seconds to wait after flashing before the UART is used (default 0.5): the
    board resets and its USB serial port may re-enumerate.
``objcopy``
    The objcopy to make .hex/.bin with (default ``arm-none-eabi-objcopy``).

Flashing the image that was flashed last is skipped: its sha256 is remembered in
``<workspace>/devices/<name>/flashed.sha256`` (removed before a flash starts, so
an interrupted flash is never taken for a finished one).
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
from pathlib import Path

from pydantic import Field, field_validator

from devices.errors import TransportError
from devices.serial_line import SerialLine
from devices.transport import DeviceConfig, McuOptions, McuTarget, register_transport

DEFAULT_OBJCOPY = "arm-none-eabi-objcopy"
# What objcopy is asked for each placeholder: output format and file suffix.
_OBJCOPY_FORMATS = {"{hex}": ("ihex", ".hex"), "{bin}": ("binary", ".bin")}


def flash_argv(template: tuple[str, ...], paths: dict[str, Path]) -> list[str]:
    """``template`` with ``{elf}``/``{hex}``/``{bin}`` replaced inside each argument.

    Plain replacement, not ``str.format``: templates carry Tcl for OpenOCD
    (``program {elf} verify reset exit``) and may carry other braces too.
    """
    argv = []
    for arg in template:
        for placeholder, path in paths.items():
            arg = arg.replace(placeholder, str(path))
        argv.append(arg)
    return argv


def run_tool(argv: list[str], *, timeout: float, what: str, device: str) -> str:
    """Run a host tool (argv, no shell) to completion; its stdout.

    The tool gets its own process group so that a timeout kills what it started too
    (OpenOCD's gdb server, a flasher's helper), not just the first process.
    """
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except FileNotFoundError:
        raise TransportError(f"{what}: {argv[0]!r} not found", device=device) from None
    except PermissionError:
        raise TransportError(f"{what}: {argv[0]!r} is not executable", device=device) from None
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise TransportError(
            f"{what}: {argv[0]} did not finish within {timeout:g} s (killed)", device=device
        ) from None
    finally:
        if proc.poll() is None:  # interrupted (KeyboardInterrupt): leave nothing behind
            _kill_group(proc)
    if proc.returncode != 0:
        text = err.decode("utf-8", "replace").strip() or out.decode("utf-8", "replace").strip()
        last = text.splitlines()[-1] if text else "(no output)"
        raise TransportError(
            f"{what}: {argv[0]} exited with {proc.returncode}: {last}", device=device
        )
    return out.decode("utf-8", "replace")


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # already gone
    proc.communicate()  # reap it and close the pipes


class SerialOptions(McuOptions):
    port: str | None = None
    flash_command: tuple[str, ...] | None = None
    flash_timeout_s: float = Field(120.0, gt=0)
    reset_delay_s: float = Field(0.5, ge=0)
    objcopy: str = DEFAULT_OBJCOPY

    @field_validator("flash_command", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        # From the command line the template arrives as one string.
        if isinstance(value, str):
            try:
                return tuple(shlex.split(value))
            except ValueError as e:
                raise ValueError(f"cannot split flash command: {e}") from None
        return value


@register_transport("serial")
class SerialTarget(McuTarget):
    """A board behind a serial line, flashed by a host tool."""

    Options = SerialOptions

    options: SerialOptions

    def __init__(self, device: DeviceConfig, workspace: Path) -> None:
        super().__init__(device, workspace)  # validates the options, loads the board
        port = self.options.port or device.address
        if not port:
            raise TransportError(
                "no serial port: give --address PORT or --option port=PORT "
                "(/dev/ttyACM0, socket://host:port, rfc2217://host:port)",
                device=device.name,
            )
        self.port = port
        self.state_dir = workspace / "devices" / device.name

    @property
    def flash_template(self) -> tuple[str, ...]:
        return self.options.flash_command or self._board.flash_command

    @property
    def _flashed_file(self) -> Path:
        return self.state_dir / "flashed.sha256"

    def flash(self, firmware: Path, sha256: str) -> None:
        template = self.flash_template
        if not template:
            raise TransportError(
                f"board {self._board.name!r} has no flash command: add flash_command to its "
                f"profile or give --option flash_command='TOOL ARGS... {{elf}}'",
                device=self.device.name,
            )
        if self._flashed_sha256() == sha256:
            return  # the board already runs this image
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._flashed_file.unlink(missing_ok=True)
        paths = {"{elf}": firmware.resolve()}
        for placeholder, (fmt, suffix) in _OBJCOPY_FORMATS.items():
            if any(placeholder in arg for arg in template):
                image = self.state_dir / f"firmware{suffix}"
                run_tool(
                    [self.options.objcopy, "-O", fmt, str(firmware), str(image)],
                    timeout=60,
                    what=f"making {suffix} from {firmware.name}",
                    device=self.device.name,
                )
                paths[placeholder] = image
        run_tool(
            flash_argv(template, paths),
            timeout=self.options.flash_timeout_s,
            what=f"flashing {firmware.name}",
            device=self.device.name,
        )
        self._flashed_file.write_text(sha256 + "\n")
        time.sleep(self.options.reset_delay_s)

    def _flashed_sha256(self) -> str | None:
        try:
            return self._flashed_file.read_text().strip() or None
        except FileNotFoundError:
            return None

    def open_serial(self) -> SerialLine:
        return SerialLine(self.port, baud=self.baud, device=self.device.name)
