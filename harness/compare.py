"""Two runs side by side, job by job: what improved, what regressed (`edgebench compare`).

Jobs pair up by (device, model, variant, runtime setting). A job that cannot be paired is
listed with the reason (only in one run; the runtime's version changed between the runs)
and not judged. Each pair is judged on a fixed set of figures, each with a direction and a
tolerance (``--threshold NAME=VALUE``, or ``NAME:PATTERN=VALUE`` for the jobs whose
"model/variant" label matches the fnmatch PATTERN):

- a change within the tolerance is "unchanged";
- for the p50 latency, a change must also be significant. With at least
  ``MIN_SAMPLES_FOR_U_TEST`` raw samples on each side that is a Mann-Whitney U test on the
  raw samples (two-sided p < ``SIGNIFICANCE_LEVEL``); with fewer (or none: an imported
  vendor log, a run loaded without samples), the two runs' 95% confidence intervals of the
  median must not overlap. Either way neither run's per-repetition p50s may span the other
  run's p50: the U test takes every sample as independent and cannot see a machine that
  changes speed between windows. A change beyond the tolerance that fails this is "within
  noise";
- deterministic figures (file size, static RAM, flash, executed instructions) have no
  tolerance: one byte or one instruction more is a regression;
- a job that finished in the first run and failed in the second is a regression.

Each job then gets one mark: worse, newly failing, better, fixed, changed but not
significant, unchanged or not comparable.

Input: the runs' ``runners.records.JobResult`` records (``harness.results.report_data``);
``compare_runs`` adds each paired job's raw samples and runtime version from the store.
The verdicts are plain JSON dicts (``compare --format json`` prints them);
``reports.compare`` renders them as text or markdown.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from harness.errors import UsageError
from harness.results import report_data
from harness.stats import MIN_SAMPLES_FOR_U_TEST, SIGNIFICANCE_LEVEL, mann_whitney_p
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

# Verdicts of one figure, worst first.
REGRESSED, IMPROVED, UNCHANGED, NOISE, MISSING = (
    "regressed",
    "improved",
    "unchanged",
    "within noise",
    "n/a",
)

# Marks of one job, worst first (reports.compare keeps the same list).
WORSE, NEWLY_FAILING, BETTER, FIXED, NOT_SIGNIFICANT, NOT_COMPARABLE = (
    "worse",
    "newly failing",
    "better",
    "fixed",
    "changed but not significant",
    "not comparable",
)
MARKS = (WORSE, NEWLY_FAILING, BETTER, FIXED, NOT_SIGNIFICANT, UNCHANGED, NOT_COMPARABLE)

# How a p50 change was tested for significance.
U_TEST, CI_OVERLAP = "mann-whitney-u", "ci-overlap"


def parse_thresholds(values: list[str] | None) -> dict[str, float]:
    """``--threshold p50=3`` (percent; accuracy in percentage points) -> {name: tolerance};
    ``--threshold 'p50:mobilenet*=3%'`` -> {"p50:mobilenet*": 0.03}, a tolerance for the
    jobs whose "model/variant" label matches the pattern. Order is kept (the last pattern
    given that matches a job wins); giving a key again moves it to the end."""
    out: dict[str, float] = {}
    for raw in values or []:
        # The value never holds "=", a pattern might: split at the last one.
        key, sep, text = raw.rpartition("=")
        name, colon, pattern = key.strip().partition(":")
        name = name.strip()
        if not sep or name not in RULE_NAMES:
            raise UsageError(
                f"--threshold {raw!r}: expected NAME=VALUE or NAME:PATTERN=VALUE with NAME "
                f"one of {', '.join(RULE_NAMES)}"
            )
        if colon and not pattern:
            raise UsageError(f"--threshold {raw!r}: the PATTERN after {name + ':'!r} is empty")
        try:
            value = float(text.strip().removesuffix("%").removesuffix("pp"))
        except ValueError:
            raise UsageError(f"--threshold {raw!r}: {text!r} is not a number") from None
        if not math.isfinite(value) or value < 0:
            # nan compares false with everything and inf never triggers: either would
            # switch the gate off without a word.
            raise UsageError(f"--threshold {raw!r}: must be a finite number >= 0")
        full = f"{name}:{pattern}" if colon else name
        out.pop(full, None)
        out[full] = value / 100.0
    return out


def job_label(r: JobResult) -> str:
    """What a ``--threshold NAME:PATTERN=VALUE`` pattern is matched against."""
    return f"{r.model}/{r.variant}"


@dataclass(frozen=True)
class _Tolerances:
    plain: dict[str, float]  # every rule's tolerance, defaults overridden by NAME=VALUE
    patterns: tuple[tuple[str, str, float], ...]  # (rule name, pattern, tolerance), in order

    @classmethod
    def of(cls, thresholds: Mapping[str, float] | None) -> _Tolerances:
        plain = {r.name: r.tolerance for r in RULES}
        patterns = []
        for key, value in (thresholds or {}).items():
            name, colon, pattern = key.partition(":")
            if colon:
                patterns.append((name, pattern, value))
            else:
                plain[name] = value
        return cls(plain, tuple(patterns))

    def for_job(self, rule: str, label: str) -> float:
        tolerance = self.plain[rule]
        for name, pattern, value in self.patterns:
            # fnmatchcase: the same answer on every OS (fnmatch folds case on Windows).
            if name == rule and fnmatchcase(label, pattern):
                tolerance = value
        return tolerance


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


def _cis_overlap(a: JobResult, b: JobResult) -> bool | None:
    """Do the two runs' confidence intervals of the median overlap? None: one is unknown."""
    la, lb = a.latency_s, b.latency_s
    if not (la and lb):
        return None
    a_low, a_high, b_low, b_high = la.ci_low, la.ci_high, lb.ci_low, lb.ci_high
    if a_low is None or a_high is None or b_low is None or b_high is None:
        return None
    return b_low <= a_high and a_low <= b_high


