"""From a device's sensors to an agent sampling request, and from raw readings back
to a watts series: every source, on recorded outputs."""

from __future__ import annotations

import importlib.util
import json
import sqlite3
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from devices.errors import DeviceError
from devices.power import ina3221, nvml, rpi, sources, tegrastats
from devices.power.errors import ParseError, PowerSourceError
from devices.power.sources import (
    PowerOptions,
    PowerSource,
    Reading,
    Sampler,
    Sensor,
    choose_source,
    parse_readings,
    register_source,
    sampler_request,
    source_names,
    telemetry_summary,
)
from tests.conftest import REPO, Runner

DATA = Path(__file__).parent / "data" / "power"


def test_choose_source_auto_none_and_explicit() -> None:
    facts = {"sensors": [{"kind": "tegrastats", "path": "/usr/bin/tegrastats"}]}
    assert choose_source({}, facts)["kind"] == "tegrastats"
    assert choose_source({"power": "none"}, facts) is None
    assert choose_source({}, {"sensors": []}) is None
    assert choose_source({"power": "nvidia_smi"}, facts) == {"kind": "nvidia_smi"}
    with pytest.raises(DeviceError, match="not a power source"):
        choose_source({"power": "multimeter"}, facts)


def test_sampler_requests_are_argv_lists() -> None:
    tegra = sampler_request(
        {"kind": "tegrastats", "path": "/usr/bin/tegrastats"}, {"power_interval_ms": "50"}
    )
    assert tegra["mode"] == "stream" and tegra["argv"] == [
        "/usr/bin/tegrastats",
        "--interval",
        "50",
    ]
    smi = sampler_request({"kind": "nvidia_smi"}, {})
    assert smi["argv"][0] == "nvidia-smi" and "-lms" in smi["argv"]
    pmic = sampler_request({"kind": "rpi_pmic", "path": "/usr/bin/vcgencmd"}, {})
    assert pmic == {
        "interval_ms": 100,
        "idle_s": 1.0,
        "mode": "poll_command",
        "argv": ["/usr/bin/vcgencmd", "pmic_read_adc"],
    }
    ina = sampler_request(
        {"kind": "ina3221", "path": "/sys/class/hwmon/hwmon1", "channels": {"1": "VDD_IN"}}, {}
    )
    assert ina["files"] == {
        "VDD_IN|mV": "/sys/class/hwmon/hwmon1/in1_input",
        "VDD_IN|mA": "/sys/class/hwmon/hwmon1/curr1_input",
    }


def test_parse_readings_per_source() -> None:
    tegra_lines = (DATA / "tegrastats" / "r36.4.0_orin_nano.log").read_text().splitlines()
    series = parse_readings("tegrastats", [[i * 0.1, line] for i, line in enumerate(tegra_lines)])
    assert series.rail == "VDD_IN" and series.skipped == 0
    watts = [w for _, w in series.samples]
    assert 4.5 < min(watts) < 5.5 and 9.0 < max(watts) < 10.5  # idle ~5 W, loaded ~9.7 W

    smi_lines = (DATA / "nvml" / "nvidia_smi_2gpu_lms100.csv").read_text().splitlines()
    series = parse_readings("nvidia_smi", [[i, line] for i, line in enumerate(smi_lines)])
    first = nvml.parse_line(smi_lines[0])
    assert series.samples[0] == (0.0, first.power_w)

    pmic = (DATA / "rpi" / "pi5_pmic_read_adc.txt").read_text()
    series = parse_readings("rpi_pmic", [[0.0, pmic], [0.1, pmic], [0.2, "garbage"]])
    assert series.skipped == 1 and series.rail == rpi.TOTAL_RAIL_NAME
    assert series.samples[0][1] == pytest.approx(rpi.parse_pmic_read_adc(pmic).total_power_w)

    series = parse_readings("ina3221", [[0.0, "VDD_IN|mV=5072;VDD_IN|mA=1033;X|mV=;X|mA=1"]])
    assert series.rail == "VDD_IN" and series.samples == [(0.0, pytest.approx(5.072 * 1.033))]


@pytest.mark.slow
def test_ina3221_rails_found_and_sampled_end_to_end(eb: Runner, tmp_path: Path) -> None:
    """The agent discovers the INA3221 rails in a recorded JetPack 6 sysfs tree and
    polls their files during the bench; the controller reports VDD_IN power."""
    eb.env["EDGEBENCH_SYSFS_ROOT"] = str(DATA / "ina3221" / "jp6_orin_nano")  # type: ignore[attr-defined]
    eb("device", "add", "orin", "--option", "power_interval_ms=20")
    facts = json.loads(eb("device", "check", "orin", "--json").stdout)["facts"]
    (sensor,) = facts["sensors"]
    assert sensor["kind"] == "ina3221" and sensor["channels"]["1"] == "VDD_IN"

    from tests.test_power_e2e import SUITE

    suite = tmp_path / "s.yaml"
    suite.write_text(SUITE)
    eb("run", str(suite), "--no-report")
    db = eb.env["EDGEBENCH_DB"].removeprefix("sqlite:///")  # type: ignore[attr-defined]
    with sqlite3.connect(db) as conn:
        metrics = dict(conn.execute("SELECT name, value FROM metrics").fetchall())
        result = json.loads(conn.execute("SELECT result FROM jobs").fetchone()[0])
    assert result["power"]["rail"] == "VDD_IN"
    hwmon1 = DATA / "ina3221" / "jp6_orin_nano" / "sys" / "class" / "hwmon" / "hwmon1"
    volts = int((hwmon1 / "in1_input").read_text()) / 1000
    amps = int((hwmon1 / "curr1_input").read_text()) / 1000
    assert metrics["mean_power"] == pytest.approx(volts * amps)
    assert metrics["idle_power"] == pytest.approx(volts * amps)


