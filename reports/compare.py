"""Rendering of `edgebench compare` records (harness.compare) as text and markdown.

Text is for a terminal or a CI log: every figure that changed, one per line, then a count of
the rest. Markdown is for a pull-request comment: one row per job, every figure as
"before -> after (change)". Both mark estimated figures and escape every user string.
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
    if change:
        text += f" ({change})"
    if m.get("estimated"):
        text += " (estimated)"
    return text


def _job_label(row: dict[str, Any]) -> str:
    return one_line(f"{row['device']} {row['variant']} [{row['setting']}]")


def _thresholds_text(thresholds: dict[str, float]) -> str:
    parts = []
    for name, _, kind in COLUMNS:
        if name in thresholds:
            t = thresholds[name]
            parts.append(
                f"{name} {fmt_pp(t).lstrip('+')}" if kind == "fraction" else f"{name} {t * 100:g}%"
            )
    return ", ".join(parts)


def headline(cmp: dict[str, Any]) -> str:
    n, k = cmp["regressions"], cmp["improvements"]
    return (
        f"{n} regression{'s' if n != 1 else ''}, {k} improvement{'s' if k != 1 else ''}"
        f" (tolerances: {_thresholds_text(cmp['thresholds'])}; p50 changes must also clear"
        " the 95% confidence intervals of the median and the spread of each run's"
        " repetitions)"
    )


def format_text(cmp: dict[str, Any]) -> str:
    a, b = cmp["run_a"]["id"], cmp["run_b"]["id"]
    lines = [f"compare {one_line(a)} → {one_line(b)}: {headline(cmp)}"]
    quiet = 0
    for row in cmp["rows"]:
        label = _job_label(row)
        if row.get("note"):
            mark = "REGRESSED" if row["regressed"] else "note"
            lines.append(f"  {mark:<9} {label}: {one_line(row['note'])}")
            continue
        for m in row["metrics"]:
            if m["verdict"] in ("regressed", "improved"):
                mark = "REGRESSED" if m["verdict"] == "regressed" else "improved"
                lines.append(f"  {mark:<9} {label} {_HEADER[m['metric']]}: {figure_text(m)}")
            else:
                quiet += 1
    lines.append(f"  {quiet} other figures unchanged, within noise or not measured")
    return "\n".join(lines) + "\n"


# Inside a table cell only inline markup matters: emphasis, code, links, strikethrough,
# the cell separator, and HTML (escaped separately). Block markup needs a line start.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")


def md_escape(text: Any) -> str:
    """Text safe in a markdown table cell: HTML escaped, markdown punctuation backslashed,
    whitespace collapsed (a newline would end the row)."""
    return _MD_SPECIAL.sub(r"\\\1", html.escape(one_line(str(text)), quote=False))


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


def format_markdown(cmp: dict[str, Any]) -> str:
    a, b = cmp["run_a"]["id"], cmp["run_b"]["id"]
    columns = _shown_columns(cmp)
    names = {name for name, _, _ in columns}
    out = [
        f"### edgebench compare `{md_escape(a)}` → `{md_escape(b)}`",
        "",
        md_escape(headline(cmp)),
        "",
        "| Device | Variant | Runtime | " + " | ".join(h for _, h, _ in columns) + " |",
        "|---|---|---|" + "---|" * len(columns),
    ]
    for row in cmp["rows"]:
        head = "| " + " | ".join(md_escape(row[k]) for k in ("device", "variant", "setting")) + " |"
        if row.get("note"):
            note = md_escape(row["note"])
            if row["regressed"]:
                note = f"**regressed**: {note}"
            out.append(head + f" {note} |" + " |" * (len(columns) - 1))
            continue
        cells = []
        for m in row["metrics"]:
            if m["metric"] not in names:
                continue
            text = md_escape(figure_text(m))
            if m["verdict"] == "regressed":
                text = f"**{text} regressed**"
            elif m["verdict"] == "improved":
                text += " improved"
            cells.append(text)
        out.append(head + " " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"
