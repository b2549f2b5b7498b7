"""Summary tables (plain text and rich), per-device highlights, and the value formatters the
HTML report and the plots reuse."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable, Sequence
from typing import Any

from rich.table import Table
from rich.text import Text

from reports.quality import run_warnings
from runners.records import DeviceInfo, JobResult, LatencyStats, PublishedFigures, RunReport

ESTIMATED_NOTE = "* estimated (no sensor / emulation)"
ACCURACY_NOT_MEANINGFUL_NOTE = "accuracy is not meaningful for this model (random weights)"
# Joins technique labels / recipe steps into a chain.
CHAIN_SEPARATOR = " → "
# File size column: the zstd size is shown when it is below this fraction of the file size.
ZSTD_SHOWN_BELOW = 0.9

# (row key, header) in display order: text, rich and HTML tables.
COLUMNS: list[tuple[str, str]] = [
    ("variant", "Variant"),
    ("technique", "Technique"),
    ("runtime", "Runtime"),
    ("size", "File size"),
    ("params", "Params / non-zeros"),
    ("macs", "MACs"),
    ("accuracy", "Accuracy (retention)"),
    ("latency", "Latency p50 / p90"),
    ("peak_mem", "Peak memory"),
    ("energy", "Energy / inference (battery impact)"),
    ("n", "n"),
]
# The HTML table shows p99 right after the p50 / p90 column, and EXTRA_COLUMNS at the end.
P99_COLUMN: tuple[str, str] = ("p99", "p99")
EXTRA_COLUMNS: list[tuple[str, str]] = [("init", "Init"), ("first_inference", "First inference")]
HTML_COLUMNS: list[tuple[str, str]] = [
    *COLUMNS[: COLUMNS.index(("latency", "Latency p50 / p90")) + 1],
    P99_COLUMN,
    *COLUMNS[COLUMNS.index(("latency", "Latency p50 / p90")) + 1 :],
    *EXTRA_COLUMNS,
]
# Columns that stay readable when a job failed; the failure message replaces the rest.
LABEL_KEYS = ("variant", "technique", "runtime")

# Result field named in `estimated` -> the columns whose figures come from it.
_FIELD_COLUMNS: dict[str, tuple[str, ...]] = {
    "file_size_bytes": ("size",),
    "zstd_size_bytes": ("size",),
    "params": ("params",),
    "nonzero_params": ("params",),
    "macs": ("macs",),
    "accuracy": ("accuracy",),
    "accuracy_retention": ("accuracy",),
    "latency_s": ("latency", "p99"),
    "peak_rss_bytes": ("peak_mem",),
    "init_s": ("init",),
    "first_inference_s": ("first_inference",),
    "energy_per_inference_j": ("energy",),
    # The HTML table shows the mean power below the energy figure.
    "mean_power_w": ("mean_power",),
}
# Bracketed secondary figures that can be estimated on their own: column -> the key in a
# row's `estimated` that marks the bracketed figure (the column key marks the main one).
SECONDARY_ESTIMATED: dict[str, str] = {"energy": "battery_impact"}
BATTERY_IMPACT_NOTE = (
    "energy (n%): battery impact, the energy per inference as a share of the baseline's on "
    "this device"
)

# Fields describing the power measurement itself (shown in the per-device power note).
POWER_SETUP_FIELDS = ("power_rail", "power_sample_rate_hz", "idle_power_w")

# Width the text summary aims at (the table itself may exceed it with long names).
TEXT_WIDTH = 160
# Failure messages can be whole tracebacks; the text table keeps them on one short line.
_TEXT_MESSAGE_MAX = 100
# The text table wraps the Technique column (at " → " where possible) to stay ~160 wide.
_TEXT_TECHNIQUE_WIDTH = 28
# Text-table columns whose bracketed secondary figure goes on a line of its own.
_TEXT_SPLIT_KEYS = ("size", "accuracy", "energy")
# Text-table headers on two lines where the full header is wider than its figures.
_TEXT_HEADERS: dict[str, tuple[str, str]] = {
    "params": ("Params /", "non-zeros"),
    "accuracy": ("Accuracy", "(retention)"),
    "latency": ("Latency", "p50 / p90"),
    "peak_mem": ("Peak", "memory"),
    "energy": ("Energy /", "inference"),
}


def fmt_bytes(n: float | None) -> str:
    """Binary units with one decimal: 40421 -> "39.5 KiB"."""
    if n is None:
        return "-"
    if abs(n) < 1024:
        return f"{int(n)} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        # Check the rounded text so 1023.96 KiB becomes "1.0 MiB", not "1024.0 KiB".
        if abs(round(value, 1)) < 1024 or unit == "TiB":
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


def _three_sig(value: float) -> str:
    # Round to 3 significant digits first so 99.96 gives "100", not "100.0"; then print with
    # fixed decimals to keep trailing zeros ("1.20"), which the "g" format would drop.
    rounded = float(f"{value:.3g}")
    decimals = max(0, 2 - math.floor(math.log10(abs(rounded))))
    return f"{rounded:.{decimals}f}"


def _missing(value: float | None) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _fmt_si_small(value: float | None, unit: str) -> str:
    """Three significant digits with n/µ/m prefixes, in the largest that keeps it below 1000."""
    if _missing(value):
        return "-"
    assert value is not None
    if value == 0:
        return f"0 {unit}"
    for scale, prefix in ((1e-9, "n"), (1e-6, "µ"), (1e-3, "m"), (1.0, "")):
        text = _three_sig(value / scale)
        if abs(float(text)) < 1000 or prefix == "":
            return f"{text} {prefix}{unit}"
    raise AssertionError("unreachable")


def fmt_seconds(s: float | None) -> str:
    """Three significant digits in the largest unit that keeps the number below 1000."""
    return _fmt_si_small(s, "s")


def fmt_joules(j: float | None) -> str:
    """Energy: 0.0123 -> "12.3 mJ"."""
    return _fmt_si_small(j, "J")


def fmt_watts(w: float | None) -> str:
    """Power: 2.3104 -> "2.31 W", 0.512 -> "512 mW"."""
    return _fmt_si_small(w, "W")


def fmt_hz(hz: float | None) -> str:
    """Sample rate: 1000 -> "1 kHz", 50 -> "50 Hz", 1250 -> "1.25 kHz"."""
    if _missing(hz):
        return "-"
    assert hz is not None
    for scale, prefix in ((1e6, "M"), (1e3, "k"), (1.0, "")):
        if abs(hz) >= scale or prefix == "":
            return f"{hz / scale:.3g} {prefix}Hz"
    raise AssertionError("unreachable")


def fmt_count(n: float | None) -> str:
    """Parameter / MAC counts: 38600 -> "38.6k", 1234567 -> "1.23M", 512 -> "512"."""
    if _missing(n):
        return "-"
    assert n is not None
    if abs(n) < 1000:
        return str(int(n)) if float(n).is_integer() else _three_sig(n)
    for scale, suffix in ((1e3, "k"), (1e6, "M"), (1e9, "G"), (1e12, "T")):
        text = _three_sig(n / scale)
        if abs(float(text)) < 1000 or suffix == "T":
            return f"{text}{suffix}"
    raise AssertionError("unreachable")


def fmt_pct(fraction: float | None) -> str:
    """0.955 -> "95.5%"."""
    return "-" if fraction is None else f"{fraction * 100:.1f}%"


def fmt_share(fraction: float | None) -> str:
    """A share in whole percent, as a case-study table gives it: 0.55 -> "55%"; a share
    below 0.5% is "<1%" so that it never reads as nothing."""
    if _missing(fraction):
        return "-"
    assert fraction is not None
    if 0 < fraction < 0.005:
        return "<1%"
    return f"{fraction * 100:.0f}%"


def fmt_pp(delta_fraction: float) -> str:
    """Accuracy difference in percentage points: -0.003 -> "-0.3 pp" (never "-0.0")."""
    value = round(delta_fraction * 100, 1)
    return f"{value + 0.0:+.1f} pp"  # + 0.0 turns -0.0 into 0.0


def one_line(text: str) -> str:
    """Collapse whitespace and newlines so an error message cannot break a table row."""
    return " ".join(str(text).split())


def group_by_device(data: RunReport) -> list[tuple[DeviceInfo, list[JobResult]]]:
    """Pair each device with its results, in the order of ``data.devices``.

    Results naming a device that is missing from ``data.devices`` still get a group (with an
    empty device description) so nothing measured is silently dropped from a report.
    """
    devices = list(data.devices)
    known = {d.name for d in devices}
    for r in data.results:
        if r.device not in known:
            known.add(r.device)
            devices.append(DeviceInfo(name=r.device))
    return [(d, [r for r in data.results if r.device == d.name]) for d in devices]


def runtime_label(result: JobResult) -> str:
    """The Runtime column: `setting` ("onnxruntime t=1"), else built from runtime/threads."""
    if result.setting:
        label = result.setting
    else:
        runtime = result.runtime or "-"
        label = runtime if result.threads is None else f"{runtime} t={result.threads}"
    # Emulated figures are instruction counts at a board clock, not a board's timing.
    return f"{label} (emulated)" if result.emulated else label


def variant_labels(results: Sequence[JobResult]) -> list[str]:
    """Name per result for highlights and plot labels: the variant, plus " (runtime)" when
    that variant appears with several runtimes among `results`."""
    names = [r.variant or "-" for r in results]
    return [
        f"{name} ({runtime_label(r)})" if names.count(name) > 1 else name
        for name, r in zip(names, results, strict=True)
    ]


def chain_text(*chains: Sequence[Any] | None) -> str:
    """The first non-empty chain of steps joined with " → " ("-" when all are empty)."""
    for chain in chains:
        steps = [one_line(str(s)) for s in chain or [] if s is not None and str(s)]
        if steps:
            return CHAIN_SEPARATOR.join(steps)
    return "-"


def technique_text(result: JobResult) -> str:
    """The Technique column: human `techniques` joined with " → ", else the `recipe` chain."""
    return chain_text(result.techniques, result.recipe)


def is_baseline(result: JobResult, baseline_variant: str | None = None) -> bool:
    """The result's own `baseline` flag, or whether its variant is the run's baseline_variant
    (``report_data`` sets both from the same suite; hand-built records may name it once)."""
    return result.baseline or (baseline_variant is not None and result.variant == baseline_variant)


def _paired_baseline(
    result: JobResult,
    device_results: Sequence[JobResult],
    baseline_variant: str | None,
    usable: Callable[[JobResult], bool],
) -> JobResult | None:
    """The first finished, `usable` baseline among `device_results` that ran with the same
    runtime setting as `result`, else the first one there. None when there is none, or when
    `result` is itself a baseline."""
    if is_baseline(result, baseline_variant):
        return None
    candidates = [
        r
        for r in device_results
        if is_baseline(r, baseline_variant) and r.status == "done" and usable(r)
    ]
    same_setting = [r for r in candidates if runtime_label(r) == runtime_label(result)]
    return (same_setting or candidates or [None])[0]


def baseline_for(
    result: JobResult,
    device_results: Sequence[JobResult],
    baseline_variant: str | None = None,
) -> JobResult | None:
    """The finished baseline result with an accuracy that `result` compares against (same
    device; the same runtime setting when the baseline ran with several). None when there is
    none, or when `result` is itself a baseline."""
    return _paired_baseline(
        result, device_results, baseline_variant, lambda r: r.accuracy is not None
    )


def energy_baseline_for(
    result: JobResult,
    device_results: Sequence[JobResult],
    baseline_variant: str | None = None,
) -> JobResult | None:
    """The finished baseline result whose energy `result`'s battery impact is measured
    against: chosen as `baseline_for` does, but by its row, not by whether it has the figure.
    Energy depends on the runtime setting, so a same-setting baseline without an energy gives
    an unknown impact rather than a ratio against another setting."""
    return _paired_baseline(result, device_results, baseline_variant, lambda r: True)


def _retention(
    result: JobResult, device_results: Sequence[JobResult], baseline_variant: str | None
) -> float | None:
    if result.accuracy_retention is not None:
        return float(result.accuracy_retention)
    base = baseline_for(result, device_results, baseline_variant)
    if base is None or result.accuracy is None or not base.accuracy:
        return None
    return float(result.accuracy) / float(base.accuracy)


def _battery_impact(
    result: JobResult, device_results: Sequence[JobResult], baseline_variant: str | None
) -> tuple[str | None, bool]:
    """(share, estimated): `result`'s energy per inference as a share of its baseline's
    ("55%"; "100%" for a baseline with an energy; "-" when either energy is unknown), or None
    when the device has no finished baseline to compare with. Estimated when either energy is
    (a baseline against itself is 100% by definition, never estimated)."""
    energy = result.energy_per_inference_j
    if is_baseline(result, baseline_variant):
        return ("-" if _missing(energy) else "100%"), False
    base = energy_baseline_for(result, device_results, baseline_variant)
    if base is None:
        return None, False
    reference = base.energy_per_inference_j
    # A zero (or missing) reference has no meaningful share: "-", never 0 or infinity.
    if _missing(energy) or _missing(reference) or reference is None or reference <= 0:
        return "-", False
    assert energy is not None
    field = "energy_per_inference_j"
    estimated = field in result.estimated or field in base.estimated
    return fmt_share(float(energy) / float(reference)), estimated


def _energy_text(result: JobResult, baseline: bool, impact: str | None) -> str:
    """Energy per inference with its battery impact in brackets, as Accuracy shows its
    retention: "22.4 µJ (71%)", "31.5 µJ (baseline)", "22.4 µJ (-)" when the baseline's
    energy is unknown; no bracket without an energy or without a baseline to compare with."""
    text = fmt_joules(result.energy_per_inference_j)
    if text == "-" or impact is None:
        return text
    return f"{text} (baseline)" if baseline else f"{text} ({impact})"


def _size_text(result: JobResult) -> str:
    size, zstd = result.file_size_bytes, result.zstd_size_bytes
    text = fmt_bytes(size)
    if size is not None and zstd is not None and zstd < ZSTD_SHOWN_BELOW * size:
        text += f" (zstd {fmt_bytes(zstd)})"
    return text


def _params_text(result: JobResult) -> str:
    params, nonzero = result.params, result.nonzero_params
    if params is None and nonzero is None:
        return "-"
    if nonzero is None or nonzero == params:
        return fmt_count(params)
    return f"{fmt_count(params)} / {fmt_count(nonzero)}"


def _row(
    result: JobResult, device_results: Sequence[JobResult], baseline_variant: str | None
) -> dict[str, Any]:
    latency = result.latency_s
    status = result.status or "pending"
    if status == "failed":
        message: str | None = "FAILED: " + one_line(result.error or "unknown error")
    elif result.not_deployable:
        message = "NOT DEPLOYABLE: " + one_line(result.not_deployable)
    elif status != "done":
        message = status.upper()
    else:
        message = None
    estimated = list(
        dict.fromkeys(col for field in result.estimated for col in _FIELD_COLUMNS.get(field, ()))
    )
    baseline = is_baseline(result, baseline_variant)
    meaningful = result.accuracy_meaningful
    if not meaningful:
        accuracy = "n/a"
    elif result.accuracy is None:
        accuracy = "-"
    elif baseline:
        accuracy = f"{fmt_pct(result.accuracy)} (baseline)"
    else:
        retention = _retention(result, device_results, baseline_variant)
        accuracy = fmt_pct(result.accuracy)
        if retention is not None:
            accuracy += f" ({fmt_pct(retention)})"
    if not meaningful:
        estimated = [c for c in estimated if c != "accuracy"]
    impact, impact_estimated = _battery_impact(result, device_results, baseline_variant)
    if impact_estimated:
        estimated.append(SECONDARY_ESTIMATED["energy"])
    return {
        "device": result.device,
        "variant": one_line(result.variant or "-"),
        "technique": technique_text(result),
        "runtime": runtime_label(result),
        "status": status,
        "message": message,
        "baseline": baseline,
        "accuracy_meaningful": meaningful,
        "size": _size_text(result),
        "params": _params_text(result),
        "macs": fmt_count(result.macs),
        "accuracy": accuracy,
        "accuracy_n": result.accuracy_n if meaningful else None,
        "latency": _latency_text(latency),
        "p99": fmt_seconds(latency.p99 if latency else None),
        "peak_mem": _memory_text(result),
        "energy": _energy_text(result, baseline, impact),
        "battery_impact": impact or "-",
        "n": str(latency.n) if latency and latency.n is not None else "-",
        "init": fmt_seconds(result.init_s),
        "first_inference": fmt_seconds(result.first_inference_s),
        "mean_power": fmt_watts(result.mean_power_w),
        "estimated": estimated,
    }


def _memory_text(result: JobResult) -> str:
    """Peak RSS on an OS; on a microcontroller the image's static RAM and flash against
    the board's limits ("RAM 31.2 KiB / 4.0 MiB, flash 60.1 KiB / 4.0 MiB")."""
    if result.static_ram_bytes is None and result.flash_bytes is None:
        return fmt_bytes(result.peak_rss_bytes)

    def against(value: float | None, limit: float | None) -> str:
        return fmt_bytes(value) + (f" / {fmt_bytes(limit)}" if limit else "")

    return (
        f"RAM {against(result.static_ram_bytes, result.ram_limit_bytes)}, "
        f"flash {against(result.flash_bytes, result.flash_limit_bytes)}"
    )


