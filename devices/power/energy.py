"""Power and energy over measured windows: pure functions on ``(t_seconds, watts)`` series.

The series is what a sampler recorded: times in seconds on one clock (the same clock
the measured windows are given on), power in W, in time order. Between two samples
power is taken to change linearly (trapezoid rule); at a window edge that falls
between two samples the value is interpolated, so a window is integrated exactly
over ``[t0, t1]`` and not over the samples that happen to fall inside it.

Rules (DESIGN.md, "Measurement rules: Power"):

* Fewer than 2 samples inside a window (``t0 <= t <= t1``) means the window was not
  measured: the result is **None**, never a number made up from neighbours. A window
  must last at least two sample periods (0.2 s at 10 Hz) to be measured at all.
* Where the samples do not reach an edge of the window (sampler started late or
  stopped early), the mean is over the part that is covered and the energy counts
  the uncovered part at that mean; ``coverage`` (0..1] says how much was covered so
  that a caller can refuse poorly covered windows.
* Energy per inference = integral over the windows / inferences in them; the idle
  baseline (mean power over an idle window, same sensor) is reported beside it, and
  energy per inference above idle = (energy - idle power x window time) / inferences.
  It is not clamped at zero: a negative value says the idle baseline is not
  comparable (e.g. taken at a different clock or temperature).
* ``estimated`` is carried through untouched: a figure that does not come from a
  sensor must say so wherever it appears.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

Sample = tuple[float, float]  # (t_seconds, watts)
Window = tuple[float, float, int]  # (t0, t1, inferences)


def _check_series(samples: Sequence[Sample]) -> list[float]:
    times = [t for t, _ in samples]
    for i, (t, w) in enumerate(samples):
        if not (math.isfinite(t) and math.isfinite(w)):
            raise ValueError(f"sample {i} is not finite: ({t}, {w})")
        if i and t < times[i - 1]:
            raise ValueError(f"samples out of time order at index {i}: {times[i - 1]} > {t}")
    return times


def _check_window(t0: float, t1: float) -> None:
    if not (math.isfinite(t0) and math.isfinite(t1)) or t1 <= t0:
        raise ValueError(f"window must have t0 < t1, got ({t0}, {t1})")


def _value_at(samples: Sequence[Sample], times: list[float], t: float, *, left: bool) -> float:
    """Power at ``t`` (within the series' span), linearly interpolated.

    Two samples at the same time make a step; ``left`` picks the value just before
    the step (the end of a segment), otherwise the value just after it.
    """
    if left:
        i = bisect_left(times, t)
        if i < len(times) and times[i] == t:
            return samples[i][1]
    else:
        i = bisect_right(times, t)
        if i > 0 and times[i - 1] == t:
            return samples[i - 1][1]
    if i == 0:
        return samples[0][1]
    if i == len(times):
        return samples[-1][1]
    (ta, wa), (tb, wb) = samples[i - 1], samples[i]
    return wa + (wb - wa) * (t - ta) / (tb - ta)


def _integral(samples: Sequence[Sample], times: list[float], a: float, b: float) -> float:
    """Trapezoid integral of the interpolated series over ``[a, b]`` (inside the span)."""
    points = [(a, _value_at(samples, times, a, left=False))]
    points += samples[bisect_right(times, a) : bisect_left(times, b)]
    points.append((b, _value_at(samples, times, b, left=True)))
    return sum((tb - ta) * (wa + wb) / 2.0 for (ta, wa), (tb, wb) in pairwise(points))


def _covered(times: list[float], t0: float, t1: float) -> tuple[float, float] | None:
    if bisect_right(times, t1) - bisect_left(times, t0) < 2:
        return None
    a, b = max(t0, times[0]), min(t1, times[-1])
    return (a, b) if b > a else None


def coverage(samples: Sequence[Sample], t0: float, t1: float) -> float | None:
    """Fraction of ``[t0, t1]`` the samples span; None with fewer than 2 samples inside."""
    _check_window(t0, t1)
    times = _check_series(samples)
    span = _covered(times, t0, t1)
    return None if span is None else (span[1] - span[0]) / (t1 - t0)


def mean_power(samples: Sequence[Sample], t0: float, t1: float) -> float | None:
    """Time-weighted mean power (W) over ``[t0, t1]``; None with fewer than 2 samples inside."""
    _check_window(t0, t1)
    times = _check_series(samples)
    span = _covered(times, t0, t1)
    if span is None:
        return None
    a, b = span
    return _integral(samples, times, a, b) / (b - a)


def energy_joules(samples: Sequence[Sample], t0: float, t1: float) -> float | None:
    """Energy (J) over ``[t0, t1]``; None with fewer than 2 samples inside.

    With full coverage this is the exact trapezoid integral of the interpolated
    series; otherwise the uncovered edges count at the covered part's mean power.
    """
    power = mean_power(samples, t0, t1)
    return None if power is None else power * (t1 - t0)


def sample_rate_hz(samples: Sequence[Sample]) -> float | None:
    """Mean sampling rate, (n - 1) / time spanned; None for fewer than 2 samples."""
    times = _check_series(samples)
    if len(times) < 2 or times[-1] <= times[0]:
        return None
    return (len(times) - 1) / (times[-1] - times[0])


@dataclass(frozen=True)
class WindowEnergy:
    """One measured window."""

    t0: float
    t1: float
    inferences: int
    sample_count: int
    energy_j: float | None
    mean_power_w: float | None
    coverage: float | None

    @property
    def energy_per_inference_j(self) -> float | None:
        """This window alone; the median over repetitions is the figure to report."""
        return None if self.energy_j is None else self.energy_j / self.inferences


@dataclass(frozen=True)
class EnergyResult:
    """Power and energy over a run's measured windows, with what they rest on.

    The energy figures are None when any window had fewer than 2 samples (``note``
    says which); the idle figures are None when there was no idle window or it had
    fewer than 2 samples.
    """

    rail: str
    estimated: bool
    windows: tuple[WindowEnergy, ...]
    inferences: int
    duration_s: float
    sample_count: int
    sample_rate_hz: float | None
    mean_power_w: float | None
    energy_j: float | None
    energy_per_inference_j: float | None
    idle_power_w: float | None
    idle_sample_count: int
    energy_per_inference_above_idle_j: float | None
    coverage: float | None  # the worst window's
    note: str | None = None


def window_energy(
    samples: Sequence[Sample],
    windows: Sequence[Window],
    idle: tuple[float, float] | None = None,
    *,
    rail: str,
    estimated: bool = False,
) -> EnergyResult:
    """Energy per inference over the measured ``windows`` (see the module docstring).

    ``windows`` are ``(t0, t1, inferences)``; ``idle`` is ``(t0, t1)`` of an idle
    period on the same sensor, or None. ``rail`` names the sensor the series comes
    from (e.g. ``"VDD_IN"``); ``estimated`` says it is not a sensor reading.
    """
    if not windows:
        raise ValueError("no measured windows")
    times = _check_series(samples)
    parts = []
    for t0, t1, inferences in windows:
        _check_window(t0, t1)
        if inferences <= 0:
            raise ValueError(f"window ({t0}, {t1}) has {inferences} inferences")
        count = bisect_right(times, t1) - bisect_left(times, t0)
        parts.append(
            WindowEnergy(
                t0,
                t1,
                inferences,
                count,
                energy_joules(samples, t0, t1),
                mean_power(samples, t0, t1),
                coverage(samples, t0, t1),
            )
        )

    inferences = sum(w.inferences for w in parts)
    duration = sum(w.t1 - w.t0 for w in parts)
    sample_count = sum(w.sample_count for w in parts)
    spans = [
        (w.sample_count - 1, w.coverage * (w.t1 - w.t0)) for w in parts if w.coverage is not None
    ]
    span_time = sum(s for _, s in spans)
    rate = sum(n for n, _ in spans) / span_time if span_time > 0 else None

    unmeasured = [w for w in parts if w.energy_j is None]
    note = None
    energy = mean = per_inference = None
    if unmeasured:
        note = (
            f"{len(unmeasured)} of {len(parts)} windows had fewer than 2 samples "
            f"(first: {unmeasured[0].t0}..{unmeasured[0].t1} s, "
            f"{unmeasured[0].sample_count} sample(s)); energy not reported"
        )
    else:
        energy = sum(w.energy_j for w in parts if w.energy_j is not None)
        mean = energy / duration
        per_inference = energy / inferences

    idle_power = None
    idle_count = 0
    if idle is not None:
        _check_window(*idle)
        idle_count = bisect_right(times, idle[1]) - bisect_left(times, idle[0])
        idle_power = mean_power(samples, *idle)
        if idle_power is None:
            extra = f"idle window had {idle_count} sample(s); no idle baseline"
            note = f"{note}; {extra}" if note else extra

    above_idle = None
    if energy is not None and idle_power is not None:
        above_idle = (energy - idle_power * duration) / inferences

    coverages = [w.coverage for w in parts if w.coverage is not None]
    return EnergyResult(
        rail=rail,
        estimated=estimated,
        windows=tuple(parts),
        inferences=inferences,
        duration_s=duration,
        sample_count=sample_count,
        sample_rate_hz=rate,
        mean_power_w=mean,
        energy_j=energy,
        energy_per_inference_j=per_inference,
        idle_power_w=idle_power,
        idle_sample_count=idle_count,
        energy_per_inference_above_idle_j=above_idle,
        coverage=min(coverages) if coverages and not unmeasured else None,
        note=note,
    )
