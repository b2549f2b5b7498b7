"""Two runs side by side, job by job: what improved, what regressed (`edgebench compare`).

Jobs pair up by (device, model, variant, runtime setting). Each pair is judged on a fixed
set of figures, each with a direction and a tolerance:

- a change within the tolerance is "unchanged";
- for the p50 latency, a change must also clear the noise: the two runs' 95% confidence
  intervals of the median must not overlap, and neither run's per-repetition p50s may
  span the other run's p50;
- a job that finished in the first run and failed in the second is a regression.

Input: the runs' ``runners.records.JobResult`` records (``harness.results.report_data``).
The verdicts are plain JSON dicts (``compare --format json`` prints them);
``reports.compare`` renders them as text or markdown.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from harness.errors import UsageError
from harness.results import report_data
from harness.store import Store
from runners.records import JobResult, RunReport, to_plain


@dataclass(frozen=True)
class Rule:
    name: str  # what --threshold calls it
    label: str  # column header
    field: str  # JobResult field; latency_<stat>: that stat of its latency_s
    lower_is_better: bool
    tolerance: float  # a fraction of the first value, or absolute when `absolute`
    absolute: bool = False
    kind: str = "seconds"  # how reports.compare formats the values


RULES: tuple[Rule, ...] = (
    Rule("p50", "p50 latency", "latency_p50", True, 0.05),
    Rule("p90", "p90 latency", "latency_p90", True, 0.10),
    Rule("memory", "Peak memory", "peak_rss_bytes", True, 0.05, kind="bytes"),
    Rule("size", "File size", "file_size_bytes", True, 0.0, kind="bytes"),
    # Accuracy in percentage points: 0.005 = 0.5 pp, about one digit of the digits test set.
    Rule("accuracy", "Accuracy", "accuracy", False, 0.005, absolute=True, kind="fraction"),
    Rule("energy", "Energy / inference", "energy_per_inference_j", True, 0.10, kind="joules"),
    # Microcontrollers: deterministic under QEMU -icount and fixed by the image, so any
    # change is real and judged exactly (a PR that grows RAM, flash or work fails).
    Rule(
        "instructions", "Instructions / inference", "executed_instructions", True, 0.0, kind="count"
    ),
    Rule("ram", "Static RAM", "static_ram_bytes", True, 0.0, kind="bytes"),
    Rule("flash", "Flash", "flash_bytes", True, 0.0, kind="bytes"),
)
RULE_NAMES = tuple(r.name for r in RULES)

# Verdicts, worst first.
REGRESSED, IMPROVED, UNCHANGED, NOISE, MISSING = (
    "regressed",
    "improved",
    "unchanged",
    "within noise",
    "n/a",
)


def parse_thresholds(values: list[str] | None) -> dict[str, float]:
    """``--threshold p50=3`` (percent; accuracy in percentage points) -> {name: tolerance}."""
    out: dict[str, float] = {}
    for raw in values or []:
        name, sep, text = raw.partition("=")
        name = name.strip()
        if not sep or name not in RULE_NAMES:
            raise UsageError(
                f"--threshold {raw!r}: expected NAME=VALUE with NAME one of {', '.join(RULE_NAMES)}"
            )
        try:
            value = float(text.strip().removesuffix("%").removesuffix("pp"))
        except ValueError:
            raise UsageError(f"--threshold {raw!r}: {text!r} is not a number") from None
        if not math.isfinite(value) or value < 0:
            # nan compares false with everything and inf never triggers: either would
            # switch the gate off without a word.
            raise UsageError(f"--threshold {raw!r}: must be a finite number >= 0")
        out[name] = value / 100.0
    return out


def _key(r: JobResult) -> tuple[str, str, str, str]:
    return (r.device, r.model, r.variant, r.setting)


def _value(r: JobResult, field: str) -> float | None:
    # getattr on the rules' field names: a misspelt one raises instead of judging nothing.
    if field.startswith("latency_"):
        return getattr(r.latency_s, field.removeprefix("latency_")) if r.latency_s else None
    value: float | None = getattr(r, field)
    return value


def _estimated(r: JobResult, field: str) -> bool:
    return ("latency_s" if field.startswith("latency_") else field) in r.estimated


def _p50_within_noise(a: JobResult, b: JobResult, va: float, vb: float) -> bool:
    """A p50 change is noise when the two confidence intervals of the median overlap, or
    when either run's own repetitions spread across the other's p50 (the windows of
    one run already disagree by that much: a machine that changes speed over seconds)."""
    la, lb = a.latency_s, b.latency_s
    if la and lb:
        a_low, a_high, b_low, b_high = la.ci_low, la.ci_high, lb.ci_low, lb.ci_high
        if a_low is not None and a_high is not None and b_low is not None and b_high is not None:
            if b_low <= a_high and a_low <= b_high:
                return True
    for run, other in ((a, vb), (b, va)):
        spread = [x for x in run.window_p50_s if x is not None]
        if len(spread) >= 2 and min(spread) <= other <= max(spread):
            return True
    return False


def judge(rule: Rule, tolerance: float, a: JobResult, b: JobResult) -> dict[str, Any]:
    """One figure of one job pair: values, change and verdict."""
    va, vb = _value(a, rule.field), _value(b, rule.field)
    out: dict[str, Any] = {
        "metric": rule.name,
        "a": va,
        "b": vb,
        "change": None,
        "estimated": _estimated(a, rule.field) or _estimated(b, rule.field),
    }
    if va is None or vb is None:
        return {**out, "verdict": MISSING}
    delta = vb - va
    if rule.absolute:
        out["change"] = delta
        beyond = abs(delta) > tolerance
    else:
        out["change"] = delta / va if va else None
        beyond = abs(delta) > tolerance * abs(va) if va else delta != 0
    if delta == 0 or not beyond:
        return {**out, "verdict": UNCHANGED}
    worse = delta > 0 if rule.lower_is_better else delta < 0
    if rule.field == "latency_p50" and _p50_within_noise(a, b, va, vb):
        return {**out, "verdict": NOISE}
    return {**out, "verdict": REGRESSED if worse else IMPROVED}


def compare_results(
    results_a: list[JobResult],
    results_b: list[JobResult],
    thresholds: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Pair two runs' job results and judge every figure; see the module docstring."""
    tolerances = {r.name: r.tolerance for r in RULES} | (thresholds or {})
    by_a = {_key(r): r for r in results_a}
    by_b = {_key(r): r for r in results_b}
    rows = []
    for key in list(by_a) + [k for k in by_b if k not in by_a]:
        a, b = by_a.get(key), by_b.get(key)
        device, model, variant, setting = key
        row: dict[str, Any] = {
            "device": device,
            "model": model,
            "variant": variant,
            "setting": setting,
            "status_a": a.status if a else None,
            "status_b": b.status if b else None,
            "metrics": [],
            "regressed": False,
        }
        if a is None or b is None:
            row["note"] = "only in the first run" if b is None else "only in the second run"
        elif a.status == "done" and b.status != "done":
            row["note"] = f"{b.status} in the second run: {b.error or 'no result'}"
            row["regressed"] = True
        elif a.status != "done" and b.status == "done":
            row["note"] = f"finished now ({a.status} in the first run)"
        elif a.status != "done":
            row["note"] = f"{b.status} in both runs"
        else:
            row["metrics"] = [judge(rule, tolerances[rule.name], a, b) for rule in RULES]
            row["regressed"] = any(m["verdict"] == REGRESSED for m in row["metrics"])
        rows.append(row)
    # A job that stopped finishing counts once; otherwise each regressed figure counts.
    regressions = sum(
        sum(1 for m in r["metrics"] if m["verdict"] == REGRESSED) or int(r["regressed"])
        for r in rows
    )
    return {
        "thresholds": tolerances,
        "rows": rows,
        "regressions": regressions,
        "improvements": sum(1 for r in rows for m in r["metrics"] if m["verdict"] == IMPROVED),
    }


def compare_reports(
    data_a: RunReport, data_b: RunReport, thresholds: dict[str, float] | None = None
) -> dict[str, Any]:
    """Run B judged against run A: ``compare_results`` plus both runs' descriptions, as
    plain JSON (what `compare --format json` prints and ``RunReport.comparison`` holds)."""
    out = compare_results(data_a.results, data_b.results, thresholds)
    return {"run_a": to_plain(data_a.run), "run_b": to_plain(data_b.run), **out}


def compare_runs(
    store: Store, ref_a: str, ref_b: str, thresholds: dict[str, float] | None = None
) -> dict[str, Any]:
    data_a = report_data(store, ref_a, samples=False)
    data_b = report_data(store, ref_b, samples=False)
    return compare_reports(data_a, data_b, thresholds)
