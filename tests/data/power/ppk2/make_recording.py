"""Regenerate ``capture_source_3v3.bin`` (run from the repository root; deterministic).

The bytes are what a PPK2 streams after AVERAGE_START: one little-endian 32-bit word
per 10 us sample, ADC code in bits 0-13, current range in bits 14-16, a 6-bit
rolling counter in bits 18-23 and the logic port in bits 24-31 (the layout of
Nordic's pc-nrfconnect-ppk ``src/device/serialDevice.ts`` and of ppk2-api). Codes
are the inverse of ppk2-api's conversion with the calibration in ``metadata.txt``
(GS = 0, GI = 1, S = I = 0, so current = (4 * code - O[r]) * 1.8 / 163840 / R[r]).

The load is an MCU inference: 60 ms idle at 2.0 mA (range 1), 120 ms running at
38.5 mA (range 2) with logic pin D0 high (the firmware's "busy" GPIO), 70 ms idle
again; Gaussian noise 20 uA idle / 150 uA running, seed 7.
"""

from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
R = {1: 101.65, 2: 10.15}
OFFSET = {1: 75.0, 2: 64.0}
ADC_MULT = 1.8 / 163840
RATE = 100_000

rng = np.random.default_rng(7)
segments = [  # seconds, amps, noise, current range, logic port
    (0.060, 2.0e-3, 20e-6, 1, 0),
    (0.120, 38.5e-3, 150e-6, 2, 1),
    (0.070, 2.0e-3, 20e-6, 1, 0),
]
words = []
counter = 0
for seconds, amps, noise, rng_index, logic in segments:
    n = round(seconds * RATE)
    current = amps + rng.normal(0.0, noise, n)
    adc_x4 = current * R[rng_index] / ADC_MULT + OFFSET[rng_index]
    codes = np.clip(np.round(adc_x4 / 4), 0, 0x3FFF)
    for code in codes.astype(np.uint32):
        words.append(int(code) | (rng_index << 14) | (counter << 18) | (logic << 24))
        counter = (counter + 1) & 0x3F
(HERE / "capture_source_3v3.bin").write_bytes(np.asarray(words, dtype="<u4").tobytes())
