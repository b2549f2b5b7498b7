"""Cool-down on Linux devices (the agent runner): thermal zones read over the device's
shell, the policy of runners/cooldown.py applied before each job."""

from __future__ import annotations

from pathlib import Path

import pytest

from devices.errors import TransportError
from devices.local import LocalTransport
from devices.transport import DeviceConfig
from runners.agent_runner import linux_temperatures, parse_thermal_lines
from runners.cooldown import wait_for_cooldown


def test_thermal_lines_as_degrees() -> None:
    # As a Raspberry Pi 5 and a Jetson print them: one zone, or several of one type.
    out = "cpu-thermal 61250\nCPU-therm 48500\nGPU-therm 47000\nCPU-therm 52000\nbroken x\n"
    assert parse_thermal_lines(out) == {"cpu-thermal": 61.25, "CPU-therm": 52.0, "GPU-therm": 47.0}
    assert parse_thermal_lines("") == {}


def test_reading_this_machine_and_waiting_for_it(tmp_path: Path) -> None:
    host = LocalTransport(
        DeviceConfig("here", "local", options={"cooldown_below_c": 200}), tmp_path
    )
    temps = linux_temperatures(host)
    assert all(-40 < t < 150 for t in temps.values())
    result = wait_for_cooldown(lambda: temps, host.options.cooldown_below_c, 5.0)
    assert result.waited_s == 0  # cool already, or (a VM) no zones: never the whole limit
    assert result.reached if temps else result.errors == ["no thermal zones to read: not waited"]


def test_the_options_are_typed() -> None:
    with pytest.raises(TransportError, match="cooldown_below_c"):
        LocalTransport(DeviceConfig("x", "local", options={"cooldown_below_c": "hot"}), Path("."))
