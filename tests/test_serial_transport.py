"""The ``serial`` transport against real peers: a pty with a fake firmware on the
other end, a TCP serial server (``socket://``), ser2net in RFC 2217 mode
(``rfc2217://``), and a fake flash tool that records the argv it was given."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import tty
from collections.abc import Iterator
from pathlib import Path

import pytest

from devices.errors import TransportError
from devices.serial import SerialTarget, flash_argv
from devices.transport import DeviceConfig, McuTarget

BOARD = "nucleo-f746zg"


def require(tool: str, why: str) -> str:
    """The tool's path; without it skip, except on CI (``CI`` set), where a missing
    peer is a broken test machine and must fail."""
    path = shutil.which(tool)
    if path is None:
        message = f"{tool} not installed ({why})"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI must have it")
        pytest.skip(message)
    return path


def target(tmp_path: Path, address: str = "", **options: object) -> SerialTarget:
    options.setdefault("board", BOARD)
    options.setdefault("reset_delay_s", 0)
    config = DeviceConfig(name="nucleo", transport="serial", address=address, options=options)
    return SerialTarget(config, tmp_path / "ws")


class FakeFirmware:
    """The board end of a pty: answers every chunk it receives with ``ack:`` + chunk;
    :meth:`boot` prints a banner, as firmware does after a reset."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # no echo, no line editing: a UART is a byte pipe
        self.path = os.ttyname(self.slave)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def start(self) -> FakeFirmware:
        self._thread.start()
        return self

    def boot(self, banner: bytes) -> None:
        os.write(self.master, banner)

    def _serve(self) -> None:
        import select

        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(self.master, 4096)
            except OSError:
                return  # the pty was closed
            os.write(self.master, b"ack:" + data)

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture
def firmware() -> Iterator[FakeFirmware]:
    fw = FakeFirmware()
    yield fw
    fw.close()


def read_exactly(line: object, size: int, timeout: float = 5.0) -> bytes:
    deadline = time.monotonic() + timeout
    got = b""
    while len(got) < size and time.monotonic() < deadline:
        got += line.read(size - len(got), timeout=0.5)  # type: ignore[attr-defined]
    return got


# --------------------------------------------------------------------------- options
def test_options_board_port_and_limits(tmp_path: Path) -> None:
    t = target(tmp_path, "/dev/ttyACM0")
    assert isinstance(t, McuTarget)
    assert t.port == "/dev/ttyACM0" and t.baud == 115200 and t.board.ram_bytes == 327680
    t = target(tmp_path, "/dev/ttyACM0", port="socket://h:1", baud="921600", ram_bytes="65536")
    assert t.port == "socket://h:1" and t.baud == 921600
    assert t.board.ram_bytes == 65536 and t.board.flash_bytes == 1048576
    t = target(tmp_path, "x", flash_command="st-flash --reset write {bin} 0x08000000")
    assert t.flash_template == ("st-flash", "--reset", "write", "{bin}", "0x08000000")
    assert target(tmp_path, "x").flash_template[0] == "openocd"  # the profile's


@pytest.mark.parametrize(
    ("options", "address", "message"),
    [
        ({"board": None}, "/dev/ttyACM0", "option board: Field required"),
        ({"board": "nucleo-f999"}, "/dev/ttyACM0", "unknown board 'nucleo-f999'"),
        ({}, "", "no serial port: give --address PORT or --option port=PORT"),
        ({"ram_bytes": 10**9}, "p", "ram_bytes=1000000000 is more than board"),
        ({"bauds": 9600}, "p", "option bauds: Extra inputs are not permitted"),
        ({"flash_command": "openocd 'x"}, "p", "cannot split flash command"),
    ],
)
def test_option_mistakes_are_one_line(
    tmp_path: Path, options: dict[str, object], address: str, message: str
) -> None:
    opts = {"board": BOARD, **options}
    opts = {k: v for k, v in opts.items() if v is not None}
    with pytest.raises(TransportError) as info:
        SerialTarget(DeviceConfig("nucleo", "serial", address, opts), tmp_path)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert str(info.value).startswith("device 'nucleo': ")


# --------------------------------------------------------------------------- real peers
def test_pty_round_trip_and_timeout(tmp_path: Path, firmware: FakeFirmware) -> None:
    firmware.start()
    line = target(tmp_path, firmware.path).open_serial()
    try:
        # Opening a port flushes what arrived before (pyserial does, as a real port's
        # driver would); the board's banner after a reset is what a runner sees.
        firmware.boot(b"boot v1\r\n")
        assert read_exactly(line, 9) == b"boot v1\r\n"
        line.write(b"\x7e\x01frame\x00")
        assert read_exactly(line, 12) == b"ack:\x7e\x01frame\x00"
        t0 = time.monotonic()
        assert line.read(16, timeout=0.2) == b""  # nothing more: timeout, not a hang
        assert 0.15 < time.monotonic() - t0 < 2
    finally:
        line.close()
        line.close()  # twice is fine


