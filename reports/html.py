"""Self-contained HTML report: one file, inline CSS, plots as base64 data URIs, no scripts."""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from reports.compare import COLUMNS as COMPARE_COLUMNS
from reports.compare import figure_text
from reports.compare import headline as compare_headline
from reports.export import JOB_COLUMNS, job_records, write_csv
from reports.plots import (
    latency_distribution_svg,
    layer_time_svg,
    pareto_svg,
    resources_svg,
    run_sequence_svg,
    sample_arrays,
    size_latency_svg,
)
from reports.quality import run_warnings
from reports.tables import (
    ACCURACY_NOT_MEANINGFUL_NOTE,
    CASE_STUDY_COLUMNS,
    CASE_STUDY_NOTE,
    CHAIN_SEPARATOR,
    ESTIMATED_NOTE,
    HIGHLIGHT_TITLES,
    HTML_COLUMNS,
    LABEL_KEYS,
    MATRIX_METRICS,
    SECONDARY_ESTIMATED,
    any_estimated,
    case_study_rows,
    chain_text,
    device_highlights,
    device_matrix,
    device_rows,
    fmt_bytes,
    fmt_count,
    fmt_seconds,
    group_by_device,
    io_note,
    is_baseline,
    one_line,
    percentile_note,
    power_note,
    published_rows,
    runtime_label,
    variant_labels,
)
from runners.records import DeviceInfo, JobResult, RunReport, to_plain

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

# The raw data written beside index.html and linked from its header: (file, what it is).
RAW_DATA_FILES = (("jobs.json", "JSON"), ("jobs.csv", "CSV"))
# Per-layer table: the slowest layers shown; the rest are summed in one line.
LAYER_ROWS_SHOWN = 15

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
            "kind": "trade-off",
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
            "kind": "trade-off",
            "uri": _svg_data_uri(svg) or "",
            "alt": f"File size vs p90 latency on {name}",
            "caption": (
                "File size vs p90 latency (shown instead of accuracy vs latency). Solid "
                "points: no other variant is both at least as small and at least as fast; "
                "faded points are beaten on both."
            ),
        }
    return None


def _figure(svg: str | None, alt: str, caption: str, kind: str) -> dict[str, str] | None:
    if svg is None:
        return None
    return {"uri": _svg_data_uri(svg) or "", "alt": alt, "caption": caption, "kind": kind}


def _figures(results: list[JobResult], name: str) -> list[dict[str, str]]:
    """The device's plots in page order: trade-off, latency distribution + ECDF, run
    sequence, memory/energy (flash/RAM on a board), where the time goes."""
    # The raw samples as arrays once: the distribution and the run sequence both read them.
    arrays = sample_arrays(results)
    estimated = any("latency_s" in r.estimated for r in results)
    star = " Labels marked * are estimated." if estimated else ""
    figures = [
        _trade_off_plot(results, name),
        _figure(
            latency_distribution_svg(results, arrays=arrays),
            f"Latency distribution on {name}",
            "Latency distribution per variant and runtime (raw samples). Left: box p25-p75 "
            "with median, whiskers p1-p99 (nearest rank), outliers not drawn. Right: the "
            "empirical CDF on the same axis, one line per variant in its box's colour." + star,
            "distribution",
        ),
        _figure(
            run_sequence_svg(results, arrays=arrays),
            f"Latency over the run on {name}",
            "Latency in measurement order, one panel per variant: the measured windows one "
            "after another (dashed lines between them, black step: each window's p50). A "
            "slow start is warm-up the warm-up runs did not absorb; a step between windows "
            "is drift; a rising tail or a flag in the panel title is throttling. Long runs "
            "are drawn as each bucket's min and max, so spikes stay visible." + star,
            "sequence",
        ),
        _figure(
            resources_svg(results),
            f"Memory and energy on {name}",
            "Memory and energy per variant; on a microcontroller static RAM and flash "
            "against the board's limits (|), red where a variant does not fit. Hatched "
            "bars and labels marked * are estimated.",
            "resources",
        ),
        _figure(
            layer_time_svg(results),
            f"Where the time goes on {name}",
            "Share of one inference per operator type, from the runner's per-layer "
            "profile. Marked *: estimated (an emulated board's instruction counts).",
            "layers",
        ),
    ]
    return [f for f in figures if f is not None]