def _within_spread(a: JobResult, b: JobResult, va: float, vb: float) -> bool:
    """Either run's own repetitions spread across the other's p50: the windows of one run
    already disagree by that much (a machine that changes speed over seconds)."""
    for run, other in ((a, vb), (b, va)):
        spread = [x for x in run.window_p50_s if x is not None]
        if len(spread) >= 2 and min(spread) <= other <= max(spread):
            return True
    return False


def p50_evidence(a: JobResult, b: JobResult, va: float, vb: float) -> dict[str, Any]:
    """Is the p50 change between two jobs more than noise? The test used and its outcome;
    ``significant`` is the test's answer, ``within_spread`` the repetitions' (the module
    docstring says how they combine)."""
    n_a, n_b = len(a.samples_s), len(b.samples_s)
    out: dict[str, Any] = {"samples": [n_a, n_b], "p_value": None, "ci_overlap": None}
    if min(n_a, n_b) >= MIN_SAMPLES_FOR_U_TEST:
        p = mann_whitney_p(a.samples_s, b.samples_s)
        out |= {"test": U_TEST, "p_value": p, "significant": p < SIGNIFICANCE_LEVEL}
    else:
        overlap = _cis_overlap(a, b)
        # Unknown intervals (too few samples for a 95% CI) decide nothing, as before the
        # U test: the tolerance and the spread of the repetitions still do.
        out |= {"test": CI_OVERLAP, "ci_overlap": overlap, "significant": overlap is not True}
    return out | {"within_spread": _within_spread(a, b, va, vb)}


def judge(rule: Rule, tolerance: float, a: JobResult, b: JobResult) -> dict[str, Any]:
    """One figure of one job pair: values, change and verdict (with the significance
    evidence for the p50)."""
    va, vb = _value(a, rule.field), _value(b, rule.field)
    out: dict[str, Any] = {
        "metric": rule.name,
        "a": va,
        "b": vb,
        "change": None,
        "tolerance": tolerance,
        "estimated": _estimated(a, rule.field) or _estimated(b, rule.field),
    }
    if va is None or vb is None:
        return {**out, "verdict": MISSING}
    if rule.field == "latency_p50":
        out["evidence"] = p50_evidence(a, b, va, vb)
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
    evidence = out.get("evidence")
    if evidence and (not evidence["significant"] or evidence["within_spread"]):
        return {**out, "verdict": NOISE}
    return {**out, "verdict": REGRESSED if worse else IMPROVED}


def _mark(metrics: list[dict[str, Any]]) -> str:
    verdicts = {m["verdict"] for m in metrics}
    # A job that regressed on one figure and improved on another is worse: the gate is
    # about what got worse, and the improvement still shows in its cell.
    for verdict, mark in ((REGRESSED, WORSE), (IMPROVED, BETTER), (NOISE, NOT_SIGNIFICANT)):
        if verdict in verdicts:
            return mark
    return UNCHANGED


def _version_change(a: JobResult, b: JobResult) -> str | None:
    old, new = a.runtime_version, b.runtime_version
    # A version either run did not record (an imported log) cannot be said to differ.
    if old and new and old != new:
        return f"runtime version changed: {a.runtime} {old} → {new}"
    return None


