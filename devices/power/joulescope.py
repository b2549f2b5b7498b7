"""Joulescope JS220/JS110 (power source ``joulescope``), through the ``joulescope``
package's v1 API (``pip install joulescope``; 1.5.0 is the newest release for
Python 3.11, 1.7.x needs 3.12; imported only when a Joulescope is used).

The Joulescope sits in series with the board's supply and measures both current
and voltage, so power is per-sample current x voltage (no assumed supply). The
driver opens the instrument with ``config="auto"`` (auto current range, 15 V
voltage range), sets the output ``sampling_frequency`` (10 kHz by default: enough
for inferences of a millisecond and up, and light to store) and
``device.read(contiguous_duration=...)`` returns an ``N x 2`` float32 array of
current (A) and voltage (V) with no missing samples.

Host use (the MCU runner)::

    with JoulescopeMeter() as meter:
        capture = meter.record(2.0)
    result = capture.energy(windows)   # EnergyResult, estimated=False

Agent use: the ``stream`` sampler runs ``python -m devices.power.joulescope`` on the
host, which prints one :func:`~devices.power.meter.format_reading` line per interval.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from types import ModuleType, TracebackType
from typing import Any

import numpy as np

from devices.power.errors import PowerSourceError
from devices.power.meter import MeterCapture, format_reading, parse_reading
from devices.power.sources import (
    PowerOptions,
    PowerSource,
    Reading,
    Sampler,
    Sensor,
    register_source,
)

SOURCE = "joulescope"
DEFAULT_RATE_HZ = 10_000
DEFAULT_RAIL = "VDD"


def _api() -> ModuleType:
    try:
        import joulescope
    except ImportError:
        raise PowerSourceError(
            "the joulescope power source needs the joulescope package: pip install joulescope"
        ) from None
    return joulescope


class JoulescopeMeter:
    """One Joulescope (the only one, or the one with ``serial_number``)."""

    def __init__(
        self,
        serial_number: str | None = None,
        *,
        sampling_frequency: int = DEFAULT_RATE_HZ,
        rail: str = DEFAULT_RAIL,
        buffer_s: float = 30.0,
    ) -> None:
        self.serial_number = serial_number
        self.sampling_frequency = sampling_frequency
        self.rail = rail
        self.buffer_s = buffer_s
        self._device: Any = None

    def open(self) -> JoulescopeMeter:
        js = _api()
        devices = js.scan(config="auto")
        if self.serial_number is not None:
            devices = [d for d in devices if d.serial_number == self.serial_number]
        if not devices:
            which = f" with serial number {self.serial_number}" if self.serial_number else ""
            raise PowerSourceError(f"no Joulescope{which} found: plug it in (USB)")
        if len(devices) > 1:
            names = ", ".join(str(d) for d in devices)
            raise PowerSourceError(
                f"{len(devices)} Joulescopes found ({names}): give a serial number"
            )
        device = devices[0]
        try:
            # Before open(): the stream buffer is sized from these when it opens
            # (the 2 MHz default would allocate hundreds of MB for 30 s).
            device.parameter_set("sampling_frequency", self.sampling_frequency)
            device.buffer_duration = self.buffer_s
            device.open()
        except (KeyError, ValueError, RuntimeError, TimeoutError) as e:
            raise PowerSourceError(f"joulescope {device}: cannot open: {e}") from None
        self.serial_number = device.serial_number
        self._device = device
        return self

    def record(self, duration_s: float) -> MeterCapture:
        """``duration_s`` seconds without gaps, current and voltage per sample."""
        if self._device is None:
            raise PowerSourceError("joulescope: record() before open()")
        if duration_s * 2 > self.buffer_s:
            raise PowerSourceError(
                f"joulescope: {duration_s:g} s does not fit its {self.buffer_s:g} s buffer twice"
            )
        try:
            data = self._device.read(contiguous_duration=duration_s)
        except (ValueError, RuntimeError, TimeoutError) as e:
            raise PowerSourceError(f"joulescope {self._device}: read failed: {e}") from None
        done = time.monotonic()
        rate = float(self._device.output_sampling_frequency)
        data = np.asarray(data, dtype=np.float64)
        # read() returns the newest samples once the duration is in: the last one is
        # (about) now, so the first is len/rate earlier.
        usable = ~np.isnan(data).any(axis=1)
        return MeterCapture(
            source=SOURCE,
            rail=self.rail,
            t0=done - len(data) / rate,
            sample_rate_hz=rate,
            current_a=np.where(usable, data[:, 0], 0.0),
            voltage_v=np.where(usable, data[:, 1], 0.0),
            dropped=int((~usable).sum()),
        )

    def close(self) -> None:
        device, self._device = self._device, None
        if device is not None:
            try:
                device.close()
            except (RuntimeError, TimeoutError):
                pass  # unplugged: nothing left to release

    def __enter__(self) -> JoulescopeMeter:
        return self.open() if self._device is None else self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


@register_source(SOURCE)
class JoulescopeSource(PowerSource):
    """The Joulescope as a registry source: the stream sampler runs this module on
    the host. The sensor entry may carry ``serial_number``."""

    def sampler(self, sensor: Sensor, options: PowerOptions) -> Sampler:
        extra = sensor.model_extra or {}
        argv = [
            options.power_tool or sys.executable,
            "-m",
            "devices.power.joulescope",
            "--interval-ms",
            str(options.power_interval_ms),
        ]
        if extra.get("serial_number"):
            argv += ["--serial-number", str(extra["serial_number"])]
        return Sampler("stream", argv=tuple(argv))

    def reading(self, text: str) -> Reading:
        return parse_reading(text, source=SOURCE)


def main(argv: list[str] | None = None) -> int:
    """Print one mean reading per interval until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(prog="python -m devices.power.joulescope")
    parser.add_argument("--serial-number")
    parser.add_argument("--interval-ms", type=int, default=100)
    parser.add_argument("--rail", default=DEFAULT_RAIL)
    args = parser.parse_args(argv)
    stop = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        with JoulescopeMeter(args.serial_number, rail=args.rail) as meter:
            while not stop:
                capture = meter.record(args.interval_ms / 1000.0)
                volts = float(np.mean(capture.voltage_v))
                amps = float(np.mean(capture.power_w)) / volts if volts else float("nan")
                print(format_reading(capture.rail, amps, volts, len(capture)), flush=True)
    except PowerSourceError as e:
        print(f"edgebench: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
