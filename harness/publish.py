"""A static site of every run in the results database (`edgebench publish`).

Layout of SITE (relative links only, so the folder can be served or copied anywhere):

    index.html              every run, newest first, with its verdicts against the
                            previous run of the same suite; every series; filters
    runs/<run id>/index.html the run's report, with a comparison section against that
                            previous run
    trends/<series>.html    one series (suite x device x model x variant x setting): its
                            p50 in every run that finished it, and the steps found in it
    regressions.html        every step of every series, with the run that caused it
    manifest.json           what each page was rendered from; a page whose run (or whose
                            previous run) has not changed since is not rendered again

A run's page depends on the run, on its previous run of the same suite, and on the
edgebench version that renders it; the manifest records all three, and each run's p50
per job, so that the trend pages of a long history are made without reading the runs
that did not change again. Trend pages are cheap (no matplotlib: the SVG is written by
reports.site) and made every time; one whose text is unchanged is not rewritten.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import __version__
from harness.compare import compare_reports
from harness.results import report_data
from harness.store import Store, display_time, now
from harness.trends import DEFAULT_PENALTY, MIN_RUNS, MIN_SEGMENT, find_steps, penalty_problem
from runners.records import RunReport

if TYPE_CHECKING:  # reports.site pulls in matplotlib: imported when a site is written
    from reports.site import TrendSeries

# 2: entries carry the run's date and its p50 per job ("points"), for the trend pages.
MANIFEST_FORMAT = 2
# A series is the runs of one job of a suite: (suite, device, model, variant, setting).
SeriesKey = tuple[str, str, str, str, str]


def _stamp(run: dict[str, Any], previous: dict[str, Any] | None) -> dict[str, Any]:
    own = {k: run.get(k) for k in ("status", "finished_at", "jobs", "done", "failed")}
    return {
        "run": own,
        "previous": previous["id"] if previous else None,
        "previous_run": (
            {k: previous.get(k) for k in ("status", "finished_at", "jobs", "done", "failed")}
            if previous
            else None
        ),
        "edgebench": __version__,
    }


def _load_manifest(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        return {}  # another layout: render everything again
    return data.get("runs") or {}


def _points(data: RunReport) -> list[list[Any]]:
    """Each finished job's p50 (the figure its report shows), as the manifest keeps it:
    [device, model, variant, setting, p50 seconds, estimated]."""
    return [
        [r.device, r.model, r.variant, r.setting, r.latency_s.p50, "latency_s" in r.estimated]
        for r in data.results
        if r.status == "done" and r.latency_s is not None and _is_latency(r.latency_s.p50)
    ]


def _is_latency(value: Any) -> bool:
    # A p50 of zero, below or not finite is a damaged record, not a latency: trends leave
    # it out rather than fail the whole site on it.
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


def _date(iso: str | None) -> str:
    """YYYY-MM-DD in UTC, what the site's date filter compares."""
    return display_time(iso)[:10] if iso else ""


def trend_series(
    runs: list[dict[str, Any]], entries: dict[str, Any], penalty: float = DEFAULT_PENALTY
) -> list[TrendSeries]:
    """One ``reports.site.TrendSeries`` per job of a suite, over ``runs`` (newest first,
    as the store lists them), with its steps; ordered by suite, device, model, variant
    and setting."""
    from reports.site import TrendLevel, TrendPoint, TrendSeries, TrendStep

    points: dict[SeriesKey, list[TrendPoint]] = {}
    for run in reversed(runs):  # oldest first
        entry = entries[run["id"]]
        for device, model, variant, setting, p50, estimated in entry.get("points") or []:
            if not _is_latency(p50):
                continue
            key = (str(entry["suite"]), str(device), str(model), str(variant), str(setting))
            points.setdefault(key, []).append(
                TrendPoint(
                    run_id=run["id"],
                    created=entry["created"],
                    date=entry["date"],
                    commit=entry.get("commit"),
                    p50_s=float(p50),
                    estimated=bool(estimated),
                )
            )
    series = []
    for key in sorted(points):
        trend = find_steps([p.p50_s for p in points[key]], penalty)
        suite, device, model, variant, setting = key
        series.append(
            TrendSeries(
                suite=suite,
                device=device,
                model=model,
                variant=variant,
                setting=setting,
                points=tuple(points[key]),
                steps=tuple(TrendStep(s.index, s.before, s.after, s.percent) for s in trend.steps),
                levels=tuple(TrendLevel(g.start, g.end, g.median) for g in trend.segments),
                too_short=trend.too_short,
            )
        )
    return series


