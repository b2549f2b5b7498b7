"""Which sensor a device measures power with, how the agent samples it, and how
the host turns the raw readings into a (t, watts) series.

The agent on the device only timestamps raw text (see runners/agent/PROTOCOL.md,
"Power sampling"); everything format-specific happens here, on the controller.
A device picks its source with the option ``power`` (``auto`` by default: the
first sensor ``device check`` found; ``none`` to switch sampling off).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from devices.errors import DeviceError
from devices.power import nvml, rpi, tegrastats
from devices.power.errors import ParseError
from devices.power.rails import pick_input

SOURCES = ("tegrastats", "ina3221", "rpi_pmic", "nvidia_smi")
DEFAULT_INTERVAL_MS = 100
NVIDIA_SMI_QUERY = (
    "--query-gpu=timestamp,index,power.draw,total_energy_consumption,utilization.gpu,"
    "temperature.gpu"
)


@dataclass(frozen=True)
class PowerSeries:
    source: str
    rail: str
    samples: list[tuple[float, float]]  # (t on the agent's clock, watts)
    skipped: int  # readings that did not parse


def choose_source(options: dict[str, Any], facts: dict[str, Any] | None) -> dict[str, Any] | None:
    """The sensor entry to use, from the device option ``power`` and the probed facts."""
    wanted = str(options.get("power", "auto"))
    if wanted == "none":
        return None
    sensors = list((facts or {}).get("sensors") or [])
    if wanted == "auto":
        return sensors[0] if sensors else None
    if wanted not in SOURCES:
        raise DeviceError(
            f"option power={wanted!r} is not a power source (known: auto, none, "
            f"{', '.join(SOURCES)})"
        )
    found = next((s for s in sensors if s.get("kind") == wanted), None)
    # An explicit choice is honoured even if the probe did not see it (the tool may
    # live outside PATH: give its path with the option ``power_tool``).
    return found or {"kind": wanted}


def sampler_request(
    sensor: dict[str, Any], options: dict[str, Any], *, idle_s: float = 1.0
) -> dict[str, Any]:
    """The ``power`` field of the agent's ``bench`` request for this sensor."""
    kind = sensor["kind"]
    interval = int(options.get("power_interval_ms", DEFAULT_INTERVAL_MS))
    tool = options.get("power_tool") or sensor.get("path")
    base = {"interval_ms": interval, "idle_s": idle_s}
    if kind == "tegrastats":
        return {
            **base,
            "mode": "stream",
            "argv": [tool or "tegrastats", "--interval", str(interval)],
        }
    if kind == "nvidia_smi":
        argv = [
            tool or "nvidia-smi",
            NVIDIA_SMI_QUERY,
            "--format=csv,noheader,nounits",
            "-lms",
            str(interval),
        ]
        return {**base, "mode": "stream", "argv": argv}
    if kind == "rpi_pmic":
        return {**base, "mode": "poll_command", "argv": [tool or "vcgencmd", "pmic_read_adc"]}
    if kind == "ina3221":
        path = sensor.get("path") or options.get("power_hwmon")
        if not path:
            raise ValueError("ina3221 needs the hwmon directory (device check finds it)")
        files = {}
        for ch, label in (sensor.get("channels") or {}).items():
            files[f"{label}|mV"] = f"{path}/in{ch}_input"
            files[f"{label}|mA"] = f"{path}/curr{ch}_input"
        return {**base, "mode": "poll_files", "files": files}
    raise ValueError(f"unknown power source {kind!r}")


def parse_readings(kind: str, readings: Sequence[Sequence[Any]]) -> PowerSeries:
    """Raw ``[t, text]`` readings from the agent -> a watts series on the agent's clock."""
    samples: list[tuple[float, float]] = []
    rails: list[str] = []
    skipped = 0
    for t, text in readings:
        try:
            parsed = _parse_one(kind, str(text))
        except (ParseError, ValueError):
            skipped += 1
            continue
        if parsed is _OTHER_GPU:
            continue  # nvidia-smi reports every GPU; the model runs on GPU 0
        if parsed is None:
            skipped += 1
            continue
        rail, watts = parsed
        samples.append((float(t), watts))
        rails.append(rail)
    # The rail can only change if the tool's output changes format mid-run; name the
    # one most readings came from.
    rail = max(set(rails), key=rails.count) if rails else "-"
    return PowerSeries(kind, rail, samples, skipped)


_OTHER_GPU: Any = object()


def _parse_one(kind: str, text: str) -> Any:
    """(rail, watts), None for an unusable reading, or _OTHER_GPU."""
    if kind == "tegrastats":
        total = tegrastats.total_input_rail(tegrastats.parse_line(text))
        return None if total is None else (total.rail, total.instant_mw / 1000.0)
    if kind == "nvidia_smi":
        sample = nvml.parse_line(text)
        if sample.gpu_index != 0:
            return _OTHER_GPU
        return None if sample.power_w is None else ("GPU0 board", sample.power_w)
    if kind == "rpi_pmic":
        return rpi.TOTAL_RAIL_NAME, rpi.parse_pmic_read_adc(text).total_power_w
    if kind == "ina3221":
        volts: dict[str, float] = {}
        amps: dict[str, float] = {}
        for part in text.split(";"):
            key, _, value = part.partition("=")
            label, _, unit = key.rpartition("|")
            if not value.strip():
                continue
            number = float(value.split()[0])
            (volts if unit == "mV" else amps)[label] = number
        mw = {label: volts[label] * amps[label] / 1000.0 for label in volts if label in amps}
        total = pick_input(mw)
        return None if total is None else (total.rail, total.instant_mw / 1000.0)
    raise ValueError(kind)


def telemetry_summary(kind: str, readings: Sequence[Sequence[Any]]) -> dict[str, Any] | None:
    """What else the sensor said during the bench: GPU/EMC load and temperatures
    (tegrastats). None for sources that carry no such data."""
    if kind != "tegrastats":
        return None
    samples = []
    for _, text in readings:
        try:
            samples.append(tegrastats.parse_line(str(text)))
        except ParseError:
            continue
    if not samples:
        return None

    def mean(values: list[float]) -> float | None:
        return sum(values) / len(values) if values else None

    temps: dict[str, float] = {}
    for s in samples:
        for name, value in s.temps_c.items():
            temps[name] = max(value, temps.get(name, value))
    return {
        "gpu_load_pct_mean": mean([s.gpu_load_pct for s in samples if s.gpu_load_pct is not None]),
        "emc_load_pct_mean": mean([s.emc_load_pct for s in samples if s.emc_load_pct is not None]),
        "temps_c_max": temps,
        "ram_used_mb_max": max(s.ram_used_mb for s in samples),
    }
