"""Read the INA3221 power monitors of a Jetson through sysfs.

Two driver generations, both handled:

* mainline ``ina3221`` hwmon driver (L4T R34+ / JetPack 5 and 6; Linux
  ``Documentation/hwmon/ina3221.rst``): ``/sys/class/hwmon/hwmonN/`` whose ``name``
  file reads ``ina3221``, channels 1-3 with ``inK_label`` (rail name),
  ``inK_input`` (bus voltage, mV), ``currK_input`` (current, mA) and optionally
  ``inK_enable``. ``in4..in7`` are shunt voltages and their sum; they are not rails.
* NVIDIA's ``ina3221x`` IIO driver (L4T R32 / JetPack 4):
  ``/sys/bus/i2c/drivers/ina3221x/<bus>-<addr>/iio:deviceN/`` with channels 0-2:
  ``rail_name_K``, ``in_voltageK_input`` (mV), ``in_currentK_input`` (mA) and
  ``in_powerK_input`` (mW, computed by the driver).

:func:`discover` lists the rails under a filesystem root (``/`` on the device, a
fake tree in tests); it skips channels that are disabled, unlabelled, or labelled
``NC`` (not connected). :func:`read` reads them once: power = bus voltage x current
(or the driver's own power file where there is one), in mW.

:class:`Ina3221Source` is the ``ina3221`` power source (both drivers): the agent reads
each rail's files every interval (``poll_files``) and the host computes the power.
The probe of the agent finds hwmon monitors; for the JetPack 4 IIO driver give the
directory with the device options ``power=ina3221
power_hwmon=/sys/bus/i2c/drivers/ina3221x/<bus>-<addr>/iio:deviceN``: without probed
channel labels the agent reads the label files along with the values.

Reading is I/O by nature; it raises ``OSError`` as the kernel reports it (a disabled
channel answers ``ENODATA``) and :class:`ParseError` when a file does not hold an
integer. The hwmon number of a device can change across reboots: discover by name,
never by number.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from devices.power.errors import ParseError, PowerSourceError
from devices.power.rails import NOT_CONNECTED, InputPower, pick_input
from devices.power.sources import (
    PowerOptions,
    PowerSource,
    Reading,
    Sampler,
    Sensor,
    register_source,
)

HWMON_NAME = "ina3221"
HWMON_CHANNELS = (1, 2, 3)
IIO_DRIVER_DIR = Path("sys/bus/i2c/drivers/ina3221x")
IIO_CHANNELS = (0, 1, 2)

_NUMBERED = re.compile(r"^(?:hwmon|iio:device)(\d+)$")
_MAX_DIGITS = 18


@dataclass(frozen=True)
class Rail:
    """One monitored rail and the sysfs files it is read from."""

    name: str
    driver: Literal["hwmon", "iio"]
    directory: Path
    channel: int
    voltage_file: Path  # bus voltage, mV
    current_file: Path  # current, mA
    power_file: Path | None = None  # power, mW (ina3221x only)


def _read_text(path: Path) -> str:
    return path.read_text(encoding="ascii", errors="replace").strip()


def _read_int(path: Path) -> int:
    text = _read_text(path)
    # Some attributes carry a unit ("32760 ma" on old kernels); the number comes first.
    first = text.split()[0] if text else ""
    # sysfs prints a handful of digits; 19 or more is garbage, whose products would
    # not even fit a float.
    if len(first) > _MAX_DIGITS:
        raise ParseError("not an integer a sensor prints", line=text, source=str(path))
    try:
        return int(first)
    except ValueError:
        raise ParseError("not an integer", line=text, source=str(path)) from None


def _numbered_dirs(parent: Path) -> list[Path]:
    if not parent.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in parent.iterdir() if (m := _NUMBERED.match(p.name))]
    return [p for _, p in sorted(found)]


def _hwmon_rails(root: Path) -> list[Rail]:
    rails = []
    for directory in _numbered_dirs(root / "sys/class/hwmon"):
        name_file = directory / "name"
        if not name_file.is_file() or _read_text(name_file) != HWMON_NAME:
            continue
        for channel in HWMON_CHANNELS:
            label_file = directory / f"in{channel}_label"
            enable_file = directory / f"in{channel}_enable"
            voltage = directory / f"in{channel}_input"
            current = directory / f"curr{channel}_input"
            if not label_file.is_file() or not voltage.is_file() or not current.is_file():
                continue
            if enable_file.is_file() and _read_text(enable_file) == "0":
                continue
            label = _read_text(label_file)
            if not label or label == NOT_CONNECTED:
                continue
            rails.append(Rail(label, "hwmon", directory, channel, voltage, current))
    return rails


def _iio_rails(root: Path) -> list[Rail]:
    rails = []
    driver_dir = root / IIO_DRIVER_DIR
    if not driver_dir.is_dir():
        return rails
    for device in sorted(p for p in driver_dir.iterdir() if p.is_dir()):
        for directory in _numbered_dirs(device):
            for channel in IIO_CHANNELS:
                label_file = directory / f"rail_name_{channel}"
                voltage = directory / f"in_voltage{channel}_input"
                current = directory / f"in_current{channel}_input"
                power = directory / f"in_power{channel}_input"
                if not label_file.is_file() or not voltage.is_file() or not current.is_file():
                    continue
                label = _read_text(label_file)
                if not label or label == NOT_CONNECTED:
                    continue
                rails.append(
                    Rail(
                        label,
                        "iio",
                        directory,
                        channel,
                        voltage,
                        current,
                        power if power.is_file() else None,
                    )
                )
    return rails


def discover(root: Path = Path("/")) -> list[Rail]:
    """All INA3221 rails under ``root``, hwmon first, in device and channel order.

    Rail names are the labels; when two chips use the same label the later one is
    renamed ``LABEL@hwmonN`` (or ``@iio:deviceN``) so that names stay unique.
    """
    rails = _hwmon_rails(root) + _iio_rails(root)
    seen: set[str] = set()
    unique = []
    for rail in rails:
        if rail.name in seen:
            rail = Rail(
                f"{rail.name}@{rail.directory.name}",
                rail.driver,
                rail.directory,
                rail.channel,
                rail.voltage_file,
                rail.current_file,
                rail.power_file,
            )
        seen.add(rail.name)
        unique.append(rail)
    return unique


def read(rails: Iterable[Rail]) -> dict[str, float]:
    """Read every rail once: name -> power in mW."""
    readings = {}
    for rail in rails:
        if rail.power_file is not None:
            readings[rail.name] = float(_read_int(rail.power_file))
        else:
            millivolts = _read_int(rail.voltage_file)
            milliamps = _read_int(rail.current_file)
            readings[rail.name] = millivolts * milliamps / 1000.0
    return readings


def total_input_rail(readings: dict[str, float]) -> InputPower | None:
    """The board's input power from :func:`read`'s result (see :mod:`devices.power.rails`)."""
    return pick_input(readings)


# How a reading names a channel whose rail label is not known yet (not probed): the
# agent reads the label file too, as ``@K|label``, and :meth:`Ina3221Source.reading`
# renames the channel's values.
_UNLABELLED = "@"
_MILLI_UNITS = ("mV", "mA", "mW")


def _channel_files(directory: str, iio: bool, channel: str, key: str) -> dict[str, str]:
    """Reading key -> sysfs file of one channel's bus voltage, current (and power)."""
    if iio:
        return {
            f"{key}|mV": f"{directory}/in_voltage{channel}_input",
            f"{key}|mA": f"{directory}/in_current{channel}_input",
            f"{key}|mW": f"{directory}/in_power{channel}_input",
        }
    return {
        f"{key}|mV": f"{directory}/in{channel}_input",
        f"{key}|mA": f"{directory}/curr{channel}_input",
    }


