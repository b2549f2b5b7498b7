"""Summary tables (plain text and rich) plus the value formatters the HTML report reuses."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from rich.table import Table
from rich.text import Text

ESTIMATED_NOTE = "* estimated (no sensor / emulation)"

# (row key, header) in display order. The HTML report appends EXTRA_COLUMNS.
COLUMNS: list[tuple[str, str]] = [
    ("variant", "Variant"),
    ("runtime", "Runtime"),
    ("size", "Size"),
    ("accuracy", "Accuracy"),
    ("p50", "p50"),
    ("p90", "p90"),
    ("p99", "p99"),
    ("peak_mem", "Peak mem"),
    ("n", "n"),
]
EXTRA_COLUMNS: list[tuple[str, str]] = [("init", "Init"), ("first_inference", "First inference")]
# Columns that stay readable when a job failed; the failure message replaces the rest.
LABEL_KEYS = ("variant", "runtime")

# Result field named in `estimated` -> the columns whose figures come from it.
_FIELD_COLUMNS: dict[str, tuple[str, ...]] = {
    "file_size_bytes": ("size",),
    "accuracy": ("accuracy",),
    "latency_s": ("p50", "p90", "p99"),
    "peak_rss_bytes": ("peak_mem",),
    "init_s": ("init",),
    "first_inference_s": ("first_inference",),
}

# Failure messages can be whole tracebacks; the text table keeps them on one short line.
_TEXT_MESSAGE_MAX = 100


def fmt_bytes(n: float | None) -> str:
    """Binary units with one decimal: 40421 -> "39.5 KiB"."""
    if n is None:
        return "-"
    if abs(n) < 1024:
        return f"{int(n)} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        # Check the rounded text so 1023.96 KiB becomes "1.0 MiB", not "1024.0 KiB".
        if abs(round(value, 1)) < 1024 or unit == "TiB":
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


def _three_sig(value: float) -> str:
    # Round to 3 significant digits first so 99.96 gives "100", not "100.0"; then print with
    # fixed decimals to keep trailing zeros ("1.20"), which the "g" format would drop.
    rounded = float(f"{value:.3g}")
    decimals = max(0, 2 - math.floor(math.log10(abs(rounded))))
    return f"{rounded:.{decimals}f}"


def fmt_seconds(s: float | None) -> str:
    """Three significant digits in the largest unit that keeps the number below 1000."""
    if s is None or (isinstance(s, float) and math.isnan(s)):
        return "-"
    if s == 0:
        return "0 s"
    for scale, unit in ((1e-9, "ns"), (1e-6, "µs"), (1e-3, "ms"), (1.0, "s")):
        text = _three_sig(s / scale)
        if abs(float(text)) < 1000 or unit == "s":
            return f"{text} {unit}"
    raise AssertionError("unreachable")


def fmt_pct(fraction: float | None) -> str:
    """0.955 -> "95.5%"."""
    return "-" if fraction is None else f"{fraction * 100:.1f}%"


def one_line(text: str) -> str:
    """Collapse whitespace and newlines so an error message cannot break a table row."""
    return " ".join(str(text).split())


def group_by_device(data: dict[str, Any]) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Pair each device with its results, in the order of data["devices"].

    Results naming a device that is missing from data["devices"] still get a group (with an
    empty device description) so nothing measured is silently dropped from a report.
    """
    devices = list(data.get("devices") or [])
    known = {d.get("name") for d in devices}
    results = list(data.get("results") or [])
    for r in results:
        if r.get("device") not in known:
            known.add(r.get("device"))
            devices.append({"name": r.get("device"), "facts": {}, "tags": {}})
    return [(d, [r for r in results if r.get("device") == d.get("name")]) for d in devices]


def runtime_label(result: dict[str, Any]) -> str:
    """The Runtime column: `setting` ("onnxruntime t=1"), else built from runtime/threads."""
    if result.get("setting"):
        return str(result["setting"])
    threads = result.get("threads")
    runtime = str(result.get("runtime") or "-")
    return runtime if threads is None else f"{runtime} t={threads}"


def _row(result: dict[str, Any]) -> dict[str, Any]:
    latency = result.get("latency_s") or {}
    status = result.get("status") or "pending"
    if status == "failed":
        message: str | None = "FAILED: " + one_line(result.get("error") or "unknown error")
    elif status != "done":
        message = status.upper()
    else:
        message = None
    estimated = [
        col for field in result.get("estimated") or [] for col in _FIELD_COLUMNS.get(field, ())
    ]
    return {
        "device": result.get("device"),
        "variant": str(result.get("variant") or "-"),
        "runtime": runtime_label(result),
        "status": status,
        "message": message,
        "size": fmt_bytes(result.get("file_size_bytes")),
        "accuracy": fmt_pct(result.get("accuracy")),
        "accuracy_n": result.get("accuracy_n"),
        "p50": fmt_seconds(latency.get("p50")),
        "p90": fmt_seconds(latency.get("p90")),
        "p99": fmt_seconds(latency.get("p99")),
        "peak_mem": fmt_bytes(result.get("peak_rss_bytes")),
        "n": str(latency["n"]) if latency.get("n") is not None else "-",
        "init": fmt_seconds(result.get("init_s")),
        "first_inference": fmt_seconds(result.get("first_inference_s")),
        "estimated": estimated,
    }