def _latency_text(latency: LatencyStats | None) -> str:
    """p50 / p90; a vendor tool's own figures say whose they are, and a tool that
    printed no median shows its mean as a mean (it is not a median)."""
    if latency is None:
        return "-"
    own = latency.source != "edgebench"
    if latency.p50 is None and latency.p90 is None:
        if latency.mean is None:
            return "-"
        return f"mean {fmt_seconds(latency.mean)} ({latency.source})"
    text = f"{fmt_seconds(latency.p50)} / {fmt_seconds(latency.p90)}"
    return f"{text} ({latency.source})" if own else text


def device_rows(data: RunReport) -> list[tuple[DeviceInfo, list[dict[str, Any]]]]:
    """(device, display rows) per device, in device order."""
    baseline_variant = data.run.baseline_variant
    return [
        (device, [_row(r, results, baseline_variant) for r in results])
        for device, results in group_by_device(data)
    ]


def summary_rows(data: RunReport) -> list[dict[str, Any]]:
    """One dict of display strings per result, grouped by device (device order of the run).

    Keys: device, variant, technique, runtime, status, message ("FAILED: ..." / "PENDING" or
    None), baseline (bool), accuracy_meaningful (bool), the column keys of HTML_COLUMNS
    (unmarked strings), mean_power ("6.21 W", shown under the energy in HTML),
    battery_impact (energy per inference as a share of the baseline's: "55%", "100%" for the
    baseline, "-" when unknown; the Energy column shows it in brackets), accuracy_n, and
    estimated (keys whose figure is estimated; renderers add the marker; "battery_impact"
    marks the bracketed share of the Energy column).
    """
    return [row for _, rows in device_rows(data) for row in rows]


