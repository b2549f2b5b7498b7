"""`edgebench publish`: a static site of every run, each judged against the previous run of
its suite; unchanged pages are not rendered again; a trend page per series with the steps
found in it and a page of every step, from a synthetic history made through the store's
public API; the index renders in headless Chromium (the pages' behaviour in a browser is
tests/test_browser.py's)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

from harness import figures
from harness import store as store_module
from harness.scheduler import setting_label
from harness.store import Store
from harness.trends import DEFAULT_PENALTY, MIN_RUNS
from reports.site import render_index
from runners.records import Accuracy, JobMeasurement, Memory, Provenance
from tests.browser import dump_dom, require_chromium
from tests.conftest import Runner, write_suite

EVIL = "<img src=x onerror=alert(1)>"


# --------------------------------------------------------------------------- history
@dataclass(frozen=True)
class SyntheticJob:
    """One job of a synthetic run, measured at ``p50_s`` (its raw samples scatter 0.3%
    around it, so edgebench's own statistics give back about that p50)."""

    device: str
    model: str
    variant: str
    p50_s: float
    threads: int = 1
    accuracy: float = 0.95
    size_bytes: int = 50_000


class SyntheticHistory:
    """Runs written through the store's public API as the scheduler writes them (planned
    jobs, then per job the typed measurement, edgebench's statistics of its raw windows
    and the figures derived from them), one a day from ``start``.

    The store stamps runs with the clock; a history needs dates of its own (the site's
    date filter) and ids that never collide (60 runs in a second would, now and then),
    so the store's clock is swapped for the duration of each write."""

    def __init__(self, store: Store, start: datetime | None = None, seed: int = 0) -> None:
        self.store = store
        self.day = start or datetime(2026, 10, 1, 9, 0, tzinfo=UTC)
        self.rng = np.random.default_rng(seed)
        self.count = 0

    @contextmanager
    def _clock(self) -> Iterator[None]:
        when = self.day + timedelta(minutes=self.count)
        stamp = when.isoformat(timespec="microseconds")
        run_id = when.strftime("%Y%m%d-%H%M%S-") + f"{self.count:04x}"
        with (
            mock.patch.object(store_module, "now", lambda: stamp),
            mock.patch.object(store_module, "new_run_id", lambda: run_id),
        ):
            yield

    def run(self, suite: str, jobs: Sequence[SyntheticJob], commit: str | None = None) -> str:
        store = self.store
        for device in {j.device for j in jobs}:
            if store.get_device(device) is None:
                store.add_device({"name": device, "transport": "local"})
        planned = []
        for j in jobs:
            setting = {"runtime": "onnxruntime", "threads": j.threads}
            sha = hashlib.sha256(f"{j.model}/{j.variant}".encode()).hexdigest()
            store.record_artifact(
                sha, j.model, "onnx", j.size_bytes, {"recipe": ["export_onnx"], "techniques": []}
            )
            planned.append(
                {
                    "key": f"{j.device}|{j.model}|{j.variant}|{setting_label(setting)}",
                    "device": j.device,
                    "model": j.model,
                    "variant": j.variant,
                    "runtime": "onnxruntime",
                    "setting": setting,
                    "artifact_sha256": sha,
                }
            )
        with self._clock():
            run_id = store.create_run(
                suite_name=suite,
                suite_path=f"/suites/{suite}.yaml",
                suite={"name": suite, "variants": [{"name": jobs[0].variant}]},
                version="0.test",
                commit=commit,
                host="synthetic",
                planned_jobs=planned,
            )
            for job, spec in zip(store.jobs_for_run(run_id), jobs, strict=True):
                windows = [
                    (spec.p50_s * (1 + 0.003 * self.rng.standard_normal(15))).tolist()
                    for _ in range(3)
                ]
                measurement = JobMeasurement(
                    runner="synthetic",
                    provenance=Provenance(runner="synthetic", commit=commit),
                    windows=windows,
                    memory=Memory(peak_rss_bytes=80e6),
                    accuracy=Accuracy(top1=spec.accuracy, count=100),
                )
                summary = figures.summarize(measurement)
                store.mark_job_started(job["id"])
                store.finish_job(
                    job["id"],
                    measurement=measurement,
                    summary=summary.to_dict() if summary else None,
                    job_metrics=figures.job_metrics(measurement, summary, spec.size_bytes),
                )
            store.set_run_status(run_id, "finished")
        self.count += 1
        self.day += timedelta(days=1)
        return run_id


def levels(n: int, steps: dict[int, float], noise: float, rng: np.random.Generator) -> list[float]:
    """``n`` per-run levels around 1 ms: ``steps`` maps a run index to the factor the level
    is multiplied by from that run on; each run scatters by ``noise`` (relative)."""
    level, out = 1e-3, []
    for i in range(n):
        level *= steps.get(i, 1.0)
        out.append(level * (1 + noise * rng.standard_normal()))
    return out


def seconds(text: str) -> float:
    """A duration as the site prints it ("995 µs", "1.25 ms") back in seconds."""
    number, unit = text.split()
    return float(number) * {"s": 1.0, "ms": 1e-3, "µs": 1e-6, "ns": 1e-9}[unit]


# --------------------------------------------------------------------------- tests
def test_index_escapes_and_links() -> None:
    evil = "<script>alert(1)</script>"
    html = render_index(
        [
            {
                "id": "20261130-000000-abcd",
                "suite": evil,
                "created": "now",
                "status": "finished",
                "jobs": 2,
                "done": 1,
                "failed": 1,
                "devices": [evil],
                "previous": "20261129-000000-0000",
                "verdicts": {"regressions": 2, "improvements": 0},
            },
            {"id": "20261129-000000-0000", "suite": evil, "previous": None, "verdicts": None},
        ],
        generated="today",
    )
    # The one script is the filters' own (allowed by its hash), and it holds no data.
    (script,) = re.findall(r"<script>(.*?)</script>", html, flags=re.S)
    assert "alert(1)" not in script
    assert "&lt;script&gt;" in html
    assert 'href="runs/20261130-000000-abcd/index.html"' in html
    assert '<td class="worse">2 regressions, 0 improvements' in html
    assert "first run of its suite" in html


def _suite(tmp_path: Path) -> Path:
    return write_suite(
        tmp_path / "suite.yaml",
        variants="\n  - name: fp32-onnx\n    recipe: [export_onnx]\n",
        settings="  - runtime: onnxruntime\n",
        measure="{warmup_runs: 1, min_runs: 20, min_duration_s: 0.0, repetitions: 2}",
    )


def test_publish_two_runs_then_nothing_to_redo(eb: Runner, tmp_path: Path) -> None:
    suite = _suite(tmp_path)
    eb("device", "add", "local")
    eb("run", str(suite), "--no-report")
    eb("run", str(suite), "--no-report")
    runs = sorted(json.loads(eb("runs", "list", "--json").stdout), key=lambda r: r["created_at"])
    first, second = runs[0]["id"], runs[1]["id"]
    site = tmp_path / "site"

    out = eb("publish", "-o", str(site)).stdout
    assert "2 run page(s) rendered, 0 up to date; 1 series, 0 step(s)" in out
    index = (site / "index.html").read_text()
    for run_id in (first, second):
        assert f'href="runs/{run_id}/index.html"' in index
        assert (site / "runs" / run_id / "index.html").exists()
    assert "first run of its suite" in index and f"vs {first}" in index
    # The newer run's page carries the comparison with the older one.
    page = (site / "runs" / second / "index.html").read_text()
    assert f"Against run {first}" in page
    assert "Against run" not in (site / "runs" / first / "index.html").read_text()
    # Its one series (the suite's one job) has a trend page, too short to search.
    (trend,) = (site / "trends").glob("*.html")
    assert "Too few runs to look for steps:</strong> 2 runs" in trend.read_text()
    assert "No step found in any series." in (site / "regressions.html").read_text()

    # Nothing changed: nothing is rendered again, and the pages are untouched.
    mtime = (site / "runs" / second / "index.html").stat().st_mtime_ns
    trend_mtime = trend.stat().st_mtime_ns
    again = eb("publish", "-o", str(site)).stdout
    assert "0 run page(s) rendered, 2 up to date" in again
    assert (site / "runs" / second / "index.html").stat().st_mtime_ns == mtime
    assert trend.stat().st_mtime_ns == trend_mtime

    # A third run: its page is new, and only it is rendered.
    eb("run", str(suite), "--no-report")
    third = eb("publish", "-o", str(site)).stdout
    assert "1 run page(s) rendered, 2 up to date" in third
    assert "3 runs" in trend.read_text()

    # A page deleted by hand comes back.
    (site / "runs" / first / "index.html").unlink()
    assert "1 run page(s) rendered" in eb("publish", "-o", str(site)).stdout

    bad = eb("publish", "-o", str(site / "index.html"), check=False)
    assert bad.returncode == 2 and "is not a folder" in bad.stderr

    require_chromium()
    dom = dump_dom(site / "index.html", tmp_path / "profile")
    links = re.findall(r'<a href="(runs/[^"]+)">', dom)
    assert len(links) == 4  # 3 runs + the latest of the one suite
    assert all((site / link).exists() for link in links)


def test_publish_marks_the_run_that_stepped(eb: Runner, tmp_path: Path) -> None:
    """12 runs of two jobs: one gets 25% slower from run 7 on (commit c6), the other stays
    flat; a third job exists in only 4 runs. The regressions page names the one step, its
    run, date and commit and both medians; the trend pages say what they found."""
    store = Store(eb.env["EDGEBENCH_DB"])  # type: ignore[attr-defined]
    history = SyntheticHistory(store)
    rng = np.random.default_rng(7)
    stepped = levels(12, {6: 1.25}, 0.01, rng)
    flat = levels(12, {}, 0.01, rng)
    ids = []
    for i in range(12):
        jobs = [
            SyntheticJob("board-a", "net", "int8", stepped[i]),
            SyntheticJob("board-a", "net", "fp32", flat[i] * 2),
        ]
        if i >= 8:
            jobs.append(SyntheticJob("board-b", "net", "int8", flat[i]))
        ids.append(history.run("nightly", jobs, commit=f"c{i}"))

    site = tmp_path / "site"
    out = eb("publish", "-o", str(site)).stdout
    assert "12 run page(s) rendered, 0 up to date; 3 series, 1 step(s) (1 slower)" in out

    page = (site / "regressions.html").read_text()
    (row,) = re.findall(r"<tr data-suite=.*?</tr>", page, flags=re.S)
    assert f'href="runs/{ids[6]}/index.html">{ids[6]}</a>' in row
    assert f'after <a href="runs/{ids[5]}/index.html">{ids[5]}</a>' in row
    assert "2026-10-07" in row and "<td>c6</td>" in row
    assert ">+2" in row and "(slower)" in row  # +25% give or take the 1% noise
    before, after = (seconds(t) for t in re.findall(r'<td class="num">([0-9.]+ [µm]?s)</td>', row))
    assert before == pytest.approx(1e-3, rel=0.02) and after == pytest.approx(1.25e-3, rel=0.03)

    trends = {p.name: p.read_text() for p in (site / "trends").glob("*.html")}
    assert len(trends) == 3
    int8 = next(t for n, t in trends.items() if n.startswith("board-a_net_int8"))
    assert "1 step in 12 runs" in int8 and int8.count("<svg") == 1
    assert 'class="step up"' in int8
    fp32 = next(t for n, t in trends.items() if n.startswith("board-a_net_fp32"))
    assert "No step in 12 runs" in fp32
    short = next(t for n, t in trends.items() if n.startswith("board-b"))
    assert f"4 runs; change points need at least {MIN_RUNS}" in short

    index = (site / "index.html").read_text()
    assert "Steps in p50 latency: 1 (1 slower)" in index
    assert index.count('<a href="trends/') == 3

    # A stricter penalty finds nothing; the page says which penalty it used.
    out = eb("publish", "-o", str(site), "--penalty", "1e6").stdout
    assert "0 run page(s) rendered, 12 up to date; 3 series, 0 step(s)" in out
    assert "No step found in any series." in (site / "regressions.html").read_text()
    assert "penalty 1e+06" in (site / "index.html").read_text()


def test_store_strings_are_text_on_every_site_page(eb: Runner, tmp_path: Path) -> None:
    store = Store(eb.env["EDGEBENCH_DB"])  # type: ignore[attr-defined]
    history = SyntheticHistory(store)
    for i in range(MIN_RUNS):
        p50 = 1e-3 if i < 3 else 2e-3
        history.run(EVIL, [SyntheticJob(EVIL, EVIL, "int8", p50)], commit=EVIL)
    site = tmp_path / "site"
    eb("publish", "-o", str(site))
    pages = [site / "index.html", site / "regressions.html", *(site / "trends").glob("*")]
    assert len(pages) == 3
    for page in pages:
        html = page.read_text()
        assert "<img" not in html, page
        assert "&lt;img src=x onerror=alert(1)&gt;" in html, page
    (trend,) = (site / "trends").glob("*")
    assert re.fullmatch(r"[A-Za-z0-9._-]+\.html", trend.name)


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "-inf"])
def test_penalty_must_be_a_positive_number(eb: Runner, tmp_path: Path, value: str) -> None:
    proc = eb("publish", "-o", str(tmp_path / "site"), "--penalty", value, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"edgebench: error: --penalty: penalty must be a positive number "
        f"(default {DEFAULT_PENALTY:g}), not {float(value)}"
    ]
    assert not (tmp_path / "site").exists()


def test_penalty_that_is_not_a_number_is_a_usage_error(eb: Runner) -> None:
    proc = eb("publish", "--penalty", "strict", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert lines[0].startswith("edgebench: error: Invalid value for '--penalty'"), lines
    assert len(lines) <= 2


def test_help_states_the_default_penalty(eb: Runner) -> None:
    out = " ".join(eb("publish", "--help").stdout.split())
    assert f"default {DEFAULT_PENALTY:g}" in out
