"""Progressive compression to a target, as a run (``progressive:`` in a suite).

The stages (``suites/progressive.py``) are built and measured one at a time, each as
ordinary jobs of the same run, so the report shows the whole path; the run stops at
the first stage whose figures meet the target on every device. A target never met is
said constraint by constraint, with by how much, and `edgebench run` exits 1.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from harness import scheduler
from harness.artifacts import ArtifactCache, Variant, build_variants
from harness.results import report_data
from harness.store import Store
from harness.workspace import Workspace
from suites.progressive import StageFigures, gaps, stages
from suites.schema import Suite


def stage_figures(store: Store, run_id: str, stage: str) -> list[StageFigures]:
    """One stage's figures per device, from what the run stored."""
    return _figures_of(report_data(store, run_id, samples=False).results, stage)


def _figures_of(results: Sequence[Any], stage: str) -> list[StageFigures]:
    out = []
    for r in results:
        if r.variant != stage:
            continue
        done = r.status == "done" and not r.not_deployable
        ram = r.static_ram_bytes if r.static_ram_bytes is not None else r.peak_rss_bytes
        out.append(
            StageFigures(
                device=r.device,
                size_bytes=r.file_size_bytes,
                latency_s=r.latency_s.p50 if done and r.latency_s else None,
                peak_ram_bytes=ram if done else None,
                accuracy=r.accuracy if done else None,
            )
        )
    return out


def outcome(store: Store, run_id: str, suite: Suite) -> tuple[str | None, list[str]]:
    """(the first stage that met the target, None if none did; the last measured
    stage's misses)."""
    assert suite.progressive is not None
    target = suite.progressive.target
    last: list[str] = ["no stage was measured"]
    results = report_data(store, run_id, samples=False).results  # read once
    for stage in stages(suite):
        figures = _figures_of(results, stage.name)
        if not figures:
            break
        last = gaps(target, figures)
        if not last:
            return stage.name, []
    return None, last


def run_progressive(
    suite: Suite,
    suite_path: Path,
    devices: Sequence[dict[str, Any]],
    ws: Workspace,
    store: Store,
    console: Console,
    on_progress: Callable[[str, bool], None] | None = None,
) -> str:
    """Build, measure and judge the stages in order; return the run id."""
    assert suite.progressive is not None
    target = suite.progressive.target
    cache = ArtifactCache(ws, store)
    run_id: str | None = None
    variants: dict[tuple[str, str], Variant] = {}
    for stage in stages(suite):
        built = build_variants(
            suite, suite_path.parent, cache, on_progress=on_progress, only={stage.name}
        )
        variants |= {(v.model, v.name): v for v in built}
        if run_id is None:
            run_id = scheduler.new_run(ws, store, suite, suite_path.resolve(), built, devices)
        else:
            store.add_jobs(run_id, scheduler.plan_jobs(suite, built, devices))
            store.set_run_status(run_id, "running")
        ctx = scheduler.RunContext(
            ws=ws, store=store, suite=suite, run_id=run_id, variants=variants
        )
        scheduler.execute(ctx, devices, console)
        missing = gaps(target, stage_figures(store, run_id, stage.name))
        if not missing:
            store.log_event(run_id, f"progressive: target met at {stage.name}")
            console.print(f"progressive: target met at {stage.name}", highlight=False)
            return run_id
        message = f"progressive: {stage.name} misses the target: " + "; ".join(missing)
        store.log_event(run_id, message)
        console.print(message, highlight=False)
    assert run_id is not None
    return run_id


def path_lines(store: Store, run_id: str, suite: Suite) -> list[str]:
    """The path taken, one line per stage and device: size, accuracy, latency."""
    lines = []
    results = report_data(store, run_id, samples=False).results
    for stage in stages(suite):
        for f in _figures_of(results, stage.name):
            size = f"{f.size_bytes / 1024:.1f} KiB" if f.size_bytes is not None else "-"
            acc = f"{f.accuracy:.2%}" if f.accuracy is not None else "-"
            lat = f"{f.latency_s * 1e3:.3f} ms" if f.latency_s is not None else "-"
            lines.append(f"  {stage.name:<28} {f.device:<12} {size:>11} {acc:>8} {lat:>11}")
    return lines