def cell(row: dict[str, Any], key: str) -> str:
    """A cell's text with the estimated markers applied: after the main figure, and after a
    bracketed figure that is estimated on its own ("15.9 µJ* (50%)*")."""
    main, sep, rest = row[key].partition(" (") if key in _TEXT_SPLIT_KEYS else (row[key], "", "")
    star = "*" if key in row["estimated"] else ""
    return main + star + (sep + rest + _secondary_star(row, key) if sep else "")


def percentile_note(data: RunReport) -> str:
    tool = data.run.imported_tool
    if tool:
        return (
            f"imported from {one_line(tool)} logs: nearest-rank percentiles where raw "
            "samples were imported, otherwise the tool's own statistics as it printed them"
        )
    reps = data.run.repetitions
    return f"percentiles: nearest-rank; latency = median across {reps or '?'} repetitions"


def _power_setup(result: JobResult) -> list[tuple[str, Any, str]]:
    """(field, value, text) of the power-setup figures the result has, in note order."""
    out = []
    if result.power_rail is not None:
        out.append(("power_rail", result.power_rail, f"rail {one_line(result.power_rail)}"))
    if result.power_sample_rate_hz is not None:
        rate = result.power_sample_rate_hz
        out.append(("power_sample_rate_hz", rate, f"sampled at {fmt_hz(rate)}"))
    if result.idle_power_w is not None:
        out.append(("idle_power_w", result.idle_power_w, f"idle {fmt_watts(result.idle_power_w)}"))
    return out