def publish_site(
    store: Store,
    site: Path,
    on_page: Callable[[str, bool], None] | None = None,
    penalty: float = DEFAULT_PENALTY,
) -> dict[str, Any]:
    """Render what changed, the trend pages and the index. ``on_page(run_id, rendered)``
    is called once per run (for a progress display); ``penalty`` is the change-point
    penalty (harness.trends). Returns counts and the index path.

    Raises:
        ValueError: if ``penalty`` is not a positive finite number.
    """
    from reports.html import write_report
    from reports.site import TrendMethod, write_index, write_trends

    problem = penalty_problem(penalty)
    if problem is not None:
        raise ValueError(problem)

    site = Path(site)
    (site / "runs").mkdir(parents=True, exist_ok=True)
    manifest_path = site / "manifest.json"
    manifest = _load_manifest(manifest_path)
    runs = store.list_runs()  # newest first
    previous_of: dict[str, dict[str, Any] | None] = {}
    last_by_suite: dict[str, dict[str, Any]] = {}
    for run in reversed(runs):  # oldest first: the previous run of a suite is known
        previous_of[run["id"]] = last_by_suite.get(run["suite_name"])
        last_by_suite[run["suite_name"]] = run

    rendered = 0
    entries: dict[str, Any] = {}
    for run in runs:
        previous = previous_of[run["id"]]
        stamp = _stamp(run, previous)
        page = site / "runs" / run["id"] / "index.html"
        old = manifest.get(run["id"])
        if old and old.get("stamp") == stamp and page.exists() and "points" in old:
            entries[run["id"]] = old
            if on_page:
                on_page(run["id"], False)
            continue
        # Without the raw samples: in a large history they are most of the reading time
        # and, as the two sample plots, most of a page's bytes. The site's run page has
        # every figure and table, the raw data files beside it, and links to nothing
        # slower; `edgebench report RUN` draws the sample plots. (Its comparison with
        # the previous run therefore judges p50s by CI overlap, not the U test.)
        data = report_data(store, run["id"], samples=False)
        verdicts = None
        if previous is not None:
            base = report_data(store, previous["id"], samples=False)
            cmp = compare_reports(base, data)
            data = data.replace(comparison=cmp)
            verdicts = {"regressions": cmp["regressions"], "improvements": cmp["improvements"]}
        write_report(data, page.parent)
        rendered += 1
        entries[run["id"]] = {
            "stamp": stamp,
            "suite": run["suite_name"],
            "created": display_time(run["created_at"]),
            "date": _date(run["created_at"]),
            "status": run["status"],
            "jobs": run["jobs"] or 0,
            "done": run["done"] or 0,
            "failed": run["failed"] or 0,
            "devices": [d.name for d in data.devices],
            "commit": data.run.commit,
            "edgebench": data.run.edgebench_version,
            "previous": previous["id"] if previous else None,
            "verdicts": verdicts,
            "points": _points(data),
        }
        if on_page:
            on_page(run["id"], True)

    generated = display_time(now())
    series = trend_series(runs, entries, penalty)
    method = TrendMethod(penalty=penalty, min_runs=MIN_RUNS, min_segment=MIN_SEGMENT)
    write_trends(site, series, method, generated)
    ordered = [{"id": run["id"], **entries[run["id"]]} for run in runs]
    index = write_index(ordered, site, generated=generated, series=series, penalty=penalty)
    # Compact: a long history's manifest holds a p50 per job of every run.
    manifest_path.write_text(
        json.dumps(
            {"format": MANIFEST_FORMAT, "runs": entries}, sort_keys=True, separators=(",", ":")
        ),
        encoding="utf-8",
    )
    steps = [step for s in series for step in s.steps]
    return {
        "rendered": rendered,
        "up_to_date": len(runs) - rendered,
        "index": index,
        "series": len(series),
        "steps": len(steps),
        "slower": sum(1 for step in steps if step.percent > 0),
    }
