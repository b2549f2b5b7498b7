"""What the host-attached meters (a Nordic PPK2, a Joulescope) have in common.

These instruments sit on the controller's USB, in the supply line of a board that
often has no shell (a microcontroller), so they are sampled on the host, not by the
agent. A capture is a run of samples at the instrument's own fixed rate, so sample
``i`` is at ``t0 + i / rate`` on the host's monotonic clock (``t0`` is stamped when
the first block arrives, back-dated by the block's length); that is the clock the
MCU runner times its windows on.

* :class:`MeterCapture` - the samples, as a ``(t, watts)`` series and as an
  :class:`~devices.power.energy.EnergyResult` over measured windows (the summary
  every power source produces: mean power, energy, sample rate, rail,
  ``estimated=False``).
* :func:`format_reading` / :func:`parse_reading` - the one-line-per-interval text a
  meter's sampler process prints (``python -m devices.power.ppk2 ...``) when the
  agent's stream sampler runs it, and its parser (``PowerSource.reading``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from devices.power.energy import EnergyResult, Sample, Window, window_energy
from devices.power.errors import ParseError
from devices.power.sources import Reading


@dataclass(frozen=True)
class MeterCapture:
    """Samples from a host-attached meter: current in A, voltage in V (one value per
    sample, or the one supply voltage when the meter measures current only)."""

    source: str  # registry name: ppk2, joulescope
    rail: str
    t0: float  # host monotonic seconds of sample 0
    sample_rate_hz: float
    current_a: np.ndarray
    voltage_v: np.ndarray | float
    dropped: int = 0  # samples the instrument or its API reported lost

    def __len__(self) -> int:
        return len(self.current_a)

    @property
    def duration_s(self) -> float:
        return len(self) / self.sample_rate_hz

    @property
    def power_w(self) -> np.ndarray:
        return np.asarray(self.current_a, dtype=np.float64) * self.voltage_v

    def series(self, average: int = 1) -> list[Sample]:
        """``(t, watts)``; ``average`` > 1 takes means of that many consecutive samples
        (each stamped at its block's middle), which keeps energy exact up to the
        partial last block and makes a 100 kHz capture light enough to store."""
        if average < 1:
            raise ValueError(f"average must be >= 1, got {average}")
        power = self.power_w
        usable = len(power) // average * average
        blocks = power[:usable].reshape(-1, average).mean(axis=1) if usable else power[:0]
        period = average / self.sample_rate_hz
        first = self.t0 + (average - 1) / (2 * self.sample_rate_hz)
        return [(first + i * period, float(w)) for i, w in enumerate(blocks)]

    def energy(
        self,
        windows: Sequence[Window] | None = None,
        idle: tuple[float, float] | None = None,
        *,
        average: int = 1,
    ) -> EnergyResult:
        """Power and energy over ``windows`` (default: the whole capture as one window
        of one inference), on the host clock; see :func:`window_energy`."""
        samples = self.series(average)
        if windows is None:
            if len(samples) < 2:
                raise ValueError(f"{self.source}: {len(samples)} sample(s), nothing to integrate")
            windows = [(samples[0][0], samples[-1][0], 1)]
        return window_energy(samples, windows, idle, rail=self.rail, estimated=False)


def format_reading(rail: str, current_a: float, voltage_v: float, count: int) -> str:
    """One interval's mean as the sampler prints it: ``rail=VDD A=0.0123 V=3.3 n=10000``."""
    return f"rail={rail} A={current_a:.9g} V={voltage_v:.6g} n={count}"


def parse_reading(text: str, *, source: str) -> Reading:
    """A :func:`format_reading` line as ``(rail, watts)``."""
    line = text.strip()
    try:
        fields = dict(part.split("=", 1) for part in line.split())
        rail, amps, volts, count = (
            fields["rail"],
            float(fields["A"]),
            float(fields["V"]),
            int(fields["n"]),
        )
    except (KeyError, ValueError):
        raise ParseError(
            "expected 'rail=R A=amps V=volts n=count'", line=line, source=source
        ) from None
    if count <= 0 or not (math.isfinite(amps) and math.isfinite(volts)):
        raise ParseError("no samples in the interval", line=line, source=source)
    return Reading(rail, amps * volts)
