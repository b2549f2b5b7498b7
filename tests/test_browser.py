"""What Debian's Chromium (driven by playwright) makes of a run report (`edgebench report
RUN -o DIR`) and of a published site (`edgebench publish -o SITE`): no console error, every
plot the page promises present and drawn, a screenshot that is not blank, the index's
filters showing the rows they should, and a device or model named like markup shown as
text without running anything. Stores are made through the store's public API
(tests/test_publish.py's SyntheticHistory).

A missing Chromium skips these tests, except under CI=true, where it fails them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.store import Store
from tests.browser import Visit, open_chromium, require_chromium, visit
from tests.conftest import Runner
from tests.test_publish import EVIL, SyntheticHistory, SyntheticJob, levels

# A page of text, tables and plots has hundreds of colours (anti-aliased text alone);
# a blank or unstyled one a handful.
MIN_COLOURS = 50


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    require_chromium()
    with open_chromium() as browser:
        yield browser


def _links_resolve(v: Visit) -> list[str]:
    """The file links of the page whose target does not exist (a site works from file://
    only if every relative link lands on a file)."""
    hrefs = v.page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
    missing = []
    for href in hrefs:
        assert href.startswith("file://"), href  # nothing links outside the site
        path = Path(href.removeprefix("file://").split("#")[0])
        if not path.exists():
            missing.append(href)
    return missing


def _images_drawn(v: Visit) -> bool:
    return v.page.evaluate(
        "Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)"
    )


def _report_plots(v: Visit, devices: int, trade_offs: int, samples: bool = True) -> None:
    """Every plot a run report promises is there and drawn: per device the latency
    distribution (not on the site's run pages, which leave the raw samples out), per
    device with two variants or more the trade-off (reports.html adds others where it
    has the data), each figure one image, every image decoded."""
    assert v.count("figure.distribution img") == (devices if samples else 0)
    assert v.count("figure.trade-off img") == trade_offs
    assert v.count("figure") == v.count("figure img") >= (devices if samples else 0) + trade_offs
    assert _images_drawn(v)


def _markup_stayed_text(v: Visit) -> None:
    assert EVIL in v.visible_text()  # shown literally...
    assert v.count("img[src='x']") == 0  # ...and never became an element


def test_run_report_in_chromium(chromium: Any, eb: Runner, tmp_path: Path) -> None:
    store = Store(eb.env["EDGEBENCH_DB"])  # type: ignore[attr-defined]
    run_id = SyntheticHistory(store).run(
        "nightly",
        [
            SyntheticJob(EVIL, EVIL, "fp32", 2e-3, accuracy=0.97, size_bytes=200_000),
            SyntheticJob(EVIL, EVIL, "int8", 1e-3, accuracy=0.95, size_bytes=60_000),
            SyntheticJob("board-a", "net", "fp32", 4e-3, accuracy=0.97, size_bytes=200_000),
            SyntheticJob("board-a", "net", "int8", 3e-3, accuracy=0.96, size_bytes=60_000),
        ],
        commit="c0ffee",
    )
    out = tmp_path / "report"
    eb("report", run_id, "-o", str(out))
    with visit(chromium, out / "index.html") as v:
        v.assert_clean()
        _report_plots(v, devices=2, trade_offs=2)
        assert _links_resolve(v) == []
        _markup_stayed_text(v)
        assert v.screenshot_colours() > MIN_COLOURS


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, shared_home: Path) -> dict[str, Any]:
    """A published site of 11 runs, one a day from 2026-10-01: suite "nightly" on board-a
    (8 runs; int8 gets 30% slower at its 5th run, fp32 stays flat), suite "weekly" on a
    device and model named like markup (3 runs: too few for change points)."""
    from tests.conftest import make_runner

    work = tmp_path_factory.mktemp("site")
    eb = make_runner(shared_home, work)
    store = Store(eb.env["EDGEBENCH_DB"])  # type: ignore[attr-defined]
    history = SyntheticHistory(store)
    rng = np.random.default_rng(5)
    int8 = levels(8, {4: 1.3}, 0.01, rng)
    fp32 = levels(8, {}, 0.01, rng)
    order = ["n", "n", "w", "n", "n", "w", "n", "n", "w", "n", "n"]
    ids: dict[str, list[str]] = {"n": [], "w": []}
    for i, suite in enumerate(order):
        if suite == "n":
            k = len(ids["n"])
            jobs = [
                SyntheticJob("board-a", "net", "int8", int8[k]),
                SyntheticJob("board-a", "net", "fp32", fp32[k] * 2),
            ]
            ids["n"].append(history.run("nightly", jobs, commit=f"n{k}"))
        else:
            jobs = [SyntheticJob(EVIL, EVIL, "int8", 1e-3 * (1 + 0.01 * i))]
            ids["w"].append(history.run("weekly", jobs, commit=EVIL))
    root = work / "site"
    out = eb("publish", "-o", str(root)).stdout
    assert "11 run page(s) rendered, 0 up to date; 3 series, 1 step(s) (1 slower)" in out
    return {"root": root, "nightly": ids["n"], "weekly": ids["w"]}


def _shown(v: Visit, table: str) -> int:
    return v.count(f"table#{table} tbody tr:visible")


def test_site_index_filters_in_chromium(chromium: Any, site: dict[str, Any]) -> None:
    with visit(chromium, site["root"] / "index.html") as v:
        v.assert_clean()
        assert v.count("svg") == 0 and v.count("img") == 0  # the index promises no plot
        assert _shown(v, "runs") == 11 and _shown(v, "series") == 3
        assert v.page.inner_text("#runs-count") == "11 shown"

        v.page.select_option("#f-suite", "weekly")
        assert _shown(v, "runs") == 3 and _shown(v, "series") == 1
        assert v.page.inner_text("#runs-count") == "3 of 11 shown"
        assert set(
            v.page.locator("table#runs tbody tr:visible td:nth-child(2)").all_inner_texts()
        ) == {"weekly"}

        v.page.select_option("#f-suite", "")
        v.page.select_option("#f-device", EVIL)  # the option's value is the name, as text
        assert _shown(v, "runs") == 3 and _shown(v, "series") == 1
        v.page.select_option("#f-suite", "nightly")
        assert _shown(v, "runs") == 0 and _shown(v, "series") == 0

        v.page.click("#f-reset")
        assert _shown(v, "runs") == 11
        # Runs 5 to 7 (2026-10-05 .. 07): nightly, weekly, nightly.
        v.page.fill("#f-from", "2026-10-05")
        v.page.fill("#f-to", "2026-10-07")
        assert _shown(v, "runs") == 3
        # Every series has runs before and after those days: all overlap the range.
        assert _shown(v, "series") == 3
        v.page.fill("#f-from", "2026-10-12")
        v.page.fill("#f-to", "")
        assert _shown(v, "runs") == 0 and _shown(v, "series") == 0

        v.page.click("#f-reset")
        _markup_stayed_text(v)
        assert v.screenshot_colours() > MIN_COLOURS
        assert _links_resolve(v) == []
        v.assert_clean()  # nothing the filtering did logged an error either


def test_site_trend_pages_in_chromium(chromium: Any, site: dict[str, Any]) -> None:
    root: Path = site["root"]
    pages = sorted((root / "trends").glob("*.html"))
    assert len(pages) == 3
    for page in pages:
        with visit(chromium, page) as v:
            v.assert_clean()
            assert v.count("svg.trend") == 1  # each trend page promises one plot
            assert v.page.locator("svg.trend polyline").count() == 1
            assert v.screenshot_colours() > MIN_COLOURS
            assert _links_resolve(v) == []
            text = v.visible_text()
            if page.name.startswith("board-a_net_int8"):
                assert "1 step in 8 runs" in text
                assert v.count("svg.trend line.step.up") == 1
                step_run = site["nightly"][4]
                assert v.page.inner_text("table#steps tbody tr td:first-child") == step_run
            elif page.name.startswith("board-a_net_fp32"):
                assert "No step in 8 runs" in text and v.count("svg.trend line.step") == 0
            else:
                _markup_stayed_text(v)
                assert "Too few runs to look for steps: 3 runs" in text


def test_site_regressions_page_in_chromium(chromium: Any, site: dict[str, Any]) -> None:
    with visit(chromium, site["root"] / "regressions.html") as v:
        v.assert_clean()
        assert _shown(v, "regressions") == 1
        row = v.page.locator("table#regressions tbody tr").inner_text()
        assert site["nightly"][4] in row and "n4" in row and "(slower)" in row
        v.page.select_option("#f-suite", "nightly")
        assert _shown(v, "regressions") == 1
        v.page.fill("#f-to", "2026-10-02")
        assert _shown(v, "regressions") == 0
        assert v.screenshot_colours() > MIN_COLOURS
        assert _links_resolve(v) == []
        v.assert_clean()


def test_site_run_page_in_chromium(chromium: Any, site: dict[str, Any]) -> None:
    """A run page of the site: the report with its comparison against the previous run."""
    # nightly: two variants on one device; weekly: one.
    for run_id, trade_offs in ((site["nightly"][-1], 1), (site["weekly"][-1], 0)):
        with visit(chromium, site["root"] / "runs" / run_id / "index.html") as v:
            v.assert_clean()
            _report_plots(v, devices=1, trade_offs=trade_offs, samples=False)
            assert _links_resolve(v) == []
            assert "Against run" in v.visible_text()
            assert v.screenshot_colours() > MIN_COLOURS
    with visit(chromium, site["root"] / "runs" / site["weekly"][-1] / "index.html") as v:
        _markup_stayed_text(v)
