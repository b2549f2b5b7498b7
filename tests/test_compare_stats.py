"""`edgebench compare`'s significance rule on synthetic samples with known answers: a real
shift is found, identical distributions are flagged no more often than the stated
false-positive rate, and few samples fall back to the confidence-interval rule, saying so.
Seeded generators throughout, so every count here is the same on every run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from scipy.stats import binom

from harness.compare import CI_OVERLAP, U_TEST, compare_results
from harness.stats import MIN_SAMPLES_FOR_U_TEST, SIGNIFICANCE_LEVEL, mann_whitney_p, summarize
from reports.compare import format_markdown, format_text, summary
from runners.records import JobResult, LatencyStats

TRIALS = 1000


def job_with_samples(
    samples: Sequence[float], variant: str = "int8-onnx", **over: Any
) -> JobResult:
    """A finished job whose latency figures are edgebench's statistics of ``samples``."""
    s = summarize(samples)
    base: dict[str, Any] = {
        "job_id": 0,
        "device": "local",
        "model": "digits_cnn",
        "variant": variant,
        "runtime": "onnxruntime",
        "setting": "onnxruntime t=1",
        "status": "done",
        "latency_s": LatencyStats(
            p50=s.p50, p90=s.p90, ci_low=s.ci_low, ci_high=s.ci_high, n=s.n, mean=s.mean
        ),
        "samples_s": [float(x) for x in samples],
        "file_size_bytes": 46_000,
    }
    base.update(over)
    return JobResult(**base)


def _latencies(rng: np.random.Generator, n: int, median_s: float = 10e-3) -> np.ndarray:
    # Right-skewed like real latencies: log-normal with a 10% spread around the median.
    return rng.lognormal(mean=np.log(median_s), sigma=0.1, size=n)


def _p50(a: Sequence[float], b: Sequence[float], **thresholds: float) -> dict[str, Any]:
    (row,) = compare_results([job_with_samples(a)], [job_with_samples(b)], thresholds)["rows"]
    return next(m for m in row["metrics"] if m["metric"] == "p50")


def _cmp(a: Sequence[float], b: Sequence[float]) -> dict[str, Any]:
    out = compare_results([job_with_samples(a)], [job_with_samples(b)])
    return {"run_a": {"id": "run-a"}, "run_b": {"id": "run-b"}, **out}


def test_the_u_test_p_value_on_hand_computed_cases() -> None:
    # 6 against 6, fully separated: the exact two-sided p is 2 / C(12, 6).
    assert mann_whitney_p([1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12]) == pytest.approx(2 / 924)
    # Every sample the same value (a quantised timer, an emulator): no evidence at all.
    assert mann_whitney_p([1e-3] * 30, [1e-3] * 30) == 1.0
    with pytest.raises(ValueError, match="empty"):
        mann_whitney_p([], [1.0])
    with pytest.raises(ValueError, match="non-finite"):
        mann_whitney_p([1.0, float("nan")], [1.0])


def test_a_ten_percent_shift_with_200_samples_a_side_is_found() -> None:
    rng = np.random.default_rng(20240601)
    found = 0
    for _ in range(100):
        a = _latencies(rng, 200)
        m = _p50(a, _latencies(rng, 200) * 1.10)
        assert m["evidence"]["test"] == U_TEST and m["evidence"]["samples"] == [200, 200]
        found += m["verdict"] == "regressed"
    assert found == 100
    # Faster by 10%: an improvement, and the job's mark says so.
    a, b = _latencies(rng, 200), _latencies(rng, 200) / 1.10
    assert _p50(a, b)["verdict"] == "improved"
    assert _cmp(a, b)["rows"][0]["mark"] == "better"


def test_identical_distributions_are_rarely_flagged() -> None:
    """The stated false-positive rate is SIGNIFICANCE_LEVEL per job; with the tolerance at
    0 only the test decides. Allowed: the count a binomial exceeds once in 1,000 times."""
    rng = np.random.default_rng(7)
    flagged = 0
    for _ in range(TRIALS):
        m = _p50(_latencies(rng, 200), _latencies(rng, 200), p50=0.0)
        flagged += m["verdict"] in ("regressed", "improved")
    limit = binom.isf(0.001, TRIALS, SIGNIFICANCE_LEVEL)
    assert flagged <= limit, f"{flagged} of {TRIALS} flagged (expected about 2, limit {limit})"
    # Measured with this seed (the report quotes it): 1 of 1,000.
    assert flagged == 1