def test_pty_discard_input_drops_the_boot_banner(tmp_path: Path, firmware: FakeFirmware) -> None:
    firmware.start()
    line = target(tmp_path, firmware.path).open_serial()
    try:
        firmware.boot(b"noise before the protocol starts")
        time.sleep(0.1)
        line.discard_input()
        line.write(b"hi")
        assert read_exactly(line, 6) == b"ack:hi"
    finally:
        line.close()


def test_a_missing_port_is_a_transport_error(tmp_path: Path) -> None:
    with pytest.raises(TransportError, match="cannot open serial line /dev/ttyEDGEBENCH9"):
        target(tmp_path, "/dev/ttyEDGEBENCH9").open_serial()


@pytest.fixture
def tcp_serial_server() -> Iterator[int]:
    """A TCP serial server (what an emulator's UART or a raw ser2net port is)."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                while data := conn.recv(4096):
                    conn.sendall(b"ack:" + data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield port
    stop.set()
    thread.join(timeout=2)
    server.close()


def test_socket_url_round_trip(tmp_path: Path, tcp_serial_server: int) -> None:
    line = target(tmp_path, f"socket://127.0.0.1:{tcp_serial_server}").open_serial()
    try:
        line.write(b"%name%")
        assert read_exactly(line, 10) == b"ack:%name%"
    finally:
        line.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ser2net(tmp_path: Path, firmware: FakeFirmware) -> Iterator[int]:
    """Real ser2net 4.x bridging a TCP port in telnet/RFC 2217 mode to the pty."""
    exe = require("ser2net", "apt-get install ser2net")
    port = free_port()
    config = tmp_path / "ser2net.yaml"
    config.write_text(
        "connection: &edgebench\n"
        f"  accepter: telnet(rfc2217),tcp,127.0.0.1,{port}\n"
        f"  connector: serialdev,{firmware.path},115200n81,local\n"
        "  options:\n"
        "    kickolduser: true\n"
    )
    # -d: stay in the foreground (we own the process), -n: no daemon; its own pid file
    # so that it never touches the system's /run/ser2net.pid.
    log = tmp_path / "ser2net.log"
    with open(log, "wb") as out:  # a file, not a pipe nobody reads: -d logs every connection
        proc = subprocess.Popen(
            [exe, "-d", "-n", "-c", str(config), "-P", str(tmp_path / "ser2net.pid")],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    tail = log.read_text(errors="replace")[-500:]
                    pytest.fail(f"ser2net did not listen on {port}: {tail}")
                time.sleep(0.05)
        firmware.start()
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_rfc2217_through_real_ser2net(tmp_path: Path, ser2net: int) -> None:
    # A pty has no modem lines, so ser2net never acknowledges DTR/RTS; pyserial's
    # ign_set_control stops waiting for that (a real UART behind ser2net needs no flag).
    url = f"rfc2217://127.0.0.1:{ser2net}?ign_set_control"
    line = target(tmp_path, url, baud=115200).open_serial()
    try:
        line.write(b"\x00\x01binary\xff")
        assert read_exactly(line, 13) == b"ack:\x00\x01binary\xff"
    finally:
        line.close()


# --------------------------------------------------------------------------- flashing
@pytest.fixture
def flasher(tmp_path: Path) -> tuple[Path, Path]:
    """A fake flash tool: appends its argv (and the files it was given) to a log."""
    log = tmp_path / "flash-calls.jsonl"
    tool = tmp_path / "fake-flash"
    tool.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        "argv = sys.argv[1:]\n"
        "if os.environ.get('FAKE_FLASH_FAIL'):\n"
        "    print('Info : probing target', file=sys.stderr)\n"
        "    print('Error: no device found on the SWD bus', file=sys.stderr)\n"
        "    sys.exit(1)\n"
        "if os.environ.get('FAKE_FLASH_HANG'):\n"
        "    import time; time.sleep(60)\n"
        "sizes = {a: os.path.getsize(a) for a in argv if os.path.isfile(a)}\n"
        f"with open({str(log)!r}, 'a') as f:\n"
        "    f.write(json.dumps({'argv': argv, 'sizes': sizes}) + '\\n')\n"
    )
    tool.chmod(0o755)
    return tool, log


@pytest.fixture(scope="module")
def elf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real (tiny) Cortex-M ELF, in a directory whose name has a space and a ``;``."""
    gcc = require("arm-none-eabi-gcc", "apt-get install gcc-arm-none-eabi")
    out = tmp_path_factory.mktemp("fw") / "my build; rm -rf x"
    out.mkdir()
    src = out / "start.s"
    src.write_text(
        '.syntax unified\n.thumb\n.section .isr_vector,"a"\n'
        ".word 0x20001000\n.word reset + 1\n.text\nreset: b reset\n"
    )
    path = out / "fw image.elf"
    subprocess.run(
        [
            gcc,
            "-mcpu=cortex-m7",
            "-mthumb",
            "-nostdlib",
            "-Wl,-Ttext=0x08000000",
            "-o",
            str(path),
            str(src),
        ],
        check=True,
        capture_output=True,
    )
    return path


