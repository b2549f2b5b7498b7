"""Power and energy end to end: the agent samples a (replayed) tegrastats during
the bench, the controller parses it and stores energy per inference.

No Jetson here: a real process prints recorded R36 tegrastats lines at the
requested interval, exactly as the tool does on a board.
"""

from __future__ import annotations

import json
import sqlite3
import stat
from pathlib import Path

import pytest

from devices.power import tegrastats
from tests.conftest import Runner

pytestmark = pytest.mark.slow

RECORDED = Path(__file__).parent / "data" / "power" / "tegrastats" / "r36.4.0_orin_nano.log"

SUITE = """\
name: power
models:
  - name: digits_cnn
    builder: digits_cnn
    params: {seed: 0, epochs: 15}
variants:
  - name: fp32-onnx
    recipe: [export_onnx]
settings:
  - runtime: onnxruntime
    threads: [1]
measure: {warmup_runs: 3, warmup_min_s: 0.0, min_runs: 20, min_duration_s: 0.3, repetitions: 3}
"""


def _fake_tegrastats(tmp_path: Path) -> Path:
    tool = tmp_path / "tegrastats"
    tool.write_text(
        "#!/bin/sh\n"
        "# usage: tegrastats --interval MS (replays a recorded log, one line per interval)\n"
        "ms=$2\n"
        "while true; do\n"
        'pause=$(awk "BEGIN { print $ms / 1000 }")\n'
        '  while IFS= read -r line; do echo "$line"; sleep "$pause"; '
        f"done < {RECORDED}\n"
        "done\n"
    )
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    return tool


def test_energy_per_inference_from_tegrastats(eb: Runner, tmp_path: Path) -> None:
    tool = _fake_tegrastats(tmp_path)
    suite = tmp_path / "power.yaml"
    suite.write_text(SUITE)
    eb(
        "device",
        "add",
        "orin",
        "--option",
        "power=tegrastats",
        "--option",
        f"power_tool={tool}",
        "--option",
        "power_interval_ms=50",
    )
    eb("run", str(suite))

    db = eb.env["EDGEBENCH_DB"].removeprefix("sqlite:///")  # type: ignore[attr-defined]
    with sqlite3.connect(db) as conn:
        metrics = dict(conn.execute("SELECT name, value FROM metrics").fetchall())
        (result,) = conn.execute("SELECT result FROM jobs").fetchone()
    power = json.loads(result)["power"]

    recorded_w = [
        tegrastats.total_input_rail(tegrastats.parse_line(line)).instant_mw / 1000
        for line in RECORDED.read_text().splitlines()
        if line.strip()
    ]
    assert power["source"] == "tegrastats" and power["rail"] == "VDD_IN"
    assert power["skipped_readings"] == 0
    assert 10 <= power["sample_rate_hz"] <= 25  # asked for 50 ms
    # Mean power lies within what the replayed sensor reported.
    assert min(recorded_w) <= metrics["mean_power"] <= max(recorded_w)
    assert min(recorded_w) <= metrics["idle_power"] <= max(recorded_w)
    # Energy per inference = mean power x time per inference (timing overhead aside).
    per_inference_s = 1 / metrics["throughput"]
    assert metrics["energy_per_inference"] == pytest.approx(
        metrics["mean_power"] * per_inference_s, rel=0.25
    )
    eb("report", "latest", "-o", str(tmp_path / "report"))
    html = (tmp_path / "report" / "index.html").read_text()
    assert "Energy" in html and "mJ" in html or "µJ" in html