def summary_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    """One dict of display strings per result, grouped by device (device order of the run).

    Keys: device, variant, runtime, status, message ("FAILED: ..." / "PENDING" or None),
    the column keys of COLUMNS and EXTRA_COLUMNS (unmarked strings), accuracy_n, and
    estimated (column keys whose figure is estimated; renderers add the marker).
    """
    return [_row(r) for _, results in group_by_device(data) for r in results]


def cell(row: dict[str, Any], key: str) -> str:
    """A cell's text with the estimated marker applied."""
    return row[key] + ("*" if key in row["estimated"] else "")


def percentile_note(data: dict[str, Any]) -> str:
    reps = (data.get("run") or {}).get("repetitions")
    return f"percentiles: nearest-rank; latency = median across {reps or '?'} repetitions"


def device_title(device: dict[str, Any]) -> str:
    facts = device.get("facts") or {}
    name = str(device.get("name") or "-")
    transport = device.get("transport")
    parts = [
        f"{facts['os']} {facts.get('arch', '')}".strip() if facts.get("os") else facts.get("arch"),
        facts.get("cpu_model"),
        f"{facts['cpu_cores']} cores" if facts.get("cpu_cores") is not None else None,
    ]
    described = ", ".join(one_line(str(p)) for p in parts if p)
    head = f"Device {name} ({transport})" if transport else f"Device {name}"
    return f"{head}: {described}" if described else head


def _text_table(rows: list[dict[str, Any]]) -> list[str]:
    ok = [r for r in rows if r["message"] is None]
    marked = {key for r in ok for key in r["estimated"]}

    def text_cell(row: dict[str, Any], key: str) -> str:
        # Unmarked cells in a column with markers get a blank in the marker's place, so the
        # right-aligned digits still line up.
        return cell(row, key) if key in row["estimated"] or key not in marked else row[key] + " "

    widths = {
        key: max(
            [len(header)] + [len(text_cell(r, key)) for r in (rows if key in LABEL_KEYS else ok)]
        )
        for key, header in COLUMNS
    }

    def line(cells: Iterable[tuple[str, str]]) -> str:
        # Labels left-aligned, figures right-aligned so digits line up.
        parts = [
            text.ljust(widths[k]) if k in LABEL_KEYS else text.rjust(widths[k]) for k, text in cells
        ]
        return "  ".join(parts).rstrip()

    out = [line(COLUMNS), line((k, "-" * widths[k]) for k, _ in COLUMNS)]
    for r in rows:
        if r["message"] is None:
            out.append(line((k, text_cell(r, k)) for k, _ in COLUMNS))
        else:
            message = r["message"]
            if len(message) > _TEXT_MESSAGE_MAX:
                message = message[: _TEXT_MESSAGE_MAX - 3] + "..."
            labels = "  ".join(r[k].ljust(widths[k]) for k in LABEL_KEYS)
            out.append(f"{labels}  {message}")
    return out


def format_summary(data: dict[str, Any]) -> str:
    """Fixed-width plain-text summary: a header line, then one table per device."""
    run = data.get("run") or {}
    out = [
        f"run {run.get('id', '-')}  suite {run.get('suite', '-')}  status {run.get('status', '-')}"
    ]
    rows = summary_rows(data)
    for device, _ in group_by_device(data):
        device_rows = [r for r in rows if r["device"] == device.get("name")]
        out += ["", device_title(device)]
        if not device_rows:
            out.append("(no results)")
            continue
        out += _text_table(device_rows)
        if any(r["estimated"] for r in device_rows):
            out.append(ESTIMATED_NOTE)
        out.append(percentile_note(data))
    return "\n".join(out) + "\n"


def rich_summary(data: dict[str, Any]) -> list[Table]:
    """One rich Table per device for the CLI.

    Every cell is a Text object, never a str: rich would parse "[...]" in a variant name or
    error message as console markup (and raise on e.g. "[/x]").
    """
    rows = summary_rows(data)
    tables = []
    for device, _ in group_by_device(data):
        device_rows = [r for r in rows if r["device"] == device.get("name")]
        notes = [percentile_note(data)]
        if any(r["estimated"] for r in device_rows):
            notes.insert(0, ESTIMATED_NOTE)
        table = Table(title=Text(device_title(device)), caption=Text("\n".join(notes)))
        for key, header in COLUMNS:
            table.add_column(header, justify="left" if key in LABEL_KEYS else "right")
        for r in device_rows:
            labels = [Text(r[k]) for k in LABEL_KEYS]
            if r["message"] is None:
                figures = [Text(cell(r, k)) for k, _ in COLUMNS[len(LABEL_KEYS) :]]
            else:
                style = "red" if r["status"] == "failed" else "yellow"
                figures = [Text(r["message"], style=style)]
                figures += [Text("")] * (len(COLUMNS) - len(LABEL_KEYS) - 1)
            table.add_row(*labels, *figures)
        tables.append(table)
    return tables
