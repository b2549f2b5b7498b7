"""Which rail is "the board's power": shared by tegrastats and the INA3221 reader.

Jetson boards name their input rail differently per generation:

* ``VDD_IN``    - TX2, Xavier NX, Orin Nano / Orin NX (L4T R32 to R36)
* ``POM_5V_IN`` - Jetson Nano (L4T R32)

AGX Xavier (``GPU CPU SOC CV VDDRQ SYS5V``) and AGX Orin (``VDD_GPU_SOC VDD_CPU_CV
VIN_SYS_5V0 VDDQ_VDD2_1V8AO``) have no input rail; there the module power is the sum
of the monitored rails, which leaves out the carrier board - the result says so.
Rails named ``NC`` (not connected, AGX Orin) are never counted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

INPUT_RAIL_NAMES: tuple[str, ...] = ("VDD_IN", "POM_5V_IN")
NOT_CONNECTED = "NC"

InputSource = Literal["input_rail", "sum_of_rails"]


@dataclass(frozen=True)
class InputPower:
    """The board-level power figure and where it came from.

    ``rail`` names it for reports: the input rail's own name, or
    ``"sum(A+B+...)"`` when it is the sum of the listed rails.
    """

    rail: str
    source: InputSource
    rails: tuple[str, ...]  # the rails the figure is made of
    instant_mw: float
    average_mw: float | None = None  # tegrastats' running average, where the tool gives one


def pick_input(
    instant_mw: Mapping[str, float], average_mw: Mapping[str, float] | None = None
) -> InputPower | None:
    """Choose the input rail from rail readings (name -> mW); None when there are none.

    The first of :data:`INPUT_RAIL_NAMES` present wins; otherwise every rail except
    ``NC`` is summed (never both: the input rail already contains the others).
    """
    for name in INPUT_RAIL_NAMES:
        if name in instant_mw:
            avg = average_mw.get(name) if average_mw is not None else None
            return InputPower(name, "input_rail", (name,), instant_mw[name], avg)
    names = tuple(name for name in instant_mw if name != NOT_CONNECTED)
    if not names:
        return None
    total_avg = None
    if average_mw is not None and all(name in average_mw for name in names):
        total_avg = sum(average_mw[name] for name in names)
    return InputPower(
        rail=f"sum({'+'.join(names)})",
        source="sum_of_rails",
        rails=names,
        instant_mw=sum(instant_mw[name] for name in names),
        average_mw=total_avg,
    )
