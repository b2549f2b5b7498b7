"""Data-quality warnings: what a reader must know before trusting a run's figures.

Each check is a pure function of the run's records, with its threshold named here, so
the report header, the CLI summary and tests say the same thing. A warning does not
change a figure; it says which figures deserve a second look and why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from runners.records import JobResult, RunReport

# Fewer samples than this and the nearest-rank p90/p99 are a handful of runs.
FEW_SAMPLES = 30
# Median per-window coefficient of variation above this: the device was noisy.
HIGH_CV = 0.15
# Repetitions whose p50s span more than this share of their median disagree: the
# job's median depends on which windows it got (another process, a frequency change).
REPETITION_SPREAD = 0.10
# A p50 that moves the same way in every repetition by more than this from the first
# to the last drifted (warming up, throttling, a background job starting).
DRIFT = 0.05


@dataclass(frozen=True)
class QualityWarning:
    kind: str  # few-samples | high-cv | spread | drift | device | estimated | versions
    text: str


def job_label(r: JobResult) -> str:
    return f"{r.variant} on {r.device} ({r.setting})"


def job_warnings(r: JobResult) -> list[QualityWarning]:
    """The warnings one finished job earns."""
    if r.status != "done":
        return []
    out: list[QualityWarning] = []
    lat = r.latency_s
    own = lat is not None and lat.source == "edgebench"
    if own and lat.n is not None and lat.n < FEW_SAMPLES:
        out.append(QualityWarning("few-samples", f"few samples (n={lat.n})"))
    if own and lat.cv is not None and lat.cv > HIGH_CV:
        out.append(QualityWarning("high-cv", f"high CV ({lat.cv:.0%} within windows)"))
    p50s = [p for p in r.window_p50_s if p is not None]
    if len(p50s) >= 2:
        middle = sorted(p50s)[(len(p50s) - 1) // 2]
        spread = (max(p50s) - min(p50s)) / middle if middle > 0 else 0.0
        if spread > REPETITION_SPREAD:
            out.append(QualityWarning("spread", f"repetitions disagree (p50s span {spread:.0%})"))
    if len(p50s) >= 3 and p50s[0] > 0:
        steps = [b - a for a, b in zip(p50s, p50s[1:], strict=False)]
        change = p50s[-1] / p50s[0] - 1
        monotonic = all(s > 0 for s in steps) or all(s < 0 for s in steps)
        if monotonic and abs(change) > DRIFT:
            out.append(
                QualityWarning("drift", f"drift ({change:+.0%} from first to last repetition)")
            )
    for flag in r.health_flags:
        out.append(QualityWarning("device", flag))
    return out


def _versions(results: Sequence[JobResult]) -> list[QualityWarning]:
    """A runtime whose version differs between the run's devices."""
    seen: dict[str, dict[str, list[str]]] = {}
    for r in results:
        if r.runtime_version:
            devices = seen.setdefault(r.runtime, {}).setdefault(r.runtime_version, [])
            if r.device not in devices:
                devices.append(r.device)
    out = []
    for runtime, versions in seen.items():
        if len(versions) > 1:
            where = "; ".join(f"{v} on {', '.join(d)}" for v, d in sorted(versions.items()))
            out.append(
                QualityWarning("versions", f"{runtime} versions differ between devices: {where}")
            )
    return out


def run_warnings(data: RunReport) -> list[str]:
    """One line per warning, run-wide ones first, then per job."""
    results = data.results
    lines = [w.text for w in _versions(results)]
    done = [r for r in results if r.status == "done"]
    if any(r.emulated for r in done):
        lines.append("emulated devices: latencies are instruction counts at the board clock")
    if any(r.estimated for r in done):
        lines.append("some figures are estimated (marked *): no sensor or board measured them")
    for r in results:
        found = job_warnings(r)
        if found:
            lines.append(f"{job_label(r)}: " + "; ".join(w.text for w in found))
    return lines
