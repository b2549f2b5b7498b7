"""Rendering of `edgebench compare` records (harness.compare) as text and markdown.

Both start with one summary line that counts the jobs by mark ("2 worse, 1 better, 14
unchanged of 17 jobs (p < 0.002)"). Text is for a terminal or a CI log: then every figure
that changed beyond its tolerance, one per line (with the test that judged a p50 change),
and every job that could not be judged, with why. Markdown is for a pull-request comment:
the summary line, then one row per job folded in <details>, every figure as
"before -> after (change)". Both mark estimated figures; markdown escapes every string
that came from the store.
"""

from __future__ import annotations

import html
import re
from typing import Any

from reports.tables import (
    fmt_bytes,
    fmt_count,
    fmt_joules,
    fmt_pct,
    fmt_pp,
    fmt_seconds,
    one_line,
)

# (name, header, value kind) in harness.compare.RULES order; kept here so that reports does
# not import the controller.
COLUMNS = (
    ("p50", "p50 latency", "seconds"),
    ("p90", "p90 latency", "seconds"),
    ("memory", "Peak memory", "bytes"),
    ("size", "File size", "bytes"),
    ("accuracy", "Accuracy", "fraction"),
    ("energy", "Energy / inference", "joules"),
    ("instructions", "Instructions / inference", "count"),
    ("ram", "Static RAM", "bytes"),
    ("flash", "Flash", "bytes"),
)
_KIND = {name: kind for name, _, kind in COLUMNS}
_HEADER = {name: header for name, header, _ in COLUMNS}
_FORMAT = {
    "seconds": fmt_seconds,
    "bytes": fmt_bytes,
    "fraction": fmt_pct,
    "joules": fmt_joules,
    "count": fmt_count,
}


def _value(kind: str, value: float | None) -> str:
    return "-" if value is None else _FORMAT[kind](value)


def _change(kind: str, change: float | None) -> str:
    if change is None:
        return ""
    if kind == "fraction":  # accuracy: an absolute difference, in percentage points
        return fmt_pp(change)
    return f"{change * 100:+.1f}%"


def figure_text(m: dict[str, Any]) -> str:
    """One judged figure: "16.2 µs → 18.0 µs (+11.1%)", with "(estimated)" when it is."""
    kind = _KIND[m["metric"]]
    if m["a"] is None and m["b"] is None:
        return "-"
    if m["a"] == m["b"]:  # the same figure: once
        return _value(kind, m["a"]) + (" (estimated)" if m.get("estimated") else "")
    text = f"{_value(kind, m['a'])} → {_value(kind, m['b'])}"
    change = _change(kind, m["change"])
    if kind in ("bytes", "count") and change in ("+0.0%", "-0.0%"):
        # Judged exactly (flash, RAM, instructions): one byte more must not read as
        # "1.00M → 1.00M (+0.0%)", so say the difference itself.
        delta = m["b"] - m["a"]
        change = ("+" if delta > 0 else "-") + _FORMAT[kind](abs(delta))
    if change:
        text += f" ({change})"
    if m.get("estimated"):
        text += " (estimated)"
    return text


def _job_label(row: dict[str, Any]) -> str:
    return one_line(f"{row['device']} {row['model']}/{row['variant']} [{row['setting']}]")


def _tolerance_text(kind: str, tolerance: float) -> str:
    return fmt_pp(tolerance).lstrip("+") if kind == "fraction" else f"{tolerance * 100:g}%"


def _thresholds_text(thresholds: dict[str, float], patterns: list[dict[str, Any]]) -> str:
    parts = [
        f"{name} {_tolerance_text(kind, thresholds[name])}"
        for name, _, kind in COLUMNS
        if name in thresholds
    ]
    for p in patterns:
        tolerance = _tolerance_text(_KIND[p["metric"]], p["tolerance"])
        unused = "" if p["jobs"] else " (matches no job)"
        parts.append(f"{p['metric']} for {p['pattern']} {tolerance}{unused}")
    return ", ".join(parts)


def headline(cmp: dict[str, Any]) -> str:
    """The figures: how many regressed and improved, under which tolerances and tests."""
    n, k = cmp["regressions"], cmp["improvements"]
    sig = cmp["significance"]
    return (
        f"{n} regression{'s' if n != 1 else ''}, {k} improvement{'s' if k != 1 else ''}"
        f" (tolerances: {_thresholds_text(cmp['thresholds'], cmp['threshold_patterns'])};"
        f" p50 changes must also be significant, by a Mann-Whitney U test on the raw samples"
        f" at p < {sig['alpha']:g} or, with fewer than {sig['min_samples']} samples a side,"
        " by the 95% confidence intervals of the median not overlapping, and must clear"
        " the spread of each run's repetitions)"
    )


# Job marks (harness.compare.MARKS), in the order a summary counts them.
MARKS = (
    "worse",
    "newly failing",
    "better",
    "fixed",
    "changed but not significant",
    "unchanged",
    "not comparable",
)
_ALWAYS_COUNTED = ("worse", "better", "unchanged")


def summary(cmp: dict[str, Any]) -> str:
    """One line for a pull request: "2 worse, 1 better, 14 unchanged of 17 jobs (p < 0.002)"."""
    marks, jobs, sig = cmp["marks"], cmp["jobs"], cmp["significance"]
    counts = [f"{marks[m]} {m}" for m in MARKS if m in _ALWAYS_COUNTED or marks[m]]
    few = sum(
        1
        for row in cmp["rows"]
        for m in row["metrics"]
        if (m.get("evidence") or {}).get("test") == sig["fallback"]
    )
    how = f"p < {sig['alpha']:g}"
    if few:
        how += (
            f"; CI overlap for {few} job{'s' if few != 1 else ''} with fewer than"
            f" {sig['min_samples']} samples a side"
        )
    return f"{', '.join(counts)} of {jobs} job{'s' if jobs != 1 else ''} ({how})"