def calls(log: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_flash_substitutes_each_argument_and_never_uses_a_shell(
    tmp_path: Path, flasher: tuple[Path, Path], elf: Path
) -> None:
    require("arm-none-eabi-objcopy", "apt-get install binutils-arm-none-eabi")
    tool, log = flasher
    t = target(
        tmp_path,
        "p",
        flash_command=[str(tool), "--elf", "{elf}", "program {elf} verify", "{bin}", "-x", "{hex}"],
    )
    t.flash(elf, "a" * 64)
    (call,) = calls(log)
    argv = call["argv"]
    assert argv[0:2] == ["--elf", str(elf.resolve())]  # one element, spaces and ; intact
    assert argv[2] == f"program {elf.resolve()} verify"
    bin_path, hex_path = Path(argv[3]), Path(argv[5])
    assert bin_path.suffix == ".bin" and hex_path.suffix == ".hex"
    assert bin_path.parent == tmp_path / "ws" / "devices" / "nucleo"
    assert hex_path.read_text().startswith(":")  # Intel HEX made by objcopy
    assert call["sizes"][str(bin_path)] >= 10  # type: ignore[index]
    assert (tmp_path / "ws" / "devices" / "nucleo" / "flashed.sha256").read_text().strip() == (
        "a" * 64
    )
    assert not (tmp_path / "rm").exists()


def test_flash_is_skipped_for_the_image_flashed_last(
    tmp_path: Path, flasher: tuple[Path, Path], elf: Path
) -> None:
    tool, log = flasher
    t = target(tmp_path, "p", flash_command=[str(tool), "{elf}"])
    assert t.push(elf, "b" * 64) == f"flash:{'b' * 64}"
    t.flash(elf, "b" * 64)
    # A new transport (a later run) remembers it through the workspace.
    target(tmp_path, "p", flash_command=[str(tool), "{elf}"]).flash(elf, "b" * 64)
    assert len(calls(log)) == 1
    t.flash(elf, "c" * 64)
    assert len(calls(log)) == 2
    # No objcopy when the template names only the ELF.
    assert not list((tmp_path / "ws" / "devices" / "nucleo").glob("firmware.*"))


def test_flash_failure_names_the_device_tool_and_last_stderr_line(
    tmp_path: Path, flasher: tuple[Path, Path], elf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tool, _ = flasher
    monkeypatch.setenv("FAKE_FLASH_FAIL", "1")
    t = target(tmp_path, "p", flash_command=[str(tool), "{elf}"])
    with pytest.raises(TransportError) as info:
        t.flash(elf, "d" * 64)
    assert str(info.value) == (
        f"device 'nucleo': flashing fw image.elf: {tool} exited with 1: "
        "Error: no device found on the SWD bus"
    )
    assert not (tmp_path / "ws" / "devices" / "nucleo" / "flashed.sha256").exists()
    monkeypatch.delenv("FAKE_FLASH_FAIL")
    t.flash(elf, "d" * 64)  # a failed flash is not remembered: it is retried


def test_flash_timeout_kills_the_tool(
    tmp_path: Path, flasher: tuple[Path, Path], elf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tool, _ = flasher
    monkeypatch.setenv("FAKE_FLASH_HANG", "1")
    t = target(tmp_path, "p", flash_command=[str(tool), "{elf}"], flash_timeout_s=0.5)
    t0 = time.monotonic()
    with pytest.raises(TransportError, match=r"did not finish within 0.5 s \(killed\)"):
        t.flash(elf, "e" * 64)
    assert time.monotonic() - t0 < 5
    leftover = subprocess.run(["pgrep", "-f", str(tool)], capture_output=True, text=True)
    assert leftover.stdout.strip() == ""


def test_flash_without_a_command_or_tool_says_how_to_set_one(tmp_path: Path, elf: Path) -> None:
    config = DeviceConfig("an386", "serial", "p", {"board": "mps2-an386"})
    with pytest.raises(TransportError) as info:
        SerialTarget(config, tmp_path).flash(elf, "f" * 64)
    assert "board 'mps2-an386' has no flash command" in str(info.value)
    assert "--option flash_command=" in str(info.value)
    t = target(tmp_path, "p", flash_command="edgebench-no-such-flasher {elf}")
    with pytest.raises(TransportError, match="'edgebench-no-such-flasher' not found"):
        t.flash(elf, "f" * 64)


def test_flash_argv_leaves_other_braces_alone() -> None:
    argv = flash_argv(
        ("openocd", "-c", "program {elf} verify reset exit", "-c", "set x {1 2}"),
        {"{elf}": Path("/a b/fw;1.elf")},
    )
    assert argv == ["openocd", "-c", "program /a b/fw;1.elf verify reset exit", "-c", "set x {1 2}"]
