"""Self-contained HTML report: one file, inline CSS, plots as base64 data URIs, no scripts."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from reports.plots import latency_distribution_svg
from reports.tables import (
    COLUMNS,
    ESTIMATED_NOTE,
    EXTRA_COLUMNS,
    LABEL_KEYS,
    fmt_bytes,
    group_by_device,
    one_line,
    percentile_note,
    summary_rows,
)

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


def _text(value: Any) -> str:
    return "-" if value is None or value == "" else one_line(str(value))


def _device_facts(device: dict[str, Any]) -> list[tuple[str, str]]:
    facts = device.get("facts") or {}
    # os_release ("Debian GNU/Linux 12") is the most telling; os + kernel go in brackets.
    kernel = " ".join(str(facts[k]) for k in ("os", "kernel") if facts.get(k))
    os_name = facts.get("os_release") or kernel or None
    if facts.get("os_release") and kernel:
        os_name = f"{os_name} ({kernel})"
    runtimes = facts.get("runtimes") or {}
    transport = device.get("transport")
    if transport and device.get("address"):
        transport = f"{transport} {device['address']}"
    tags = device.get("tags") or {}
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


def _context(data: dict[str, Any]) -> dict[str, Any]:
    run = data.get("run") or {}
    rows = summary_rows(data)
    sections = []
    for device, results in group_by_device(data):
        device_rows = [r for r in rows if r["device"] == device.get("name")]
        sections.append(
            {
                "name": _text(device.get("name")),
                "facts": _device_facts(device),
                "rows": device_rows,
                "any_estimated": any(r["estimated"] for r in device_rows),
                "latency_estimated": any("p50" in r["estimated"] for r in device_rows),
                "plot": _svg_data_uri(latency_distribution_svg(results)),
            }
        )
    columns = COLUMNS + EXTRA_COLUMNS
    return {
        "run": [
            ("Run", _text(run.get("id"))),
            ("Suite", _text(run.get("suite"))),
            ("Status", _text(run.get("status"))),
            ("Created", _text(run.get("created_at"))),
            ("edgebench", _text(run.get("edgebench_version"))),
            ("Commit", _text(run.get("commit"))),
        ],
        "title": f"edgebench report {_text(run.get('id'))}",
        "sections": sections,
        "columns": columns,
        "figure_keys": [k for k, _ in columns if k not in LABEL_KEYS],
        "label_keys": LABEL_KEYS,
        "estimated_note": ESTIMATED_NOTE,
        "percentile_note": percentile_note(data),
    }


def render_report(data: dict[str, Any]) -> str:
    """The report as one HTML document (same input gives the same text)."""
    return _ENV.get_template("report.html.j2").render(_context(data))


def write_report(data: dict[str, Any], out_dir: Path) -> Path:
    """Write `out_dir/index.html` (creating out_dir) and return its path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "index.html"
    path.write_text(render_report(data), encoding="utf-8")
    return path
