"""Unit tests for harness.stats on synthetic series with hand-computed answers."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from scipy.stats import binom

from harness import stats
from harness.stats import (
    DEFAULT_CONFIDENCE,
    PERCENTILE_METHOD,
    STD_DDOF,
    LatencySummary,
    WindowedSummary,
    median_ci,
    percentile,
    retention,
    summarize,
    summarize_windows,
)

CLASSIC = [15, 20, 35, 40, 50]
ONE_TO_100 = [float(i) for i in range(1, 101)]


def _coverage(n: int, lower_rank: int) -> float:
    """P(l <= B <= n - l), B ~ Binomial(n, 0.5): coverage of [x_(l), x_(n-l+1)]."""
    return float(binom.cdf(n - lower_rank, n, 0.5) - binom.cdf(lower_rank - 1, n, 0.5))


# --------------------------------------------------------------------------- constants


def test_constants() -> None:
    assert PERCENTILE_METHOD == "nearest-rank"
    assert STD_DDOF == 1
    assert DEFAULT_CONFIDENCE == 0.95


# --------------------------------------------------------------------------- percentile


@pytest.mark.parametrize(
    ("p", "expected"),
    [(0, 15), (5, 15), (20, 15), (30, 20), (40, 20), (50, 35), (75, 40), (100, 50)],
)
def test_percentile_classic_example(p: float, expected: float) -> None:
    assert percentile(CLASSIC, p) == expected


@pytest.mark.parametrize(
    ("p", "expected"),
    [
        (0, 1),
        (1, 1),
        (7, 7),
        (10, 10),
        (50, 50),
        (90, 90),
        (95, 95),
        (99, 99),
        (99.5, 100),
        (100, 100),
        (0.5, 1),
        (50.1, 51),
    ],
)
def test_percentile_one_to_100(p: float, expected: float) -> None:
    assert percentile(ONE_TO_100, p) == expected


def test_percentile_returns_float() -> None:
    result = percentile([3, 1, 2], 50)
    assert isinstance(result, float)
    assert result == 2.0


@pytest.mark.parametrize("p", [0, 1, 50, 99, 100])
def test_percentile_single_sample(p: float) -> None:
    assert percentile([4.2], p) == 4.2


def test_percentile_unsorted_input() -> None:
    shuffled = [40, 15, 50, 20, 35]
    assert percentile(shuffled, 30) == 20
    assert percentile(shuffled, 50) == 35
    assert percentile(shuffled, 0) == 15
    assert percentile(shuffled, 100) == 50
    assert shuffled == [40, 15, 50, 20, 35]  # input not mutated


def test_percentile_accepts_numpy_and_tuple() -> None:
    assert percentile(np.array(CLASSIC, dtype=float), 40) == 20
    assert percentile(tuple(CLASSIC), 40) == 20


def test_percentile_is_always_a_sample() -> None:
    rng = np.random.default_rng(0)
    data = rng.exponential(size=37)
    for p in np.linspace(0, 100, 41):
        assert percentile(data, float(p)) in data


def test_percentile_empty_raises() -> None:
    with pytest.raises(ValueError, match="empty"):
        percentile([], 50)


@pytest.mark.parametrize("p", [-0.1, 100.01, -5, 150, math.nan])
def test_percentile_out_of_range_raises(p: float) -> None:
    with pytest.raises(ValueError, match=r"\[0, 100\]"):
        percentile(CLASSIC, p)


@pytest.mark.parametrize("bad", [[1.0, math.nan], [math.inf, 1.0]])
def test_percentile_non_finite_raises(bad: list[float]) -> None:
    with pytest.raises(ValueError, match="non-finite"):
        percentile(bad, 50)


# --------------------------------------------------------------------------- median_ci


def test_median_ci_n100_is_ranks_40_and_61() -> None:
    assert median_ci(ONE_TO_100) == (40.0, 61.0)
    assert median_ci(ONE_TO_100, 0.95) == (40.0, 61.0)
    # 40 is the largest rank that still reaches 95 %: 41 would not.
    assert _coverage(100, 40) >= 0.95
    assert _coverage(100, 41) < 0.95


def test_median_ci_unsorted_input() -> None:
    rng = np.random.default_rng(1)
    shuffled = rng.permutation(ONE_TO_100)
    assert median_ci(list(shuffled)) == (40.0, 61.0)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_median_ci_too_small_returns_none(n: int) -> None:
    # [min, max] covers with probability 1 - 2 * 0.5**n: 0.9375 < 0.95 at n = 5.
    assert median_ci(list(range(n))) is None


def test_median_ci_n6_is_min_max() -> None:
    # 1 - 2 / 64 = 0.96875 >= 0.95, and rank 2 gives 1 - 14/64 = 0.78 < 0.95.
    assert median_ci([6, 1, 5, 2, 4, 3]) == (1.0, 6.0)


def test_median_ci_confidence_boundary_is_inclusive() -> None:
    # n = 5: [min, max] has coverage exactly 1 - 2/32 = 0.9375.
    assert median_ci([1, 2, 3, 4, 5], confidence=0.9375) == (1.0, 5.0)
    assert median_ci([1, 2, 3, 4, 5], confidence=0.94) is None


@pytest.mark.parametrize("n", [6, 7, 10, 11, 20, 31, 50, 99, 100, 101, 250, 1000])
@pytest.mark.parametrize("confidence", [0.8, 0.9, 0.95, 0.99])
def test_median_ci_coverage_reaches_confidence_and_is_tightest(n: int, confidence: float) -> None:
    samples = [float(i) for i in range(1, n + 1)]  # x_(k) == k, so values are ranks
    ci = median_ci(samples, confidence)
    if _coverage(n, 1) < confidence:
        assert ci is None
        return
    assert ci is not None
    lo, hi = int(ci[0]), int(ci[1])
    assert lo + hi == n + 1  # symmetric in ranks
    assert lo <= hi
    assert _coverage(n, lo) >= confidence
    if lo + 1 <= n - lo:  # a narrower interval exists and must fall short
        assert _coverage(n, lo + 1) < confidence


def test_median_ci_none_iff_min_max_falls_short() -> None:
    for n in range(1, 12):
        reachable = 1 - 2 * 0.5**n >= 0.99
        assert (median_ci(list(range(n)), 0.99) is not None) == reachable
    # 1 - 2 / 128 = 0.984 < 0.99, 1 - 2 / 256 = 0.992 >= 0.99: first n is 8.
    assert median_ci(list(range(7)), 0.99) is None
    assert median_ci(list(range(8)), 0.99) == (0.0, 7.0)


def test_median_ci_contains_median() -> None:
    rng = np.random.default_rng(2)
    data = rng.lognormal(size=200)
    ci = median_ci(data)
    assert ci is not None
    assert ci[0] <= float(np.median(data)) <= ci[1]


@pytest.mark.parametrize("confidence", [0.0, 1.0, -0.5, 1.5, 95])
def test_median_ci_bad_confidence_raises(confidence: float) -> None:
    with pytest.raises(ValueError, match="confidence"):
        median_ci(ONE_TO_100, confidence)


def test_median_ci_empty_raises() -> None:
    with pytest.raises(ValueError, match="empty"):
        median_ci([])


# --------------------------------------------------------------------------- summarize


def test_summarize_classic() -> None:
    s = summarize(CLASSIC)
    assert s.n == 5
    assert s.mean == pytest.approx(32.0)
    assert s.min == 15.0
    assert s.max == 50.0
    # deviations -17, -12, 3, 8, 18 -> squares sum 830, / (n - 1) = 207.5
    assert s.std == pytest.approx(math.sqrt(207.5))
    assert s.std == pytest.approx(float(np.std(CLASSIC, ddof=1)))
    assert s.cv == pytest.approx(math.sqrt(207.5) / 32.0)
    assert (s.p50, s.p90, s.p95, s.p99) == (35.0, 50.0, 50.0, 50.0)
    assert s.throughput == pytest.approx(5 / 160)
    assert s.ci_low is None and s.ci_high is None  # n = 5 < 6
    assert s.confidence == 0.95


def test_summarize_one_to_100() -> None:
    s = summarize(ONE_TO_100)
    assert s.n == 100
    assert s.mean == pytest.approx(50.5)
    assert (s.min, s.max) == (1.0, 100.0)
    assert (s.p50, s.p90, s.p95, s.p99) == (50.0, 90.0, 95.0, 99.0)
    assert s.std == pytest.approx(float(np.std(ONE_TO_100, ddof=1)))
    assert s.std == pytest.approx(math.sqrt(100 * 101 / 12))  # var of 1..n is n(n+1)/12
    assert s.throughput == pytest.approx(100 / 5050)
    assert (s.ci_low, s.ci_high) == (40.0, 61.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_summarize_std_matches_numpy_ddof1(seed: int) -> None:
    data = np.random.default_rng(seed).gamma(2.0, 0.01, size=57)
    s = summarize(list(data))
    assert s.std == pytest.approx(float(np.std(data, ddof=1)), rel=1e-12)
    assert s.std != pytest.approx(float(np.std(data, ddof=0)), rel=1e-6)
    assert s.cv == pytest.approx(float(np.std(data, ddof=1) / np.mean(data)), rel=1e-12)


def test_summarize_single_sample() -> None:
    s = summarize([0.004])
    assert s.n == 1
    assert s.mean == s.min == s.max == s.p50 == s.p90 == s.p95 == s.p99 == 0.004
    assert s.std == 0.0
    assert s.cv == 0.0
    assert s.throughput == pytest.approx(250.0)
    assert s.ci_low is None and s.ci_high is None


def test_summarize_constant_series_has_zero_spread() -> None:
    s = summarize([0.01] * 10)
    assert s.std == pytest.approx(0.0, abs=1e-15)
    assert s.cv == pytest.approx(0.0, abs=1e-15)
    assert s.throughput == pytest.approx(100.0)
    assert (s.ci_low, s.ci_high) == (0.01, 0.01)


def test_summarize_zero_mean_cv_is_zero() -> None:
    s = summarize([0.0, 0.0, 0.0])
    assert s.mean == 0.0
    assert s.cv == 0.0
    assert s.throughput == 0.0  # undefined when samples sum to zero


def test_summarize_throughput_in_inferences_per_second() -> None:
    # 4 inferences of 2 ms, 3 ms, 5 ms, 10 ms: 4 / 0.020 s = 200 inf/s.
    assert summarize([0.002, 0.003, 0.005, 0.010]).throughput == pytest.approx(200.0)


def test_summarize_unsorted_equals_sorted() -> None:
    assert summarize([40, 15, 50, 20, 35]) == summarize(CLASSIC)


def test_summarize_confidence_is_passed_through() -> None:
    s = summarize(ONE_TO_100, confidence=0.99)
    assert s.confidence == 0.99
    assert (s.ci_low, s.ci_high) == median_ci(ONE_TO_100, 0.99)
    assert s.ci_low is not None and s.ci_low < 40.0


def test_summarize_errors() -> None:
    with pytest.raises(ValueError, match="empty"):
        summarize([])
    with pytest.raises(ValueError, match="non-finite"):
        summarize([1.0, math.nan])
    with pytest.raises(ValueError, match="confidence"):
        summarize([1.0, 2.0], confidence=1.0)


def test_latency_summary_is_frozen_and_to_dict() -> None:
    s = summarize(ONE_TO_100)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.mean = 0.0  # type: ignore[misc]
    d = s.to_dict()
    assert list(d) == [f.name for f in dataclasses.fields(LatencySummary)]
    assert list(d) == [
        "n",
        "mean",
        "min",
        "max",
        "std",
        "cv",
        "p50",
        "p90",
        "p95",
        "p99",
        "throughput",
        "ci_low",
        "ci_high",
        "confidence",
    ]
    assert d["p99"] == 99.0 and d["ci_low"] == 40.0 and d["n"] == 100
    json.dumps(d)  # plain, serialisable types
    assert summarize([1.0]).to_dict()["ci_low"] is None


# --------------------------------------------------------------------------- windows

# Three windows whose per-window statistics are known by hand:
#   A = 1..5        mean 3,  min 1,  max 5,  p50 3,  throughput 5/15
#   B = 2,4,..,10   mean 6,  min 2,  max 10, p50 6,  throughput 5/30
#   C = 10,20,..,50 mean 30, min 10, max 50, p50 30, throughput 5/150
# B is each statistic's median across the three; the pooled mean is 195/15 = 13.
WIN_A = [1.0, 2.0, 3.0, 4.0, 5.0]
WIN_B = [2.0, 4.0, 6.0, 8.0, 10.0]
WIN_C = [10.0, 20.0, 30.0, 40.0, 50.0]


def test_summarize_windows_headline_is_median_across_repetitions() -> None:
    ws = summarize_windows([WIN_C, WIN_A, WIN_B])  # order must not matter for headline
    h = ws.headline
    assert ws.repetitions == 3
    assert h.n == 15
    assert h.mean == pytest.approx(6.0)
    assert h.min == 2.0
    assert h.max == 10.0
    assert (h.p50, h.p90, h.p95, h.p99) == (6.0, 10.0, 10.0, 10.0)
    assert h.std == pytest.approx(2 * math.sqrt(2.5))  # std(A) = sqrt(2.5), B = 2A, C = 10A
    assert h.cv == pytest.approx(math.sqrt(2.5) / 3)  # scale-free: same in every window
    assert h.throughput == pytest.approx(5 / 30)
    assert h.confidence == 0.95


def test_summarize_windows_headline_differs_from_pooled() -> None:
    ws = summarize_windows([WIN_A, WIN_B, WIN_C])
    assert ws.pooled == summarize(WIN_A + WIN_B + WIN_C)
    assert ws.pooled.mean == pytest.approx(13.0)
    assert ws.headline.mean == pytest.approx(6.0)
    assert ws.pooled.throughput == pytest.approx(15 / 195)


def test_summarize_windows_ci_is_pooled_median_ci() -> None:
    ws = summarize_windows([WIN_A, WIN_B, WIN_C])
    pooled_ci = median_ci(WIN_A + WIN_B + WIN_C)
    assert pooled_ci is not None
    assert (ws.headline.ci_low, ws.headline.ci_high) == pooled_ci
    assert (ws.headline.ci_low, ws.headline.ci_high) == (ws.pooled.ci_low, ws.pooled.ci_high)
    # each 5-sample window alone is too small for a 95 % CI
    assert all(w.ci_low is None and w.ci_high is None for w in ws.windows)


def test_summarize_windows_even_repetitions_average_middle_pair() -> None:
    ws = summarize_windows([[1.0, 1.0, 1.0], [3.0, 3.0, 3.0]])
    h = ws.headline
    assert h.n == 6
    assert h.mean == pytest.approx(2.0)
    assert h.p50 == pytest.approx(2.0)
    assert h.throughput == pytest.approx((1.0 + 1 / 3) / 2)
    assert (h.ci_low, h.ci_high) == (1.0, 3.0)  # n = 6 pooled: [min, max]


def test_summarize_windows_per_window_summaries_in_order() -> None:
    ws = summarize_windows([WIN_A, WIN_B, WIN_C])
    assert ws.windows == (summarize(WIN_A), summarize(WIN_B), summarize(WIN_C))
    assert isinstance(ws.windows, tuple)


def test_summarize_windows_single_window_matches_summarize() -> None:
    ws = summarize_windows([ONE_TO_100])
    assert ws.repetitions == 1
    assert ws.headline == summarize(ONE_TO_100)
    assert ws.pooled == summarize(ONE_TO_100)


def test_summarize_windows_unequal_lengths() -> None:
    ws = summarize_windows([[1.0], [2.0, 2.0, 2.0], [10.0, 20.0]])
    assert ws.headline.n == 6
    assert ws.headline.mean == pytest.approx(2.0)  # medians of 1, 2, 15
    assert ws.headline.std == pytest.approx(0.0, abs=1e-15)  # medians of 0, 0, 7.07


def test_summarize_windows_accepts_mixed_sequence_types() -> None:
    ws = summarize_windows((np.array(WIN_A), tuple(WIN_B), WIN_C))
    assert ws.headline.mean == pytest.approx(6.0)


def test_summarize_windows_errors() -> None:
    with pytest.raises(ValueError, match="windows is empty"):
        summarize_windows([])
    with pytest.raises(ValueError, match="window 1 is empty"):
        summarize_windows([WIN_A, [], WIN_C])
    with pytest.raises(ValueError, match="window 0 contains non-finite"):
        summarize_windows([[1.0, math.inf]])
    with pytest.raises(ValueError, match="confidence"):
        summarize_windows([WIN_A], confidence=0.0)


def test_windowed_summary_frozen_and_to_dict() -> None:
    ws = summarize_windows([WIN_A, WIN_B, WIN_C])
    assert isinstance(ws, WindowedSummary)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ws.repetitions = 4  # type: ignore[misc]
    d = ws.to_dict()
    assert set(d) == {"headline", "pooled", "windows", "repetitions"}
    assert d["repetitions"] == 3
    assert d["headline"] == ws.headline.to_dict()
    assert d["pooled"]["mean"] == pytest.approx(13.0)
    assert [w["mean"] for w in d["windows"]] == pytest.approx([3.0, 6.0, 30.0])
    json.dumps(d)


# --------------------------------------------------------------------------- retention


@pytest.mark.parametrize(
    ("variant", "baseline", "expected"),
    [
        (0.75, 0.80, 0.9375),
        (0.80, 0.80, 1.0),
        (2.0, 1.0, 2.0),
        (0.0, 0.5, 0.0),
        (0.5, None, None),
        (0.5, 0.0, None),
        (0.5, 0, None),
        (None, 0.5, None),
    ],
)
def test_retention(variant: float | None, baseline: float | None, expected: float | None) -> None:
    result = retention(variant, baseline)
    if expected is None:
        assert result is None
    else:
        assert result == pytest.approx(expected)


def test_module_is_pure_api() -> None:
    assert set(stats.__all__) >= {
        "percentile",
        "median_ci",
        "summarize",
        "summarize_windows",
        "retention",
        "LatencySummary",
        "WindowedSummary",
    }