@register_source("ina3221")
class Ina3221Source(PowerSource):
    """The INA3221 rails read from sysfs every interval (hwmon, or ``ina3221x`` IIO);
    power is the board's input rail, or the sum of the rails."""

    def sampler(self, sensor: Sensor, options: PowerOptions) -> Sampler:
        directory = sensor.path or options.power_hwmon
        if not directory:
            raise PowerSourceError(
                "ina3221 needs the sysfs directory of the monitor: device check finds a "
                "hwmon one; give it with the option power_hwmon otherwise"
            )
        directory = directory.rstrip("/")
        iio = Path(directory).name.startswith("iio:device")
        files: dict[str, str] = {}
        if sensor.channels:
            for channel, label in sensor.channels.items():
                files.update(_channel_files(directory, iio, channel, label))
            return Sampler("poll_files", files=files)
        for number in IIO_CHANNELS if iio else HWMON_CHANNELS:
            key = f"{_UNLABELLED}{number}"
            label = f"rail_name_{number}" if iio else f"in{number}_label"
            files[f"{key}|label"] = f"{directory}/{label}"
            files.update(_channel_files(directory, iio, str(number), key))
        return Sampler("poll_files", files=files)

    def reading(self, text: str) -> Reading:
        labels: dict[str, str] = {}
        values: dict[str, dict[str, float]] = {}
        for part in text.split(";"):
            key, _, value = part.partition("=")
            name, _, unit = key.rpartition("|")
            value = value.strip()
            if not value:
                continue  # a disabled or absent channel reads nothing (ENODATA)
            if unit == "label":
                labels[name] = value
                continue
            if unit not in _MILLI_UNITS:
                raise ParseError(f"unknown unit {unit!r} of {name!r}", line=text, source="ina3221")
            try:
                # Some attributes carry a unit ("32760 ma" on old kernels); the number first.
                number = float(value.split()[0])
            except ValueError:
                raise ParseError(f"{key} is not a number", line=text, source="ina3221") from None
            if not math.isfinite(number):  # float() takes "nan" and "inf"; sysfs never does
                raise ParseError(f"{key} is not a finite number", line=text, source="ina3221")
            values.setdefault(name, {})[unit] = number
        mw: dict[str, float] = {}
        for name, units in values.items():
            rail = labels.get(name, name)
            if rail.startswith(_UNLABELLED) or rail == NOT_CONNECTED:
                continue  # unlabelled or not connected: not a rail
            if "mW" in units:  # the IIO driver's own product
                mw[rail] = units["mW"]
            elif "mV" in units and "mA" in units:
                mw[rail] = units["mV"] * units["mA"] / 1000.0
        total = pick_input(mw)
        if total is None:
            raise ParseError(
                "no rail with both a voltage and a current", line=text, source="ina3221"
            )
        if not math.isfinite(total.instant_mw):  # finite values whose product overflows
            raise ParseError("the rails give no finite power", line=text, source="ina3221")
        return Reading(total.rail, total.instant_mw / 1000.0)
