"""Renode: the generated ``.resc`` (golden file), the transport's refusals, its
process handling against a stand-in ``renode`` (argv, ports, monitor, cleanup), and
a live run when Renode is installed (skipped with the reason otherwise: Renode is
not packaged for Debian, so CI does not require it)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devices.boards import BoardError, load_board
from devices.emulators.renode import RenodeTarget, renode_script
from devices.errors import TransportError
from devices.transport import DeviceConfig

DATA = Path(__file__).parent / "data" / "renode"
GOLDEN_ELF = Path("/work/edgebench/firmware.elf")


@pytest.mark.parametrize("board", ["nucleo-f746zg"])
def test_resc_matches_the_golden_file(board: str) -> None:
    script = renode_script(load_board(board), GOLDEN_ELF, uart_port=33401)
    golden = DATA / f"{board}.resc"
    if os.environ.get("EDGEBENCH_UPDATE_GOLDEN"):
        golden.write_text(script)
    assert script == golden.read_text()


def test_resc_refuses_what_renode_cannot_take() -> None:
    nucleo = load_board("nucleo-f746zg")
    with pytest.raises(BoardError, match="has characters Renode cannot take"):
        renode_script(nucleo, Path("/tmp/my build/fw.elf"), uart_port=1)
    with pytest.raises(BoardError, match="give --option uart=sysbus.usartN"):
        renode_script(nucleo.model_copy(update={"name": "other"}), GOLDEN_ELF, uart_port=1)
    assert "connector Connect sysbus.usart1 " in renode_script(
        nucleo, GOLDEN_ELF, uart_port=1, uart="sysbus.usart1"
    )


def test_a_board_without_renode_platform_is_refused(tmp_path: Path) -> None:
    config = DeviceConfig("an386", "renode", options={"board": "mps2-an386"})
    with pytest.raises(TransportError) as info:
        RenodeTarget(config, tmp_path)
    assert str(info.value) == (
        "device 'an386': board 'mps2-an386' has no renode_platform, so Renode cannot "
        "emulate it (boards that have one: nucleo-f746zg)"
    )


def test_missing_renode_says_how_to_get_it(tmp_path: Path) -> None:
    config = DeviceConfig(
        "nucleo", "renode", options={"board": "nucleo-f746zg", "renode": "no-such-renode"}
    )
    target = RenodeTarget(config, tmp_path)
    elf = tmp_path / "fw.elf"
    elf.write_bytes(b"\x7fELF")
    with pytest.raises(TransportError, match="Renode not found .*https://renode.io"):
        target.flash(elf, "0" * 64)
    with pytest.raises(TransportError, match="flash a firmware first"):
        target.open_serial()
    target.close()


# A stand-in for Renode that does what the driver relies on: parses the argv the
# driver passes, reads the generated script for the UART port, serves the UART
# (echo) and the monitor (`sysbus.cpu ExecutedInstructions`, `quit`).
FAKE_RENODE = r"""
import socket, sys, threading, re, os
args = sys.argv[1:]
assert args[:2] == ["--disable-xwt", "--plain"], args
pid_file = args[args.index("--pid-file") + 1]
monitor_port = int(args[args.index("-P") + 1])
script = open(args[-1]).read()
if os.environ.get("FAKE_RENODE_DIE"):
    print("There was an error executing command 'sysbus LoadELF'", flush=True)
    sys.exit(1)
uart_port = int(re.search(r"CreateServerSocketTerminal (\d+) ", script).group(1))
assert "sysbus LoadELF @" in script and script.rstrip().endswith("start")
open(pid_file, "w").write(str(os.getpid()))
uart = socket.create_server(("127.0.0.1", uart_port))
monitor = socket.create_server(("127.0.0.1", monitor_port))
def serve_uart():
    while True:
        conn, _ = uart.accept()
        while data := conn.recv(4096):
            conn.sendall(data.upper())
