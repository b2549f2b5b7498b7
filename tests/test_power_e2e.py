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
    assert "Energy" in html and ("mJ" in html or "µJ" in html)


def test_raspberry_pi_pmic_energy_and_throttling_flags(eb: Runner, tmp_path: Path) -> None:
    """`vcgencmd` on PATH is found by `device check` (power=auto picks the PMIC), polled
    during the bench, and asked for throttling flags after it."""
    rpi_data = Path(__file__).parent / "data" / "power" / "rpi"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "vcgencmd"
    tool.write_text(
        "#!/bin/sh\n"
        'case "$1" in\n'
        f"  pmic_read_adc) cat {rpi_data / 'pi5_pmic_read_adc.txt'} ;;\n"
        f"  get_throttled) cat {rpi_data / 'get_throttled_undervoltage.txt'} ;;\n"
        f"  measure_temp) cat {rpi_data / 'measure_temp.txt'} ;;\n"
        "  *) exit 2 ;;\n"
        "esac\n"
    )
    tool.chmod(0o755)
    eb.env["PATH"] = f"{bin_dir}:{eb.env['PATH']}"  # type: ignore[attr-defined]
    suite = tmp_path / "power.yaml"
    suite.write_text(SUITE)
    eb("device", "add", "pi5", "--option", "power_interval_ms=50")
    facts = json.loads(eb("device", "check", "pi5", "--json").stdout)["facts"]
    assert [s["kind"] for s in facts["sensors"]] == ["rpi_pmic"]
    eb("run", str(suite), "--no-report")

    from devices.power import rpi

    expected_w = rpi.parse_pmic_read_adc((rpi_data / "pi5_pmic_read_adc.txt").read_text())
    db = eb.env["EDGEBENCH_DB"].removeprefix("sqlite:///")  # type: ignore[attr-defined]
    with sqlite3.connect(db) as conn:
        metrics = dict(conn.execute("SELECT name, value FROM metrics").fetchall())
        result = json.loads(conn.execute("SELECT result FROM jobs").fetchone()[0])
    assert result["power"]["rail"] == rpi.TOTAL_RAIL_NAME
    # A constant reading: mean power is exactly what the PMIC says.
    assert metrics["mean_power"] == pytest.approx(expected_w.total_power_w)
    assert "under_voltage_now" in result["health"]["flags"]
    assert result["health"]["ok"] is False and result["health"]["temp_c"] > 0


def test_nvidia_gpu_power_from_nvidia_smi(eb: Runner, tmp_path: Path) -> None:
    """A stand-in nvidia-smi on PATH replays a recorded 2-GPU capture at the requested
    interval; only GPU 0 (where the model runs) counts."""
    from devices.power import nvml

    capture = Path(__file__).parent / "data" / "power" / "nvml" / "nvidia_smi_2gpu_lms100.csv"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "nvidia-smi"
    tool.write_text(
        "#!/bin/sh\n"
        "# replays a recording; the interval is the value after -lms (the last argument)\n"
        'for last; do :; done\npause=$(awk "BEGIN { print $last / 1000 }")\n'
        'while true; do while IFS= read -r line; do echo "$line"; sleep "$pause"; '
        f"done < {capture}; done\n"
    )
    tool.chmod(0o755)
    eb.env["PATH"] = f"{bin_dir}:{eb.env['PATH']}"  # type: ignore[attr-defined]
    suite = tmp_path / "power.yaml"
    suite.write_text(SUITE)
    eb("device", "add", "gpu", "--option", "power_interval_ms=20")
    eb("device", "check", "gpu")
    eb("run", str(suite), "--no-report")
    db = eb.env["EDGEBENCH_DB"].removeprefix("sqlite:///")  # type: ignore[attr-defined]
    with sqlite3.connect(db) as conn:
        metrics = dict(conn.execute("SELECT name, value FROM metrics").fetchall())
        result = json.loads(conn.execute("SELECT result FROM jobs").fetchone()[0])
    gpu0 = [s.power_w for s in nvml.parse_csv(capture.read_text()).records if s.gpu_index == 0]
    assert result["power"]["source"] == "nvidia_smi" and result["power"]["rail"] == "GPU0 board"
    assert result["power"]["skipped_readings"] == 0
    assert min(gpu0) <= metrics["mean_power"] <= max(gpu0)
