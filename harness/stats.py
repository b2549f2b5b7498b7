"""Latency statistics for edgebench: percentiles, spread, throughput and median CIs.

All functions here are pure (no I/O, no global state) and work on plain sequences of
floats. The conventions are fixed so that numbers are comparable across runs, devices
and report versions:

* Percentiles use the **nearest-rank** method (``PERCENTILE_METHOD``): sort ascending,
  ``rank = ceil(p / 100 * n)`` (1-based), return ``sorted[rank - 1]``; ``p = 0`` returns
  the minimum. Every reported percentile is therefore an observed sample, never an
  interpolated value.
* Standard deviation is the sample standard deviation with ``ddof = 1`` (``STD_DDOF``);
  it is defined as ``0.0`` for a single sample. The coefficient of variation is
  ``std / mean`` and ``0.0`` when the mean is zero.
* Throughput is ``n / sum(samples)``: inferences per second when samples are latencies in
  seconds (``0.0`` when the samples sum to zero, where it is undefined).
* Confidence intervals are for the **median** and are distribution-free: they come from
  order statistics with the exact Binomial(n, 0.5) distribution (see :func:`median_ci`).
  The default confidence level is ``DEFAULT_CONFIDENCE``.
* Repeated measurement windows (:func:`summarize_windows`) are reported the way benchmark
  tools report "median across repetitions": each headline statistic is the median, across
  windows, of that per-window statistic.

Samples must be finite numbers; empty input raises :class:`ValueError`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.stats import binom, mannwhitneyu

__all__ = [
    "DEFAULT_CONFIDENCE",
    "PERCENTILE_METHOD",
    "STD_DDOF",
    "LatencySummary",
    "WindowedSummary",
    "MIN_SAMPLES_FOR_U_TEST",
    "SIGNIFICANCE_LEVEL",
    "mann_whitney_p",
    "median_ci",
    "percentile",
    "process_median_ci",
    "ratio_ci",
    "retention",
    "summarize",
    "summarize_windows",
]

PERCENTILE_METHOD = "nearest-rank"
STD_DDOF = 1
DEFAULT_CONFIDENCE = 0.95

# Relative tolerance used when deciding whether p/100*n is "really" an integer (so that
# float noise such as 7/100*100 == 7.000000000000001 does not push the rank up by one),
# and when comparing a binomial coverage against the requested confidence.
_REL_TOL = 1e-12


def _as_sorted_array(samples: Sequence[float], what: str = "samples") -> np.ndarray:
    """Validate ``samples`` (non-empty, finite) and return them as a sorted float array."""
    arr = np.asarray(samples, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{what} must be a one-dimensional sequence of numbers")
    if arr.size == 0:
        raise ValueError(f"{what} is empty: at least one sample is required")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what} contains non-finite values (NaN or infinity)")
    return np.sort(arr)


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in the open interval (0, 1), got {confidence!r}")


def _nearest_rank(p: float, n: int) -> int:
    """1-based nearest rank ``ceil(p / 100 * n)``, at least 1, robust to float noise."""
    x = p * n / 100.0
    r = round(x)
    rank = r if math.isclose(x, r, rel_tol=_REL_TOL, abs_tol=_REL_TOL) else math.ceil(x)
    return min(max(int(rank), 1), n)


def _percentile_sorted(sorted_arr: np.ndarray, p: float) -> float:
    return float(sorted_arr[_nearest_rank(p, sorted_arr.size) - 1])


def percentile(samples: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of ``samples``.

    Sorts ascending, takes ``rank = ceil(p / 100 * n)`` (1-based) and returns the sample at
    that rank; ``p = 0`` returns the minimum and ``p = 100`` the maximum. The result is
    always one of the samples.

    Raises:
        ValueError: if ``samples`` is empty or non-finite, or ``p`` is outside ``[0, 100]``.
    """
    if not 0.0 <= p <= 100.0:  # also rejects NaN
        raise ValueError(f"percentile p must be in [0, 100], got {p!r}")
    return _percentile_sorted(_as_sorted_array(samples), p)


