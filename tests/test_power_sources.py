"""From a device's sensors to an agent sampling request, and from raw readings back
to a watts series: every source, on recorded outputs."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from devices.errors import DeviceError
from devices.power import nvml, rpi
from devices.power.sources import choose_source, parse_readings, sampler_request
from tests.conftest import Runner

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