threading.Thread(target=serve_uart, daemon=True).start()
print("Monitor available in telnet mode on port", monitor_port, flush=True)
while True:
    conn, _ = monitor.accept()
    command = conn.makefile().readline().strip()
    if command == "quit":
        sys.exit(0)
    if command == "sysbus.cpu ExecutedInstructions":
        conn.sendall(b"(nucleo-f746zg) sysbus.cpu ExecutedInstructions\r\n0x1E240\r\n")
    conn.close()
"""


@pytest.fixture
def fake_renode(tmp_path: Path) -> Path:
    tool = tmp_path / "renode"
    tool.write_text(f"#!{sys.executable}\n{FAKE_RENODE}")
    tool.chmod(0o755)
    return tool


def _elf(tmp_path: Path) -> Path:
    elf = tmp_path / "dir with space" / "fw.elf"
    elf.parent.mkdir()
    elf.write_bytes(b"\x7fELF fake")
    return elf


def test_driver_starts_talks_to_and_stops_renode(tmp_path: Path, fake_renode: Path) -> None:
    config = DeviceConfig(
        "nucleo", "renode", options={"board": "nucleo-f746zg", "renode": str(fake_renode)}
    )
    target = RenodeTarget(config, tmp_path / "ws")
    elf = _elf(tmp_path)
    target.flash(elf, "1" * 64)
    proc = target._proc
    assert proc is not None and proc.poll() is None
    resc = (tmp_path / "ws" / "devices" / "nucleo" / "renode" / "run.resc").read_text()
    assert f"CreateServerSocketTerminal {target.uart_port} " in resc
    target.flash(elf, "1" * 64)  # same image, still running: not restarted
    assert target._proc is proc
    line = target.open_serial()
    try:
        line.write(b"ping")
        got = b""
        deadline = time.monotonic() + 5
        while len(got) < 4 and time.monotonic() < deadline:
            got += line.read(4, timeout=0.5)
        assert got == b"PING"
    finally:
        line.close()
    assert target.executed_instructions() == 123456
    target.close()
    assert proc.poll() == 0  # it quit when asked over the monitor
    target.close()


def test_renode_dying_at_start_is_one_line_with_its_last_words(
    tmp_path: Path, fake_renode: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_RENODE_DIE", "1")
    config = DeviceConfig(
        "nucleo", "renode", options={"board": "nucleo-f746zg", "renode": str(fake_renode)}
    )
    target = RenodeTarget(config, tmp_path / "ws")
    with pytest.raises(TransportError) as info:
        target.flash(_elf(tmp_path), "2" * 64)
    assert str(info.value) == (
        "device 'nucleo': renode exited with 1 before its UART socket listened: "
        "There was an error executing command 'sysbus LoadELF'"
    )
    assert target._proc is None


def test_live_renode(tmp_path: Path) -> None:
    renode = shutil.which("renode")
    if renode is None:
        reason = "renode not on PATH (install from https://renode.io; not required on CI)"
        print(reason)
        pytest.skip(reason)
    gcc = shutil.which("arm-none-eabi-gcc")
    if gcc is None:
        pytest.skip("arm-none-eabi-gcc not installed")
    src = tmp_path / "spin.s"
    src.write_text(
        '.syntax unified\n.thumb\n.section .isr_vector,"a"\n'
        ".word 0x20001000\n.word reset + 1\n.text\nreset: adds r0, #1\n b reset\n"
    )
    elf = tmp_path / "spin.elf"
    subprocess.run(
        [
            gcc,
            "-mcpu=cortex-m7",
            "-mthumb",
            "-nostdlib",
            "-Wl,-Ttext=0x08000000",
            "-o",
            str(elf),
            str(src),
        ],
        check=True,
    )
    config = DeviceConfig("nucleo", "renode", options={"board": "nucleo-f746zg"})
    target = RenodeTarget(config, tmp_path / "ws")
    try:
        target.flash(elf, "3" * 64)
        target.open_serial().close()
        first = target.executed_instructions()
        time.sleep(0.5)
        assert target.executed_instructions() > first
    finally:
        target.close()
