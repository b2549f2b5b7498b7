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
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402

from reports.tables import (  # noqa: E402
    ESTIMATED_NOTE,
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


def latency_distribution_svg(results: list[JobResult]) -> str | None:
    """Horizontal box plot (µs/ms/s) per variant+runtime from raw `samples_s`, for one device.

    Whiskers span p1..p99 and outliers are not drawn: thousands of flier markers would bloat
    the SVG without telling more than the p99 column. Returns None when nothing has samples.
    """
    plotted = [r for r in results if r.samples_s]
    if not plotted:
        return None
    # Top-to-bottom in table order: boxplot positions count upwards, so reverse.
    plotted.reverse()
    # One unit for the whole axis, picked so that typical values read as 1..1000.
    unit, scale = _time_unit([float(np.median(r.samples_s)) for r in plotted])
    samples = [np.asarray(r.samples_s, dtype=float) * scale for r in plotted]
    labels = [_label(r) for r in plotted]

    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(10.0, 1.3 + 0.45 * len(plotted)), layout="constrained")
        ax = fig.add_subplot()
        ax.boxplot(
            samples,
            **_HORIZONTAL,
            whis=(1, 99),
            showfliers=False,
            widths=0.6,
            patch_artist=True,
            boxprops={"facecolor": "#cfe0f5", "edgecolor": "#1d2330"},
            medianprops={"color": "#c2410c", "linewidth": 1.5},
        )
        ax.set_yticks(range(1, len(labels) + 1), labels=labels)
        ax.set_xlabel(f"latency ({unit})")
        # Decide on the drawn range (p1..p99), not on single outliers.
        lowest = min(float(np.percentile(s, 1)) for s in samples)
        highest = max(float(np.percentile(s, 99)) for s in samples)
        if lowest > 0 and highest / lowest > _LOG_SPREAD:
            # Variants an order of magnitude apart would squash the fast ones into a line.
            _log_x(ax)
            ax.set_xlabel(f"latency ({unit}, log scale)")
        ax.grid(axis="x", which="both", alpha=0.3)
        if any(label.endswith("*") for label in labels):
            ax.set_title(ESTIMATED_NOTE, loc="right", fontsize="small")
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
    fig = Figure(figsize=(10.0, 5.4), layout="constrained")
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
        loc="outside right upper",
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
