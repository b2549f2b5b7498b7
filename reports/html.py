"""Self-contained HTML report: one file, inline CSS, plots as base64 data URIs, no scripts."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from reports.compare import COLUMNS as COMPARE_COLUMNS
from reports.compare import figure_text
from reports.compare import headline as compare_headline
from reports.plots import latency_distribution_svg, pareto_svg, size_latency_svg
from reports.quality import run_warnings
from reports.tables import (
    ACCURACY_NOT_MEANINGFUL_NOTE,
    CHAIN_SEPARATOR,
    ESTIMATED_NOTE,
    HIGHLIGHT_TITLES,
    HTML_COLUMNS,
    LABEL_KEYS,
    SECONDARY_ESTIMATED,
    any_estimated,
    chain_text,
    device_highlights,
    device_rows,
    fmt_bytes,
    fmt_seconds,
    group_by_device,
    io_note,
    is_baseline,
    one_line,
    percentile_note,
    power_note,
)
from runners.records import DeviceInfo, JobResult, RunReport

# autoescape=True for every template: all strings in the report (variant names, tags, error
# messages) are user-provided. StrictUndefined turns a template typo into an error instead of
# a silently empty cell.
_ENV = Environment(
    loader=PackageLoader("reports", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
)

# Columns whose bracketed secondary figure goes on a second line.
_SPLIT_KEYS = ("size", "accuracy", "energy")
# Highlight -> the table column whose best cell it marks.
_HIGHLIGHT_COLUMNS = {
    "smallest": "size",
    "fastest": "latency",
    "most_accurate": "accuracy",
    "lowest_energy": "energy",
}


def _text(value: Any) -> str:
    return "-" if value is None or value == "" else one_line(str(value))


def _timer_floor(results: list[JobResult]) -> str:
    """The agent's own cost per timed sample on this device (median over its jobs)."""
    floors = sorted(r.timer_floor_s for r in results if r.timer_floor_s is not None)
    if not floors:
        return "-"
    return f"{fmt_seconds(floors[len(floors) // 2])} per sample (timing a no-op call)"


def _device_facts(device: DeviceInfo) -> list[tuple[str, str]]:
    # facts are what the capability probe found: free-form, any of them may be missing.
    facts = device.facts
    # os_release ("Debian GNU/Linux 12") is the most telling; os + kernel go in brackets.
    kernel = " ".join(str(facts[k]) for k in ("os", "kernel") if facts.get(k))
    os_name = facts.get("os_release") or kernel or None
    if facts.get("os_release") and kernel:
        os_name = f"{os_name} ({kernel})"
    runtimes = facts.get("runtimes") or {}
    transport = device.transport
    if transport and device.address:
        transport = f"{transport} {device.address}"
    tags = device.tags
    memory = facts.get("memory_total_bytes")
    return [
        ("OS", _text(os_name)),
        ("Arch", _text(facts.get("arch"))),
        ("CPU", _text(facts.get("cpu_model"))),
        ("Cores", _text(facts.get("cpu_cores"))),
        ("Memory", fmt_bytes(memory) if memory is not None else "-"),
        ("Python", _text(facts.get("python"))),
        ("Runtimes", _text(", ".join(f"{k} {v}" for k, v in sorted(runtimes.items())))),
        ("Transport", _text(transport)),
        ("Tags", _text(", ".join(f"{k}={v}" for k, v in sorted(tags.items())))),
    ]


def _svg_data_uri(svg: str | None) -> str | None:
    # base64 rather than inline <svg>: the image is opaque to the HTML parser, so text drawn
    # from user strings can never become markup, and <img> never runs SVG scripts.
    if svg is None:
        return None
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")