def power_note(results: Sequence[JobResult]) -> str | None:
    """How power was measured on the device, e.g. "power: rail RAPL package-0 sampled at
    1 kHz, idle 4.15 W" (one entry per distinct setup), or None when nothing says."""
    setups = []
    for r in results:
        parts = [text + ("*" if field in r.estimated else "") for field, _, text in _power_setup(r)]
        if parts:
            setups.append(", ".join(parts).replace(", sampled", " sampled"))
    setups = list(dict.fromkeys(setups))
    return "power: " + "; ".join(setups) if setups else None


def _power_setup_estimated(results: Sequence[JobResult]) -> bool:
    return any(field in r.estimated for r in results for field, _, _ in _power_setup(r))


def any_estimated(
    rows: Sequence[dict[str, Any]],
    results: Sequence[JobResult],
    keys: Sequence[str] | None = None,
) -> bool:
    """Whether the device's table (its columns `keys`, default: all) or power note shows an
    estimated figure, so needs the footnote."""
    return any(
        key in (keys if keys is not None else [key])
        for r in rows
        if r["message"] is None
        for key in r["estimated"]
    ) or _power_setup_estimated(results)


def device_title(device: DeviceInfo) -> str:
    # facts are what the capability probe found: free-form, any of them may be missing.
    facts = device.facts
    name = device.name or "-"
    parts = [
        f"{facts['os']} {facts.get('arch', '')}".strip() if facts.get("os") else facts.get("arch"),
        facts.get("cpu_model"),
        f"{facts['cpu_cores']} cores" if facts.get("cpu_cores") is not None else None,
    ]
    described = ", ".join(one_line(str(p)) for p in parts if p)
    head = f"Device {name} ({device.transport})" if device.transport else f"Device {name}"
    return f"{head}: {described}" if described else head


# --- highlights --------------------------------------------------------------------------


def _pick(
    results: Sequence[JobResult | None],
    labels: Sequence[str],
    value_of: Callable[[JobResult], float | None],
    fmt: Callable[[float], str],
    field: str,
    *,
    lowest: bool,
) -> dict[str, Any] | None:
    best: tuple[int, float] | None = None
    for i, r in enumerate(results):
        value = value_of(r) if r is not None else None
        if value is None:
            continue
        # Strictly better only: ties go to the first in table order.
        if best is None or (value < best[1] if lowest else value > best[1]):
            best = (i, float(value))
    if best is None:
        return None
    i, value = best
    picked = results[i]
    estimated = picked is not None and field in picked.estimated
    return {"index": i, "variant": labels[i], "value": fmt(value), "estimated": estimated}


