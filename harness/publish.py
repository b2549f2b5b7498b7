"""A static site of every run in the results database (`edgebench publish`).

Layout of SITE (relative links only, so the folder can be served or copied anywhere):

    index.html              every run, newest first, with its verdicts against the
                            previous run of the same suite
    runs/<run id>/index.html the run's report, with a comparison section against that
                            previous run
    manifest.json           what each page was rendered from; a page whose run (or whose
                            previous run) has not changed since is not rendered again

A run's page depends on the run, on its previous run of the same suite, and on the
edgebench version that renders it; the manifest records all three.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import __version__
from harness.compare import compare_reports
from harness.results import report_data
from harness.store import Store, display_time, now

MANIFEST_FORMAT = 1


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


def publish_site(
    store: Store, site: Path, on_page: Callable[[str, bool], None] | None = None
) -> dict[str, Any]:
    """Render what changed and rewrite the index. ``on_page(run_id, rendered)`` is called
    once per run (for a progress display). Returns counts and the index path."""
    from reports.html import write_report
    from reports.site import write_index

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
        if old and old.get("stamp") == stamp and page.exists():
            entries[run["id"]] = old
            if on_page:
                on_page(run["id"], False)
            continue
        data = report_data(store, run["id"])
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
            "status": run["status"],
            "jobs": run["jobs"] or 0,
            "done": run["done"] or 0,
            "failed": run["failed"] or 0,
            "devices": [d.name for d in data.devices],
            "commit": data.run.commit,
            "edgebench": data.run.edgebench_version,
            "previous": previous["id"] if previous else None,
            "verdicts": verdicts,
        }
        if on_page:
            on_page(run["id"], True)

    ordered = [{"id": run["id"], **entries[run["id"]]} for run in runs]
    index = write_index(ordered, site, generated=display_time(now()))
    manifest_path.write_text(
        json.dumps({"format": MANIFEST_FORMAT, "runs": entries}, indent=1, sort_keys=True),
        encoding="utf-8",
    )
    return {"rendered": rendered, "up_to_date": len(runs) - rendered, "index": index}
