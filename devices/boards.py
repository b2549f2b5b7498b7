"""Microcontroller board profiles: what a board is, for the firmware build, the
fit check and the estimates (``devices/boards/*.yaml``, one file per board).

A profile names the CPU (compiler flags), the firmware port that drives it
(``runners/mcu/firmware/ports/<port>``), its memory (origins for the linker
script, sizes for the fit check), its clock (for a latency estimated from
instructions), how its cycles are counted, and how it is flashed. A device
registered with ``--board NAME`` takes the profile; its ``ram_bytes`` /
``flash_bytes`` options can shrink the limits to those of a smaller part.

Adding a board: a YAML file here; a new port only when no existing one fits.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

BOARDS_DIR = Path(__file__).with_name("boards")


class BoardError(ValueError):
    """An unknown board or a broken profile file."""


class BoardSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""
    cpu: Literal["cortex-m0plus", "cortex-m3", "cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55"]
    cflags: tuple[str, ...]  # -mcpu/-mfpu/-mfloat-abi for arm-none-eabi-gcc
    port: str  # firmware port directory under runners/mcu/firmware/ports/
    # Memory: where the linker puts code/constants and data, and the limits the fit
    # check compares against (bytes).
    flash_origin: int
    flash_bytes: int = Field(gt=0)
    ram_origin: int
    ram_bytes: int = Field(gt=0)
    stack_bytes: int = Field(8192, gt=0)  # reserved for the main stack
    clock_hz: int = Field(gt=0)  # core clock, for latency estimated from counts
    # What the firmware's counter counts: DWT cycles on hardware, executed
    # instructions under QEMU -icount (deterministic), SysTick ticks as a fallback.
    counter: Literal["cycles", "instructions", "ticks"]
    baud: int = 115200
    qemu_machine: str | None = None  # e.g. mps2-an386 (emulated boards)
    renode_platform: str | None = None  # a Renode .repl, e.g. platforms/cpus/stm32f746.repl
    # argv template to flash a real board: {elf}, {hex}, {bin} are substituted per
    # argument (never through a shell).
    flash_command: tuple[str, ...] = ()
    # Energy estimate without a meter: run-mode current per MHz and supply voltage
    # from the part's datasheet; figures from them are labelled estimated.
    current_ua_per_mhz: float | None = None
    supply_v: float | None = None

    def limited(self, ram_bytes: int | None = None, flash_bytes: int | None = None) -> BoardSpec:
        """This profile with a smaller part's RAM/flash limits (a device's
        ``ram_bytes``/``flash_bytes`` options). A larger limit than the profile's is
        refused: the linker script's regions come from the profile, so the firmware
        could not use the extra memory anyway."""
        update: dict[str, int] = {}
        for key, value in (("ram_bytes", ram_bytes), ("flash_bytes", flash_bytes)):
            if value is None:
                continue
            if value > getattr(self, key):
                raise BoardError(
                    f"{key}={value} is more than board {self.name!r} has ({getattr(self, key)})"
                )
            update[key] = value
        return self.model_copy(update=update) if update else self


@cache
def board_names() -> tuple[str, ...]:
    return tuple(sorted(p.stem for p in BOARDS_DIR.glob("*.yaml")))


@cache
def load_board(name: str) -> BoardSpec:
    path = BOARDS_DIR / f"{name}.yaml"
    if not path.is_file():
        raise BoardError(f"unknown board {name!r} (known: {', '.join(board_names())})")
    try:
        data = yaml.safe_load(path.read_text())
        spec = BoardSpec.model_validate(data)
    except (yaml.YAMLError, ValidationError) as e:
        raise BoardError(f"{path}: {str(e).splitlines()[0]}") from None
    if spec.name != name:
        raise BoardError(f"{path}: name {spec.name!r} does not match the file name")
    return spec
