"""TensorRT through trtexec, driven by the scheduler over a transport.

No Jetson or TensorRT here: a stand-in `trtexec` (a real executable on the
"device") answers like TensorRT 10.3 does, replaying recorded output: it writes
an engine for --saveEngine, prints a recorded timing log and writes a recorded
--exportTimes JSON. What this verifies is edgebench's side: the argv it builds,
the engine cache, the parsing, and that every raw latency is stored. trtexec
itself stays unverified until a board runs it.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import pytest

from runners.tensorrt import inference_span_s
from runners.trtexec import parse_export_times, parse_export_trace
from tests.conftest import Runner

pytestmark = pytest.mark.slow

DATA = Path(__file__).parent / "data" / "trtexec"

FAKE = """\
#!{python}
import json, pathlib, sys
calls = pathlib.Path({calls!r})
with calls.open("a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
args = dict(a.split("=", 1) if "=" in a else (a, "") for a in sys.argv[1:])
if "--help" in args:
    print("&&&& RUNNING TensorRT.trtexec [TensorRT v100300] [b26] # trtexec --help")
    sys.exit(0)
if "--saveEngine" in args:
    onnx = pathlib.Path(args["--onnx"]).read_bytes()
    pathlib.Path(args["--saveEngine"]).write_bytes(b"ENGINE" + onnx[:64])
    print(pathlib.Path({build_log!r}).read_text())
    sys.exit(0)
if "--loadEngine" in args:
    assert pathlib.Path(args["--loadEngine"]).read_bytes().startswith(b"ENGINE")
    import time
    time.sleep({run_s})  # as long as the recorded inferences took
    pathlib.Path(args["--exportTimes"]).write_text(pathlib.Path({times!r}).read_text())
    print(pathlib.Path({time_log!r}).read_text())
    sys.exit(0)
sys.exit(2)
"""

SUITE = """\
name: trt
models:
  - name: digits_cnn
    builder: digits_cnn
    params: {seed: 0, epochs: 15}
variants:
  - name: fp32-onnx
    recipe: [export_onnx]
settings:
  - runtime: tensorrt
    precision: fp16
measure: {warmup_min_s: 0.2, min_runs: 100, min_duration_s: 1.0, repetitions: 2}
"""


def _fake_trtexec(tmp_path: Path, run_s: float) -> tuple[Path, Path]:
    calls = tmp_path / "calls.jsonl"
    tool = tmp_path / "trtexec"
    tool.write_text(
        FAKE.format(
            python=sys.executable,
            calls=str(calls),
            run_s=run_s,
            build_log=str(DATA / "trt8.6.2_orin_nx_build_int8.log"),
            time_log=str(DATA / "trt10.3.0_orin_nano_load_engine.log"),
            times=str(DATA / "trt10.3.0_orin_nano_times.json"),
        )
    )
    tool.chmod(0o755)
    return tool, calls


def test_trtexec_engine_built_once_and_every_latency_stored(eb: Runner, tmp_path: Path) -> None:
    tool, calls = _fake_trtexec(tmp_path, run_s=0.05)
    suite = tmp_path / "trt.yaml"
    suite.write_text(SUITE)
    eb("device", "add", "orin", "--option", f"trtexec={tool}")
    eb("run", str(suite), "--no-report")
    eb("run", str(suite), "--no-report")  # a second run reuses the engine

    argvs = [json.loads(line) for line in calls.read_text().splitlines()]
    builds = [a for a in argvs if any(x.startswith("--saveEngine=") for x in a)]
    timings = [a for a in argvs if any(x.startswith("--loadEngine=") for x in a)]
    assert len(builds) == 1 and "--fp16" in builds[0]
    assert any(x.startswith("--onnx=") and x.endswith(".onnx") for x in builds[0])
    assert len(timings) == 4  # 2 repetitions x 2 runs
    assert all("--iterations=100" in a and "--duration=1" in a for a in timings)

    raw = parse_export_times((DATA / "trt10.3.0_orin_nano_times.json").read_text())
    db = eb.env["EDGEBENCH_DB"].removeprefix("sqlite:///")  # type: ignore[attr-defined]
    with sqlite3.connect(db) as conn:
        ns = [n for (n,) in conn.execute("SELECT n FROM samples ORDER BY job_id, repetition")]
        p50 = conn.execute("SELECT value FROM metrics WHERE name = 'latency_p50'").fetchall()
        provenance = json.loads(conn.execute("SELECT provenance FROM jobs").fetchone()[0])
        result = json.loads(conn.execute("SELECT result FROM jobs").fetchone()[0])
    assert ns == [len(raw)] * 4
    assert p50[0][0] == sorted(raw)[(len(raw) + 1) // 2 - 1]
    assert provenance["runtime_version"] == "10.3.0" and provenance["engine"].endswith(".engine")
    # No TensorRT Python API on this controller: accuracy is not invented, and says why.
    assert result["accuracy"] is None
    assert result["note"].startswith("accuracy not measured") and "tensorrt" in result["note"]


def test_missing_trtexec_fails_the_job_with_a_clear_error(eb: Runner, tmp_path: Path) -> None:
    suite = tmp_path / "trt.yaml"
    suite.write_text(SUITE.replace("repetitions: 2", "repetitions: 1"))
    eb("device", "add", "orin", "--option", f"trtexec={tmp_path / 'nope'}")
    proc = eb("run", str(suite), "--no-report", check=False)
    assert proc.returncode == 1
    assert "trtexec" in proc.stderr and "Traceback" not in proc.stderr


def test_jetson_energy_per_inference_during_trtexec_runs(eb: Runner, tmp_path: Path) -> None:
    """tegrastats (a stand-in replaying a recorded R36 log) runs on the device while
    trtexec times the engine; energy comes from the windows the exportTimes trace spans."""
    from devices.power import tegrastats
    from tests.test_power_e2e import RECORDED, _fake_tegrastats

    trace = parse_export_trace((DATA / "trt10.3.0_orin_nano_times.json").read_text())
    tool, _ = _fake_trtexec(tmp_path, run_s=inference_span_s(trace) + 0.05)
    fake_tegra = _fake_tegrastats(tmp_path)
    suite = tmp_path / "trt.yaml"
    suite.write_text(SUITE)
    eb(
        "device",
        "add",
        "orin",
        "--option",
        f"trtexec={tool}",
        "--option",
        "power=tegrastats",
        "--option",
        f"power_tool={fake_tegra}",
        "--option",
        "power_interval_ms=50",
    )
    eb("run", str(suite), "--no-report")

    db = eb.env["EDGEBENCH_DB"].removeprefix("sqlite:///")  # type: ignore[attr-defined]
    with sqlite3.connect(db) as conn:
        metrics = dict(conn.execute("SELECT name, value FROM metrics").fetchall())
        power = json.loads(conn.execute("SELECT result FROM jobs").fetchone()[0])["power"]
    recorded_w = [
        tegrastats.total_input_rail(tegrastats.parse_line(line)).instant_mw / 1000
        for line in RECORDED.read_text().splitlines()
        if line.strip()
    ]
    assert power["rail"] == "VDD_IN" and power["skipped_readings"] == 0
    assert min(recorded_w) <= metrics["mean_power"] <= max(recorded_w)
    inferences_per_s = len(trace) / inference_span_s(trace)
    assert metrics["energy_per_inference"] == pytest.approx(
        metrics["mean_power"] / inferences_per_s, rel=0.05
    )
    assert metrics["idle_power"] > 0
