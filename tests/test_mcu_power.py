"""Power for microcontrollers: the PPK2 and Joulescope drivers fed RECORDED streams
underneath their vendor APIs (a fake PPK2 on a pty for ppk2-api's serial port; a
fake pyjoulescope_driver under the joulescope package's real device and stream
buffer), so the parsing and conversion are the packages' own; and the estimate
from a board profile."""

from __future__ import annotations

import importlib.util
import os
import select
import stat
import sys
import threading
import time
import tty
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from devices.boards import load_board
from devices.power import sources
from devices.power.errors import ParseError, PowerSourceError
from devices.power.mcu_estimate import estimate_energy, run_mode_power_w
from devices.power.meter import MeterCapture, format_reading
from devices.power.ppk2 import Ppk2Meter
from devices.power.sources import choose_source, parse_readings, sampler_request
from tests.conftest import REPO

DATA = Path(__file__).parent / "data" / "power"
PPK2_DATA = DATA / "ppk2"
JS_DATA = DATA / "joulescope"


# --------------------------------------------------------------------------- PPK2
class FakePpk2:
    """The PPK2's end of its USB serial port, on a pty: answers GET_META_DATA with
    the recorded metadata and, between AVERAGE_START and AVERAGE_STOP, streams the
    recorded samples at the real rate (400 kB/s). Keeps the commands it got."""

    COMMAND_LENGTHS = {0x19: 1, 0x06: 1, 0x07: 1, 0x11: 2, 0x0C: 2, 0x0D: 3}

    def __init__(self, metadata: bytes | None, capture: bytes) -> None:
        self.metadata = metadata
        self.capture = capture
        self.commands: list[bytes] = []
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)
        self._streaming = False
        self._offset = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        pending = b""
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.01)
            if ready:
                try:
                    pending += os.read(self.master, 256)
                except OSError:
                    return
                while pending:
                    size = self.COMMAND_LENGTHS.get(pending[0], 1)
                    if len(pending) < size:
                        break
                    command, pending = pending[:size], pending[size:]
                    self._handle(command)
            if self._streaming:
                chunk = self.capture[self._offset : self._offset + 4000]  # 10 ms of samples
                if not chunk:  # recording exhausted: loop it (a longer record() asked)
                    self._offset = 0
                    continue
                os.write(self.master, chunk)
                self._offset += len(chunk)
                time.sleep(0.01)

    def _handle(self, command: bytes) -> None:
        self.commands.append(command)
        if command[0] == 0x19 and self.metadata is not None:
            os.write(self.master, self.metadata)
        elif command[0] == 0x06:
            self._streaming, self._offset = True, 0
        elif command[0] == 0x07:
            self._streaming = False

    def last_command(self, expected: bytes, timeout: float = 2.0) -> bytes | None:
        """The last command once it is ``expected`` (the pty thread may not have read the
        bytes the meter wrote just before closing), or whatever was last at the timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.commands and self.commands[-1] == expected:
                break
            time.sleep(0.01)
        return self.commands[-1] if self.commands else None

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture
def ppk2() -> Iterator[FakePpk2]:
    fake = FakePpk2(
        (PPK2_DATA / "metadata.txt").read_bytes(),
        (PPK2_DATA / "capture_source_3v3.bin").read_bytes(),
    )
    yield fake
    fake.close()


def decode_ppk2_words(raw: bytes) -> np.ndarray:
    """Our own reading of the recorded words (no spike filter): amps per sample."""
    meta = dict(
        line.split(": ")
        for line in (PPK2_DATA / "metadata.txt").read_text().splitlines()
        if ": " in line
    )
    words = np.frombuffer(raw, dtype="<u4")
    code, rng = (words & 0x3FFF).astype(np.float64) * 4, (words >> 14) & 0x7
    r = np.array([float(meta[f"R{k}"]) for k in range(5)])[rng]
    o = np.array([float(meta[f"O{k}"]) for k in range(5)])[rng]
    return (code - o) * (1.8 / 163840) / r


def test_ppk2_source_meter_integrates_the_recording(ppk2: FakePpk2) -> None:
    raw = (PPK2_DATA / "capture_source_3v3.bin").read_bytes()
    with Ppk2Meter(ppk2.path, mode="source", voltage_mv=3300) as meter:
        capture = meter.record(0.25)
    # What ppk2-api was told: source meter (0x11 0x02), 3300 mV (0x0d ...), DUT on.
    assert ppk2.commands[0] == b"\x19"
    assert b"\x11\x02" in ppk2.commands and b"\x0c\x01" in ppk2.commands
    assert bytes([0x0D, 3 + (3300 - 800 + 32) // 256, (3300 - 800 + 32) % 256]) in ppk2.commands
    assert ppk2.last_command(b"\x0c\x00") == b"\x0c\x00"  # DUT power off on close
    assert len(capture) == 25_000 and capture.dropped == 0
    assert capture.sample_rate_hz == 100_000 and capture.duration_s == pytest.approx(0.25)
    expected_a = decode_ppk2_words(raw)
    # ppk2-api's spike filter only smooths the two range switches.
    assert float(np.mean(capture.current_a)) == pytest.approx(float(np.mean(expected_a)), rel=2e-3)
    assert float(np.mean(capture.current_a)) == pytest.approx(19.52e-3, rel=5e-3)  # README
    result = capture.energy()
    assert result.rail == "VDD" and result.estimated is False
    assert result.mean_power_w == pytest.approx(64.4e-3, rel=5e-3)
    assert result.energy_j == pytest.approx(16.1e-3, rel=5e-3)
    assert result.sample_rate_hz == pytest.approx(100_000)
    busy = capture.t0 + 0.065, capture.t0 + 0.175
    windowed = capture.energy([(*busy, 3)], idle=(capture.t0, capture.t0 + 0.055), average=100)
    assert windowed.mean_power_w == pytest.approx(38.5e-3 * 3.3, rel=5e-3)
    assert windowed.idle_power_w == pytest.approx(2.0e-3 * 3.3, rel=1e-2)
    assert windowed.energy_per_inference_j == pytest.approx(38.5e-3 * 3.3 * 0.11 / 3, rel=5e-3)


def test_ppk2_ampere_meter_does_not_power_the_board(ppk2: FakePpk2) -> None:
    with Ppk2Meter(ppk2.path, mode="ampere", voltage_mv=1800, rail="VDD_nRF") as meter:
        capture = meter.record(0.05)
    assert b"\x11\x01" in ppk2.commands and not any(c[:1] == b"\x0c" for c in ppk2.commands)
    assert capture.rail == "VDD_nRF" and capture.voltage_v == 1.8
    assert float(np.mean(capture.current_a)) == pytest.approx(2.0e-3, rel=2e-2)  # idle part


def test_ppk2_missing_instrument_or_package_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    silent = FakePpk2(None, b"")  # something on a serial port that is not a PPK2
    try:
        with pytest.raises(PowerSourceError, match=f"{silent.path} did not answer the metadata"):
            Ppk2Meter(silent.path).open()
    finally:
        silent.close()
    with pytest.raises(PowerSourceError, match="ppk2: cannot open /dev/ttyNOPPK2"):
        Ppk2Meter("/dev/ttyNOPPK2").open()
    # No port given and none with USB product "PPK2" on this machine.
    with pytest.raises(PowerSourceError, match="no Nordic PPK2 found"):
        Ppk2Meter().open()
    with pytest.raises(PowerSourceError, match="outside 800..5000 mV"):
        Ppk2Meter(voltage_mv=12000)
    monkeypatch.setitem(sys.modules, "ppk2_api", None)  # as if not installed
    with pytest.raises(PowerSourceError, match=r"pip install ppk2-api==0\.9\.2"):
        Ppk2Meter("/dev/null").open()


# --------------------------------------------------------------------------- Joulescope
class FakeJoulescopeDriver:
    """Stands in for ``pyjoulescope_driver.Driver`` (the USB layer under the joulescope
    package) with one JS220 that publishes the recorded ``!data`` messages once its
    six signals are switched on (``ctrl`` = 1), at the real pace."""

    PATH = "u/js220/002557"
    FIELDS = {
        "s/i/": ((1, 0), "current"),
        "s/v/": ((2, 0), "voltage"),
        "s/p/": ((3, 0), "power"),
        "s/i/range/": ((4, 0), "current_range"),
        "s/gpi/0/": ((5, 0), "gpi0"),
        "s/gpi/1/": ((5, 1), "gpi1"),
    }

    def __init__(self) -> None:
        self.log_level = "INFO"
        self.published: list[tuple[str, Any]] = []
        self.subscribers: dict[str, list[Callable[[str, Any], Any]]] = {}
        self.recording = np.load(JS_DATA / "js220_10khz.npz")
        self.enabled: set[str] = set()
        self.opened = False
        self._thread: threading.Thread | None = None

    # the pyjoulescope_driver.Driver methods the joulescope package calls
    def device_paths(self) -> list[str]:
        return [self.PATH]

    def subscribe(self, topic: str, flags: object, fn: Callable[[str, Any], Any], timeout=None):  # noqa: ANN001, ANN201
        self.subscribers.setdefault(topic, []).append(fn)

    def unsubscribe(self, topic: str, fn: Callable[[str, Any], Any], timeout=None):  # noqa: ANN001, ANN201
        if topic in self.subscribers and fn in self.subscribers[topic]:
            self.subscribers[topic].remove(fn)

    def open(self, path: str, mode=None, timeout=None):  # noqa: ANN001, ANN201
        assert path == self.PATH
        self.opened = True
        return 0

    def close(self, path: str, timeout=None):  # noqa: ANN001, ANN201
        self.opened = False
        return 0

    def query(self, topic: str, timeout=None):  # noqa: ANN001, ANN201
        return 0

    def finalize(self) -> None:
        pass

    def publish(self, topic: str, value: Any, timeout=None):  # noqa: ANN001, ANN201
        self.published.append((topic, value))
        signal = topic.removeprefix(self.PATH + "/").removesuffix("ctrl")
        if topic.endswith("/ctrl") and signal in self.FIELDS:
            (self.enabled.add if value else self.enabled.discard)(signal)
            if len(self.enabled) == len(self.FIELDS) and self._thread is None:
                self._thread = threading.Thread(target=self._stream, daemon=True)
                self._thread.start()
        return 0

    def _stream(self) -> None:
        rate, input_rate, block = (int(x) for x in self.recording["meta"])
        decimate = input_rate // rate
        total = len(self.recording["current"])
        start = 0
        while len(self.enabled) == len(self.FIELDS):
            for signal, ((field_id, index), name) in self.FIELDS.items():
                values = self.recording[name]
                if name.startswith("gpi"):
                    data = values[start // 8 : (start + block) // 8]
                else:
                    data = values[start : start + block]
                message = {
                    "sample_id": start * decimate,
                    "field_id": field_id,
                    "index": index,
                    "sample_rate": input_rate,
                    "decimate_factor": decimate,
                    "utc": 0,
                    "data": data,
                }
                for fn in list(self.subscribers.get(f"{self.PATH}/{signal}!data", [])):
                    fn(f"{self.PATH}/{signal}!data", message)
            start += block
            if start >= total:
                return  # the recording is all there is
            time.sleep(block / rate)


@pytest.fixture
def js_driver(monkeypatch: pytest.MonkeyPatch) -> FakeJoulescopeDriver:
    from joulescope.v1 import driver as js_v1_driver

    fake = FakeJoulescopeDriver()
    monkeypatch.setattr(js_v1_driver, "Driver", lambda: fake)
    monkeypatch.setattr(js_v1_driver.DriverWrapper, "__singleton__", None)
    return fake


def test_joulescope_reads_the_recorded_stream(js_driver: FakeJoulescopeDriver) -> None:
    from devices.power.joulescope import JoulescopeMeter

    recording = np.load(JS_DATA / "js220_10khz.npz")
    with JoulescopeMeter(buffer_s=2.0) as meter:
        assert meter.serial_number == "002557"
        capture = meter.record(0.5)
    assert not js_driver.opened  # closed again
    assert (f"{FakeJoulescopeDriver.PATH}/h/fs", 10_000) in js_driver.published
    assert (f"{FakeJoulescopeDriver.PATH}/s/i/range/mode", "auto") in js_driver.published
    assert len(capture) == 5000 and capture.sample_rate_hz == 10_000 and capture.dropped == 0
    np.testing.assert_allclose(capture.current_a, recording["current"], rtol=1e-6)
    result = capture.energy()
    assert result.estimated is False and result.rail == "VDD"
    expected = float(np.mean(recording["current"].astype(np.float64) * recording["voltage"]))
    assert result.mean_power_w == pytest.approx(expected, rel=2e-3)
    assert result.mean_power_w == pytest.approx(28.14e-3, rel=5e-3)  # make_recording.py


def test_joulescope_missing_instrument_or_package(
    js_driver: FakeJoulescopeDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    from devices.power.joulescope import JoulescopeMeter

    with pytest.raises(PowerSourceError, match="no Joulescope with serial number 1 found"):
        JoulescopeMeter("1").open()
    monkeypatch.setattr(FakeJoulescopeDriver, "device_paths", lambda self: [])
    monkeypatch.setattr("joulescope.v1.driver.DriverWrapper.__singleton__", None)
    with pytest.raises(PowerSourceError, match=r"no Joulescope found: plug it in \(USB\)"):
        JoulescopeMeter().open()
    monkeypatch.setitem(sys.modules, "joulescope", None)
    with pytest.raises(PowerSourceError, match="pip install joulescope"):
        JoulescopeMeter().open()


# --------------------------------------------------------------------------- registry
def test_meters_are_registered_sources_sampled_on_the_host() -> None:
    assert {"ppk2", "joulescope"} <= set(sources.source_names())
    sensor = choose_source({"power": "ppk2"}, None)
    request = sampler_request({**sensor, "path": "/dev/ttyACM3"}, {"power_interval_ms": "50"})
    assert request["mode"] == "stream"
    assert request["argv"][1:] == [
        "-m",
        "devices.power.ppk2",
        "--interval-ms",
        "50",
        "--mode",
        "ampere",
        "--voltage-mv",
        "3300",
        "--port",
        "/dev/ttyACM3",
    ]
    js = sampler_request({"kind": "joulescope", "serial_number": "002557"}, {})
    assert js["argv"][2:] == [
        "devices.power.joulescope",
        "--interval-ms",
        "100",
        "--serial-number",
        "002557",
    ]
    line = format_reading("VDD", 0.0195, 3.3, 10000)
    series = parse_readings("ppk2", [[0.0, line], [0.1, "rail=VDD A=x"], [0.2, line]])
    assert series.rail == "VDD" and series.skipped == 1
    assert series.samples == [(0.0, pytest.approx(0.06435)), (0.2, pytest.approx(0.06435))]
    with pytest.raises(ParseError, match="no samples in the interval"):
        sources.get_source("joulescope").reading("rail=VDD A=nan V=3.3 n=0")


@pytest.fixture(scope="module")
def agent() -> ModuleType:
    path = REPO / "runners" / "agent" / "edgebench_agent.py"
    spec = importlib.util.spec_from_file_location("edgebench_agent_for_mcu_power", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("kind", ["ppk2", "joulescope"])
def test_recorded_meter_lines_round_trip_through_the_agent_sampler(
    kind: str, agent: ModuleType, tmp_path: Path
) -> None:
    """The agent's real stream sampler runs a stand-in for the meter process that
    prints recorded readings (as the module's main() prints them)."""
    lines = [format_reading("VDD", a, 3.3, 10_000) for a in (0.002, 0.0385, 0.0385, 0.002)]
    recording = tmp_path / f"{kind}.txt"
    recording.write_text("\n".join(lines) + "\n")
    tool = tmp_path / f"replay-{kind}"
    tool.write_text(f"#!/bin/sh\ncat '{recording}'\n")
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    request = sampler_request({"kind": kind}, {"power_interval_ms": "10", "power_tool": str(tool)})
    sampler = agent.PowerSampler(request)
    sampler.start()
    deadline = time.monotonic() + 10
    while len(sampler.readings) < len(lines) and time.monotonic() < deadline:
        time.sleep(0.005)
    readings = sampler.stop()["readings"][: len(lines)]
    series = parse_readings(kind, readings)
    assert series.skipped == 0 and series.rail == "VDD"
    assert [w for _, w in series.samples] == pytest.approx(
        [a * 3.3 for a in (0.002, 0.0385, 0.0385, 0.002)]
    )


# --------------------------------------------------------------------------- estimate
def test_estimate_from_the_board_profile_is_labelled_estimated() -> None:
    nucleo = load_board("nucleo-f746zg")
    watts = 430e-6 * 216 * 3.3  # 430 uA/MHz x 216 MHz x 3.3 V = 0.3065 W
    assert run_mode_power_w(nucleo) == pytest.approx(watts)
    assert run_mode_power_w(nucleo, clock_hz=108_000_000) == pytest.approx(watts / 2)
    result = estimate_energy(nucleo, [(0.0, 0.5, 10), (1.0, 1.5, 10)])
    assert result.estimated is True and result.rail == "estimate(nucleo-f746zg)"
    assert result.mean_power_w == pytest.approx(watts)
    assert result.energy_j == pytest.approx(watts * 1.0)
    assert result.energy_per_inference_j == pytest.approx(watts * 1.0 / 20)
    assert result.sample_count == 0 and result.sample_rate_hz is None
    assert result.idle_power_w is None and "not measured" in (result.note or "")
    with pytest.raises(
        PowerSourceError, match="'mps2-an386' has no current_ua_per_mhz or supply_v"
    ):
        estimate_energy(load_board("mps2-an386"), [(0.0, 1.0, 1)])
    with pytest.raises(ValueError, match="0 inferences"):
        estimate_energy(nucleo, [(0.0, 1.0, 0)])


def test_a_capture_series_keeps_energy_when_averaged() -> None:
    rng = np.random.default_rng(3)
    current = 0.01 + rng.normal(0, 1e-4, 1000)
    capture = MeterCapture("ppk2", "VDD", 5.0, 1000.0, current, 3.0)
    full, averaged = capture.series(), capture.series(10)
    assert len(full) == 1000 and len(averaged) == 100
    assert averaged[0][0] == pytest.approx(5.0045)
    assert np.mean([w for _, w in averaged]) == pytest.approx(np.mean(current) * 3.0)
    with pytest.raises(ValueError, match="average must be >= 1"):
        capture.series(0)
