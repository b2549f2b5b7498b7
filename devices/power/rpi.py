"""Parse Raspberry Pi ``vcgencmd`` output: PMIC rails, throttling flags, SoC temperature.

``vcgencmd pmic_read_adc`` (Raspberry Pi 5 and other boards with the DA9091 PMIC)
prints one ADC channel per line, right-aligned names, currents first::

       VDD_CORE_A current(7)=0.68200000A
       VDD_CORE_V volt(15)=0.72164300V

Currents and voltages are paired by rail name (``VDD_CORE_A`` + ``VDD_CORE_V`` ->
``VDD_CORE``) into power = V x I. Channels with only a voltage (``EXT5V_V``, the
5 V input, and ``BATT_V``, the RTC battery) have no power.

The total is the sum of the PMIC's output rails. It is a measurement, but not the
board's input power: it leaves out what the 5 V input feeds directly (USB devices,
fan, HATs) and the regulators' conversion losses. The report should name it as
``PMIC_RAILS_SUM`` (:data:`TOTAL_RAIL_NAME`), never as board power.

``vcgencmd get_throttled`` prints ``throttled=0x50005``; the bits are documented by
Raspberry Pi (bits 0-3: under-voltage, ARM frequency capped, throttled, soft
temperature limit - now; bits 16-19: the same, has occurred since boot).
``vcgencmd measure_temp`` prints ``temp=48.3'C``.

Malformed output raises :class:`ParseError` with the offending line: these are
single command invocations, so a bad line means the whole reading is suspect.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import NoReturn

from devices.power.errors import ParseError
from devices.power.sources import (
    PowerOptions,
    PowerSource,
    Reading,
    Sampler,
    Sensor,
    register_source,
)

TOTAL_RAIL_NAME = "PMIC_RAILS_SUM"

_ADC_RE = re.compile(
    r"^\s*(?P<name>\w+)_(?P<suffix>[AV])\s+(?P<kind>current|volt)\((?P<channel>\d+)\)"
    r"=(?P<value>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)(?P<unit>[AV])\s*$"
)
_THROTTLED_RE = re.compile(r"^\s*throttled=(0x[0-9a-fA-F]+|\d+)\s*$")
_TEMP_RE = re.compile(r"^\s*temp=(-?\d+(?:\.\d+)?)'C\s*$")
# vcgencmd prints no number of more than a few digits; int() of over 4300 digits would
# raise a plain ValueError instead of a ParseError.
_MAX_DIGITS = 18


@dataclass(frozen=True)
class PmicRail:
    """One PMIC rail: current and/or voltage, and their product."""

    name: str
    current_a: float | None = None
    voltage_v: float | None = None
    current_channel: int | None = None
    voltage_channel: int | None = None

    @property
    def power_w(self) -> float | None:
        if self.current_a is None or self.voltage_v is None:
            return None
        return self.current_a * self.voltage_v


@dataclass(frozen=True)
class PmicReading:
    """One ``pmic_read_adc`` output, rails in the order the tool printed them."""

    rails: dict[str, PmicRail] = field(default_factory=dict)

    @property
    def power_w(self) -> dict[str, float]:
        """Rail name -> W, for rails with both a current and a voltage."""
        return {n: r.power_w for n, r in self.rails.items() if r.power_w is not None}

    @property
    def total_power_w(self) -> float:
        """Sum of the PMIC output rails (see the module docstring for what it leaves out)."""
        return sum(self.power_w.values())

    @property
    def input_voltage_v(self) -> float | None:
        """The 5 V input (``EXT5V_V``), useful to spot a weak supply."""
        rail = self.rails.get("EXT5V")
        return rail.voltage_v if rail is not None else None


def _adc_channel(line: str, number: int) -> tuple[str, str, float, int]:
    """(rail name, "A" or "V", value, ADC channel) of one ``pmic_read_adc`` line."""

    def fail(reason: str) -> NoReturn:
        raise ParseError(reason, line=line, line_number=number, source="pmic_read_adc")

    match = _ADC_RE.match(line)
    if match is None:
        fail("not 'NAME_A current(N)=xA' or 'NAME_V volt(N)=xV'")
    name, suffix, kind, unit = match["name"], match["suffix"], match["kind"], match["unit"]
    if (unit, kind) != (("A", "current") if suffix == "A" else ("V", "volt")):
        fail(f"{name}_{suffix} is a {kind} in {unit}")
    value = float(match["value"])
    if not math.isfinite(value):  # "1e999A": no reading, and it would make the sum inf
        fail(f"{name}_{suffix} is not a finite number")
    if len(match["channel"]) > _MAX_DIGITS:
        fail(f"{name}_{suffix} has no ADC channel number")
    return name, suffix, value, int(match["channel"])


def parse_pmic_read_adc(text: str) -> PmicReading:
    """Parse the full output of ``vcgencmd pmic_read_adc``."""
    readings: dict[str, dict[str, tuple[float, int]]] = {"A": {}, "V": {}}
    order: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, suffix, value, channel = _adc_channel(line, number)
        if name in readings[suffix]:
            raise ParseError(
                f"{name}_{suffix} appears twice",
                line=line,
                line_number=number,
                source="pmic_read_adc",
            )
        readings[suffix][name] = (value, channel)
        if name not in order:
            order.append(name)
    if not order:
        raise ParseError("no ADC channels", line=text[:80], source="pmic_read_adc")
    rails = {}
    for name in order:
        current = readings["A"].get(name)
        voltage = readings["V"].get(name)
        rails[name] = PmicRail(
            name,
            current_a=current[0] if current else None,
            voltage_v=voltage[0] if voltage else None,
            current_channel=current[1] if current else None,
            voltage_channel=voltage[1] if voltage else None,
        )
    return PmicReading(rails)


# Bit -> flag name, as documented for `vcgencmd get_throttled`.
THROTTLE_FLAGS: dict[int, str] = {
    0: "under_voltage_now",
    1: "arm_freq_capped_now",
    2: "throttled_now",
    3: "soft_temp_limit_now",
    16: "under_voltage_occurred",
    17: "arm_freq_capped_occurred",
    18: "throttled_occurred",
    19: "soft_temp_limit_occurred",
}
_KNOWN_MASK = sum(1 << bit for bit in THROTTLE_FLAGS)


@dataclass(frozen=True)
class Throttled:
    """Decoded ``get_throttled`` bits. ``raw`` keeps any bit not (yet) documented."""

    raw: int

    def _bit(self, bit: int) -> bool:
        return bool(self.raw >> bit & 1)

    @property
    def under_voltage_now(self) -> bool:
        return self._bit(0)

    @property
    def arm_freq_capped_now(self) -> bool:
        return self._bit(1)

    @property
    def throttled_now(self) -> bool:
        return self._bit(2)

    @property
    def soft_temp_limit_now(self) -> bool:
        return self._bit(3)

    @property
    def under_voltage_occurred(self) -> bool:
        return self._bit(16)

    @property
    def arm_freq_capped_occurred(self) -> bool:
        return self._bit(17)

    @property
    def throttled_occurred(self) -> bool:
        return self._bit(18)

    @property
    def soft_temp_limit_occurred(self) -> bool:
        return self._bit(19)

    @property
    def active(self) -> list[str]:
        """Names of the flags that are set, in bit order."""
        return [name for bit, name in THROTTLE_FLAGS.items() if self._bit(bit)]

    @property
    def unknown_bits(self) -> int:
        return self.raw & ~_KNOWN_MASK

    @property
    def ok(self) -> bool:
        """Nothing happened since boot: the measurement was not disturbed by power or heat."""
        return self.raw == 0


def parse_get_throttled(text: str) -> Throttled:
    """Parse ``throttled=0x50005`` (the whole output of ``vcgencmd get_throttled``)."""
    match = _THROTTLED_RE.match(text.strip())
    if match is None:
        raise ParseError("not 'throttled=0x...'", line=text.strip(), source="get_throttled")
    value = match.group(1)
    if value.lower().startswith("0x"):
        return Throttled(int(value, 16))
    if len(value) > _MAX_DIGITS:
        raise ParseError("not a 32-bit flag word", line=text.strip(), source="get_throttled")
    return Throttled(int(value))


def parse_measure_temp(text: str) -> float:
    """Parse ``temp=48.3'C`` into degrees Celsius."""
    match = _TEMP_RE.match(text.strip())
    if match is None:
        raise ParseError('not "temp=NN.N\'C"', line=text.strip(), source="measure_temp")
    celsius = float(match.group(1))
    if not math.isfinite(celsius):  # hundreds of digits read as inf
        raise ParseError("not a finite temperature", line=text.strip(), source="measure_temp")
    return celsius


@register_source("rpi_pmic")
class PmicSource(PowerSource):
    """``vcgencmd pmic_read_adc`` run every interval; power is the sum of the PMIC's
    output rails (:data:`TOTAL_RAIL_NAME`, not the board's input: see above)."""

    def sampler(self, sensor: Sensor, options: PowerOptions) -> Sampler:
        tool = options.power_tool or sensor.path or "vcgencmd"
        return Sampler("poll_command", argv=(tool, "pmic_read_adc"))

    def reading(self, text: str) -> Reading:
        pmic = parse_pmic_read_adc(text)
        if not pmic.power_w:
            # Voltages alone would sum to 0 W: that is no measurement, not an idle board.
            raise ParseError(
                "no rail with both a current and a voltage", line=text[:80], source="pmic_read_adc"
            )
        total = pmic.total_power_w
        if not math.isfinite(total):  # finite rails whose products overflow
            raise ParseError(
                "the rails sum to no finite power", line=text[:80], source="pmic_read_adc"
            )
        return Reading(TOTAL_RAIL_NAME, total)
