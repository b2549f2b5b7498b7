"""The pages of a published site (`edgebench publish`) other than the run reports
(those are reports.html's): the index, one trend page per series and the regressions page.

Everything here renders plain records (``TrendSeries`` and the index entries of
harness.publish); nothing is computed from the store. Pages load nothing from elsewhere:
plots are inline SVG written here, the index's filters are one inline script allowed by
its hash in the page's Content-Security-Policy, so the site works from ``file://`` and
from any static host.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from markupsafe import Markup

from reports.html import _ENV
from reports.tables import ESTIMATED_NOTE, fmt_seconds, one_line

TRENDS_DIR = "trends"
REGRESSIONS_PAGE = "regressions.html"
# Above this many runs a trend plot draws the line only: a marker (with its tooltip) per
# run would make a long history's page heavy and the markers would overlap anyway.
_MARKER_LIMIT = 300


@dataclass(frozen=True)
class TrendPoint:
    """One run of a series: its p50 latency (seconds) and where it came from."""

    run_id: str
    created: str  # as people read it: "2026-11-29 21:30:00 UTC"
    date: str  # YYYY-MM-DD (UTC), what the date filter compares
    commit: str | None
    p50_s: float
    estimated: bool = False


@dataclass(frozen=True)
class TrendStep:
    """The series stepped at ``points[index]`` (the first run at the new level)."""

    index: int
    before_s: float  # median p50 of the level before
    after_s: float  # median p50 of the level from the step on
    percent: float  # + is slower


@dataclass(frozen=True)
class TrendLevel:
    start: int  # points[start:end] are at this level
    end: int
    median_s: float


@dataclass(frozen=True)
class TrendMethod:
    """How the steps were found, as the pages state it."""

    penalty: float
    min_runs: int  # shortest series searched
    min_segment: int  # fewest runs a level must hold


@dataclass(frozen=True)
class TrendSeries:
    """One job of a suite (device x model x variant x setting) over the runs that finished
    it, oldest first, with the steps found in it (``too_short``: not searched)."""

    suite: str
    device: str
    model: str
    variant: str
    setting: str
    points: tuple[TrendPoint, ...]
    steps: tuple[TrendStep, ...] = ()
    levels: tuple[TrendLevel, ...] = ()
    too_short: bool = False

    @property
    def estimated(self) -> bool:
        return any(p.estimated for p in self.points)

    @property
    def page(self) -> str:
        """Path of its trend page, relative to the site root."""
        return f"{TRENDS_DIR}/{series_file_name(self)}"


def series_file_name(series: TrendSeries) -> str:
    """A file name that is safe on every file system and web server, readable, and unique
    per series (names from the store may hold anything, so a hash of all of them decides)."""
    parts = (series.suite, series.device, series.model, series.variant, series.setting)
    digest = hashlib.sha256("\x00".join(parts).encode("utf-8")).hexdigest()[:12]
    readable = re.sub(r"[^A-Za-z0-9._-]+", "-", "_".join(parts[1:])).strip("-.")[:80]
    return f"{readable or 'series'}-{digest}.html"


def _text(value: Any) -> str:
    return "-" if value is None or value == "" else one_line(str(value))


def _percent(value: float) -> str:
    return f"{value:+.1f}%"


def _link(path: str) -> str:
    # Every path segment quoted: a link never carries markup or a stray "?" or "#".
    return "/".join(quote(part, safe="") for part in path.split("/"))


def _run_href(run_id: str, up: str = "") -> str:
    return f"{up}{_link(f'runs/{run_id}/index.html')}"


# --------------------------------------------------------------------------- script
def _filter_script() -> tuple[Markup, str]:
    """The filters' inline script and its CSP source ('sha256-...'), so that the page
    allows exactly this script and nothing else (no 'unsafe-inline')."""
    text = _ENV.get_template("site_filter.js.j2").render()
    digest = base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")
    # The script has no template variables: nothing from the store is in it.
    return Markup(text), f"'sha256-{digest}'"


def _filters(suites: Sequence[str], devices: Sequence[str]) -> dict[str, Any]:
    script, source = _filter_script()
    return {
        "suites": sorted(set(suites)),
        "devices": sorted(set(devices)),
        "script": script,
        "csp_script": source,
    }


def _filter_attrs(suite: str, devices: Sequence[str], first: str, last: str) -> dict[str, str]:
    # JSON in an attribute, escaped by autoescape like any other text, read back by the
    # script with JSON.parse: a device name is data, never markup or code.
    return {
        "suite": suite,
        "devices": json.dumps(list(devices)),
        "first": first,
        "last": last,
    }


# --------------------------------------------------------------------------- index
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
        date = str(e.get("date") or "")
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
                "filter": _filter_attrs(
                    _text(e.get("suite")), [_text(d) for d in e.get("devices") or []], date, date
                ),
            }
        )
    return rows


def _series_rows(series: Sequence[TrendSeries]) -> list[dict[str, Any]]:
    rows = []
    for s in series:
        last = s.points[-1]
        latest_step = s.steps[-1] if s.steps else None
        rows.append(
            {
                "href": _link(s.page),
                "suite": _text(s.suite),
                "device": _text(s.device),
                "model": _text(s.model),
                "variant": _text(s.variant),
                "setting": _text(s.setting),
                "runs": len(s.points),
                "latest": fmt_seconds(last.p50_s) + ("*" if last.estimated else ""),
                "steps": "too few runs" if s.too_short else str(len(s.steps)),
                "latest_step": _percent(latest_step.percent) if latest_step else None,
                "latest_step_class": (
                    _change_class(latest_step.percent) if latest_step is not None else None
                ),
                "filter": _filter_attrs(
                    _text(s.suite), [_text(s.device)], s.points[0].date, last.date
                ),
            }
        )
    return rows


def _change_class(percent: float) -> str | None:
    return "worse" if percent > 0 else ("better" if percent < 0 else None)


def render_index(
    entries: list[dict[str, Any]],
    generated: str,
    series: Sequence[TrendSeries] = (),
    penalty: float | None = None,
) -> str:
    """``entries``: newest run first; ``series``: the trend pages, in index order."""
    rows = index_rows(entries)
    latest: dict[str, dict[str, Any]] = {}
    for row in rows:
        latest.setdefault(row["suite"], row)
    series_rows = _series_rows(series)
    steps = [step for s in series for step in s.steps]
    devices = [d for e in entries for d in e.get("devices") or []]
    return _ENV.get_template("site_index.html.j2").render(
        runs=rows,
        suites=list(latest.values()),
        series=series_rows,
        steps=len(steps),
        slower=sum(1 for step in steps if step.percent > 0),
        penalty=_text(f"{penalty:g}") if penalty is not None else None,
        regressions_href=REGRESSIONS_PAGE,
        generated=_text(generated),
        estimated_note=ESTIMATED_NOTE if any(s.estimated for s in series) else None,
        filters=_filters(
            [r["suite"] for r in rows] + [r["suite"] for r in series_rows],
            [_text(d) for d in devices] + [r["device"] for r in series_rows],
        ),
    )


# --------------------------------------------------------------------------- trend plot
def _nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2 or 5 times a power of ten apart) covering low..high."""
    span = high - low
    raw = span / max(count - 1, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(low / step) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9:
        ticks.append(value)
        value += step
    return ticks


def _scale_unit(values: Sequence[float]) -> tuple[str, float]:
    """One unit for the whole axis, so that typical values read as 1..1000."""
    typical = sorted(values)[len(values) // 2]
    return next(((u, f) for u, f in (("µs", 1e6), ("ms", 1e3)) if typical * f < 1000), ("s", 1.0))


def _tick_text(value: float, step: float) -> str:
    # As many decimals as the tick step has, the same on every tick ("1.0", "1.1", "1.2").
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    return f"{value:.{decimals}f}"


def trend_plot(series: TrendSeries) -> dict[str, Any]:
    """Geometry of the trend plot (the template draws it as inline SVG): p50 per run as
    a line (and a marker per run for histories up to _MARKER_LIMIT runs), each level's
    median as a flat line, each step as a dashed vertical line labelled with its size."""
    width, height = 960, 300
    left, right, top, bottom = 72, 20, 28, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [p.p50_s for p in series.points]
    unit, factor = _scale_unit(values)
    low, high = min(values) * factor, max(values) * factor
    pad = (high - low) * 0.08 or abs(high) * 0.05 or 1.0
    low, high = low - pad, high + pad
    ticks = _nice_ticks(low, high)
    n = len(values)

    def x(i: float) -> float:
        return left + (plot_w / 2 if n == 1 else plot_w * i / (n - 1))

    def y(seconds: float) -> float:
        return top + plot_h * (1 - (seconds * factor - low) / (high - low))

    xy = [(x(i), y(v)) for i, v in enumerate(values)]
    markers = []
    if n <= _MARKER_LIMIT:
        markers = [
            {
                "x": f"{px:.1f}",
                "y": f"{py:.1f}",
                "title": f"{p.run_id} ({p.created}): {fmt_seconds(p.p50_s)}"
                + (" estimated" if p.estimated else ""),
            }
            for (px, py), p in zip(xy, series.points, strict=True)
        ]
    steps = []
    for step in series.steps:
        sx = (x(step.index - 1) + x(step.index)) / 2
        steps.append(
            {
                "x": f"{sx:.1f}",
                "label": _percent(step.percent),
                "class": "up" if step.percent > 0 else "down",
                "anchor": "end" if sx > left + plot_w * 0.85 else "start",
                "label_x": f"{sx - 4 if sx > left + plot_w * 0.85 else sx + 4:.1f}",
            }
        )
    levels = [
        {
            "x1": f"{x(level.start) if level.end - level.start > 1 else x(level.start) - 3:.1f}",
            "x2": f"{x(level.end - 1) if level.end - level.start > 1 else x(level.start) + 3:.1f}",
            "y": f"{y(level.median_s):.1f}",
        }
        for level in series.levels
        if not series.too_short
    ]
    return {
        "width": width,
        "height": height,
        "left": left,
        "right": width - right,
        "top": top,
        "bottom": top + plot_h,
        "line": " ".join(f"{px:.1f},{py:.1f}" for px, py in xy),
        "markers": markers,
        "steps": steps,
        "levels": levels,
        "ticks": [
            {
                "y": f"{top + plot_h * (1 - (t - low) / (high - low)):.1f}",
                "text": _tick_text(t, ticks[1] - ticks[0] if len(ticks) > 1 else abs(t) or 1.0),
            }
            for t in ticks
        ],
        "unit": unit,
        "first": series.points[0].date,
        "last": series.points[-1].date,
        "label": (
            f"p50 latency of {_text(series.model)} {_text(series.variant)} "
            f"({_text(series.setting)}) on {_text(series.device)} over {n} "
            f"run{'s' if n != 1 else ''}"
        ),
    }


# --------------------------------------------------------------------------- pages
def _step_row(series: TrendSeries, step: TrendStep, up: str) -> dict[str, Any]:
    run = series.points[step.index]
    before = series.points[step.index - 1]
    return {
        "run": _text(run.run_id),
        "run_href": _run_href(run.run_id, up),
        "created": _text(run.created),
        "date": run.date,
        "commit": _text(run.commit),
        "previous": _text(before.run_id),
        "previous_href": _run_href(before.run_id, up),
        "before": fmt_seconds(step.before_s),
        "after": fmt_seconds(step.after_s),
        "change": _percent(step.percent),
        "class": _change_class(step.percent),
        "direction": "slower" if step.percent > 0 else "faster",
    }


def _identity(series: TrendSeries) -> list[tuple[str, str]]:
    return [
        ("Suite", _text(series.suite)),
        ("Device", _text(series.device)),
        ("Model", _text(series.model)),
        ("Variant", _text(series.variant)),
        ("Setting", _text(series.setting)),
    ]


def render_trend(series: TrendSeries, method: TrendMethod) -> str:
    """The trend page of one series (it lives in TRENDS_DIR: links go one folder up)."""
    step_at = {step.index: step for step in series.steps}
    points = [
        {
            "number": i + 1,
            "run": _text(p.run_id),
            "run_href": _run_href(p.run_id, "../"),
            "created": _text(p.created),
            "commit": _text(p.commit),
            "p50": fmt_seconds(p.p50_s) + ("*" if p.estimated else ""),
            "step": _percent(step_at[i].percent) if i in step_at else None,
            "step_class": _change_class(step_at[i].percent) if i in step_at else None,
        }
        for i, p in enumerate(series.points)
    ]
    return _ENV.get_template("site_trend.html.j2").render(
        title=f"Trend: {_text(series.model)} {_text(series.variant)} on {_text(series.device)}",
        identity=_identity(series),
        runs=len(series.points),
        too_short=series.too_short,
        min_runs=method.min_runs,
        min_segment=method.min_segment,
        penalty=f"{method.penalty:g}",
        plot=trend_plot(series),
        steps=[_step_row(series, step, "../") for step in series.steps],
        points=points,
        estimated_note=ESTIMATED_NOTE if series.estimated else None,
        index_href="../index.html",
        regressions_href=f"../{REGRESSIONS_PAGE}",
    )


def render_regressions(series: Sequence[TrendSeries], method: TrendMethod, generated: str) -> str:
    """Every step of every series, newest run first."""
    rows = []
    for s in series:
        for step in s.steps:
            row = _step_row(s, step, "")
            row.update(
                {
                    "suite": _text(s.suite),
                    "device": _text(s.device),
                    "model": _text(s.model),
                    "variant": _text(s.variant),
                    "setting": _text(s.setting),
                    "estimated": s.estimated,
                    "trend_href": _link(s.page),
                    "sort": (s.points[step.index].created, s.points[step.index].run_id),
                    "filter": _filter_attrs(
                        _text(s.suite), [_text(s.device)], row["date"], row["date"]
                    ),
                }
            )
            rows.append(row)
    rows.sort(key=lambda r: r["sort"], reverse=True)
    return _ENV.get_template("site_regressions.html.j2").render(
        rows=rows,
        slower=sum(1 for r in rows if r["direction"] == "slower"),
        faster=sum(1 for r in rows if r["direction"] == "faster"),
        series=len(series),
        penalty=f"{method.penalty:g}",
        min_segment=method.min_segment,
        generated=_text(generated),
        estimated_note=ESTIMATED_NOTE if any(r["estimated"] for r in rows) else None,
        filters=_filters([r["suite"] for r in rows], [r["device"] for r in rows]),
    )


def _write_if_changed(path: Path, text: str) -> bool:
    """Write ``text`` unless the file already holds it (unchanged pages keep their mtime,
    so a sync to a web server copies only what changed)."""
    data = text.encode("utf-8")
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    path.write_bytes(data)
    return True


def write_index(
    entries: list[dict[str, Any]],
    site: Path,
    generated: str,
    series: Sequence[TrendSeries] = (),
    penalty: float | None = None,
) -> Path:
    path = Path(site) / "index.html"
    path.write_text(render_index(entries, generated, series, penalty), encoding="utf-8")
    return path


def write_trends(
    site: Path, series: Sequence[TrendSeries], method: TrendMethod, generated: str
) -> int:
    """Write every trend page and the regressions page; remove the trend pages of series
    that no longer exist. Returns how many trend pages were (re)written."""
    folder = Path(site) / TRENDS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    written = 0
    wanted = set()
    for s in series:
        name = series_file_name(s)
        wanted.add(name)
        written += _write_if_changed(folder / name, render_trend(s, method))
    for stale in folder.glob("*.html"):
        if stale.name not in wanted:
            stale.unlink()
    (Path(site) / REGRESSIONS_PAGE).write_text(
        render_regressions(series, method, generated), encoding="utf-8"
    )
    return written
