"""Change points of per-run p50 series (harness.trends), on synthetic series with known
steps: the pure function the trend pages and the regressions page are made from."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.trends import (
    DEFAULT_PENALTY,
    MIN_RUNS,
    MIN_SEGMENT,
    change_points,
    find_steps,
    penalty_problem,
)


def series(n: int, steps: dict[int, float], noise: float, seed: int) -> np.ndarray:
    """``n`` runs around 2 ms; from run ``i`` on the level is multiplied by ``steps[i]``;
    every run scatters by ``noise`` (relative, Gaussian)."""
    rng = np.random.default_rng(seed)
    factors = np.ones(n)
    for at, factor in steps.items():
        factors[at:] *= factor
    return 2e-3 * factors * (1 + noise * rng.standard_normal(n))


@pytest.mark.parametrize("seed", range(20))
def test_a_20_percent_step_at_run_30_of_60_is_found_exactly_there(seed: int) -> None:
    values = series(60, {30: 1.2}, 0.02, seed)
    trend = find_steps(values)
    assert trend.change_points == [30]
    (step,) = trend.steps
    assert step.percent == pytest.approx(20, abs=2)
    assert step.before == pytest.approx(2e-3, rel=0.02)
    assert step.after == pytest.approx(2.4e-3, rel=0.02)
    assert not trend.too_short


@pytest.mark.parametrize("seed", range(20))
def test_a_flat_noisy_series_has_no_step(seed: int) -> None:
    assert change_points(series(60, {}, 0.02, seed)) == []


@pytest.mark.parametrize("seed", range(10))
def test_two_steps_give_two_change_points(seed: int) -> None:
    trend = find_steps(series(60, {20: 1.2, 40: 0.7}, 0.02, seed))
    assert trend.change_points == [20, 40]
    assert [round(s.percent) for s in trend.steps] == pytest.approx([20, -30], abs=3)
    # The levels between the steps cover the series, each with its own median.
    assert [(g.start, g.end) for g in trend.segments] == [(0, 20), (20, 40), (40, 60)]


def test_a_faster_step_is_negative() -> None:
    (step,) = find_steps(series(40, {25: 0.5}, 0.02, 3)).steps
    assert step.index == 25 and step.percent == pytest.approx(-50, abs=2)


@pytest.mark.parametrize("n", range(MIN_RUNS))
def test_a_series_too_short_has_no_step_and_says_so(n: int) -> None:
    # Even a doubling: with fewer than MIN_RUNS runs a level cannot be told from noise.
    values = [1e-3] * (n // 2) + [2e-3] * (n - n // 2)
    trend = find_steps(values)
    assert trend.too_short and trend.steps == () and trend.runs == n
    assert MIN_RUNS <= 6  # "fewer than ~5 runs" in the issue: the rule stays about that


def test_the_shortest_searched_series_finds_a_clear_step() -> None:
    trend = find_steps([1e-3, 1.01e-3, 0.99e-3, 2e-3, 2.02e-3, 1.98e-3])
    assert not trend.too_short and trend.change_points == [MIN_SEGMENT]


@pytest.mark.parametrize("seed", range(10))
def test_one_or_two_slow_runs_are_noise_not_a_step(seed: int) -> None:
    values = series(60, {}, 0.02, seed)
    values[20] *= 1.6  # one busy host
    values[41:43] *= 1.5  # two in a row
    assert change_points(values) == []


def test_a_deterministic_series_steps_on_a_small_change_and_not_on_rounding() -> None:
    # Emulated MCUs: the same figure every run; a 1% change is real, 0.01% is rounding.
    assert change_points([5e-3] * 20 + [5.05e-3] * 20) == [20]
    assert change_points([5e-3, 5.0005e-3] * 20) == []
    assert change_points([5e-3] * 40) == []


def test_the_penalty_trades_small_steps_for_certainty() -> None:
    values = series(60, {30: 1.04}, 0.01, 1)
    assert change_points(values, penalty=10) == [30]
    assert change_points(values, penalty=10_000) == []


@pytest.mark.parametrize("penalty", [0.0, -1.0, math.nan, math.inf])
def test_a_penalty_that_is_not_positive_and_finite_is_refused(penalty: float) -> None:
    assert penalty_problem(penalty) is not None
    with pytest.raises(ValueError, match="penalty must be a positive number"):
        find_steps([1.0] * 10, penalty)
    assert penalty_problem(DEFAULT_PENALTY) is None


@pytest.mark.parametrize("bad", [[1.0, 0.0, 1.0], [1.0, -2.0], [1.0, math.nan], [math.inf]])
def test_values_that_are_not_latencies_are_refused(bad: list[float]) -> None:
    with pytest.raises(ValueError, match="positive finite"):
        find_steps(bad)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.floats(min_value=1e-7, max_value=100.0, allow_nan=False, allow_infinity=False),
        max_size=80,
    ),
    st.floats(min_value=0.1, max_value=1e4),
)
def test_steps_are_ordered_inside_the_series_and_levels_tile_it(
    values: list[float], penalty: float
) -> None:
    trend = find_steps(values, penalty)
    assert trend.runs == len(values)
    points = trend.change_points
    assert points == sorted(set(points))
    if trend.too_short:
        assert len(values) < MIN_RUNS and not points
        return
    # Every level holds at least MIN_SEGMENT runs; together they are the whole series.
    bounds = [(g.start, g.end) for g in trend.segments]
    assert bounds[0][0] == 0 and bounds[-1][1] == len(values)
    assert all(b - a >= MIN_SEGMENT for a, b in bounds)
    assert all(prev[1] == nxt[0] for prev, nxt in zip(bounds, bounds[1:], strict=False))
    levels = trend.segments
    for step, before, after in zip(trend.steps, levels[:-1], levels[1:], strict=True):
        assert step.index == after.start
        assert step.before == pytest.approx(float(np.median(values[before.start : before.end])))
        assert step.after == pytest.approx(float(np.median(values[after.start : after.end])))


@settings(max_examples=100, deadline=None)
@given(st.floats(min_value=1e-7, max_value=100.0), st.integers(min_value=0, max_value=200))
def test_a_constant_series_never_steps(value: float, n: int) -> None:
    assert change_points([value] * n) == []
