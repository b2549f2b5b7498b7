"""Change points of a series of per-run medians (the published site's trend pages).

A series is one job (device x model x variant x runtime setting of a suite) over the
runs that finished it, oldest first; its values are the runs' p50 latencies. A step is
a place where the series moved to another level and stayed there.

How steps are found (pure functions, tested on synthetic series in tests/test_trends.py):

1. Log scale: a 20% step is the same size at 5 µs as at 5 s, and noise on latencies is
   roughly proportional to the latency.
2. A running median over ``SMOOTHING_WINDOW`` runs: one or two outlying runs (a busy
   host, a thermal blip) are noise, not a step; a level held for ``MIN_SEGMENT`` runs
   or more passes through unchanged, edge included.
3. Divide by the series' own run-to-run noise, estimated robustly (median absolute
   difference of consecutive runs, so the steps themselves barely inflate it), floored
   at ``NOISE_FLOOR`` so that a deterministic series (an emulated MCU's instruction
   counts) does not turn a rounding wobble into a step.
4. ``ruptures``' exact penalised search (Pelt in its C kernel implementation, least
   squares cost) on that series. A step is kept when the cost it saves exceeds
   ``penalty``: for a single step between ``n1`` and ``n2`` runs, roughly when
   ``n1 * n2 / (n1 + n2) * (step / noise) ** 2 > penalty``.

``DEFAULT_PENALTY`` (25) was picked on simulated series (2% Gaussian noise): a flat
series shows a step in about 1% of cases at 6 to 10 runs and in under 0.1% from 30 runs
on (none in 3000-run series); a 20% step in the middle of 60 runs is found at exactly its
run in 99.8% of cases; one run 60% slower than the rest was never taken for a step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_PENALTY = 25.0
# Fewest runs on either side of a step: a level must hold this long to count.
MIN_SEGMENT = 3
# Shortest series searched: one step needs MIN_SEGMENT runs on each side.
MIN_RUNS = 2 * MIN_SEGMENT
# Odd; removes runs of up to SMOOTHING_WINDOW // 2 outliers, keeps longer levels exactly.
SMOOTHING_WINDOW = 5
# Noise floor in log units (0.1%): below it a difference is rounding, not signal.
NOISE_FLOOR = 1e-3
# Median absolute deviation of a Gaussian, as a multiple of its standard deviation.
_MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True)
class Step:
    """The series moved from one level to another at run ``index`` (0-based position in
    the series of the first run at the new level)."""

    index: int
    before: float  # median of the values of the level before the step
    after: float  # median of the values of the level from ``index`` on

    @property
    def percent(self) -> float:
        """The step as a percentage of the level before it (+ is higher, i.e. slower)."""
        return (self.after / self.before - 1.0) * 100.0


@dataclass(frozen=True)
class Segment:
    """Runs ``start`` (inclusive) to ``end`` (exclusive) of a series, at one level."""

    start: int
    end: int
    median: float


@dataclass(frozen=True)
class Trend:
    """The steps of a series and the levels between them. ``too_short`` means the series
    has fewer than ``MIN_RUNS`` values and was not searched (no steps, one segment)."""

    steps: tuple[Step, ...]
    segments: tuple[Segment, ...]
    too_short: bool
    runs: int

    @property
    def change_points(self) -> list[int]:
        return [s.index for s in self.steps]


def penalty_problem(penalty: float) -> str | None:
    """Why ``penalty`` cannot be used, or None."""
    if not math.isfinite(penalty) or penalty <= 0:
        return f"penalty must be a positive number (default {DEFAULT_PENALTY:g}), not {penalty}"
    return None


def _running_median(values: np.ndarray, window: int) -> np.ndarray:
    # The ends repeat their edge value: a zero (or reflected) pad would invent a level there.
    half = window // 2
    padded = np.pad(values, half, mode="edge")
    return np.median(np.lib.stride_tricks.sliding_window_view(padded, window), axis=1)


def noise_of(log_values: np.ndarray) -> float:
    """Run-to-run noise (one standard deviation, log units) of a series, from the median
    absolute difference of consecutive values: a step is one large difference among many
    small ones, so it barely moves the estimate."""
    diffs = np.diff(log_values)
    noise = _MAD_TO_SIGMA * float(np.median(np.abs(diffs))) / math.sqrt(2.0)
    if noise == 0.0:
        # More than half the runs repeat their neighbour exactly (quantised or
        # deterministic figures): the spread of all differences is the better measure.
        noise = float(np.std(diffs)) / math.sqrt(2.0)
    return max(noise, NOISE_FLOOR)


def find_steps(values: Sequence[float], penalty: float = DEFAULT_PENALTY) -> Trend:
    """The steps of a series of positive values (per-run medians, oldest first).

    Raises:
        ValueError: if a value is not a positive finite number, or ``penalty`` is not a
            positive finite number.
    """
    problem = penalty_problem(penalty)
    if problem is not None:
        raise ValueError(problem)
    series = np.asarray(values, dtype=float)
    if series.ndim != 1:
        raise ValueError("values must be a flat sequence of numbers")
    if series.size and not (np.all(np.isfinite(series)) and np.all(series > 0)):
        raise ValueError("values must be positive finite numbers (latencies)")
    n = int(series.size)
    if n < MIN_RUNS:
        whole = (Segment(0, n, float(np.median(series))),) if n else ()
        return Trend(steps=(), segments=whole, too_short=True, runs=n)
    # Imported here: ruptures pulls in scipy.stats and scipy.spatial (about 2 s on the
    # project's CI VM), which no command but `publish` needs.
    import ruptures

    logs = np.log(series)
    smooth = _running_median(logs, SMOOTHING_WINDOW)
    scaled = (smooth - np.median(smooth)) / noise_of(logs)
    search = ruptures.KernelCPD(kernel="linear", min_size=MIN_SEGMENT, jump=1)
    # predict() returns the end of every segment, the last being n.
    ends = [int(e) for e in search.fit(scaled.reshape(-1, 1)).predict(pen=penalty)]
    starts = [0, *ends[:-1]]
    segments = tuple(
        Segment(a, b, float(np.median(series[a:b]))) for a, b in zip(starts, ends, strict=True)
    )
    steps = tuple(
        Step(index=after.start, before=before.median, after=after.median)
        for before, after in zip(segments, segments[1:], strict=False)
    )
    return Trend(steps=steps, segments=segments, too_short=False, runs=n)


def change_points(values: Sequence[float], penalty: float = DEFAULT_PENALTY) -> list[int]:
    """Positions of the first run after each step (see ``find_steps``)."""
    return find_steps(values, penalty).change_points
