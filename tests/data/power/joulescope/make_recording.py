"""Regenerate ``js220_10khz.npz`` (run from the repository root; deterministic).

The arrays are the ``!data`` messages pyjoulescope_driver publishes for a JS220 at
``h/fs`` = 10 kHz, one entry per message and signal: topics ``s/i/``, ``s/v/``,
``s/p/``, ``s/i/range/``, ``s/gpi/0/``, ``s/gpi/1/`` with ``field_id``/``index``
(1,0) current A, (2,0) voltage V, (3,0) power W (float32), (4,0) current range
(uint8 per sample), (5,0)/(5,1) general-purpose inputs (bits packed 8 per byte);
``sample_id`` counts at the 2 MHz input rate, ``sample_rate`` = 2 000 000 and
``decimate_factor`` = 200 (what pyjoulescope_driver's ``record.py`` divides by).
Blocks of 200 samples (20 ms), as the driver publishes a few per 10-50 ms.

The load: an MCU at 3.3 V through the JS220: 200 ms idle at 1.5 mA, 150 ms running
at 25.0 mA (GPI0 high: the firmware's busy pin), 150 ms idle; the supply sags by
the load's 0.4 ohm wiring; Gaussian noise 5 uA / 80 uA, 0.5 mV; seed 11.
"""

from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
RATE, INPUT_RATE, BLOCK = 10_000, 2_000_000, 200
rng = np.random.default_rng(11)
current, busy = [], []
LOAD = [(0.2, 1.5e-3, 5e-6, 0), (0.15, 25e-3, 80e-6, 1), (0.15, 1.5e-3, 5e-6, 0)]
for seconds, amps, noise, pin in LOAD:
    n = round(seconds * RATE)
    current.append(amps + rng.normal(0.0, noise, n))
    busy.append(np.full(n, pin, dtype=np.uint8))
i = np.concatenate(current).astype(np.float32)
v = (3.3 - 0.4 * i + rng.normal(0.0, 0.5e-3, len(i))).astype(np.float32)
gpi0 = np.concatenate(busy)
i_range = np.where(i > 18e-3, 2, 3).astype(np.uint8)  # 180 mA / 18 mA ranges
np.savez_compressed(
    HERE / "js220_10khz.npz",
    current=i,
    voltage=v,
    power=(i * v).astype(np.float32),
    current_range=i_range,
    gpi0=np.packbits(gpi0, bitorder="little"),
    gpi1=np.packbits(np.zeros_like(gpi0), bitorder="little"),
    meta=np.array([RATE, INPUT_RATE, BLOCK]),
)
