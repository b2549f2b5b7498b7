"""Latency distribution and trade-off plots as self-contained, byte-for-byte reproducible SVG."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

import matplotlib
import numpy as np

# The report is rendered on headless hosts and in CI; never let matplotlib pick a GUI backend.
matplotlib.use("Agg")

from matplotlib.figure import Figure  # noqa: E402  (must follow the backend choice)
from matplotlib.ticker import (  # noqa: E402
    FuncFormatter,
    LogLocator,
    MaxNLocator,
    NullFormatter,
)

from reports.tables import (  # noqa: E402
    ESTIMATED_NOTE,
    fmt_bytes,
    fmt_joules,
    fmt_seconds,
    one_line,
    runtime_label,
    variant_labels,
)
from runners.records import JobResult  # noqa: E402

# Fixed salt: SVG element ids are hashes salted with a random value by default, which makes
# two renders of the same data differ. Text as paths means the SVG needs no fonts.
# parse_math off: a "$" in a variant name must print literally, not be parsed as TeX.
_RC = {"svg.hashsalt": "edgebench", "svg.fonttype": "path", "text.parse_math": False}
# `orientation` arrived in matplotlib 3.10 and `vert` is deprecated from 3.11; the project
# still allows matplotlib>=3.8.
_MPL = tuple(int(p) for p in matplotlib.__version__.split(".")[:2])
_HORIZONTAL: dict[str, Any] = {"orientation": "horizontal"} if _MPL >= (3, 10) else {"vert": False}
# Max/min sample ratio above which the latency axis switches to log scale.
_LOG_SPREAD = 20.0


def _label(result: JobResult) -> str:
    star = "*" if "latency_s" in result.estimated else ""
    return f"{result.variant} ({runtime_label(result)}){star}"


def _time_unit(typical_values: Sequence[float]) -> tuple[str, float]:
    """One unit for a whole latency axis, picked so that typical values read as 1..1000."""
    typical = float(np.median(typical_values))
    return next(((u, f) for u, f in (("µs", 1e6), ("ms", 1e3)) if typical * f < 1000), ("s", 1.0))


def _log_x(ax: Any) -> None:
    ax.set_xscale("log")
    # Plain numbers: the default log labels are TeX ("$10^{1}$"), and math is off.
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    # 1-2-5 labels: one label per decade is too sparse to read values off.
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _svg(fig: Figure) -> str:
    buf = io.StringIO()
    # Date=None drops the timestamp matplotlib would otherwise embed.
    fig.savefig(buf, format="svg", metadata={"Date": None})
    return buf.getvalue()


def sample_arrays(results: Sequence[JobResult]) -> list[np.ndarray]:
    """Each result's raw samples as a float array (empty when it has none): converted once
    per device and handed to every plot that reads them (a 500k-sample list takes ~20 ms)."""
    return [np.fromiter(r.samples_s, dtype=float, count=len(r.samples_s)) for r in results]


def _arrays(results: Sequence[JobResult], arrays: Sequence[np.ndarray] | None) -> list[np.ndarray]:
    if arrays is None:
        return sample_arrays(results)
    if len(arrays) != len(results):
        raise ValueError(f"{len(arrays)} sample arrays for {len(results)} results")
    return list(arrays)


def _rank_index(n: int, percent: float) -> int:
    """Index of the nearest-rank percentile among n sorted values (the tables' rule)."""
    return max(1, math.ceil(percent / 100 * n)) - 1


# Percentiles the box plot and the axis range need, exact over all samples.
_BOX_PERCENTILES = (1.0, 25.0, 50.0, 75.0, 99.0, 99.9)


def _percentiles(values: np.ndarray) -> dict[float, float]:
    """Exact nearest-rank _BOX_PERCENTILES of values: one partition (half a full sort)."""
    n = len(values)
    ranks = sorted({_rank_index(n, p) for p in _BOX_PERCENTILES})
    part = np.partition(values, ranks)
    return {p: float(part[_rank_index(n, p)]) for p in _BOX_PERCENTILES}


# Series colours: one per variant, the same in every panel of a figure.
_COLOURS = (
    "#1d5fbf", "#c2410c", "#15803d", "#7c3aed", "#b91c1c", "#0e7490", "#a16207",
    "#be185d", "#4d7c0f", "#475569",
)  # fmt: skip
# Points per ECDF curve: enough for a smooth step at any width the page shows.
_ECDF_POINTS = 160
# The ECDF of a longer run is that of every k-th sample (a fixed stride, so the same data
# draws the same curve): its largest error, ~1/sqrt(50k) = 0.4%, is below a pixel.
_ECDF_SAMPLES = 50_000


def _colour(i: int) -> str:
    return _COLOURS[i % len(_COLOURS)]


def _left_margin(labels: Sequence[str], fontsize: float = 10.0) -> float:
    """Inches for the y tick labels; estimated from the character count (an average glyph
    is ~0.55 em) so the figure needs no layout engine, which costs more than the plot."""
    longest = max((len(label) for label in labels), default=0)
    return 0.25 + longest * fontsize * 0.55 / 72


def latency_distribution_svg(
    results: list[JobResult], *, arrays: Sequence[np.ndarray] | None = None
) -> str | None:
    """Per variant+runtime of one device, from raw `samples_s`: a horizontal box plot
    (µs/ms/s) and, beside it on the same latency axis, the empirical CDF (SVG groups
    "ecdf-0", "ecdf-1", ... in the boxes' top-to-bottom order, each in its box's colour).

    Box: p25-p75 with the median; whiskers p1..p99 (nearest rank); outliers are not
    drawn: thousands of flier markers would bloat the SVG without telling more than the
    p99 column. Returns None when nothing has samples.
    """
    found = _arrays(results, arrays)
    plotted = [(r, a) for r, a in zip(results, found, strict=True) if a.size]
    if not plotted:
        return None
    percentiles = [_percentiles(a) for _, a in plotted]
    ordered = [np.sort(a[:: max(1, math.ceil(a.size / _ECDF_SAMPLES))]) for _, a in plotted]
    # One unit for the whole axis, picked so that typical values read as 1..1000.
    unit, scale = _time_unit([q[50.0] for q in percentiles])
    labels = [_label(r) for r, _ in plotted]
    stats = [
        {
            "med": q[50.0] * scale,
            "q1": q[25.0] * scale,
            "q3": q[75.0] * scale,
            "whislo": q[1.0] * scale,
            "whishi": q[99.0] * scale,
            "fliers": [],
        }
        for q in percentiles
    ]
    rows = len(plotted)
    height = 1.3 + 0.45 * rows
    left = _left_margin(labels)

    with matplotlib.rc_context(_RC):
        width = 10.0 + left
        fig = Figure(figsize=(width, height))
        fig.subplots_adjust(
            left=left / width,
            # Room for the ECDF's tick labels and axis label on its right.
            right=1 - 0.75 / width,
            bottom=0.75 / height,
            top=1 - 0.45 / height,
            wspace=0.08,
        )
        box_ax, cdf_ax = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
        # Top-to-bottom in table order: positions count upwards, so the first is highest.
        positions = list(range(rows, 0, -1))
        drawn = box_ax.bxp(
            stats,
            positions=positions,
            **_HORIZONTAL,
            showfliers=False,
            widths=0.6,
            patch_artist=True,
            medianprops={"color": "#1d2330", "linewidth": 1.5},
        )
        for i, box in enumerate(drawn["boxes"]):
            box.set_facecolor(_colour(i))
            box.set_alpha(0.45)
            box.set_edgecolor("#1d2330")
        box_ax.set_yticks(positions, labels=labels)
        box_ax.set_xlabel(f"latency ({unit})")
        for i, s in enumerate(ordered):
            # Evenly spaced ranks: the curve keeps its shape with a few hundred points.
            ranks = np.unique(np.linspace(0, len(s) - 1, min(len(s), _ECDF_POINTS)).astype(int))
            cdf_ax.step(
                s[ranks] * scale,
                (ranks + 1) / len(s),
                where="post",
                color=_colour(i),
                linewidth=1.3,
                gid=f"ecdf-{i}",
            )
        cdf_ax.set_ylim(0, 1.02)
        cdf_ax.set_ylabel("share of samples ≤ latency")
        cdf_ax.yaxis.set_label_position("right")
        cdf_ax.yaxis.tick_right()
        cdf_ax.set_xlabel(f"latency ({unit}), ECDF")
        # Decide on the drawn range (p1..p99), not on single outliers; the ECDF shows the
        # tails up to p99.9 on the same scale.
        lowest = min(st["whislo"] for st in stats)
        highest = max(st["whishi"] for st in stats)
        log = lowest > 0 and highest / lowest > _LOG_SPREAD
        tail = max(q[99.9] for q in percentiles) * scale
        for ax in (box_ax, cdf_ax):
            if log:
                # Variants an order of magnitude apart would squash the fast ones.
                _log_x(ax)
            ax.grid(axis="x", which="both", alpha=0.3)
        if log:
            box_ax.set_xlabel(f"latency ({unit}, log scale)")
            cdf_ax.set_xlabel(f"latency ({unit}, log scale), ECDF")
        pad = 0.05 * (tail - lowest)
        span = (lowest * 0.9, tail * 1.1) if log else (lowest - pad, tail + pad)
        if span[1] > span[0]:
            box_ax.set_xlim(*span)
            cdf_ax.set_xlim(*span)
        cdf_ax.grid(axis="y", alpha=0.3)
        if any(label.endswith("*") for label in labels):
            cdf_ax.set_title(ESTIMATED_NOTE, loc="right", fontsize="small")
        return _svg(fig)


# --- run sequence --------------------------------------------------------------------------

# Points per variant in the run-sequence plot: above this the samples are bucketed and each
# bucket drawn as its min and max, so a single spike stays visible however long the run.
# Enough for the envelope at the width a page shows (300 min/max buckets), and a
# report of 100 jobs stays a few MB, not tens.
SEQUENCE_MAX_POINTS = 600


def sequence_points(
    values: np.ndarray, max_points: int = SEQUENCE_MAX_POINTS
) -> tuple[np.ndarray, np.ndarray]:
    """(sample index, latency) to draw for one job's samples in measurement order: all of
    them up to `max_points`, else max_points/2 equal buckets each as its minimum and its
    maximum (at the bucket's first index), so the line's envelope is the data's."""
    n = len(values)
    if n <= max_points:
        return np.arange(n, dtype=float), values
    buckets = max_points // 2
    starts = np.linspace(0, n, buckets + 1).astype(np.int64)[:-1]
    lows = np.minimum.reduceat(values, starts)
    highs = np.maximum.reduceat(values, starts)
    xs = np.repeat(starts.astype(float), 2)
    ys = np.empty(2 * buckets)
    ys[0::2], ys[1::2] = lows, highs
    return xs, ys


def _sequence_note(result: JobResult) -> str:
    parts = []
    if result.warmup_count is not None:
        warmup = f"after {result.warmup_count} warm-up runs"
        if result.warmup_time_s is not None:
            warmup += f" ({fmt_seconds(result.warmup_time_s)})"
        parts.append(warmup)
    if result.first_inference_s is not None:
        parts.append(f"first inference {fmt_seconds(result.first_inference_s)}")
    parts += [one_line(flag) for flag in result.health_flags]
    return "; ".join(parts)


def run_sequence_svg(
    results: list[JobResult], *, arrays: Sequence[np.ndarray] | None = None
) -> str | None:
    """Latency over sample index, one panel per variant+runtime with samples (SVG groups
    "sequence-0", "sequence-1", ... in table order): the measured windows one after another,
    dashed lines at window boundaries and each window's p50 as a step ("window-p50-N"),
    so warm-up left in the first window, drift between windows and throttling show. At
    most SEQUENCE_MAX_POINTS points per variant (min/max per bucket beyond). The panel
    title says how many warm-up runs came before and any device flags. None when nothing
    has samples."""
    found = _arrays(results, arrays)
    plotted = [(r, a) for r, a in zip(results, found, strict=True) if a.size]
    if not plotted:
        return None
    unit, scale = _time_unit([float(np.median(a[:: max(1, a.size // 1000)])) for _, a in plotted])
    rows = len(plotted)
    height = 0.7 + 1.35 * rows
    # No path simplification: the points are already few, and each one is a min or a max.
    with matplotlib.rc_context({**_RC, "path.simplify": False}):
        fig = Figure(figsize=(10.0, height))
        fig.subplots_adjust(
            left=0.08, right=0.98, bottom=0.55 / height, top=1 - 0.3 / height, hspace=0.75
        )
        axes = fig.subplots(rows, 1, squeeze=False)[:, 0]
        for i, ((r, values), ax) in enumerate(zip(plotted, axes, strict=True)):
            xs, ys = sequence_points(values)
            ys = ys * scale
            ax.plot(xs, ys, color=_colour(i), linewidth=0.6, gid=f"sequence-{i}")
            counts = r.window_sample_counts
            if counts and sum(counts) == values.size:
                edges = np.cumsum([0, *counts])
                for edge in edges[1:-1]:
                    ax.axvline(edge, color="#667085", linestyle="--", linewidth=0.8)
                if len(r.window_p50_s) == len(counts):
                    steps_x = [float(e) for e in edges]
                    steps_y = [p * scale for p in r.window_p50_s]
                    ax.step(
                        steps_x,
                        [*steps_y, steps_y[-1]],
                        where="post",
                        color="#1d2330",
                        linewidth=1.2,
                        gid=f"window-p50-{i}",
                    )
            low, high = float(ys.min()), float(ys.max())
            if low > 0 and high / low > _LOG_SPREAD:
                _log_y(ax)
            ax.set_xlim(0, max(values.size - 1, 1))
            ax.set_title(_label(r), loc="left", fontsize="medium")
            if note := _sequence_note(r):
                ax.set_title(note, loc="right", fontsize="small", color="#667085")
            ax.set_ylabel(unit)
            # Few ticks: tick objects are most of what a panel costs to draw.
            ax.xaxis.set_major_locator(MaxNLocator(6, integer=True))
            if ax.get_yscale() == "linear":
                ax.yaxis.set_major_locator(MaxNLocator(3))
            ax.grid(alpha=0.3)
        axes[-1].set_xlabel(
            "sample index (measured windows in order; dashed: window boundaries; "
            "black step: each window's p50)"
        )
        return _svg(fig)


# --- memory, energy, flash/RAM against the board ------------------------------------------

_BAR = "#5b8def"
_OVER = "#d92d20"  # a bar past the board's limit


def _joules_unit(values: Sequence[float]) -> tuple[str, float]:
    typical = float(np.median(values))
    return next(
        ((u, f) for u, f in (("nJ", 1e9), ("µJ", 1e6), ("mJ", 1e3)) if typical * f < 1000),
        ("J", 1.0),
    )


def _resource_panels(results: Sequence[JobResult]) -> list[dict[str, Any]]:
    """The panels of `resources_svg` that have at least one figure."""
    panels = [
        {
            "title": "peak memory (RSS)",
            "value": lambda r: r.peak_rss_bytes,
            "limit": lambda r: None,
            "field": "peak_rss_bytes",
            "bytes": True,
        },
        {
            "title": "static RAM vs the board's RAM",
            "value": lambda r: r.static_ram_bytes,
            "limit": lambda r: r.ram_limit_bytes,
            "field": "static_ram_bytes",
            "bytes": True,
        },
        {
            "title": "flash vs the board's flash",
            "value": lambda r: r.flash_bytes,
            "limit": lambda r: r.flash_limit_bytes,
            "field": "flash_bytes",
            "bytes": True,
        },
        {
            "title": "energy / inference",
            "value": lambda r: r.energy_per_inference_j,
            "limit": lambda r: None,
            "field": "energy_per_inference_j",
            "bytes": False,
        },
    ]
    return [p for p in panels if any(p["value"](r) is not None for r in results)]


def resources_svg(results: list[JobResult]) -> str | None:
    """Horizontal bars per variant+runtime of one device: peak memory, and on a
    microcontroller static RAM and flash with the board's limit drawn on each bar's row
    (a bar past it in red: the variant does not fit), and energy per inference. Only
    panels with a figure are drawn (one SVG group per bar, "bars-<field>-<row>", e.g.
    "bars-flash_bytes-0", and one "limit-<field>" for a panel's limit marks); an
    estimated bar is hatched and its label marked "*". Finished jobs count, not-deployable
    ones too (their fit check is the point). None when no result has any of the figures."""
    shown = [r for r in results if r.status == "done"]
    panels = _resource_panels(shown)
    if not panels:
        return None
    names = variant_labels(shown)
    labels = [
        name + ("*" if any(p["field"] in r.estimated for p in panels) else "")
        for name, r in zip(names, shown, strict=True)
    ]
    rows = len(shown)
    height = 1.2 + 0.4 * rows
    left = _left_margin(labels)
    width = 10.0 + left
    positions = list(range(rows, 0, -1))
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(width, height))
        fig.subplots_adjust(
            left=left / width, right=0.98, bottom=0.6 / height, top=1 - 0.4 / height, wspace=0.1
        )
        axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
        for ax, panel in zip(axes, panels, strict=True):
            values = [panel["value"](r) for r in shown]
            limits = [panel["limit"](r) for r in shown]
            known = [float(v) for v in values if v is not None] + [
                float(v) for v in limits if v is not None
            ]
            unit, factor = _bytes_unit(known) if panel["bytes"] else _joules_unit(known)
            if panel["bytes"]:
                factor = 1 / factor  # _bytes_unit gives the divisor
            widths = [0.0 if v is None else float(v) * factor for v in values]
            colours = [
                _OVER if v is not None and lim is not None and v > lim else _BAR
                for v, lim in zip(values, limits, strict=True)
            ]
            bars = ax.barh(positions, widths, height=0.6, color=colours)
            for j, (bar, r) in enumerate(zip(bars, shown, strict=True)):
                # One id per bar: a shared gid would repeat an id in the SVG.
                bar.set_gid(f"bars-{panel['field']}-{j}")
                if panel["field"] in r.estimated:
                    bar.set_hatch("//")
                    bar.set_edgecolor("white")
            limit_at = [
                (pos, float(lim) * factor)
                for pos, lim in zip(positions, limits, strict=True)
                if lim is not None
            ]
            if limit_at:
                ax.plot(
                    [x for _, x in limit_at],
                    [pos for pos, _ in limit_at],
                    linestyle="none",
                    marker="|",
                    markersize=14,
                    markeredgewidth=2,
                    color="#1d2330",
                    gid=f"limit-{panel['field']}",
                )
            text_of = fmt_bytes if panel["bytes"] else fmt_joules
            for pos, w, v in zip(positions, widths, values, strict=True):
                if v is not None:
                    ax.annotate(
                        text_of(v),
                        (w, pos),
                        xytext=(3, 0),
                        textcoords="offset points",
                        va="center",
                        fontsize=8,
                    )
            ax.set_title(panel["title"], loc="left", fontsize="medium")
            ax.set_xlabel(unit + (" (|: the board's limit)" if limit_at else ""))
            ax.margins(x=0.15)
            ax.grid(axis="x", alpha=0.3)
        axes[0].set_yticks(positions, labels=labels)
        if any(label.endswith("*") for label in labels):
            fig.text(
                0.98, 1 - 0.12 / height, ESTIMATED_NOTE, ha="right", va="top", fontsize="small"
            )
        return _svg(fig)


# --- where the time goes ------------------------------------------------------------------

# Operator types named in the layer plot; the rest are summed as "other".
LAYER_OPS_SHOWN = 8


def layer_shares(result: JobResult) -> list[tuple[str, float]]:
    """(operator type, share of the inference) for one result's layers, largest first:
    each layer's `share` where the runner gave one, else its time (or instruction count)
    over their sum. Empty when the layers carry no figure."""
    layers = result.layers
    if not layers:
        return []
    if all(layer.share is not None for layer in layers):
        weights = [float(layer.share or 0.0) for layer in layers]
    elif all(layer.time_s is not None for layer in layers):
        weights = [float(layer.time_s or 0.0) for layer in layers]
    elif all(layer.instructions is not None for layer in layers):
        weights = [float(layer.instructions or 0) for layer in layers]
    else:
        return []
    total = sum(weights)
    if total <= 0:
        return []
    by_op: dict[str, float] = {}
    for layer, weight in zip(layers, weights, strict=True):
        op = one_line(layer.op or layer.name)
        by_op[op] = by_op.get(op, 0.0) + weight / total
    return sorted(by_op.items(), key=lambda kv: (-kv[1], kv[0]))


def layer_time_svg(results: list[JobResult]) -> str | None:
    """ "Where the time goes": one 100% stacked bar per variant+runtime that has a per-layer
    profile, split by operator type (the LAYER_OPS_SHOWN largest over these variants, the
    rest as "other"; one SVG group per bar segment, "layer-op-<k>-<row>" with k in legend
    order, "layer-op-other-<row>"). A
    profile from an emulated board (instruction counts) or with estimated latency is
    marked "*". None when no result has a usable profile."""
    shown = [(r, shares) for r in results if (shares := layer_shares(r))]
    if not shown:
        return None
    totals: dict[str, float] = {}
    for _, shares in shown:
        for op, share in shares:
            totals[op] = totals.get(op, 0.0) + share
    named = [op for op, _ in sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))]
    named = named[:LAYER_OPS_SHOWN] if len(named) > LAYER_OPS_SHOWN + 1 else named
    names = variant_labels([r for r, _ in shown])
    labels = [
        name + ("*" if r.emulated or "latency_s" in r.estimated else "")
        for name, (r, _) in zip(names, shown, strict=True)
    ]
    rows = len(shown)
    height = 1.3 + 0.4 * rows
    left = _left_margin(labels)
    width = 10.0 + left
    positions = list(range(rows, 0, -1))
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(width, height))
        fig.subplots_adjust(left=left / width, right=0.8, bottom=0.6 / height, top=1 - 0.3 / height)
        ax = fig.add_subplot()
        start = [0.0] * rows
        series = [*named, "other"] if len(named) < len(totals) else named
        for k, op in enumerate(series):
            widths = []
            for _, shares in shown:
                found = dict(shares)
                share = (
                    sum(v for o, v in shares if o not in named)
                    if op == "other"
                    else found.get(op, 0.0)
                )
                widths.append(share * 100)
            bars = ax.barh(
                positions,
                widths,
                left=start,
                height=0.6,
                color="#98a2b3" if op == "other" else _colour(k),
                label=op,
            )
            for j, bar in enumerate(bars):
                bar.set_gid(f"layer-op-{'other' if op == 'other' else k}-{j}")
            start = [s + w for s, w in zip(start, widths, strict=True)]
        ax.set_yticks(positions, labels=labels)
        ax.set_xlim(0, 100)
        ax.set_xlabel("share of the inference (%), by operator type")
        ax.grid(axis="x", alpha=0.3)
        fig.legend(loc="center right", frameon=False, fontsize="small")
        if any(label.endswith("*") for label in labels):
            ax.set_title(
                ESTIMATED_NOTE + " (emulated: instruction counts)", loc="right", fontsize="small"
            )
        return _svg(fig)


# --- trade-off scatter plots ---------------------------------------------------------------

_SOLID = "#1d5fbf"  # Pareto-optimal points and the step line
_FADED_ALPHA = 0.3  # dominated points
_MAX_AREA = 1400.0  # marker area (pt²) of the largest file
_UNKNOWN_AREA = 60.0  # marker area when a result has no file size
_PLAIN_AREA = 90.0  # size-vs-latency plot: every marker the same


def pareto_front(points: Sequence[tuple[float, float]]) -> set[int]:
    """Indices of the Pareto-optimal points of (cost, benefit) pairs, e.g. (latency, accuracy).

    A point is dominated when another has cost <= and benefit >= with at least one strictly
    better; every other point is optimal. Equal points do not dominate each other, so
    duplicates of an optimal point are all optimal.
    """
    front = set()
    for i, (cost, benefit) in enumerate(points):
        if not any(
            c <= cost and b >= benefit and (c < cost or b > benefit)
            for j, (c, b) in enumerate(points)
            if j != i
        ):
            front.add(i)
    return front


def _nice_floor(value: float) -> float:
    """Largest 1-2-5 x 10^k not above value (value > 0)."""
    exponent = math.floor(math.log10(value))
    for mantissa in (5.0, 2.0, 1.0):
        if mantissa * 10.0**exponent <= value * (1 + 1e-9):
            return mantissa * 10.0**exponent
    return 5 * 10.0 ** (exponent - 1)


def _size_references(largest: float) -> list[tuple[float, str]]:
    """Two round reference sizes (bytes, label) for the marker-area legend."""
    unit, factor = next(
        ((u, f) for u, f in (("B", 1), ("KiB", 1024), ("MiB", 1024**2)) if largest < 1024 * f),
        ("GiB", 1024**3),
    )
    big = _nice_floor(largest / factor)
    small = _nice_floor(big / 8)
    return [(v * factor, f"{v:g} {unit}") for v in (big, small)]


def _bytes_unit(values: Sequence[float]) -> tuple[str, float]:
    typical = float(np.median(values))
    return next(
        ((u, f) for u, f in (("B", 1.0), ("KiB", 1024.0)) if typical < 1000 * f),
        ("MiB", 1024.0**2),
    )


def _estimated(result: JobResult, *fields: str) -> bool:
    return any(f in result.estimated for f in fields)


def _p90(result: JobResult) -> float | None:
    return result.latency_s.p90 if result.latency_s else None


def _trade_off_axes(
    xs: list[float], ys: list[float], front: set[int], areas: list[float]
) -> tuple[Figure, Any]:
    """Scatter with the Pareto-optimal points solid, joined by a step line, the rest faded."""
    fig = Figure(figsize=(10.0, 5.4))
    # Fixed margins, the legend in the right-hand strip: a layout engine would cost more
    # than the whole plot, and the legend's labels are ours (never user strings).
    fig.subplots_adjust(left=0.08, right=0.77, bottom=0.11, top=0.94)
    ax = fig.add_subplot()
    # Big markers first so that small ones stay visible on top.
    order = sorted(range(len(xs)), key=lambda i: (-areas[i], i))
    for gid, members, alpha in (
        ("dominated", [i for i in order if i not in front], _FADED_ALPHA),
        ("pareto-optimal", [i for i in order if i in front], 1.0),
    ):
        if members:
            ax.scatter(
                [xs[i] for i in members],
                [ys[i] for i in members],
                s=[areas[i] for i in members],
                color=_SOLID,
                alpha=alpha,
                edgecolors="white",
                linewidths=1.0,
                zorder=3,
                clip_on=False,
                gid=gid,
            )
    ax.margins(x=0.12, y=0.18)
    ax.grid(which="both", alpha=0.3)
    return fig, ax


def _step_line(ax: Any, xs: list[float], ys: list[float], front: set[int], where: str) -> None:
    steps = sorted(front, key=lambda i: (xs[i], ys[i]))
    ax.step(
        [xs[i] for i in steps],
        [ys[i] for i in steps],
        where=where,
        color=_SOLID,
        linewidth=1.3,
        zorder=2,
        gid="pareto-step-line",
    )


def _log_y(ax: Any) -> None:
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_minor_formatter(NullFormatter())


def _label_points(
    ax: Any,
    xs: list[float],
    ys: list[float],
    front: set[int],
    areas: list[float],
    labels: list[str],
) -> None:
    """Variant names beside their markers, clear of the step line, other labels and markers.

    A label goes at the upper right of its marker (the step line leaves a front point to the
    right at its own height, or arrives from below), else at the upper left, else one line
    further up or down, and so on; a label that had to move away from its marker gets a thin
    leader line to it. Widths are estimated from the character count, which is enough to
    keep labels apart and keeps the layout independent of font metrics.
    """
    ax.autoscale_view()
    box = ax.get_position()
    width_pt = box.width * ax.figure.get_figwidth() * 72
    height_pt = box.height * ax.figure.get_figheight() * 72
    to_axes = ax.transData + ax.transAxes.inverted()
    centres = [
        (float(px) * width_pt, float(py) * height_pt)
        for px, py in (to_axes.transform((x, y)) for x, y in zip(xs, ys, strict=True))
    ]
    radii = [math.sqrt(a) / 2 for a in areas]
    # Obstacles as (left, bottom, right, top) in points from the axes' lower left corner.
    taken = [(cx - r, cy - r, cx + r, cy + r) for (cx, cy), r in zip(centres, radii, strict=True)]
    line = 12.0

    def free(rect: tuple[float, float, float, float], own: int) -> bool:
        if rect[0] < 0 or rect[2] > width_pt:
            return False
        return not any(
            rect[0] < o[2] and o[0] < rect[2] and rect[1] < o[3] and o[1] < rect[3]
            for k, o in enumerate(taken)
            if k != own
        )

    for i in sorted(range(len(xs)), key=lambda i: (ys[i], xs[i])):
        (cx, cy), radius = centres[i], radii[i]
        text_width = 0.6 * 9 * len(labels[i]) + 4
        dx, lift = 0.75 * radius + 3, 0.35 * radius + 1
        choice = None
        for shift in (0, 1, -1, 2, -2, 3, -3, 4):
            for left in (False, True):
                x0 = cx - dx - text_width if left else cx + dx
                y0 = cy + lift + shift * line
                rect = (x0, y0, x0 + text_width, y0 + line)
                if free(rect, i):
                    choice = (left, shift, rect)
                    break
            if choice:
                break
        if choice is None:  # crowded: the default place, overlaps and all
            choice = (cx + dx + text_width > width_pt, 0, None)
        left, shift, rect = choice
        if rect is not None:
            taken.append(rect)
        optimal = i in front
        ax.annotate(
            labels[i],
            (xs[i], ys[i]),
            xytext=(-dx if left else dx, lift + shift * line),
            textcoords="offset points",
            ha="right" if left else "left",
            va="bottom",
            fontsize=9,
            color="#1d2330" if optimal else "#6b7483",
            fontweight="bold" if optimal else "normal",
            bbox={
                "boxstyle": "round,pad=0.15",
                "facecolor": "white",
                "edgecolor": "none",
                "alpha": 0.75,
            },
            arrowprops=None
            if shift == 0
            else {"arrowstyle": "-", "color": "#9aa3b2", "linewidth": 0.6, "shrinkB": radius},
            zorder=4,
        )


def _legend(fig: Figure, handles: list[Any], title: str | None) -> None:
    fig.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(0.785, 0.95),
        frameon=False,
        labelspacing=2.0,
        borderpad=1.0,
        handletextpad=1.2,
        title=title,
        title_fontsize="small",
        fontsize="small",
    )


def _kind_handles(ax: Any) -> list[Any]:
    return [
        ax.scatter([], [], s=_PLAIN_AREA, color=_SOLID, label="Pareto-optimal"),
        ax.scatter([], [], s=_PLAIN_AREA, color=_SOLID, alpha=_FADED_ALPHA, label="dominated"),
    ]


def pareto_svg(results: list[JobResult]) -> str | None:
    """Accuracy (%) vs p90 latency for one device's results, as SVG.

    Marker area is proportional to the file size (the legend shows two reference sizes);
    labels are the variant names (+ runtime when a variant ran with several). Pareto-optimal
    points (see `pareto_front`) are solid and joined by a step line (SVG groups
    "pareto-optimal" and "pareto-step-line"); dominated ones are faded (group "dominated",
    opacity 0.3). The latency axis is log scale when the p90s span more than 20x. Returns
    None when accuracy is not meaningful or fewer than 2 results have both an accuracy and
    a p90.
    """
    if any(not r.accuracy_meaningful for r in results):
        return None
    picked = [
        (r, label, p90, r.accuracy)
        for r, label in zip(results, variant_labels(results), strict=True)
        if r.accuracy is not None and (p90 := _p90(r)) is not None
    ]
    if len(picked) < 2:
        return None
    p90s = [float(p90) for _, _, p90, _ in picked]
    unit, scale = _time_unit(p90s)
    xs = [v * scale for v in p90s]
    ys = [float(accuracy) * 100 for _, _, _, accuracy in picked]
    sizes = [r.file_size_bytes for r, _, _, _ in picked]
    largest = max((s for s in sizes if s), default=None)
    areas = [_MAX_AREA * s / largest if s and largest else _UNKNOWN_AREA for s in sizes]
    labels = [
        label + ("*" if _estimated(r, "latency_s", "accuracy", "file_size_bytes") else "")
        for r, label, _, _ in picked
    ]
    front = pareto_front(list(zip(xs, ys, strict=True)))
    with matplotlib.rc_context(_RC):
        fig, ax = _trade_off_axes(xs, ys, front, areas)
        # Fastest to most accurate: right along the x axis, then up to the next point.
        _step_line(ax, xs, ys, front, "post")
        log = min(xs) > 0 and max(xs) / min(xs) > _LOG_SPREAD
        if log:
            _log_x(ax)
        ax.set_xlabel(f"p90 latency ({unit}{', log scale' if log else ''}), lower is better")
        ax.set_ylabel("accuracy (%), higher is better")
        _label_points(ax, xs, ys, front, areas, labels)
        handles = _kind_handles(ax)
        if largest:
            handles += [
                ax.scatter(
                    [],
                    [],
                    s=_MAX_AREA * ref / largest,
                    facecolors="none",
                    edgecolors="#667085",
                    label=text,
                )
                for ref, text in _size_references(largest)
            ]
        _legend(fig, handles, "marker area ∝ file size" if largest else None)
        if any(label.endswith("*") for label in labels):
            ax.set_title(ESTIMATED_NOTE, loc="right", fontsize="small")
        return _svg(fig)


def size_latency_svg(results: list[JobResult]) -> str | None:
    """File size vs p90 latency for one device's results, as SVG: the stand-in for the
    Pareto plot when accuracy is not meaningful.

    Points that no other point beats on both size and latency (smaller-or-equal and
    faster-or-equal, strictly in one) are solid and joined by a step line; the rest are
    faded (same SVG groups as `pareto_svg`). Either axis is log scale when its values span
    more than 20x. Returns None when fewer than 2 results have both a file size and a p90.
    """
    picked = [
        (r, label, p90, r.file_size_bytes)
        for r, label in zip(results, variant_labels(results), strict=True)
        if r.file_size_bytes is not None and (p90 := _p90(r)) is not None
    ]
    if len(picked) < 2:
        return None
    p90s = [float(p90) for _, _, p90, _ in picked]
    unit, scale = _time_unit(p90s)
    sizes = [float(size) for _, _, _, size in picked]
    size_unit, size_scale = _bytes_unit(sizes)
    xs = [v * scale for v in p90s]
    ys = [v / size_scale for v in sizes]
    labels = [
        label + ("*" if _estimated(r, "latency_s", "file_size_bytes") else "")
        for r, label, _, _ in picked
    ]
    # Smaller is better on both axes: negate the size to make it pareto_front's "benefit".
    front = pareto_front([(x, -y) for x, y in zip(xs, ys, strict=True)])
    areas = [_PLAIN_AREA] * len(xs)
    with matplotlib.rc_context(_RC):
        fig, ax = _trade_off_axes(xs, ys, front, areas)
        # Fastest to smallest: down to the next point's size, then right along the x axis.
        _step_line(ax, xs, ys, front, "pre")
        log_x = min(xs) > 0 and max(xs) / min(xs) > _LOG_SPREAD
        if log_x:
            _log_x(ax)
        log_y = min(ys) > 0 and max(ys) / min(ys) > _LOG_SPREAD
        if log_y:
            _log_y(ax)
        ax.set_xlabel(f"p90 latency ({unit}{', log scale' if log_x else ''}), lower is better")
        ax.set_ylabel(f"file size ({size_unit}{', log scale' if log_y else ''}), lower is better")
        _label_points(ax, xs, ys, front, areas, labels)
        _legend(fig, _kind_handles(ax), None)
        if any(label.endswith("*") for label in labels):
            ax.set_title(ESTIMATED_NOTE, loc="right", fontsize="small")
        return _svg(fig)
