"""Nordic Power Profiler Kit II (power source ``ppk2``), through the ``ppk2-api``
package (``pip install ppk2-api==0.9.2``; imported only when a PPK2 is used).

The PPK2 is a USB CDC serial device on the controller. Asked for its metadata
(command ``0x19``) it answers ``key: value`` lines of calibration (``R0..R4``,
``GS*``, ``GI*``, ``O*``, ``S*``, ``I*``, ``UG*``, ``HW``, ``IA``...) ending with
``END``; after ``AVERAGE_START`` (``0x06``) it streams one 4-byte little-endian word
per 10 us (100 kHz): ADC code in bits 0-13, current range in 14-16, a 6-bit counter
in 18-23, the logic port in 24-31. ppk2-api turns the words into microamps with the
calibration (and the spike filter Nordic's app applies at range switches); this
module keeps those samples on a 100 kHz time base and integrates them
(:class:`~devices.power.meter.MeterCapture`).

Modes: ``source`` - the PPK2 powers the board at ``voltage_mv`` (source meter);
``ampere`` - the board has its own supply of ``voltage_mv`` and the PPK2 is in
series (ampere meter; it does not measure that voltage, so power is current times
the voltage given).

Host use (the MCU runner)::

    with Ppk2Meter(port=None, mode="source", voltage_mv=3300) as meter:
        capture = meter.record(2.0)          # 200 000 samples
    result = capture.energy(windows)         # EnergyResult, rail "VDD", estimated=False

Agent use: the ``stream`` sampler runs ``python -m devices.power.ppk2`` on the host,
which prints one :func:`~devices.power.meter.format_reading` line per interval.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from types import ModuleType, TracebackType
from typing import Any, Literal

import numpy as np
import serial

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

SOURCE = "ppk2"
SAMPLE_RATE_HZ = 100_000
BYTES_PER_SAMPLE = 4
DEFAULT_RAIL = "VDD"
Mode = Literal["source", "ampere"]


def _api() -> ModuleType:
    try:
        from ppk2_api import ppk2_api
    except ImportError:
        raise PowerSourceError(
            "the ppk2 power source needs the ppk2-api package: pip install ppk2-api==0.9.2"
        ) from None
    return ppk2_api


class Ppk2Meter:
    """One PPK2, opened on :meth:`open` (or ``with``), configured for ``mode``."""

    def __init__(
        self,
        port: str | None = None,
        *,
        mode: Mode = "source",
        voltage_mv: int = 3300,
        rail: str = DEFAULT_RAIL,
    ) -> None:
        if not 800 <= voltage_mv <= 5000:
            raise PowerSourceError(f"ppk2: voltage_mv={voltage_mv} is outside 800..5000 mV")
        self.port = port
        self.mode = mode
        self.voltage_mv = voltage_mv
        self.rail = rail
        self._ppk: Any = None

    def open(self) -> Ppk2Meter:
        api = _api()
        port = self.port
        if port is None:
            found = api.PPK2_API.list_devices()
            if not found:
                raise PowerSourceError(
                    "no Nordic PPK2 found (no serial port with USB product 'PPK2'): "
                    "plug it in, or give its port"
                )
            if len(found) > 1:
                raise PowerSourceError(
                    f"{len(found)} PPK2s found ({', '.join(found)}): give the port of one"
                )
            port = found[0]
        self.port = port
        try:
            ppk = api.PPK2_API(port, timeout=1, write_timeout=1)
        except (serial.SerialException, OSError) as e:
            raise PowerSourceError(f"ppk2: cannot open {port}: {e}") from None
        try:
            ok = ppk.get_modifiers()
        except UnicodeDecodeError:
            ok = None  # binary on the line: some other device, or a PPK2 still streaming
        if not ok:
            ppk.ser.close()
            raise PowerSourceError(
                f"ppk2: {port} did not answer the metadata request as a PPK2 does"
            )
        if self.mode == "source":
            ppk.use_source_meter()
            ppk.set_source_voltage(self.voltage_mv)
            ppk.toggle_DUT_power("ON")
        else:
            ppk.use_ampere_meter()
            # The API converts with the VDD it was told (and refuses to start without it).
            ppk.set_source_voltage(self.voltage_mv)
        self._ppk = ppk
        return self

    def record(self, duration_s: float, *, timeout_s: float | None = None) -> MeterCapture:
        """Stream ``duration_s`` seconds of samples (a whole number of 10 us samples)."""
        if self._ppk is None:
            raise PowerSourceError("ppk2: record() before open()")
        wanted = max(2, round(duration_s * SAMPLE_RATE_HZ))
        limit = timeout_s if timeout_s is not None else duration_s + 5.0
        chunks: list[bytes] = []
        received = 0
        t0: float | None = None
        self._ppk.start_measuring()
        started = time.monotonic()
        try:
            while received < wanted * BYTES_PER_SAMPLE:
                data = self._ppk.get_data()
                now = time.monotonic()
                if data:
                    if t0 is None:
                        # Back-date the first block: it holds samples taken before now.
                        t0 = now - (len(data) // BYTES_PER_SAMPLE) / SAMPLE_RATE_HZ
                    chunks.append(data)
                    received += len(data)
                elif now - started > limit:
                    raise PowerSourceError(
                        f"ppk2 at {self.port}: {received // BYTES_PER_SAMPLE} of {wanted} "
                        f"samples in {limit:g} s; is it streaming (USB 2.0 port, no hub)?"
                    )
                else:
                    time.sleep(0.002)
        finally:
            self._ppk.stop_measuring()
        raw = b"".join(chunks)[: wanted * BYTES_PER_SAMPLE]
        microamps, _logic = self._ppk.get_samples(raw)
        # ppk2-api drops a word it cannot convert (an out-of-range code); count it.
        dropped = wanted - len(microamps)
        assert t0 is not None
        return MeterCapture(
            source=SOURCE,
            rail=self.rail,
            t0=t0,
            sample_rate_hz=SAMPLE_RATE_HZ,
            current_a=np.asarray(microamps, dtype=np.float64) * 1e-6,
            voltage_v=self.voltage_mv / 1000.0,
            dropped=dropped,
        )

    def close(self) -> None:
        ppk, self._ppk = self._ppk, None
        if ppk is None:
            return
        try:
            if self.mode == "source":
                ppk.toggle_DUT_power("OFF")
            ppk.ser.close()
        except (serial.SerialException, OSError):
            pass  # unplugged: nothing left to release

    def __enter__(self) -> Ppk2Meter:
        return self.open() if self._ppk is None else self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


@register_source(SOURCE)
class Ppk2Source(PowerSource):
    """The PPK2 as a registry source: the stream sampler runs this module on the host.

    The sensor entry may carry ``path`` (the PPK2's port; found by USB product name
    otherwise), ``mode`` (``ampere`` by default: a sampler must not power a board it
    was not told to) and ``voltage_mv`` (3300).
    """

    def sampler(self, sensor: Sensor, options: PowerOptions) -> Sampler:
        extra = sensor.model_extra or {}
        argv = [
            options.power_tool or sys.executable,
            "-m",
            "devices.power.ppk2",
            "--interval-ms",
            str(options.power_interval_ms),
            "--mode",
            str(extra.get("mode", "ampere")),
            "--voltage-mv",
            str(extra.get("voltage_mv", 3300)),
        ]
        if sensor.path:
            argv += ["--port", sensor.path]
        return Sampler("stream", argv=tuple(argv))

    def reading(self, text: str) -> Reading:
        return parse_reading(text, source=SOURCE)


def main(argv: list[str] | None = None) -> int:
    """Print one mean reading per interval until SIGTERM/SIGINT (the agent's stream
    sampler stops it so)."""
    parser = argparse.ArgumentParser(prog="python -m devices.power.ppk2")
    parser.add_argument("--port")
    parser.add_argument("--interval-ms", type=int, default=100)
    parser.add_argument("--mode", choices=["source", "ampere"], default="ampere")
    parser.add_argument("--voltage-mv", type=int, default=3300)
    parser.add_argument("--rail", default=DEFAULT_RAIL)
    args = parser.parse_args(argv)
    stop = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        with Ppk2Meter(args.port, mode=args.mode, voltage_mv=args.voltage_mv, rail=args.rail) as m:
            while not stop:
                capture = m.record(args.interval_ms / 1000.0)
                mean = float(np.mean(capture.current_a)) if len(capture) else float("nan")
                line = format_reading(capture.rail, mean, m.voltage_mv / 1000.0, len(capture))
                print(line, flush=True)
    except PowerSourceError as e:
        print(f"edgebench: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