# --------------------------------------------------------------------------- the registry
def test_a_source_name_is_registered_once() -> None:
    assert set(source_names()) >= {"tegrastats", "ina3221", "rpi_pmic", "nvidia_smi"}
    with pytest.raises(
        ValueError,
        match="'tegrastats' is already registered by "
        r"devices\.power\.tegrastats\.TegrastatsSource",
    ):

        @register_source("tegrastats")
        class Again(PowerSource):
            def sampler(self, sensor: Sensor, options: PowerOptions) -> Sampler:
                return Sampler("stream", argv=("tegrastats",))

            def reading(self, text: str) -> Reading:
                return Reading("VDD_IN", 0.0)

    assert type(sources.get_source("tegrastats")).__name__ == "TegrastatsSource"


@pytest.fixture
def battery_source() -> Iterator[str]:
    """A source added the documented way (one class, one registration): an Android
    battery's current_now (uA) and voltage_now (uV), read as files."""

    @register_source("test_battery")
    class Battery(PowerSource):
        def sampler(self, sensor: Sensor, options: PowerOptions) -> Sampler:
            base = sensor.path or "/sys/class/power_supply/battery"
            return Sampler(
                "poll_files", files={"uA": f"{base}/current_now", "uV": f"{base}/voltage_now"}
            )

        def reading(self, text: str) -> Reading:
            values = dict(part.split("=") for part in text.split(";"))
            return Reading("battery", abs(float(values["uA"])) * float(values["uV"]) / 1e12)

    yield "test_battery"
    del sources._REGISTRY["test_battery"]


def test_a_new_source_needs_nothing_but_its_registration(battery_source: str) -> None:
    assert battery_source in source_names()
    sensor = choose_source({"power": battery_source}, {"sensors": []})
    assert sensor == {"kind": battery_source}
    request = sampler_request(sensor, {"power_interval_ms": "200"})
    assert request["mode"] == "poll_files" and request["interval_ms"] == 200
    series = parse_readings(battery_source, [[0.0, "uA=-500000;uV=4000000"], [0.1, "bad"]])
    assert series.samples == [(0.0, pytest.approx(2.0))] and series.skipped == 1
    assert telemetry_summary(battery_source, [[0.0, "uA=1;uV=1"]]) is None


def test_option_mistakes_name_the_option_and_the_known_sources() -> None:
    with pytest.raises(DeviceError) as info:
        choose_source({"power": "multimeter"}, None)
    assert str(info.value) == (
        "option power='multimeter' is not a power source (known: auto, none, "
        + ", ".join(source_names())
        + ")"
    )
    with pytest.raises(DeviceError, match="option power_interval_ms='fast'"):
        sampler_request({"kind": "tegrastats"}, {"power_interval_ms": "fast"})
    with pytest.raises(DeviceError, match="option power_interval_ms=0 input should be greater"):
        sampler_request({"kind": "tegrastats"}, {"power_interval_ms": 0})
    with pytest.raises(DeviceError, match="unknown option 'power_intervall_ms'"):
        choose_source({"power_intervall_ms": "50"}, None)
    with pytest.raises(PowerSourceError, match=r"unknown power source 'x' \(known: ina3221"):
        parse_readings("x", [])
    with pytest.raises(PowerSourceError, match="power_hwmon"):
        sampler_request({"kind": "ina3221"}, {"power": "ina3221"})


def test_unusable_readings_are_skipped_and_other_gpus_ignored() -> None:
    pi5 = (DATA / "rpi" / "pi5_pmic_read_adc.txt").read_text()
    volts_only = "\n".join(line for line in pi5.splitlines() if "volt(" in line)
    series = parse_readings("rpi_pmic", [[0.0, volts_only]])  # 0 W would be a lie
    assert series.samples == [] and series.skipped == 1
    jetson = (DATA / "nvml" / "nvidia_smi_jetson_orin_na.csv").read_text().splitlines()
    series = parse_readings("nvidia_smi", [[0.0, jetson[0]]])  # power.draw [N/A]
    assert series.samples == [] and series.skipped == 1
    two_gpus = (DATA / "nvml" / "nvidia_smi_2gpu_lms100.csv").read_text().splitlines()[:2]
    series = parse_readings("nvidia_smi", [[0.0, two_gpus[0]], [0.0, two_gpus[1]]])
    assert len(series.samples) == 1 and series.skipped == 0
    with pytest.raises(ParseError, match="no power rails"):
        sources.get_source("tegrastats").reading("RAM 1/2MB CPU [1%@100]")