def _median_ci_ranks(n: int, confidence: float) -> tuple[int, int] | None:
    """1-based ranks ``(l, n - l + 1)`` of the median CI, or None if none reaches coverage."""
    # Coverage of [x_(l), x_(n-l+1)] is P(l <= B <= n - l) for B ~ Binomial(n, 0.5),
    # which decreases as l grows; l runs over 1 .. ceil(n / 2) (l <= n - l + 1).
    ls = np.arange(1, (n + 1) // 2 + 1)
    coverage = binom.cdf(n - ls, n, 0.5) - binom.cdf(ls - 1, n, 0.5)
    ok = np.nonzero(coverage >= confidence - _REL_TOL)[0]
    if ok.size == 0:
        return None
    lower = int(ls[ok[-1]])
    return lower, n - lower + 1


def _median_ci_sorted(sorted_arr: np.ndarray, confidence: float) -> tuple[float, float] | None:
    ranks = _median_ci_ranks(int(sorted_arr.size), confidence)
    if ranks is None:
        return None
    lo, hi = ranks
    return float(sorted_arr[lo - 1]), float(sorted_arr[hi - 1])


def median_ci(
    samples: Sequence[float], confidence: float = DEFAULT_CONFIDENCE
) -> tuple[float, float] | None:
    """Distribution-free confidence interval for the median, from order statistics.

    With the samples sorted as ``x_(1) <= ... <= x_(n)``, the interval
    ``[x_(l), x_(n-l+1)]`` covers the population median with probability

        coverage(l) = P(l <= B <= n - l),   B ~ Binomial(n, 0.5),

    exactly, for any continuous distribution. Coverage decreases as ``l`` grows, so the
    narrowest symmetric interval that is still valid uses the **largest** 1-based rank
    ``l`` with ``coverage(l) >= confidence``. For ``n = 100`` at 95 % that is ``l = 40``,
    i.e. ranks 40 and 61 (coverage about 0.9648).

    Returns:
        ``(x_(l), x_(n-l+1))``, or ``None`` when ``n`` is too small for even
        ``[min, max]`` (coverage ``1 - 2 * 0.5**n``) to reach ``confidence``
        (e.g. ``n < 6`` at 95 %).

    Raises:
        ValueError: if ``samples`` is empty or non-finite, or ``confidence`` is not in (0, 1).
    """
    _check_confidence(confidence)
    return _median_ci_sorted(_as_sorted_array(samples), confidence)


@dataclass(frozen=True)
class LatencySummary:
    """Summary statistics of one latency series (units are those of the samples)."""

    n: int
    mean: float
    min: float
    max: float
    std: float
    cv: float
    p50: float
    p90: float
    p95: float
    p99: float
    throughput: float
    ci_low: float | None
    ci_high: float | None
    confidence: float

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (JSON-serialisable) with the field names as keys."""
        return asdict(self)


def summarize(samples: Sequence[float], confidence: float = DEFAULT_CONFIDENCE) -> LatencySummary:
    """Summarise one latency series; see the module docstring for the conventions."""
    _check_confidence(confidence)
    arr = _as_sorted_array(samples)
    n = int(arr.size)
    mean = float(np.mean(arr))
    std = float(np.std(arr, ddof=STD_DDOF)) if n > 1 else 0.0
    cv = std / mean if mean != 0 else 0.0
    total = float(np.sum(arr))
    throughput = n / total if total > 0 else 0.0
    ci = _median_ci_sorted(arr, confidence)
    return LatencySummary(
        n=n,
        mean=mean,
        min=float(arr[0]),
        max=float(arr[-1]),
        std=std,
        cv=cv,
        p50=_percentile_sorted(arr, 50),
        p90=_percentile_sorted(arr, 90),
        p95=_percentile_sorted(arr, 95),
        p99=_percentile_sorted(arr, 99),
        throughput=throughput,
        ci_low=ci[0] if ci is not None else None,
        ci_high=ci[1] if ci is not None else None,
        confidence=confidence,
    )


@dataclass(frozen=True)
class WindowedSummary:
    """Summary of repeated measurement windows.

    Attributes:
        headline: each statistic is the median across windows of that per-window statistic
            ("median across repetitions"), except ``n`` (total sample count over all
            windows), ``throughput`` (median of per-window throughputs) and
            ``ci_low``/``ci_high`` (median CI computed on the pooled samples).
        pooled: summary of all samples of all windows taken together.
        windows: per-window summaries, in input order.
        repetitions: number of windows.
    """

    headline: LatencySummary
    pooled: LatencySummary
    windows: tuple[LatencySummary, ...]
    repetitions: int

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form: summaries as dicts, ``windows`` as a list of dicts."""
        return {
            "headline": self.headline.to_dict(),
            "pooled": self.pooled.to_dict(),
            "windows": [w.to_dict() for w in self.windows],
            "repetitions": self.repetitions,
        }


_MEDIAN_FIELDS = ("mean", "min", "max", "std", "cv", "p50", "p90", "p95", "p99", "throughput")


def summarize_windows(
    windows: Sequence[Sequence[float]],
    confidence: float = DEFAULT_CONFIDENCE,
    processes: Sequence[int] | None = None,
) -> WindowedSummary:
    """Summarise repeated windows; the headline is the median across repetitions.

    ``processes`` names the process that measured each window. When the windows come
    from two or more processes, the headline CI is :func:`process_median_ci` (it
    covers the between-process variation that pooled samples of one process cannot
    show); otherwise it is the order-statistic CI of the pooled samples.

    Raises:
        ValueError: if ``windows`` is empty, any window is empty or non-finite, or
            ``confidence`` is not in (0, 1).
    """
    _check_confidence(confidence)
    if len(windows) == 0:
        raise ValueError("windows is empty: at least one measurement window is required")
    per_window: list[LatencySummary] = []
    for i, window in enumerate(windows):
        per_window.append(summarize(_as_sorted_array(window, f"window {i}"), confidence))
    pooled_samples = np.concatenate([np.asarray(w, dtype=float) for w in windows])
    pooled = summarize(pooled_samples, confidence)
    medians = {
        name: float(np.median([getattr(s, name) for s in per_window])) for name in _MEDIAN_FIELDS
    }
    ci_low, ci_high = pooled.ci_low, pooled.ci_high
    if processes is not None:
        if len(processes) != len(per_window):
            raise ValueError(f"{len(processes)} process ids for {len(per_window)} windows")
        if len(set(processes)) >= 2:
            ci_low, ci_high = process_median_ci([s.p50 for s in per_window], processes, confidence)
    headline = LatencySummary(
        n=pooled.n,
        ci_low=ci_low,
        ci_high=ci_high,
        confidence=confidence,
        **medians,
    )
    return WindowedSummary(
        headline=headline,
        pooled=pooled,
        windows=tuple(per_window),
        repetitions=len(per_window),
    )


def process_median_ci(
    window_medians: Sequence[float],
    processes: Sequence[int],
    confidence: float = DEFAULT_CONFIDENCE,
    resamples: int = 4000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile-bootstrap CI of the median of window medians, resampling whole
    processes (a cluster bootstrap): each resample draws as many processes as there
    are, with replacement, pools their windows' medians and takes the median.

    Resampling processes, not samples, is what makes the interval as wide as the
    disagreement between processes. Seeded, so a stored run always gets the same CI.
    With few processes the interval is coarse (its ends are observed window medians).
    """
    _check_confidence(confidence)
    medians = np.asarray(window_medians, dtype=float)
    ids = np.asarray(processes)
    groups = [medians[ids == g] for g in dict.fromkeys(processes)]
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(groups), size=(resamples, len(groups)))
    stats_ = np.empty(resamples)
    for i, pick in enumerate(picks):
        stats_[i] = np.median(np.concatenate([groups[j] for j in pick]))
    tail = (1.0 - confidence) / 2.0 * 100.0
    return float(np.percentile(stats_, tail)), float(np.percentile(stats_, 100.0 - tail))


def ratio_ci(
    a: Sequence[float],
    b: Sequence[float],
    confidence: float = DEFAULT_CONFIDENCE,
    resamples: int = 4000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """median(a) / median(b) and its percentile-bootstrap CI, resampling each side.

    For side-by-side comparisons where each value is one process's median (the
    fidelity benchmarks): the interval then covers between-process variation."""
    _check_confidence(confidence)
    xa = np.asarray(a, dtype=float)
    xb = np.asarray(b, dtype=float)
    if xa.size == 0 or xb.size == 0:
        raise ValueError("ratio_ci needs samples on both sides")
    rng = np.random.default_rng(seed)
    ra = np.median(xa[rng.integers(0, xa.size, (resamples, xa.size))], axis=1)
    rb = np.median(xb[rng.integers(0, xb.size, (resamples, xb.size))], axis=1)
    ratios = ra / rb
    tail = (1.0 - confidence) / 2.0 * 100.0
    return (
        float(np.median(xa) / np.median(xb)),
        float(np.percentile(ratios, tail)),
        float(np.percentile(ratios, 100.0 - tail)),
    )


def pytest_benchmark_stats(samples: Sequence[float]) -> dict[str, Any]:
    """The ``stats`` block of a pytest-benchmark JSON file, from raw samples (seconds).

    Quartiles are nearest-rank like every percentile here; ``stddev`` uses ``STD_DDOF``
    (pytest-benchmark's own ddof as well); outliers are counted as that plugin defines
    them (beyond mean +- 1 std; beyond 1.5 IQR from the quartiles)."""
    arr = _as_sorted_array(samples)
    n = int(arr.size)
    mean = float(arr.mean())
    std = float(arr.std(ddof=STD_DDOF)) if n > 1 else 0.0
    q1, median, q3 = (_percentile_sorted(arr, p) for p in (25, 50, 75))
    iqr = q3 - q1
    low, high = q1 - 1.5 * iqr, q3 + 1.5 * iqr
    iqr_outliers = int(np.count_nonzero((arr < low) | (arr > high)))
    std_outliers = int(np.count_nonzero((arr < mean - std) | (arr > mean + std)))
    return {
        "min": float(arr[0]),
        "max": float(arr[-1]),
        "mean": mean,
        "stddev": std,
        "rounds": n,
        "median": median,
        "iqr": iqr,
        "q1": q1,
        "q3": q3,
        "iqr_outliers": iqr_outliers,
        "stddev_outliers": std_outliers,
        "outliers": f"{std_outliers};{iqr_outliers}",
        "ld15iqr": float(arr[np.searchsorted(arr, low, side="left")]),
        "hd15iqr": float(arr[np.searchsorted(arr, high, side="right") - 1]),
        "ops": 1.0 / mean if mean > 0 else 0.0,
        "total": float(arr.sum()),
        "iterations": 1,
    }


def retention(variant_value: float | None, baseline_value: float | None) -> float | None:
    """Ratio ``variant / baseline`` (e.g. accuracy kept by a compressed variant).

    Returns None when the baseline is None or zero, or when the variant value is None.
    """
    if baseline_value is None or baseline_value == 0 or variant_value is None:
        return None
    return variant_value / baseline_value


# --------------------------------------------------------------------------- two samples
# `edgebench compare` calls a latency change significant below this two-sided p-value of
# the Mann-Whitney U test. Strict on purpose: a CI gate runs many jobs on every pull
# request, and consecutive latency samples are not independent (caches, clocks, heat), so
# the test's nominal p-values are optimistic.
SIGNIFICANCE_LEVEL = 0.002

# Fewer raw samples than this on either side and compare falls back to the overlap of the
# medians' confidence intervals. Below 7 a side the exact U test cannot reach p < 0.002 at
# all (the smallest two-sided p for 6 against 6 is 2 / C(12, 6) = 0.0022); from 20 a side
# the normal approximation of U is close and a 10% shift of a few-percent-noise latency is
# found reliably.
MIN_SAMPLES_FOR_U_TEST = 20


def mann_whitney_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided p-value of the Mann-Whitney U test that ``a`` and ``b`` come from the
    same distribution (scipy's ``mannwhitneyu``: exact for small tie-free samples, the
    tie-corrected normal approximation otherwise).

    Returns 1.0 when every sample of both series is the same value (no evidence of a
    difference; the statistic's variance is zero there).

    Raises:
        ValueError: if either series is empty or non-finite.
    """
    x = _as_sorted_array(a, "a")
    y = _as_sorted_array(b, "b")
    if x[0] == x[-1] == y[0] == y[-1]:
        return 1.0
    p = float(mannwhitneyu(x, y, alternative="two-sided").pvalue)
    return 1.0 if math.isnan(p) else min(p, 1.0)