def compare_results(
    results_a: list[JobResult],
    results_b: list[JobResult],
    thresholds: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """Pair two runs' job results and judge every figure; see the module docstring.

    ``thresholds`` is what :func:`parse_thresholds` returns. A pair whose runtime
    versions differ is not comparable. The p50's U test uses each result's
    ``samples_s`` (pooled raw samples)."""
    tolerances = _Tolerances.of(thresholds)
    by_a = {_key(r): r for r in results_a}
    by_b = {_key(r): r for r in results_b}
    rows = []
    unmatched = []
    for key in list(by_a) + [k for k in by_b if k not in by_a]:
        a, b = by_a.get(key), by_b.get(key)
        device, model, variant, setting = key
        some = a or b
        assert some is not None  # every key came from one of the runs
        row: dict[str, Any] = {
            "device": device,
            "model": model,
            "variant": variant,
            "setting": setting,
            "label": job_label(some),
            "status_a": a.status if a else None,
            "status_b": b.status if b else None,
            "metrics": [],
            "regressed": False,
        }
        version_change = _version_change(a, b) if a and b else None
        if a is None or b is None:
            row["note"] = "only in the first run" if b is None else "only in the second run"
            row["mark"] = NOT_COMPARABLE
        elif a.status == "done" and b.status != "done":
            row["note"] = f"{b.status} in the second run: {b.error or 'no result'}"
            row["mark"] = NEWLY_FAILING
            row["regressed"] = True
        elif a.status != "done" and b.status == "done":
            row["note"] = f"finished now ({a.status} in the first run)"
            # Pending in the first run: it was interrupted, nothing was fixed.
            row["mark"] = FIXED if a.status == "failed" else NOT_COMPARABLE
        elif a.status != "done":
            row["note"] = f"{b.status} in both runs"
            row["mark"] = NOT_COMPARABLE
        elif version_change:
            row["note"] = version_change
            row["mark"] = NOT_COMPARABLE
        else:
            label = row["label"]
            row["metrics"] = [
                judge(rule, tolerances.for_job(rule.name, label), a, b) for rule in RULES
            ]
            row["regressed"] = any(m["verdict"] == REGRESSED for m in row["metrics"])
            row["mark"] = _mark(row["metrics"])
        if a is None or b is None or version_change:
            unmatched.append({k: row[k] for k in ("device", "model", "variant", "setting")})
            unmatched[-1]["reason"] = row["note"]
        rows.append(row)
    # A job that stopped finishing counts once; otherwise each regressed figure counts.
    regressions = sum(
        sum(1 for m in r["metrics"] if m["verdict"] == REGRESSED) or int(r["regressed"])
        for r in rows
    )
    labels = [row["label"] for row in rows]
    return {
        "thresholds": tolerances.plain,
        "threshold_patterns": [
            {
                "metric": name,
                "pattern": pattern,
                "tolerance": value,
                # A pattern that matches nothing is most likely a typo: say so.
                "jobs": sum(1 for label in labels if fnmatchcase(label, pattern)),
            }
            for name, pattern, value in tolerances.patterns
        ],
        "significance": {
            "test": U_TEST,
            "alpha": SIGNIFICANCE_LEVEL,
            "min_samples": MIN_SAMPLES_FOR_U_TEST,
            "fallback": CI_OVERLAP,
        },
        "rows": rows,
        "jobs": len(rows),
        "marks": {mark: sum(1 for r in rows if r["mark"] == mark) for mark in MARKS},
        "unmatched": unmatched,
        "regressions": regressions,
        "improvements": sum(1 for r in rows for m in r["metrics"] if m["verdict"] == IMPROVED),
    }


def compare_reports(
    data_a: RunReport,
    data_b: RunReport,
    thresholds: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """Run B judged against run A: ``compare_results`` plus both runs' descriptions, as
    plain JSON (what `compare --format json` prints and ``RunReport.comparison`` holds).
    A run loaded without its raw samples has its p50 changes judged by CI overlap."""
    out = compare_results(data_a.results, data_b.results, thresholds)
    return {"run_a": to_plain(data_a.run), "run_b": to_plain(data_b.run), **out}


def _with_samples(store: Store, r: JobResult) -> JobResult:
    return r.replace(samples_s=[s for window in store.job_samples(r.job_id) for s in window])


def compare_runs(
    store: Store, ref_a: str, ref_b: str, thresholds: Mapping[str, float] | None = None
) -> dict[str, Any]:
    """``compare_reports`` of two stored runs, with the raw samples of the jobs that pair
    up and finished in both (only those are tested)."""
    data_a = report_data(store, ref_a, samples=False)
    data_b = report_data(store, ref_b, samples=False)
    done_a = {_key(r) for r in data_a.results if r.status == "done"}
    done_b = {_key(r) for r in data_b.results if r.status == "done"}
    paired = done_a & done_b
    data_a, data_b = (
        data.replace(
            results=[_with_samples(store, r) if _key(r) in paired else r for r in data.results]
        )
        for data in (data_a, data_b)
    )
    return compare_reports(data_a, data_b, thresholds)
