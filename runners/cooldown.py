"""Cool-down before a job: wait until the device is cool enough, for at most a limit.

A phone (or a fanless board) that is still hot from the previous job throttles its
clocks and measures its thermal governor, not the model. Before each job a runner
calls :func:`wait_for_cooldown` with a function that reads the device's temperatures
(thermal zone name -> degrees C); it polls until the hottest zone is below the
threshold or the limit is reached, and says how long it waited. It never fails a job:
a device that does not cool down in time is measured anyway, and the record says so
(``CooldownResult.reached`` is False), so the report can flag it.

Device-independent on purpose: the Android runner reads ``/sys/class/thermal`` over
adb, the Linux agent runner can pass its own reader (e.g. over the agent or ssh).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

TemperatureReader = Callable[[], Mapping[str, float]]


@dataclass(frozen=True)
class CooldownResult:
    """What the cool-down did. ``waited_s`` is 0 when no wait was needed (or asked)."""

    threshold_c: float | None
    limit_s: float
    waited_s: float
    reached: bool  # the hottest zone was below the threshold when the job started
    start_max_c: float | None
    end_max_c: float | None
    hottest_zone: str | None  # at the end
    polls: int = 0
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def hottest(temps: Mapping[str, float]) -> tuple[str | None, float | None]:
    """(zone, degrees C) of the hottest zone; (None, None) when there are none."""
    if not temps:
        return None, None
    zone = max(temps, key=lambda k: temps[k])
    return zone, temps[zone]


def wait_for_cooldown(
    read_temperatures: TemperatureReader,
    threshold_c: float | None,
    limit_s: float,
    *,
    poll_s: float = 2.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> CooldownResult:
    """Poll ``read_temperatures`` until the hottest zone is below ``threshold_c`` or
    ``limit_s`` seconds have passed. ``threshold_c=None`` reads once and waits not.

    ``read_temperatures`` may raise ``OSError``/``ValueError`` or a device error: the
    reading is then recorded in ``errors`` and counts as not cool (a device whose
    sensors cannot be read is not known to be cool). ``clock``/``sleep`` are for tests.
    """
    if limit_s < 0 or poll_s <= 0:
        raise ValueError(f"limit_s must be >= 0 and poll_s > 0 (got {limit_s}, {poll_s})")
    errors: list[str] = []

    def read() -> Mapping[str, float]:
        try:
            return read_temperatures()
        except Exception as e:  # any reader's failure: recorded, the job still runs
            errors.append(f"{type(e).__name__}: {e}"[:300])
            return {}

    started = clock()
    temps = read()
    zone, start_max = hottest(temps)
    end_max = start_max
    polls = 1
    if threshold_c is None:
        return CooldownResult(None, limit_s, 0.0, True, start_max, end_max, zone, polls, errors)
    if not temps and not errors:
        # The device has no thermal zones (a VM, some boards): there is nothing to wait
        # for, and waiting the whole limit before every job would only waste it.
        errors.append("no thermal zones to read: not waited")
        return CooldownResult(threshold_c, limit_s, 0.0, False, None, None, None, polls, errors)
    while end_max is None or end_max >= threshold_c:
        left = limit_s - (clock() - started)
        if left <= 0:
            break
        sleep(min(poll_s, left))
        temps = read()
        polls += 1
        zone, end_max = hottest(temps)
    reached = end_max is not None and end_max < threshold_c
    return CooldownResult(
        threshold_c,
        limit_s,
        round(clock() - started, 3),
        reached,
        start_max,
        end_max,
        zone,
        polls,
        errors,
    )