def _p_text(p: float) -> str:
    # Below 1e-6 the digits say nothing more (and drift between scipy versions).
    return "p < 1e-6" if p < 1e-6 else f"p = {p:.2g}"


def evidence_text(m: dict[str, Any]) -> str:
    """How a p50 change was tested: "Mann-Whitney p = 0.031", "few samples (8 and 9):
    CIs of the median apart", "; within a run's repetition spread". Empty for others."""
    evidence = m.get("evidence")
    if not evidence:
        return ""
    if evidence["test"] == "mann-whitney-u":
        text = f"Mann-Whitney {_p_text(evidence['p_value'])}"
    else:
        n_a, n_b = evidence["samples"]
        overlap = {True: "overlap", False: "apart", None: "unknown"}[evidence["ci_overlap"]]
        text = f"few samples ({n_a} and {n_b}): CIs of the median {overlap}"
    if evidence["within_spread"]:
        text += "; within a run's repetition spread"
    return text


# A changed figure in the text listing: its verdict's word there.
_TEXT_VERDICT = {
    "regressed": "REGRESSED",
    "improved": "improved",
    "within noise": "not significant",
}
_TEXT_MARK = {
    "newly failing": "NEWLY FAILING",
    "fixed": "fixed",
    "not comparable": "not comparable",
}
_WIDTH = max(len(w) for w in (*_TEXT_VERDICT.values(), *_TEXT_MARK.values()))


def format_text(cmp: dict[str, Any]) -> str:
    a, b = cmp["run_a"]["id"], cmp["run_b"]["id"]
    lines = [
        f"compare {one_line(a)} → {one_line(b)}: {summary(cmp)}",
        f"  figures: {one_line(headline(cmp))}",
    ]
    quiet = 0
    for row in cmp["rows"]:
        label = _job_label(row)
        if row.get("note"):
            lines.append(f"  {_TEXT_MARK[row['mark']]:<{_WIDTH}} {label}: {one_line(row['note'])}")
            continue
        for m in row["metrics"]:
            word = _TEXT_VERDICT.get(m["verdict"])
            if word is None:
                quiet += 1
                continue
            evidence = evidence_text(m)
            lines.append(
                f"  {word:<{_WIDTH}} {label} {_HEADER[m['metric']]}: {figure_text(m)}"
                + (f" [{evidence}]" if evidence else "")
            )
    lines.append(f"  {quiet} other figures unchanged or not measured")
    return "\n".join(lines) + "\n"


# Inside a table cell only inline markup matters: emphasis, code, links, strikethrough,
# the cell separator, and HTML (escaped separately). Block markup needs a line start.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")


def md_escape(text: Any) -> str:
    """Text safe in a markdown table cell: HTML escaped, markdown punctuation backslashed,
    whitespace collapsed (a newline would end the row), and no "@name" that would
    notify a GitHub user or team from a pull-request comment (a zero-width space
    after the @ keeps the text and drops the mention)."""
    escaped = _MD_SPECIAL.sub(r"\\\1", html.escape(one_line(str(text)), quote=False))
    return escaped.replace("@", "@\u200b")


# Shown in the markdown table only when a job of either run has the figure (MCUs).
_OPTIONAL = ("instructions", "ram", "flash")


def _shown_columns(cmp: dict[str, Any]) -> list[tuple[str, str, str]]:
    present = {
        m["metric"]
        for row in cmp["rows"]
        for m in row.get("metrics") or []
        if m["a"] is not None or m["b"] is not None
    }
    return [c for c in COLUMNS if c[0] not in _OPTIONAL or c[0] in present]


def _md_figure(m: dict[str, Any]) -> str:
    text = md_escape(figure_text(m))
    if m["verdict"] == "regressed":
        text = f"**{text} regressed**"
    elif m["verdict"] == "improved":
        text += " improved"
    elif m["verdict"] == "within noise":
        text += " not significant"
    evidence = evidence_text(m) if m["verdict"] != "unchanged" else ""
    return text + (f" ({md_escape(evidence)})" if evidence else "")


def format_markdown(cmp: dict[str, Any]) -> str:
    """A pull-request comment: the summary line, then the table folded in <details>."""
    a, b = cmp["run_a"]["id"], cmp["run_b"]["id"]
    columns = _shown_columns(cmp)
    names = {name for name, _, _ in columns}
    out = [
        f"edgebench compare {md_escape(a)} → {md_escape(b)}: {md_escape(summary(cmp))}",
        "",
        "<details><summary>Jobs and figures</summary>",
        "",  # GitHub renders markdown inside <details> only after a blank line
        md_escape(headline(cmp)),
        "",
        "| Mark | Device | Model / variant | Runtime | "
        + " | ".join(h for _, h, _ in columns)
        + " |",
        "|---|---|---|---|" + "---|" * len(columns),
    ]
    for row in cmp["rows"]:
        mark = md_escape(row["mark"])
        if row["mark"] in ("worse", "newly failing"):
            mark = f"**{mark}**"
        labels = (row["device"], f"{row['model']}/{row['variant']}", row["setting"])
        head = f"| {mark} | " + " | ".join(md_escape(x) for x in labels) + " |"
        if row.get("note"):
            out.append(head + f" {md_escape(row['note'])} |" + " |" * (len(columns) - 1))
            continue
        cells = [_md_figure(m) for m in row["metrics"] if m["metric"] in names]
        out.append(head + " " + " | ".join(cells) + " |")
    out += ["", "</details>"]
    return "\n".join(out) + "\n"