# --------------------------------------------------------------------------- round trips
# Every registered source, sampled by the real agent sampler from a recorded output,
# parsed back to watts. A new source must bring a recording (the first test says so).
AGENT_PATH = REPO / "runners" / "agent" / "edgebench_agent.py"


@pytest.fixture(scope="module")
def agent() -> ModuleType:
    spec = importlib.util.spec_from_file_location("edgebench_agent_for_power", AGENT_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _replay_tool(tmp_path: Path, recording: Path) -> Path:
    """A stand-in for a sensor tool: prints ``recording`` whatever its arguments."""
    tool = tmp_path / f"replay-{recording.stem}"
    tool.write_text(f"#!/bin/sh\ncat '{recording}'\n")
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    return tool


def _sample(agent: ModuleType, request: dict[str, Any], count: int) -> list[list[Any]]:
    sampler = agent.PowerSampler(request)
    sampler.start()
    deadline = time.monotonic() + 10
    while len(sampler.readings) < count and time.monotonic() < deadline:
        time.sleep(0.005)
    readings = sampler.stop()["readings"]
    assert len(readings) >= count, readings
    return readings


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.strip()]


def _tegrastats_expected(path: Path) -> list[float]:
    return [
        tegrastats.total_input_rail(tegrastats.parse_line(line)).instant_mw / 1000
        for line in _lines(path)
    ]


def _ina3221_expected(root: Path) -> float:
    return ina3221.total_input_rail(ina3221.read(ina3221.discover(root))).instant_mw / 1000


ROUND_TRIPS = {
    "tegrastats": ["r36.4.0_orin_nano", "r32.7.4_jetson_nano"],
    "nvidia_smi": ["2gpu_lms100"],
    "rpi_pmic": ["pi5"],
    "ina3221": ["jp6_orin_nano_hwmon", "jp4_jetson_nano_iio"],
}


def test_every_registered_source_has_a_recorded_round_trip() -> None:
    # The MCU meters (ppk2, joulescope) have their recorded round trips in test_mcu_power.py.
    assert set(source_names()) == set(ROUND_TRIPS) | {"ppk2", "joulescope"}


@pytest.mark.parametrize(
    ("kind", "case"), [(kind, case) for kind, cases in ROUND_TRIPS.items() for case in cases]
)
def test_recorded_reading_round_trips(
    kind: str, case: str, agent: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    options: dict[str, Any] = {"power": kind, "power_interval_ms": "10"}
    facts: dict[str, Any] = {"sensors": []}
    if kind == "tegrastats":
        recording = DATA / "tegrastats" / f"{case}.log"
        options["power_tool"] = str(_replay_tool(tmp_path, recording))
        expected = _tegrastats_expected(recording)
        count, rail = len(expected), "VDD_IN" if "orin" in case else "POM_5V_IN"
    elif kind == "nvidia_smi":
        recording = DATA / "nvml" / f"nvidia_smi_{case}.csv"
        options["power_tool"] = str(_replay_tool(tmp_path, recording))
        parsed = [nvml.parse_line(line) for line in _lines(recording)]
        expected = [s.power_w for s in parsed if s.gpu_index == 0]
        count, rail = len(parsed), "GPU0 board"
    elif kind == "rpi_pmic":
        recording = DATA / "rpi" / f"{case}_pmic_read_adc.txt"
        options["power_tool"] = str(_replay_tool(tmp_path, recording))
        expected = [rpi.parse_pmic_read_adc(recording.read_text()).total_power_w] * 3
        count, rail = 3, rpi.TOTAL_RAIL_NAME
    else:
        root = DATA / "ina3221" / case.rsplit("_", 1)[0]
        if case.endswith("_hwmon"):  # discovered by the agent's probe, labels and all
            monkeypatch.setenv("EDGEBENCH_SYSFS_ROOT", str(root))
            facts["sensors"] = agent._find_sensors({})
            assert [s["kind"] for s in facts["sensors"]] == ["ina3221"]
        else:  # JetPack 4: the ina3221x IIO directory given as an option, not probed
            (rail_dir,) = {r.directory for r in ina3221.discover(root)}
            options["power_hwmon"] = str(rail_dir)
        expected = [_ina3221_expected(root)] * 3
        count, rail = 3, "VDD_IN" if "orin" in case else "POM_5V_IN"

    sensor = choose_source(options, facts)
    assert sensor is not None and sensor["kind"] == kind
    request = sampler_request(sensor, options)
    readings = _sample(agent, request, count)[:count]
    series = parse_readings(kind, readings)
    assert series.source == kind and series.rail == rail and series.skipped == 0
    assert [w for _, w in series.samples] == pytest.approx(expected)
    assert [t for t, _ in series.samples] == sorted(t for t, _ in series.samples)
    summary = telemetry_summary(kind, readings)
    assert (summary is not None) == (kind == "tegrastats")
