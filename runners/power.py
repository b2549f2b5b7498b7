"""Power records from the readings a runner took during its windows.

Shared by every runner that samples a device's sensor: the raw ``[t, text]``
readings become a watts series (``devices.power.sources``), the windows' spans
on the same clock give the energy per inference (``devices.power.energy``).
Sensor data only: nothing here is estimated.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from devices.power.energy import window_energy
from devices.power.sources import parse_readings, telemetry_summary
from runners.records import Power


def power_record(
    sensor: dict[str, Any],
    raw: dict[str, Any] | None,
    windows: Sequence[tuple[float, float, int]],
    *,
    clock: str | None = None,
) -> Power | None:
    """``raw``: the sampler's reply (readings, idle span, interval, errors);
    ``windows``: (t0, t1, inferences) per measured window on the readings' clock."""
    if not raw:
        return None
    kind = sensor["kind"]
    readings = list(raw.get("readings") or [])
    series = parse_readings(kind, readings)
    common: dict[str, Any] = {
        "source": kind,
        "rail": series.rail,
        "skipped_readings": series.skipped,
        "interval_ms": raw.get("interval_ms"),
        "errors": list(raw.get("errors") or []),
        "readings": readings,
        "idle": list(raw["idle"]) if raw.get("idle") else None,
        "clock": clock,
        "telemetry": telemetry_summary(kind, readings),
    }
    if len(series.samples) < 2:
        return Power(
            **common, note=f"{len(series.samples)} usable power reading(s); no energy figures"
        )
    idle = tuple(raw["idle"]) if raw.get("idle") else None
    energy = window_energy(series.samples, list(windows), idle, rail=series.rail)
    return Power(
        **common,
        mean_power_w=energy.mean_power_w,
        idle_power_w=energy.idle_power_w,
        energy_per_inference_j=energy.energy_per_inference_j,
        energy_per_inference_above_idle_j=energy.energy_per_inference_above_idle_j,
        sample_rate_hz=energy.sample_rate_hz,
        sample_count=energy.sample_count,
        coverage=energy.coverage,
        note=energy.note,
    )