def _layer_tables(results: list[JobResult]) -> list[dict[str, Any]]:
    """Per result with a per-layer profile: its slowest LAYER_ROWS_SHOWN layers."""
    with_layers = [r for r in results if r.layers]
    labels = variant_labels(with_layers)
    tables = []
    for label, r in zip(labels, with_layers, strict=True):

        def weight(i: int, r: JobResult = r) -> float:
            layer = r.layers[i]
            for value in (layer.time_s, layer.share, layer.instructions):
                if value is not None:
                    return float(value)
            return -math.inf

        order = sorted(range(len(r.layers)), key=lambda i: (-weight(i), i))
        shown, rest = order[:LAYER_ROWS_SHOWN], order[LAYER_ROWS_SHOWN:]
        rest_share = sum(r.layers[i].share or 0.0 for i in rest)
        estimated = r.emulated or "latency_s" in r.estimated
        has_instructions = any(layer.instructions is not None for layer in r.layers)
        tables.append(
            {
                "label": one_line(label),
                "estimated": estimated,
                "instructions": has_instructions,
                "rows": [
                    {
                        "index": i,
                        "name": one_line(r.layers[i].name),
                        "op": _text(r.layers[i].op),
                        "time": fmt_seconds(r.layers[i].time_s),
                        "share": "-"
                        if r.layers[i].share is None
                        else f"{r.layers[i].share * 100:.1f}%",
                        "count": _text(r.layers[i].count),
                        "instructions": fmt_count(r.layers[i].instructions),
                    }
                    for i in shown
                ],
                "more": (
                    f"{len(rest)} more layers"
                    + (f", {rest_share * 100:.1f}% of the time" if rest_share else "")
                    if rest
                    else None
                ),
            }
        )
    return tables


def _case_study(results: list[JobResult], baseline_variant: str | None) -> dict[str, Any]:
    rows = case_study_rows(results, baseline_variant)
    figure_keys = [k for k, _ in CASE_STUDY_COLUMNS if k != "technique"]
    out_rows = []
    for row in rows:
        cells = []
        for key in figure_keys:
            main, sep, rest = row[key].partition(" (")
            subs = [{"text": "(" + rest, "estimated": False}] if sep else []
            if key == "battery" and row["energy"] != "-":
                subs.append({"text": row["energy"], "estimated": "energy" in row["estimated"]})
            cells.append(
                {
                    "main": main,
                    "subs": subs,
                    "estimated": key in row["estimated"],
                    "class": "estimated" if key in row["estimated"] else None,
                }
            )
        message = row["message"] or ""
        kind = (
            "deploy"
            if message.startswith("not deployable")
            else "failed"
            if message.startswith("failed")
            else "pending"
        )
        out_rows.append({**row, "cells": cells, "message_class": kind})
    published = published_rows(results, baseline_variant)
    sources = list(dict.fromkeys(r["source"] for r in published or [] if r["source"]))
    return {
        "columns": CASE_STUDY_COLUMNS,
        "figure_keys": figure_keys,
        "rows": out_rows,
        "any_estimated": any(r["message"] is None and r["estimated"] for r in rows),
        "no_energy": all(r.energy_per_inference_j is None for r in results),
        "published": published,
        "sources": sources,
    }


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
        "case_study": _case_study(results, data.run.baseline_variant),
        "figures": _figures(results, name),
        "layer_tables": _layer_tables(results),
    }


def _matrices(data: RunReport) -> list[dict[str, Any]]:
    """Variant x device matrices (p50, energy, accuracy) where the run has 2+ devices."""
    found = [device_matrix(data, metric) for metric in MATRIX_METRICS]
    return [m for m in found if m is not None]


def _failures(data: RunReport) -> list[dict[str, Any]]:
    """Every failed job with its error and what the run's log says about it."""
    return [
        {
            "device": _text(r.device),
            "variant": _text(r.variant),
            "runtime": _text(runtime_label(r)),
            "kind": _text(r.error_kind) if r.error_kind else None,
            "attempts": r.attempts,
            # Whole, with its line breaks: a traceback or a stderr tail reads as written.
            "error": str(r.error or "unknown error"),
            "log": "\n".join(str(line) for line in r.log_excerpt),
        }
        for r in data.results
        if r.status == "failed"
    ]


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
        "case_study_note": CASE_STUDY_NOTE,
        "matrices": _matrices(data),
        "failures": _failures(data),
        "raw_data": RAW_DATA_FILES,
    }


def render_report(data: RunReport) -> str:
    """The report as one HTML document (same input gives the same text)."""
    return _ENV.get_template("report.html.j2").render(_context(data))


def _json_value(value: Any) -> Any:
    # NaN is not JSON: an unknown figure is null, as everywhere else.
    return None if isinstance(value, float) and math.isnan(value) else value


def write_raw_data(data: RunReport, out_dir: Path) -> list[Path]:
    """`jobs.json` and `jobs.csv` in out_dir: one record per job with every figure, as
    `edgebench export --format csv` writes them (the JSON adds the run's facts)."""
    records = job_records(data)
    json_path, csv_path = (out_dir / name for name, _ in RAW_DATA_FILES)
    doc = {
        "run": to_plain(data.run),
        "columns": list(JOB_COLUMNS),
        "jobs": [{k: _json_value(v) for k, v in rec.items()} for rec in records],
    }
    json_path.write_text(
        json.dumps(doc, indent=1, ensure_ascii=False, allow_nan=False) + "\n", encoding="utf-8"
    )
    with csv_path.open("w", encoding="utf-8", newline="") as f:
        write_csv(records, JOB_COLUMNS, f)
    return [json_path, csv_path]


def write_report(data: RunReport, out_dir: Path) -> Path:
    """Write `out_dir/index.html` (creating out_dir) with the raw data it links to
    (`jobs.json`, `jobs.csv`) beside it, and return the page's path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_raw_data(data, out_dir)
    path = out_dir / "index.html"
    path.write_text(render_report(data), encoding="utf-8")
    return path
