"""Power and energy from the device's own sensors: parsers and the energy math.

:mod:`~devices.power.sources` is the registry of power sources (how the agent samples
each, how a raw reading becomes watts) and what the scheduler calls. Modules (one
source each, registered there; all pure parsers of text already captured, except
:func:`devices.power.ina3221.discover`/``read``, which read sysfs files by nature):

* :mod:`~devices.power.tegrastats` - Jetson ``tegrastats`` lines (L4T R32-R36);
* :mod:`~devices.power.ina3221` - Jetson INA3221 monitors via sysfs (hwmon, or the
  older ``ina3221x`` IIO driver);
* :mod:`~devices.power.rpi` - Raspberry Pi ``vcgencmd pmic_read_adc``,
  ``get_throttled``, ``measure_temp``;
* :mod:`~devices.power.nvml` - ``nvidia-smi --query-gpu ... -lms`` CSV;
* :mod:`~devices.power.energy` - mean power, energy, energy per inference over
  measured windows, on ``(t_seconds, watts)`` series;
* :mod:`~devices.power.rails` - which rail is the board's input;
* :mod:`~devices.power.errors` / :mod:`~devices.power.lines` - :class:`ParseError`
  and the lenient whole-log parse that keeps malformed lines with their reason.

How a sampler should use them (what the parsers cannot do for it):

* **Timestamp every sample on arrival, on the clock the measured windows use**
  (the agent's monotonic clock on the device). tegrastats prints at best a
  one-second wall-clock stamp; ``pmic_read_adc`` and sysfs print none. Stamp the
  moment the line/read completed, and run the sampler on the device, not across SSH.
* Check that tegrastats lines arrive one per interval when its output is a pipe:
  a C program's stdout may be block-buffered then, and lines arriving in bursts make
  arrival stamps wrong. If they do, run it under a pty or ``stdbuf -oL``.
* Use instant values (``RailReading.instant_mw``, ``total_input_rail(...).instant_mw``);
  tegrastats' second number is its running average since it started.
* Start sampling before the first measured window and stop after the last, plus an
  idle window (same sensor, nothing running) for the baseline; check
  ``EnergyResult.coverage`` and ``note``.
* Name the rail in the result (``InputPower.rail``): ``VDD_IN``, ``POM_5V_IN``,
  ``sum(...)`` (module rails only, no carrier board) or
  :data:`~devices.power.rpi.TOTAL_RAIL_NAME` (Pi PMIC outputs, no 5 V loads).
"""

from devices.power.energy import (
    EnergyResult,
    WindowEnergy,
    energy_joules,
    mean_power,
    sample_rate_hz,
    window_energy,
)
from devices.power.errors import ParseError
from devices.power.lines import ParsedLines, SkippedLine
from devices.power.rails import InputPower

__all__ = [
    "EnergyResult",
    "InputPower",
    "ParseError",
    "ParsedLines",
    "SkippedLine",
    "WindowEnergy",
    "energy_joules",
    "mean_power",
    "sample_rate_hz",
    "window_energy",
]
