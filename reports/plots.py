"""Latency distribution plots as self-contained, byte-for-byte reproducible SVG."""

from __future__ import annotations

import io
from typing import Any

import matplotlib
import numpy as np

# The report is rendered on headless hosts and in CI; never let matplotlib pick a GUI backend.
matplotlib.use("Agg")

from matplotlib.figure import Figure  # noqa: E402  (must follow the backend choice)
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402

from reports.tables import runtime_label  # noqa: E402

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


def _label(result: dict[str, Any]) -> str:
    star = "*" if "latency_s" in (result.get("estimated") or []) else ""
    return f"{result.get('variant')} ({runtime_label(result)}){star}"


def latency_distribution_svg(results: list[dict[str, Any]]) -> str | None:
    """Horizontal box plot (µs/ms/s) per variant+runtime from raw `samples_s`, for one device.

    Whiskers span p1..p99 and outliers are not drawn: thousands of flier markers would bloat
    the SVG without telling more than the p99 column. Returns None when nothing has samples.
    """
    plotted = [r for r in results if r.get("samples_s")]
    if not plotted:
        return None
    # Top-to-bottom in table order: boxplot positions count upwards, so reverse.
    plotted.reverse()
    # One unit for the whole axis, picked so that typical values read as 1..1000.
    typical = float(np.median([np.median(r["samples_s"]) for r in plotted]))
    unit, scale = next(
        ((u, f) for u, f in (("µs", 1e6), ("ms", 1e3)) if typical * f < 1000), ("s", 1.0)
    )
    samples = [np.asarray(r["samples_s"], dtype=float) * scale for r in plotted]
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
            ax.set_xscale("log")
            ax.set_xlabel(f"latency ({unit}, log scale)")
            # Plain numbers: the default log labels are TeX ("$10^{1}$"), and math is off.
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            # 1-2-5 labels: one label per decade is too sparse to read values off.
            ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.grid(axis="x", which="both", alpha=0.3)
        if any(label.endswith("*") for label in labels):
            ax.set_title("* estimated (no sensor / emulation)", loc="right", fontsize="small")
        buf = io.StringIO()
        # Date=None drops the timestamp matplotlib would otherwise embed.
        fig.savefig(buf, format="svg", metadata={"Date": None})
    return buf.getvalue()