def _trade_off_plot(results: list[JobResult], name: str) -> dict[str, str] | None:
    svg = pareto_svg(results)
    if svg is not None:
        return {
            "uri": _svg_data_uri(svg) or "",
            "alt": f"Accuracy vs p90 latency on {name}",
            "caption": (
                "Accuracy vs p90 latency; marker area is proportional to the file size. "
                "Solid points are Pareto-optimal (no other variant is at least as fast and "
                "at least as accurate), joined by the step line; faded points are dominated."
            ),
        }
    svg = size_latency_svg(results)
    if svg is not None:
        return {
            "uri": _svg_data_uri(svg) or "",
            "alt": f"File size vs p90 latency on {name}",
            "caption": (
                "File size vs p90 latency (shown instead of accuracy vs latency). Solid "
                "points: no other variant is both at least as small and at least as fast; "
                "faded points are beaten on both."
            ),
        }
    return None


def _highlights(
    results: list[JobResult], baseline_variant: str | None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    found = device_highlights(results, baseline_variant)
    cards = [
        {"key": key, "title": title[0].upper() + title[1:], **found[key]}
        for key, title in HIGHLIGHT_TITLES
        if found.get(key)
    ]
    return found, cards


def _cell(row: dict[str, Any], key: str, best: bool) -> dict[str, Any]:
    """One figure cell: the main text, plus the lines the template puts below it: the
    bracketed secondary figure of File size, Accuracy and Energy ("(zstd 60.1 KiB)",
    "(99.7%)", the battery impact "(55%)"), and under the energy the mean power."""
    main, sep, rest = row[key].partition(" (") if key in _SPLIT_KEYS else (row[key], "", "")
    classes = [c for c, on in (("estimated", key in row["estimated"]), ("best", best)) if on]
    title = None
    if key in row["estimated"]:
        title = "estimated"
    elif key == "accuracy" and row["accuracy_n"]:
        title = f"n={row['accuracy_n']}"
    subs = []
    if sep:
        own = SECONDARY_ESTIMATED.get(key)
        subs.append({"text": "(" + rest, "estimated": own is not None and own in row["estimated"]})
    if key == "energy" and row["mean_power"] != "-":
        # Mean power while running, under the energy it produced.
        subs.append(
            {"text": f"at {row['mean_power']}", "estimated": "mean_power" in row["estimated"]}
        )
    return {
        "main": main,
        "subs": subs,
        "estimated": key in row["estimated"],
        "class": " ".join(classes) or None,
        "title": title,
    }


def _section(
    data: RunReport,
    device: DeviceInfo,
    results: list[JobResult],
    rows: list[dict[str, Any]],
) -> dict[str, Any]:
    name = _text(device.name)
    found, cards = _highlights(results, data.run.baseline_variant)
    best: dict[int, set[str]] = {}
    for key, column in _HIGHLIGHT_COLUMNS.items():
        if found.get(key):
            best.setdefault(found[key]["index"], set()).add(column)
    columns = list(HTML_COLUMNS)
    figure_keys = [k for k, _ in columns if k not in LABEL_KEYS]
    return {
        "name": name,
        "facts": _device_facts(device) + [("Timer floor", _timer_floor(results))],
        "rows": [
            {**r, "cells": [_cell(r, k, k in best.get(i, ())) for k in figure_keys]}
            for i, r in enumerate(rows)
        ],
        "columns": columns,
        "figure_keys": figure_keys,
        "highlights": cards,
        "baseline": found["baseline"],
        "accuracy_cost": found["accuracy_cost"],
        "any_estimated": any_estimated(
            rows, results, [*figure_keys, "mean_power", *SECONDARY_ESTIMATED.values()]
        ),
        "accuracy_not_meaningful": any(not r["accuracy_meaningful"] for r in rows),
        "power_note": power_note(results),
        "io_note": io_note(results),
        "latency_estimated": any("latency" in r["estimated"] for r in rows),
        "trade_off": _trade_off_plot(results, name),
        "plot": _svg_data_uri(latency_distribution_svg(results)),
    }


def _param_text(params: Any) -> str:
    if not isinstance(params, dict) or not params:
        return ""
    return ", ".join(
        f"{k}={v if isinstance(v, str) else json.dumps(v, sort_keys=True, default=str)}"
        for k, v in params.items()
    )


def _variants(data: RunReport) -> list[dict[str, Any]]:
    """One entry per variant name, in order of first appearance; each field is taken from
    the first result of that variant that has it."""
    baseline_variant = data.run.baseline_variant
    by_name: dict[str, list[JobResult]] = {}
    for r in data.results:
        by_name.setdefault(r.variant or "-", []).append(r)
    variants = []
    for name, results in by_name.items():

        def first(field: str, results: list[JobResult] = results) -> Any:
            # getattr on a fixed field name: a misspelt one raises instead of reading None.
            return next((v for r in results if (v := getattr(r, field))), None)

        recipe = [str(s) for s in first("recipe") or []]
        params = list(first("recipe_params") or [])
        params += [None] * (len(recipe) - len(params))
        variants.append(
            {
                "name": one_line(name),
                "baseline": any(is_baseline(r, baseline_variant) for r in results),
                "techniques": chain_text(first("techniques")) if first("techniques") else None,
                "steps": [
                    {"name": one_line(step), "params": one_line(_param_text(p))}
                    for step, p in zip(recipe, params, strict=False)
                ],
                "description": _text(first("description")) if first("description") else None,
                "model": _text(first("model")) if first("model") else None,
                "format": _text(first("format")) if first("format") else None,
            }
        )
    return variants


def _comparison(cmp: dict[str, Any] | None) -> dict[str, Any] | None:
    """`report --baseline`: every job of this run judged against the baseline run
    (records from harness.compare; figures rendered as reports.compare does)."""
    if not cmp:
        return None
    rows = []
    for row in cmp["rows"]:
        cells = [
            {
                "text": figure_text(m),
                "class": {"regressed": "worse", "improved": "better"}.get(m["verdict"]),
                "title": m["verdict"],
            }
            for m in row["metrics"]
        ]
        rows.append(
            {
                "labels": [_text(row[k]) for k in ("device", "variant", "setting")],
                "note": _text(row["note"]) if row.get("note") else None,
                "regressed": row["regressed"],
                "cells": cells,
            }
        )
    return {
        "baseline": _text(cmp["run_a"].get("id")),
        "headline": compare_headline(cmp),
        "headers": [header for _, header, _ in COMPARE_COLUMNS],
        "rows": rows,
        "regressions": cmp["regressions"],
    }


def _context(data: RunReport) -> dict[str, Any]:
    run = data.run
    sections = [
        _section(data, device, results, rows)
        for (device, results), (_, rows) in zip(
            group_by_device(data), device_rows(data), strict=True
        )
    ]
    return {
        "run": [
            ("Run", _text(run.id)),
            ("Suite", _text(run.suite)),
            ("Status", _text(run.status)),
            ("Created", _text(run.created_at)),
            ("edgebench", _text(run.edgebench_version)),
            ("Commit", _text(run.commit)),
            ("Baseline", _text(run.baseline_variant)),
        ],
        "title": f"edgebench report {_text(run.id)}",
        "warnings": run_warnings(data),
        "comparison": _comparison(data.comparison),
        "sections": sections,
        "variants": _variants(data),
        "chain_separator": CHAIN_SEPARATOR,
        "label_keys": LABEL_KEYS,
        "estimated_note": ESTIMATED_NOTE,
        "accuracy_note": ACCURACY_NOT_MEANINGFUL_NOTE,
        "percentile_note": percentile_note(data),
    }


def render_report(data: RunReport) -> str:
    """The report as one HTML document (same input gives the same text)."""
    return _ENV.get_template("report.html.j2").render(_context(data))


def write_report(data: RunReport, out_dir: Path) -> Path:
    """Write `out_dir/index.html` (creating out_dir) and return its path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "index.html"
    path.write_text(render_report(data), encoding="utf-8")
    return path