def device_highlights(
    results: Sequence[JobResult], baseline_variant: str | None = None
) -> dict[str, Any]:
    """What a team picking a variant for this device looks at first (one device's results).

    Returns {"smallest", "fastest", "most_accurate", "lowest_energy"}: each None or
    {"index": position in `results`, "variant": display name, "value": display text,
    "estimated": bool (renderers add the "*")}; "most_accurate" is None when accuracy is not
    meaningful. "baseline": the baseline's display name or None. "accuracy_cost": one
    {"index", "variant", "value": "-0.3 pp", "delta_pp": -0.3, "estimated"} per finished
    non-baseline variant with an accuracy, vs its baseline (same device, same runtime
    setting when the baseline ran with several). Only finished results count; ties go to
    the first in table order.
    """
    labels = variant_labels(results)
    # Positions stay those of `results`; unfinished jobs are None and never win.
    done = [r if r.status == "done" else None for r in results]

    def p90(r: JobResult) -> float | None:
        return r.latency_s.p90 if r.latency_s else None

    def accuracy(r: JobResult) -> float | None:
        return r.accuracy if r.accuracy_meaningful else None

    baseline_index = next(
        (
            i
            for i, r in enumerate(results)
            if is_baseline(r, baseline_variant) and r.status == "done"
        ),
        None,
    )
    costs = []
    for i, r in enumerate(done):
        if r is None or is_baseline(r, baseline_variant):
            continue
        value = accuracy(r)
        base = baseline_for(r, results, baseline_variant)
        if value is None or base is None or not base.accuracy_meaningful:
            continue
        assert base.accuracy is not None  # baseline_for picks only baselines with one
        estimated = "accuracy" in r.estimated or "accuracy" in base.estimated
        delta = float(value) - float(base.accuracy)
        costs.append(
            {
                "index": i,
                "variant": labels[i],
                "value": fmt_pp(delta),
                "delta_pp": round(delta * 100, 1) + 0.0,
                "estimated": estimated,
            }
        )
    return {
        "smallest": _pick(
            done,
            labels,
            lambda r: r.file_size_bytes,
            fmt_bytes,
            "file_size_bytes",
            lowest=True,
        ),
        "fastest": _pick(done, labels, p90, fmt_seconds, "latency_s", lowest=True),
        "most_accurate": _pick(done, labels, accuracy, fmt_pct, "accuracy", lowest=False),
        "lowest_energy": _pick(
            done,
            labels,
            lambda r: r.energy_per_inference_j,
            fmt_joules,
            "energy_per_inference_j",
            lowest=True,
        ),
        "baseline": labels[baseline_index] if baseline_index is not None else None,
        "accuracy_cost": costs,
    }


HIGHLIGHT_TITLES: list[tuple[str, str]] = [
    ("smallest", "smallest file"),
    ("fastest", "fastest p90"),
    ("most_accurate", "most accurate"),
    ("lowest_energy", "lowest energy"),
]


def _wrap_items(prefix: str, items: Sequence[str], sep: str, width: int) -> list[str]:
    """prefix + items joined by sep, wrapped between items; continuation lines indented."""
    lines: list[str] = []
    current = prefix
    for i, item in enumerate(items):
        piece = item + (sep.rstrip() if i < len(items) - 1 else "")
        if current.strip() and len(current) + len(piece) > width and current != prefix:
            lines.append(current.rstrip())
            current = " " * len(prefix)
        current += piece + " " * (len(sep) - len(sep.rstrip()))
    lines.append(current.rstrip())
    return lines


def highlights_lines(highlights: dict[str, Any], width: int = TEXT_WIDTH) -> list[str]:
    """The highlights as text lines wrapped at `width` (none when nothing finished)."""

    def star(h: dict[str, Any]) -> str:
        return h["value"] + ("*" if h["estimated"] else "")

    picks = [
        f"{title} {h['variant']} ({star(h)})"
        for key, title in HIGHLIGHT_TITLES
        if (h := highlights.get(key))
    ]
    lines = _wrap_items("Highlights: ", picks, " | ", width) if picks else []
    if highlights.get("accuracy_cost"):
        costs = [f"{c['variant']}: {star(c)}" for c in highlights["accuracy_cost"]]
        prefix = f"Accuracy vs baseline {highlights['baseline']}: "
        lines += _wrap_items(prefix, costs, ", ", width)
    return lines


# --- text table --------------------------------------------------------------------------


def _wrap_chain(text: str, width: int) -> list[str]:
    """Wrap a " → " chain after its arrows where possible, else between words."""
    steps = text.split(CHAIN_SEPARATOR)
    lines: list[str] = []
    current = ""
    for i, step in enumerate(steps):
        piece = step + (CHAIN_SEPARATOR.rstrip() if i < len(steps) - 1 else "")
        candidate = f"{current} {piece}" if current else piece
        if len(candidate) <= width:
            current = candidate
            continue
        if current:
            lines.append(current)
        wrapped = textwrap.wrap(piece, width) or [""]
        lines += wrapped[:-1]
        current = wrapped[-1]
    lines.append(current)
    return lines


def _secondary_star(row: dict[str, Any], key: str) -> str:
    """The marker of a column's bracketed secondary figure, when it has one of its own."""
    own = SECONDARY_ESTIMATED.get(key)
    return "*" if own is not None and own in row["estimated"] else ""


def shows_battery_impact(rows: Sequence[dict[str, Any]]) -> bool:
    """Whether a device's table shows a battery impact in brackets (so needs its note)."""
    return any(r["message"] is None and " (" in r["energy"] for r in rows)