def test_identical_runs_with_the_default_tolerance_are_unchanged() -> None:
    rng = np.random.default_rng(11)
    out = _cmp(_latencies(rng, 200), _latencies(rng, 200))
    assert out["rows"][0]["mark"] == "unchanged" and out["marks"]["unchanged"] == 1


def test_a_shift_that_is_not_significant_is_said_so() -> None:
    # 30 samples spread over +-50%: a 6% difference of medians is well inside the noise.
    grid = np.linspace(0.5, 1.5, 30) * 10e-3
    m = _p50(grid, grid * 1.06)
    assert m["verdict"] == "within noise" and m["evidence"]["p_value"] > SIGNIFICANCE_LEVEL
    out = _cmp(grid, grid * 1.06)
    assert out["rows"][0]["mark"] == "changed but not significant"
    assert "not significant" in format_text(out) and "Mann-Whitney p = " in format_text(out)


@pytest.mark.parametrize(
    ("n_a", "n_b", "test"),
    [
        (10, 10, CI_OVERLAP),
        (MIN_SAMPLES_FOR_U_TEST - 1, 200, CI_OVERLAP),
        (MIN_SAMPLES_FOR_U_TEST, MIN_SAMPLES_FOR_U_TEST, U_TEST),
    ],
)
def test_few_samples_fall_back_to_the_ci_overlap_rule(n_a: int, n_b: int, test: str) -> None:
    rng = np.random.default_rng(3)
    a = _latencies(rng, n_a)
    b = _latencies(rng, n_b) * 1.5  # far beyond noise either way
    m = _p50(a, b)
    assert m["evidence"]["test"] == test and m["verdict"] == "regressed"
    assert (m["evidence"]["p_value"] is None) == (test == CI_OVERLAP)
    out = _cmp(a, b)
    said = f"CI overlap for 1 job with fewer than {MIN_SAMPLES_FOR_U_TEST} samples a side"
    if test == CI_OVERLAP:
        assert said in summary(out)
        assert f"few samples ({n_a} and {n_b}): CIs of the median apart" in format_text(out)
        assert "few samples" in format_markdown(out)
    else:
        assert said not in summary(out) and "Mann-Whitney p" in format_text(out)


def test_overlapping_intervals_with_few_samples_are_noise() -> None:
    rng = np.random.default_rng(5)
    a = _latencies(rng, 10)
    m = _p50(a, a * 1.06)  # 6%: beyond the 5% tolerance, inside 10 samples' CI
    assert m["evidence"] == {
        "test": CI_OVERLAP,
        "samples": [10, 10],
        "p_value": None,
        "ci_overlap": True,
        "significant": False,
        "within_spread": False,
    }
    assert m["verdict"] == "within noise"


def test_a_run_whose_repetitions_disagree_is_noise_even_when_the_test_says_otherwise() -> None:
    rng = np.random.default_rng(9)
    a = _latencies(rng, 200)
    b = _latencies(rng, 200) * 1.10
    # The first run's three windows ranged from -5% to +12%: its machine changed speed.
    spread = [9.5e-3, 10e-3, 11.2e-3]
    (row,) = compare_results([job_with_samples(a, window_p50_s=spread)], [job_with_samples(b)])[
        "rows"
    ]
    p50 = row["metrics"][0]
    assert p50["evidence"]["significant"] and p50["evidence"]["within_spread"]
    assert p50["verdict"] == "within noise" and row["mark"] == "changed but not significant"


def test_quantised_samples_with_many_ties() -> None:
    # A 1 µs timer: 200 samples over a handful of values. The test copes with ties.
    rng = np.random.default_rng(13)
    a = np.round(_latencies(rng, 200, 20e-6), 6)
    assert len(set(a)) < 20
    assert _p50(a, np.round(_latencies(rng, 200, 20e-6), 6))["verdict"] == "unchanged"
    assert _p50(a, np.round(_latencies(rng, 200, 20e-6) * 1.5, 6))["verdict"] == "regressed"
