"""Parse NVIDIA Jetson ``tegrastats`` lines.

One line per sample, a sequence of fields whose set depends on the board and the
L4T release (see the NVIDIA "tegrastats Utility" appendix of the L4T / Jetson Linux
developer guide). What this parser reads:

* optional leading timestamp ``MM-DD-YYYY HH:MM:SS`` (L4T R35 and later);
* ``RAM used/totalMB (lfb NxSMB)``, ``SWAP used/totalMB (cached NMB)``,
  ``IRAM used/totalkB(lfb NkB)``;
* ``CPU [load%@MHz,off,...]`` (newer) or ``CPU [load%,load%,...]@MHz`` (oldest);
* ``EMC_FREQ load%[@MHz]``, ``GR3D_FREQ load%[@MHz | @[MHz,MHz]]`` (GPU; one MHz
  per GPC on Orin);
* temperatures ``name@41.5C`` (``-256C`` marks an absent sensor and is dropped);
* power rails ``NAME instant/average`` in mW, printed as ``VDD_IN 5027mW/5027mW``
  (L4T R35+) or ``POM_5V_IN 2915/2915`` / ``VDD_SYS_GPU 152/152`` (R32). The
  average is tegrastats' running average since *it* started, not over any window
  of ours: use the instant values for energy. ``NC`` rails (not connected) are dropped.
  Rails come last on every release; a non-rail value after them, or under a rail-like
  name (``VDD_*``, ``POM_*``, ``VIN_*``), is a truncated rail and a malformed line;
* any other ``NAME value`` pair (``APE 174``, ``NVENC off``, ``VIC_FREQ 729``,
  ``MTS fg 0% bg 0%``) is kept verbatim in ``engines``.

Malformed lines: :func:`parse_line` raises :class:`ParseError` (with the line) for a
line that does not have this shape - no ``RAM`` field, a field cut off mid-value
(a truncated last line), two samples glued together, an unknown token. :func:`parse_log`
parses a whole log leniently: it keeps every good line and returns the bad ones, each
with its reason, in ``skipped`` (see :mod:`devices.power.lines`).

Timing: tegrastats' own timestamp has a resolution of one second and is missing
before R35, so a sampler must stamp each line itself when it arrives (monotonic
clock, same clock as the measured windows) - see ``devices/power/__init__.py``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, NoReturn

from devices.power.errors import ParseError
from devices.power.lines import ParsedLines, parse_lines
from devices.power.rails import NOT_CONNECTED, InputPower, pick_input
from devices.power.sources import (
    PowerOptions,
    PowerSource,
    Reading,
    Sampler,
    Sensor,
    register_source,
)

SOURCE = "tegrastats"

# Temperature tegrastats prints for a sensor that is powered off or absent (Orin CV*).
ABSENT_SENSOR_C = -256.0

_TIMESTAMP_RE = re.compile(r"^(\d{2})-(\d{2})-(\d{4}) (\d{2}):(\d{2}):(\d{2})(?:\s+|$)")
_RAM_RE = re.compile(r"\bRAM (\d+)/(\d+)MB(?: ?\(lfb (\d+)x(\d+)MB\))?")
_SWAP_RE = re.compile(r"\bSWAP (\d+)/(\d+)MB(?: ?\(cached (\d+)MB\))?")
_IRAM_RE = re.compile(r"\bIRAM (\d+)/(\d+)kB ?\(lfb (\d+)kB\)")
_CPU_RE = re.compile(r"\bCPU \[([^\]]*)\](?:@(\d+))?")
_MTS_RE = re.compile(r"\bMTS fg (\d+)% bg (\d+)%")

_CORE_RE = re.compile(r"^(\d+)%(?:@(\d+))?$")
_RAIL_VALUE_RE = re.compile(r"^(\d+)(mW)?/(\d+)(mW)?$")
_LOAD_VALUE_RE = re.compile(r"^(\d+)%(?:@(?:(\d+)|\[(\d+(?:,\d+)*)\]))?$")
_FREQ_VALUE_RE = re.compile(r"^\d+$")
_TEMP_TOKEN_RE = re.compile(r"^([A-Za-z][\w.-]*)@(-?\d+(?:\.\d+)?)C$")
_KEY_RE = re.compile(r"^\w+$")
# tegrastats prints no number of more than a few digits; a run of 19 or more is garbage
# (and int() of over 4300 digits raises a plain ValueError instead of a ParseError).
_LONG_NUMBER_RE = re.compile(r"\d{19}")
_RAIL_PREFIXES = ("VDD_", "POM_", "VIN_")

Fail = Callable[[str], NoReturn]


class RailReading(NamedTuple):
    """One rail as tegrastats prints it, in milliwatts."""

    instant_mw: int
    average_mw: int  # running average since tegrastats started


@dataclass(frozen=True)
class CpuCore:
    index: int
    online: bool
    load_pct: int | None = None
    freq_mhz: int | None = None


@dataclass(frozen=True)
class TegraSample:
    """One parsed tegrastats line."""

    raw: str
    ram_used_mb: int
    ram_total_mb: int
    timestamp: datetime | None = None  # device local time, 1 s resolution, R35+ only
    swap_used_mb: int | None = None
    swap_total_mb: int | None = None
    cpus: tuple[CpuCore, ...] = ()
    gpu_load_pct: int | None = None
    gpu_freq_mhz: tuple[int, ...] = ()  # one per GPC where printed as @[a,b]
    emc_load_pct: int | None = None
    emc_freq_mhz: int | None = None
    temps_c: dict[str, float] = field(default_factory=dict)
    rails: dict[str, RailReading] = field(default_factory=dict)
    engines: dict[str, str] = field(default_factory=dict)


def _single(pattern: re.Pattern[str], text: str, what: str, fail: Fail) -> re.Match[str] | None:
    matches = list(pattern.finditer(text))
    if len(matches) > 1:
        fail(f"{what} appears {len(matches)} times (two samples on one line?)")
    return matches[0] if matches else None


def _parse_cpus(body: str, shared_freq: str | None, fail: Fail) -> tuple[CpuCore, ...]:
    cores = []
    for index, entry in enumerate(body.split(",")):
        entry = entry.strip()
        if entry == "off":
            cores.append(CpuCore(index, online=False))
            continue
        match = _CORE_RE.match(entry)
        if match is None:
            fail(f"CPU core {index} reads {entry!r}")
        freq = match.group(2) or shared_freq
        cores.append(
            CpuCore(index, True, int(match.group(1)), int(freq) if freq is not None else None)
        )
    return tuple(cores)


def _parse_load(value: str) -> tuple[int, tuple[int, ...]]:
    match = _LOAD_VALUE_RE.match(value)
    assert match is not None
    if match.group(2) is not None:
        freqs: tuple[int, ...] = (int(match.group(2)),)
    elif match.group(3) is not None:
        freqs = tuple(int(f) for f in match.group(3).split(","))
    else:
        freqs = ()
    return int(match.group(1)), freqs


def parse_line(line: str, *, line_number: int | None = None) -> TegraSample:
    """Parse one tegrastats line; raise :class:`ParseError` when it is malformed."""
    raw = line.rstrip("\r\n")

    def fail(reason: str) -> NoReturn:
        raise ParseError(reason, line=raw, line_number=line_number, source=SOURCE)

    text = raw.strip()
    if not text:
        fail("empty line")
    if _LONG_NUMBER_RE.search(text):
        fail("a number of more than 18 digits (garbage on the line?)")

    timestamp = None
    ts = _TIMESTAMP_RE.match(text)
    if ts is not None:
        month, day, year, hour, minute, second = (int(g) for g in ts.groups())
        try:
            timestamp = datetime(year, month, day, hour, minute, second)
        except ValueError:
            fail(f"invalid timestamp {ts.group(0).strip()!r}")
        text = text[ts.end() :]

    ram = _single(_RAM_RE, text, "RAM", fail)
    if ram is None:
        fail("no 'RAM used/totalMB' field")
    swap = _single(_SWAP_RE, text, "SWAP", fail)
    iram = _single(_IRAM_RE, text, "IRAM", fail)
    cpu = _single(_CPU_RE, text, "CPU [...]", fail)
    mts = _single(_MTS_RE, text, "MTS", fail)

    # Blank out the structured fields; what is left is a flat run of tokens.
    rest = list(text)
    for match in (ram, swap, iram, cpu, mts):
        if match is not None:
            rest[match.start() : match.end()] = " " * (match.end() - match.start())
    tokens = "".join(rest).split()

    sample: dict[str, object] = {
        "raw": raw,
        "timestamp": timestamp,
        "ram_used_mb": int(ram.group(1)),
        "ram_total_mb": int(ram.group(2)),
    }
    if swap is not None:
        sample["swap_used_mb"] = int(swap.group(1))
        sample["swap_total_mb"] = int(swap.group(2))
    if cpu is not None:
        sample["cpus"] = _parse_cpus(cpu.group(1), cpu.group(2), fail)
    temps: dict[str, float] = {}
    rails: dict[str, RailReading] = {}
    engines: dict[str, str] = {}
    if mts is not None:
        engines["MTS"] = f"fg {mts.group(1)}% bg {mts.group(2)}%"

    i = 0
    while i < len(tokens):
        token = tokens[i]
        temp = _TEMP_TOKEN_RE.match(token)
        if temp is not None:
            name, value = temp.group(1), float(temp.group(2))
            if name in temps:
                fail(f"temperature {name} appears twice")
            if value > ABSENT_SENSOR_C:
                temps[name] = value
            i += 1
            continue
        if _KEY_RE.match(token) is None:
            fail(f"unexpected token {token!r}")
        if i + 1 >= len(tokens):
            fail(f"{token} has no value (truncated line?)")
        key, value = token, tokens[i + 1]
        i += 2
        rail = _RAIL_VALUE_RE.match(value)
        # Rails come last on every release and have recognisable names: anything else
        # there is a rail value cut short ("VDD_IN 97"), not an engine frequency.
        if rail is None and (rails or key.startswith(_RAIL_PREFIXES)):
            fail(f"{key} reads {value!r} where a rail 'instant/average' belongs (truncated?)")
        if rail is not None:
            if (rail.group(2) is None) != (rail.group(4) is None):
                fail(f"rail {key} reads {value!r} (truncated?)")
            if key == NOT_CONNECTED:
                continue
            if key in rails:
                fail(f"rail {key} appears twice")
            rails[key] = RailReading(int(rail.group(1)), int(rail.group(3)))
        elif _LOAD_VALUE_RE.match(value) is not None:
            load, freqs = _parse_load(value)
            if key == "GR3D_FREQ":
                sample["gpu_load_pct"], sample["gpu_freq_mhz"] = load, freqs
            elif key == "EMC_FREQ":
                sample["emc_load_pct"] = load
                sample["emc_freq_mhz"] = freqs[0] if freqs else None
            elif key in engines:
                fail(f"{key} appears twice")
            else:
                engines[key] = value
        elif _FREQ_VALUE_RE.match(value) is not None or value in ("off", "OFF"):
            if key in engines:
                fail(f"{key} appears twice")
            engines[key] = value
        else:
            fail(f"{key} reads {value!r}")

    return TegraSample(**sample, temps_c=temps, rails=rails, engines=engines)


def parse_log(lines: str | Iterable[str]) -> ParsedLines[TegraSample]:
    """Parse a whole tegrastats log; malformed lines are returned in ``skipped``."""
    return parse_lines(lines, parse_line)


def total_input_rail(sample: TegraSample) -> InputPower | None:
    """The board's input power in this sample (see :mod:`devices.power.rails`).

    ``VDD_IN`` or ``POM_5V_IN`` where the board has one, otherwise the sum of all
    listed rails (``source == "sum_of_rails"``, ``rail == "sum(GPU+CPU+...)"``);
    None when the line has no rails at all.
    """
    instant = {name: float(r.instant_mw) for name, r in sample.rails.items()}
    average = {name: float(r.average_mw) for name, r in sample.rails.items()}
    return pick_input(instant, average)


@register_source("tegrastats")
class TegrastatsSource(PowerSource):
    """``tegrastats --interval MS`` streamed; power is the board's input rail (or the
    sum of the module rails), instant values."""

    def sampler(self, sensor: Sensor, options: PowerOptions) -> Sampler:
        tool = options.power_tool or sensor.path or "tegrastats"
        return Sampler("stream", argv=(tool, "--interval", str(options.power_interval_ms)))

    def reading(self, text: str) -> Reading:
        total = total_input_rail(parse_line(text))
        if total is None:
            raise ParseError("no power rails", line=text, source=SOURCE)
        return Reading(total.rail, total.instant_mw / 1000.0)

    def telemetry(self, texts: Sequence[str]) -> dict[str, Any] | None:
        """Mean GPU (GR3D) and EMC load, the hottest reading of every temperature
        sensor, peak RAM used, over the lines that parse."""
        samples = []
        for text in texts:
            try:
                samples.append(parse_line(text))
            except ParseError:
                continue
        if not samples:
            return None

        def mean(values: list[int]) -> float | None:
            return sum(values) / len(values) if values else None

        temps: dict[str, float] = {}
        for s in samples:
            for name, value in s.temps_c.items():
                temps[name] = max(value, temps.get(name, value))
        return {
            "gpu_load_pct_mean": mean(
                [s.gpu_load_pct for s in samples if s.gpu_load_pct is not None]
            ),
            "emc_load_pct_mean": mean(
                [s.emc_load_pct for s in samples if s.emc_load_pct is not None]
            ),
            "temps_c_max": temps,
            "ram_used_mb_max": max(s.ram_used_mb for s in samples),
        }