def _text_table(rows: list[dict[str, Any]]) -> list[str]:
    """Rows may take several lines: the Technique chain wraps, and the bracketed secondary
    figure of File size, Accuracy and Energy ("(zstd 60.1 KiB)", "(99.7%)", "(55%)") goes
    below the main one, which keeps six variants within ~160 columns."""
    ok = [r for r in rows if r["message"] is None]
    owners = {own: key for key, own in SECONDARY_ESTIMATED.items()}
    # Columns with a marker anywhere (on the main or the bracketed figure).
    marked = {owners.get(key, key) for r in ok for key in r["estimated"]}
    headers = {key: _TEXT_HEADERS.get(key, ("", header)) for key, header in COLUMNS}

    def cell_lines(row: dict[str, Any], key: str) -> list[str]:
        if key == "technique":
            return _wrap_chain(row[key], _TEXT_TECHNIQUE_WIDTH)
        if key in LABEL_KEYS:
            return [row[key]]
        main, sep, rest = (
            row[key].partition(" (") if key in _TEXT_SPLIT_KEYS else (row[key], "", "")
        )
        lines = [main, "(" + rest] if sep else [main]
        # The marker follows the main figure; unmarked cells in a column with markers get a
        # blank in its place, so the right-aligned digits still line up.
        pad = " " if key in marked else ""
        star = "*" if key in row["estimated"] else pad
        more_star = _secondary_star(row, key) or pad
        return [lines[0] + star] + [more + more_star for more in lines[1:]]

    cells = {
        id(r): {k: cell_lines(r, k) for k, _ in COLUMNS if r["message"] is None or k in LABEL_KEYS}
        for r in rows
    }
    widths = {
        key: max(
            [len(h) for h in headers[key]]
            + [len(text) for r in rows for text in cells[id(r)].get(key, [])]
        )
        for key, _ in COLUMNS
    }

    def line(texts: dict[str, str]) -> str:
        # Labels left-aligned, figures right-aligned so digits line up.
        parts = [
            texts.get(k, "").ljust(widths[k])
            if k in LABEL_KEYS
            else texts.get(k, "").rjust(widths[k])
            for k, _ in COLUMNS
        ]
        return "  ".join(parts).rstrip()

    out = []
    if any(top for top, _ in headers.values()):
        out.append(line({k: top for k, (top, _) in headers.items()}))
    out += [
        line({k: bottom for k, (_, bottom) in headers.items()}),
        line({k: "-" * widths[k] for k in widths}),
    ]
    for r in rows:
        row_cells = cells[id(r)]
        height = max(len(lines) for lines in row_cells.values())
        texts = [
            {k: lines[i] for k, lines in row_cells.items() if i < len(lines)} for i in range(height)
        ]
        if r["message"] is not None:
            message = r["message"]
            if len(message) > _TEXT_MESSAGE_MAX:
                message = message[: _TEXT_MESSAGE_MAX - 3] + "..."
            labels = "  ".join(texts[0].get(k, "").ljust(widths[k]) for k in LABEL_KEYS)
            out.append(f"{labels}  {message}")
            texts = texts[1:]
        out += [line(t) for t in texts]
    return out


def _device_notes(
    data: RunReport, rows: Sequence[dict[str, Any]], results: Sequence[JobResult]
) -> list[str]:
    notes = []
    if any_estimated(rows, results, [k for k, _ in COLUMNS] + list(SECONDARY_ESTIMATED.values())):
        notes.append(ESTIMATED_NOTE)
    if any(not r["accuracy_meaningful"] for r in rows):
        notes.append(ACCURACY_NOT_MEANINGFUL_NOTE)
    if shows_battery_impact(rows):
        # The text header ("Energy / inference") has no room to say what the bracket is.
        notes.append(BATTERY_IMPACT_NOTE)
    if (power := power_note(results)) is not None:
        notes.append(power)
    if (io := io_note(results)) is not None:
        notes.append(io)
    notes.append(percentile_note(data))
    return notes


def io_note(results: Sequence[JobResult]) -> str | None:
    """The with-I/O p50 beside the invoke-only headline, for the jobs that have one
    (the exact regions are in the export's timed_region / io_region columns)."""
    parts = []
    for r in results:
        p50 = r.latency_s.p50 if r.latency_s else None
        if r.latency_io_p50_s is None or not p50:
            continue
        change = r.latency_io_p50_s / p50 - 1
        parts.append(f"{one_line(r.variant)} {fmt_seconds(r.latency_io_p50_s)} ({change:+.0%})")
    if not parts:
        return None
    return (
        "latency times the inference alone (inputs set once, as benchmark_model and "
        "onnxruntime_perf_test time it); p50 with inputs set and outputs copied every "
        "run: " + ", ".join(parts)
    )


def format_summary(data: RunReport) -> str:
    """Fixed-width plain-text summary: a header line, then per device its highlights and
    table."""
    run = data.run
    out = [f"run {run.id or '-'}  suite {run.suite or '-'}  status {run.status or '-'}"]
    out += [f"warning: {w}" for w in run_warnings(data)]
    baseline_variant = run.baseline_variant
    for (device, results), (_, rows) in zip(group_by_device(data), device_rows(data), strict=True):
        out += ["", device_title(device)]
        if not rows:
            out.append("(no results)")
            continue
        out += highlights_lines(device_highlights(results, baseline_variant))
        out += _text_table(rows)
        out += _device_notes(data, rows, results)
    return "\n".join(out) + "\n"


def rich_summary(data: RunReport) -> list[Table]:
    """One rich Table per device for the CLI.

    Every cell is a Text object, never a str: rich would parse "[...]" in a variant name or
    error message as console markup (and raise on e.g. "[/x]").
    """
    baseline_variant = data.run.baseline_variant
    tables = []
    for (device, results), (_, rows) in zip(group_by_device(data), device_rows(data), strict=True):
        notes = highlights_lines(device_highlights(results, baseline_variant)) if rows else []
        notes += _device_notes(data, rows, results)
        table = Table(
            title=Text(device_title(device)),
            caption=Text("\n".join(notes)),
            caption_justify="left",
        )
        cells = [_rich_cells(r) for r in rows]
        for key, header in COLUMNS:
            # The Technique chain takes the width left over; on a narrow terminal figures
            # wrap rather than being cut off.
            table.add_column(
                Text("\n".join(_TEXT_HEADERS.get(key, ("", header)))),
                justify="left" if key in LABEL_KEYS else "right",
                overflow="fold",
                ratio=1 if key == "technique" else None,
                min_width={"variant": 10, "technique": 12, "runtime": 8}.get(key),
            )
        for row_cells in cells:
            table.add_row(*row_cells)
        tables.append(table)
    return tables


def _rich_cells(r: dict[str, Any]) -> list[Text]:
    labels = [Text(r[k]) for k in LABEL_KEYS]
    if r["message"] is not None:
        style = "red" if r["status"] == "failed" else "yellow"
        blanks = [Text("")] * (len(COLUMNS) - len(LABEL_KEYS) - 1)
        return [*labels, Text(r["message"], style=style), *blanks]
    figures = []
    for k, _ in COLUMNS[len(LABEL_KEYS) :]:
        # As in the text table: "(zstd ...)" / "(99.7%)" / "(55%)" on a line of its own.
        main, sep, rest = r[k].partition(" (") if k in _TEXT_SPLIT_KEYS else (r[k], "", "")
        star = "*" if k in r["estimated"] else ""
        more = "\n(" + rest + _secondary_star(r, k) if sep else ""
        figures.append(Text(main + star + more))
    return [*labels, *figures]


