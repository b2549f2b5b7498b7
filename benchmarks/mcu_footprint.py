"""MCU footprint and work per model, counted (not timed): for each MLPerf Tiny-shaped
network of tests/mcu_models.py and the digits CNN, compile it, build the runner
firmware for each emulated board, run it under QEMU -icount through the `mcu` runner,
and print one markdown row per (model, board):

    model | board | ops | MACs | .tflite | weights | flash (image) | static RAM |
    arena (ours) | TFLM arena | ours vs TFLM | instructions / inference | per MAC

Every figure is deterministic (a count, not a time), so one run is the measurement.
TFLite Micro's arena is what its recording allocator reports (print_allocations) for
the same file. Usage:

    .venv/bin/python benchmarks/mcu_footprint.py [--boards mps2-an386,mps2-an500]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from devices.transport import DeviceConfig, make_transport, sha256_file  # noqa: E402
from runners.base import Job, MeasureRules, ModelFile  # noqa: E402
from runners.mcu.runner import McuRunner  # noqa: E402
from tests import mcu_models  # noqa: E402

RULES = MeasureRules(1, 0.0, 3, 0.0, 1, 10, 300.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boards", default="mps2-an386,mps2-an500")
    supported = [m for m in mcu_models.MODELS if m != "tanh_net"]  # tanh_net: the refusal test
    parser.add_argument("--models", default=",".join(supported))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mcu-footprint-"))
    models = mcu_models.cache_dir(work / "models")
    # The converters print progress on stdout: the table is printed at the end.
    rows = [
        "| model | board | ops | MACs | .tflite | weights | flash | static RAM | arena |"
        " TFLM arena | arena vs TFLM | instructions / inference | per MAC |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in args.models.split(","):
        path = mcu_models.build(name, models)
        file = ModelFile(path, sha256_file(path), "tflite", path.stat().st_size)
        theirs = mcu_models.tflm_arena_used_bytes(path)
        for board in args.boards.split(","):
            config = DeviceConfig(name=board, transport="qemu", options={"board": board})
            runner = McuRunner(make_transport(config, work))
            try:
                m = runner.measure(Job(1, name, file, {"runtime": "mcu", "optimize": "O2"}, RULES))
            finally:
                runner.close()
                runner.transport.close()
            fig = {f.name: f.value for f in m.figures}
            ours = int(m.memory.arena_bytes or 0)
            instructions = m.executed_instructions or 0
            rows.append(
                f"| {name} | {board} | {len(m.layers)} | {int(fig['macs']):,} |"
                f" {file.size_bytes:,} | {int(fig['weights']):,} | {int(m.memory.flash_bytes):,} |"
                f" {int(m.memory.static_ram_bytes):,} | {ours:,} | {theirs:,} |"
                f" {100 * (ours - theirs) / theirs:+.0f}% | {instructions:,} |"
                f" {instructions / fig['macs']:.2f} |"
            )
    print("\n".join(rows))


if __name__ == "__main__":
    main()
