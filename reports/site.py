"""The index page of a published site (`edgebench publish`; pages are reports.html's)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from reports.html import _ENV
from reports.tables import one_line


def _text(value: Any) -> str:
    return "-" if value is None or value == "" else one_line(str(value))


def _verdict(entry: dict[str, Any]) -> tuple[str, str | None]:
    v = entry.get("verdicts")
    if not entry.get("previous") or v is None:
        return "first run of its suite", None
    n, k = v["regressions"], v["improvements"]
    text = f"{n} regression{'s' if n != 1 else ''}, {k} improvement{'s' if k != 1 else ''}"
    return text, "worse" if n else ("better" if k else None)


def index_rows(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for e in entries:
        verdict, cls = _verdict(e)
        rows.append(
            {
                "id": _text(e["id"]),
                # Run ids are ours (date-time-hex), quoted anyway: a link never carries markup.
                "href": f"runs/{quote(str(e['id']), safe='')}/index.html",
                "suite": _text(e.get("suite")),
                "created": _text(e.get("created")),
                "status": _text(e.get("status")),
                "jobs": e.get("jobs", 0),
                "done": e.get("done", 0),
                "failed": e.get("failed", 0),
                "devices": _text(", ".join(e.get("devices") or [])),
                "previous": _text(e["previous"]) if e.get("previous") else None,
                "verdict": verdict,
                "verdict_class": cls,
                "commit": _text(e.get("commit")),
                "edgebench": _text(e.get("edgebench")),
            }
        )
    return rows


def render_index(entries: list[dict[str, Any]], generated: str) -> str:
    """``entries``: newest run first."""
    rows = index_rows(entries)
    latest: dict[str, dict[str, Any]] = {}
    for row in rows:
        latest.setdefault(row["suite"], row)
    return _ENV.get_template("site_index.html.j2").render(
        runs=rows, suites=list(latest.values()), generated=_text(generated)
    )


def write_index(entries: list[dict[str, Any]], site: Path, generated: str) -> Path:
    path = Path(site) / "index.html"
    path.write_text(render_index(entries, generated), encoding="utf-8")
    return path