# --- case-study table, published figures, variant x device matrix ------------------------

# (row key, header) of the compact per-device table in the form published compression case
# studies use. The technique cell also names the variant and its runtime.
CASE_STUDY_COLUMNS: list[tuple[str, str]] = [
    ("technique", "Technique"),
    ("model_size", "Model size (file / compressed)"),
    ("accuracy", "Accuracy (retention)"),
    ("latency", "Latency p50"),
    ("battery", "Battery impact"),
]
CASE_STUDY_NOTE = (
    "battery impact: energy per inference as a share of the baseline variant's on this "
    "device (same runtime setting), from measured energy; compressed: zstd size of the file"
)
# Case-study cell -> the result fields whose estimate marks it.
_CASE_STUDY_FIELDS: dict[str, tuple[str, ...]] = {
    "model_size": ("file_size_bytes", "zstd_size_bytes"),
    "accuracy": ("accuracy", "accuracy_retention"),
    "latency": ("latency_s",),
}
# The error kind of a job whose runtime would not load the variant: the case-study table
# shows it as not deployable (the variant cannot run there), not as a broken job.
LOAD_FAILED_KIND = "load_failed"


def _case_study_message(result: JobResult) -> str | None:
    status = result.status or "pending"
    if result.not_deployable:
        return "not deployable: " + one_line(result.not_deployable)
    if status == "failed" and result.error_kind == LOAD_FAILED_KIND:
        return "not deployable: load failed: " + one_line(result.error or "unknown error")
    if status == "failed":
        return "failed: " + one_line(result.error or "unknown error")
    if status != "done":
        return status
    return None


def _model_size_text(result: JobResult) -> str:
    if result.file_size_bytes is None:
        return "-"
    if result.zstd_size_bytes is None:
        return fmt_bytes(result.file_size_bytes)
    return f"{fmt_bytes(result.file_size_bytes)} / {fmt_bytes(result.zstd_size_bytes)}"


def _case_accuracy_text(
    result: JobResult, device_results: Sequence[JobResult], baseline_variant: str | None
) -> str:
    if not result.accuracy_meaningful:
        return "not meaningful"
    if result.accuracy is None:
        return "-"
    if is_baseline(result, baseline_variant):
        return f"{fmt_pct(result.accuracy)} (baseline)"
    retention = _retention(result, device_results, baseline_variant)
    suffix = f" ({fmt_pct(retention)})" if retention is not None else ""
    return fmt_pct(result.accuracy) + suffix


def _p50_text(latency: LatencyStats | None) -> str:
    """The median; a vendor tool's figure says whose it is, a tool's mean says it is one."""
    if latency is None:
        return "-"
    if latency.p50 is None:
        return (
            "-" if latency.mean is None else f"mean {fmt_seconds(latency.mean)} ({latency.source})"
        )
    own = latency.source != "edgebench"
    return fmt_seconds(latency.p50) + (f" ({latency.source})" if own else "")


def case_study_rows(
    results: Sequence[JobResult], baseline_variant: str | None = None
) -> list[dict[str, Any]]:
    """One device's results as the case-study table shows them (CASE_STUDY_COLUMNS).

    Each row: variant, technique (the chain), runtime, baseline (bool), message ("not
    deployable: does not fit flash", "not deployable: load failed: ...", "failed: ...",
    "pending" or None), the column keys (unmarked strings), energy (the energy per
    inference the battery impact is the share of) and estimated (column keys whose
    figure is estimated; renderers add the "*")."""
    rows = []
    for r in results:
        baseline = is_baseline(r, baseline_variant)
        impact, impact_estimated = _battery_impact(r, results, baseline_variant)
        estimated = [
            key
            for key, fields in _CASE_STUDY_FIELDS.items()
            if any(f in r.estimated for f in fields)
            and not (key == "accuracy" and not r.accuracy_meaningful)
        ]
        if impact_estimated:
            estimated.append("battery")
        if "energy_per_inference_j" in r.estimated:
            estimated.append("energy")  # the figure below the share
        rows.append(
            {
                "variant": one_line(r.variant or "-"),
                "technique": technique_text(r),
                "runtime": runtime_label(r),
                "baseline": baseline,
                "status": r.status or "pending",
                "message": _case_study_message(r),
                "model_size": _model_size_text(r),
                "accuracy": _case_accuracy_text(r, results, baseline_variant),
                "latency": _p50_text(r.latency_s),
                "battery": impact or "-",
                "energy": fmt_joules(r.energy_per_inference_j),
                "estimated": estimated,
            }
        )
    return rows


def deployed_size(result: JobResult) -> int | None:
    """What storing or downloading the model costs: its zstd-compressed size where the
    build recorded one (a pruned model's zeros compress), else its file size."""
    return result.zstd_size_bytes if result.zstd_size_bytes is not None else result.file_size_bytes


def _ratio(value: float | None, reference: float | None) -> float | None:
    if _missing(value) or _missing(reference) or not reference or reference <= 0:
        return None
    assert value is not None
    return float(value) / float(reference)


