"""Energy of a microcontroller without a meter, estimated from its board profile.

Run-mode power = ``current_ua_per_mhz`` x clock (MHz) x ``supply_v``: the datasheet's
typical core current per MHz (running from flash, peripherals off) at the board's
supply. It ignores what the datasheet figure ignores (peripherals, regulator losses,
data-dependent switching), so the result is labelled ``estimated=True``
everywhere it appears, and is no substitute for a PPK2 or Joulescope reading.

The windows are the measured windows (device clock seconds, inferences): for an
emulated board, the latency estimated from executed instructions at the board clock.
"""

from __future__ import annotations

from collections.abc import Sequence

from devices.boards import BoardSpec
from devices.power.energy import EnergyResult, Window, WindowEnergy
from devices.power.errors import PowerSourceError


def run_mode_power_w(board: BoardSpec, clock_hz: int | None = None) -> float:
    """The board's estimated run-mode power in W (at ``clock_hz``, default its clock)."""
    missing = [k for k in ("current_ua_per_mhz", "supply_v") if getattr(board, k) is None]
    if missing:
        raise PowerSourceError(
            f"board {board.name!r} has no {' or '.join(missing)} in its profile: "
            "no energy estimate (add them from the part's datasheet)"
        )
    assert board.current_ua_per_mhz is not None and board.supply_v is not None
    mhz = (clock_hz or board.clock_hz) / 1e6
    return board.current_ua_per_mhz * 1e-6 * mhz * board.supply_v


def estimate_energy(
    board: BoardSpec, windows: Sequence[Window], *, clock_hz: int | None = None
) -> EnergyResult:
    """An :class:`EnergyResult` for ``windows`` at the board's run-mode power, labelled
    estimated. No idle baseline: the estimate has no idle state to compare with."""
    if not windows:
        raise ValueError("no measured windows")
    power = run_mode_power_w(board, clock_hz)
    parts = []
    for t0, t1, inferences in windows:
        if not t1 > t0:
            raise ValueError(f"window must have t0 < t1, got ({t0}, {t1})")
        if inferences <= 0:
            raise ValueError(f"window ({t0}, {t1}) has {inferences} inferences")
        parts.append(WindowEnergy(t0, t1, inferences, 0, power * (t1 - t0), power, 1.0))
    duration = sum(w.t1 - w.t0 for w in parts)
    inferences = sum(w.inferences for w in parts)
    mhz = (clock_hz or board.clock_hz) / 1e6
    return EnergyResult(
        rail=f"estimate({board.name})",
        estimated=True,
        windows=tuple(parts),
        inferences=inferences,
        duration_s=duration,
        sample_count=0,
        sample_rate_hz=None,
        mean_power_w=power,
        energy_j=power * duration,
        energy_per_inference_j=power * duration / inferences,
        idle_power_w=None,
        idle_sample_count=0,
        energy_per_inference_above_idle_j=None,
        coverage=1.0,
        note=(
            f"estimated from the board profile: {board.current_ua_per_mhz:g} uA/MHz x "
            f"{mhz:g} MHz x {board.supply_v:g} V, not measured"
        ),
    )
