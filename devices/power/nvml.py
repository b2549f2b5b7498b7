"""Parse ``nvidia-smi`` power samples (discrete GPUs; NVML under the hood).

The sampler runs::

    nvidia-smi --query-gpu=timestamp,index,power.draw,total_energy_consumption,\\
utilization.gpu,temperature.gpu --format=csv,noheader,nounits -lms 100

which prints one CSV line per GPU every 100 ms, e.g.
``2024/05/14 10:21:33.123, 0, 71.23, 1234567890, 45, 52``: timestamp (host wall
clock, ms resolution), GPU index, board power draw in W, total energy since the
driver was loaded in mJ (Volta and newer), GPU utilisation in %, temperature in C.
A field the GPU does not support reads ``[N/A]`` (``[Not Supported]`` on older
drivers) and becomes None; Jetson's nvidia-smi reports power as ``[N/A]`` - use
tegrastats or the INA3221 there.

The energy counter is the better source when it exists: it is integrated by the
driver at its own rate, so :func:`energy_from_counter` over a window does not depend
on our 100 ms sampling. Malformed lines: :func:`parse_line` raises
:class:`ParseError`; :func:`parse_csv` skips them and returns them in ``skipped``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NoReturn

from devices.power.errors import ParseError
from devices.power.lines import ParsedLines, parse_lines
from devices.power.sources import (
    PowerOptions,
    PowerSource,
    Reading,
    Sampler,
    Sensor,
    register_source,
)

SOURCE = "nvidia-smi"
# The GPU the sampler reports: the runners put the model on the first GPU.
SAMPLED_GPU = 0

QUERY_FIELDS: tuple[str, ...] = (
    "timestamp",
    "index",
    "power.draw",
    "total_energy_consumption",
    "utilization.gpu",
    "temperature.gpu",
)

QUERY = "--query-gpu=" + ",".join(QUERY_FIELDS)

_TIMESTAMP_RE = re.compile(r"^\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}(?:\.\d{3})?$")
# Units nvidia-smi appends when `nounits` is forgotten; tolerated, then stripped.
_UNIT_SUFFIXES = (" W", " mJ", " %", " C")
_EPOCH = datetime(1970, 1, 1)


@dataclass(frozen=True)
class NvmlSample:
    """One GPU at one instant."""

    timestamp: datetime  # host wall clock as printed (naive, local time)
    gpu_index: int
    power_w: float | None
    energy_mj: float | None  # since driver load; Volta and newer
    utilization_pct: float | None
    temperature_c: float | None

    @property
    def t_seconds(self) -> float:
        """The timestamp as seconds on the printed (local, naive) clock; for differences only."""
        return (self.timestamp - _EPOCH).total_seconds()


def _value(text: str, what: str, fail: Callable[[str], NoReturn]) -> float | None:
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        return None  # [N/A], [Not Supported], [Unknown Error]
    for suffix in _UNIT_SUFFIXES:
        if text.endswith(suffix):
            text = text[: -len(suffix)]
            break
    try:
        return float(text)
    except ValueError:
        fail(f"{what} reads {text!r}")


def parse_line(line: str, *, line_number: int | None = None) -> NvmlSample:
    """Parse one CSV line of the query in the module docstring (fields in that order)."""
    raw = line.rstrip("\r\n")

    def fail(reason: str) -> NoReturn:
        raise ParseError(reason, line=raw, line_number=line_number, source=SOURCE)

    fields = [f.strip() for f in raw.split(",")]
    if fields[0] == "timestamp":
        fail("header line (query with --format=csv,noheader,nounits)")
    if len(fields) != len(QUERY_FIELDS):
        fail(f"{len(fields)} fields, expected {len(QUERY_FIELDS)} ({','.join(QUERY_FIELDS)})")
    stamp, index, power, energy, util, temp = fields
    timestamp = None
    if _TIMESTAMP_RE.match(stamp):
        fmt = "%Y/%m/%d %H:%M:%S.%f" if "." in stamp else "%Y/%m/%d %H:%M:%S"
        try:
            timestamp = datetime.strptime(stamp, fmt)
        except ValueError:
            pass
    if timestamp is None:
        fail(f"timestamp {stamp!r} is not 'YYYY/MM/DD HH:MM:SS.mmm'")
    if not index.isdigit():
        fail(f"GPU index {index!r}")
    return NvmlSample(
        timestamp=timestamp,
        gpu_index=int(index),
        power_w=_value(power, "power.draw", fail),
        energy_mj=_value(energy, "total_energy_consumption", fail),
        utilization_pct=_value(util, "utilization.gpu", fail),
        temperature_c=_value(temp, "temperature.gpu", fail),
    )


def parse_csv(lines: str | Iterable[str]) -> ParsedLines[NvmlSample]:
    """Parse a whole capture; malformed lines (a header, a cut-off last line) are skipped."""
    return parse_lines(lines, parse_line)


def power_series(samples: Sequence[NvmlSample], gpu_index: int = 0) -> list[tuple[float, float]]:
    """``(t_seconds, watts)`` for one GPU, for :mod:`devices.power.energy`.

    Samples without a power reading are left out. Times are on nvidia-smi's clock
    (see :attr:`NvmlSample.t_seconds`); windows must be given on the same clock.
    """
    return [
        (s.t_seconds, s.power_w)
        for s in samples
        if s.gpu_index == gpu_index and s.power_w is not None
    ]


def energy_from_counter(first: NvmlSample, last: NvmlSample) -> float | None:
    """Joules between two samples of the same GPU from the driver's energy counter.

    None when either sample has no counter (``[N/A]``). Raises ``ValueError`` for
    samples of different GPUs, out of order, or a counter that went backwards
    (the driver was reloaded in between: the difference means nothing).
    """
    if first.gpu_index != last.gpu_index:
        raise ValueError(f"samples of GPU {first.gpu_index} and GPU {last.gpu_index}")
    if last.timestamp < first.timestamp:
        raise ValueError("samples out of order: 'last' is earlier than 'first'")
    if first.energy_mj is None or last.energy_mj is None:
        return None
    if last.energy_mj < first.energy_mj:
        raise ValueError(
            f"energy counter went back from {first.energy_mj} to {last.energy_mj} mJ "
            "(driver reloaded?)"
        )
    return (last.energy_mj - first.energy_mj) / 1000.0


@register_source("nvidia_smi")
class NvidiaSmiSource(PowerSource):
    """``nvidia-smi --query-gpu=... -lms MS`` streamed; power is GPU 0's board draw."""

    def sampler(self, sensor: Sensor, options: PowerOptions) -> Sampler:
        tool = options.power_tool or sensor.path or "nvidia-smi"
        argv = (
            tool,
            QUERY,
            "--format=csv,noheader,nounits",
            "-lms",
            str(options.power_interval_ms),
        )
        return Sampler("stream", argv=argv)

    def reading(self, text: str) -> Reading | None:
        sample = parse_line(text)
        if sample.gpu_index != SAMPLED_GPU:
            return None  # nvidia-smi prints a line per GPU
        if sample.power_w is None:
            raise ParseError("power.draw is not reported", line=text, source=SOURCE)
        return Reading(f"GPU{SAMPLED_GPU} board", sample.power_w)