def published_rows(
    results: Sequence[JobResult], baseline_variant: str | None = None
) -> list[dict[str, Any]] | None:
    """Measured ratios beside the published ones, for one device's results: size, p50
    latency and energy relative to the baseline variant (the "original"), and accuracy.
    None when no result has published figures (``JobResult.reference``).

    Each row: variant, runtime, baseline, message (as the case-study table), source, and
    per figure ("size", "latency", "battery", "accuracy") a dict {"measured", "published"
    (display strings, "-" when unknown), "published_value" (the published figure itself:
    "9.7 MiB", "26.0 ms"), "estimated" (the measured ratio is)}. Measured ratios are
    against the same device's baseline with the same runtime setting; published ones
    against the baseline variant's published figures."""
    if not any(r.reference for r in results):
        return None
    published_base = next(
        (r.reference for r in results if is_baseline(r, baseline_variant) and r.reference), None
    )
    rows = []
    for r in results:
        baseline = is_baseline(r, baseline_variant)
        base = r if baseline else energy_baseline_for(r, results, baseline_variant)
        done = r.status == "done" and not r.not_deployable
        ref = r.reference

        def measured(
            value_of: Callable[[JobResult], float | None],
            fields: tuple[str, ...],
            r: JobResult = r,
            base: JobResult | None = base,
            done: bool = done,
        ) -> tuple[str, bool]:
            if not done or base is None:
                return "-", False
            share = _ratio(value_of(r), value_of(base))
            estimated = any(f in r.estimated or f in base.estimated for f in fields)
            return fmt_share(share), estimated and share is not None

        def published(
            field: str, ref: PublishedFigures | None = ref, baseline: bool = baseline
        ) -> str:
            if ref is None or published_base is None:
                return "-"
            if baseline:
                return "100%" if getattr(ref, field) is not None else "-"
            return fmt_share(_ratio(getattr(ref, field), getattr(published_base, field)))

        size, size_est = measured(
            lambda x: None if (s := deployed_size(x)) is None else float(s),
            ("file_size_bytes", "zstd_size_bytes"),
        )
        latency, latency_est = measured(
            lambda x: x.latency_s.p50 if x.latency_s else None, ("latency_s",)
        )
        battery, battery_est = measured(
            lambda x: x.energy_per_inference_j, ("energy_per_inference_j",)
        )
        if not r.accuracy_meaningful:
            accuracy = "not meaningful"
        else:
            accuracy = fmt_pct(r.accuracy) if done else "-"
        published_accuracy = fmt_pct(ref.accuracy) if ref and ref.accuracy is not None else "-"
        rows.append(
            {
                "variant": one_line(r.variant or "-"),
                "runtime": runtime_label(r),
                "baseline": baseline,
                "message": _case_study_message(r),
                "source": one_line(ref.source) if ref else None,
                "size": {
                    "measured": size,
                    "published": published("size_bytes"),
                    "published_value": fmt_bytes(ref.size_bytes) if ref else "-",
                    "estimated": size_est,
                },
                "latency": {
                    "measured": latency,
                    "published": published("latency_s"),
                    "published_value": fmt_seconds(ref.latency_s) if ref else "-",
                    "estimated": latency_est,
                },
                "battery": {
                    "measured": battery,
                    "published": published("battery_impact"),
                    "published_value": "-",
                    "estimated": battery_est,
                },
                "accuracy": {
                    "measured": accuracy,
                    "published": published_accuracy,
                    "published_value": "-",
                    "estimated": done and r.accuracy_meaningful and "accuracy" in r.estimated,
                },
            }
        )
    return rows


# Metrics of the variant x device matrix: key -> (title, lower is better).
MATRIX_METRICS: dict[str, tuple[str, bool]] = {
    "p50": ("Latency p50", True),
    "energy": ("Energy / inference", True),
    "accuracy": ("Accuracy", False),
}
# The JobResult field whose estimate marks a matrix metric's cell.
_MATRIX_FIELDS = {"p50": "latency_s", "energy": "energy_per_inference_j", "accuracy": "accuracy"}


def _matrix_value(result: JobResult, metric: str) -> float | None:
    if result.status != "done" or result.not_deployable:
        return None
    if metric == "p50":
        return result.latency_s.p50 if result.latency_s else None
    if metric == "energy":
        return result.energy_per_inference_j
    if metric == "accuracy":
        return result.accuracy if result.accuracy_meaningful else None
    raise ValueError(f"unknown matrix metric {metric!r} (known: {', '.join(MATRIX_METRICS)})")


def device_matrix(data: RunReport, metric: str) -> dict[str, Any] | None:
    """A variant x device matrix of one metric (MATRIX_METRICS: "p50", "energy",
    "accuracy") with the best value per device marked; None with fewer than two devices
    or when no job has the figure.

    Returns {"metric", "title", "better" ("lower is better"), "devices": [names], "rows":
    [{"label", "cells": [{"text", "best", "estimated"}]}], "any_estimated"}. A row is a
    variant, or "variant (setting)" when some variant ran with several settings; a device
    where it did not run or did not finish shows "-". Lower is better for p50 and energy,
    higher for accuracy; ties go to the first row."""
    title, lower = MATRIX_METRICS[metric]
    groups = group_by_device(data)
    if len(groups) < 2:
        return None
    keys: list[tuple[str, str]] = []
    found: dict[tuple[tuple[str, str], str], JobResult] = {}
    for device, results in groups:
        for r in results:
            key = (r.variant or "-", r.setting or runtime_label(r))
            if key not in keys:
                keys.append(key)
            found.setdefault((key, device.name), r)
    if not any(_matrix_value(r, metric) is not None for r in found.values()):
        return None
    several = {v for v, _ in keys if sum(1 for w, _ in keys if w == v) > 1}
    best: dict[str, tuple[str, str]] = {}
    for device, _ in groups:
        values = [
            (key, v)
            for key in keys
            if (r := found.get((key, device.name))) is not None
            and (v := _matrix_value(r, metric)) is not None
        ]
        if values:
            pick = (min if lower else max)(values, key=lambda kv: kv[1])
            best[device.name] = pick[0]
    fmt = {"p50": fmt_seconds, "energy": fmt_joules, "accuracy": fmt_pct}[metric]
    rows = []
    for key in keys:
        variant, setting = key
        cells = []
        for device, _ in groups:
            r = found.get((key, device.name))
            value = _matrix_value(r, metric) if r is not None else None
            cells.append(
                {
                    "text": "-" if value is None else fmt(value),
                    "best": value is not None and best.get(device.name) == key,
                    "estimated": value is not None
                    and r is not None
                    and _MATRIX_FIELDS[metric] in r.estimated,
                }
            )
        label = f"{variant} ({setting})" if variant in several else variant
        rows.append({"label": one_line(label), "cells": cells})
    return {
        "metric": metric,
        "title": title,
        "better": "lower is better" if lower else "higher is better",
        "devices": [one_line(d.name) for d, _ in groups],
        "rows": rows,
        "any_estimated": any(c["estimated"] for row in rows for c in row["cells"]),
    }
