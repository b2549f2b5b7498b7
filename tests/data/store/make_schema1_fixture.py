"""How tests/data/store/schema1.db was made: a results database written by the
release before typed job records (schema version 1, commit d7fdf04), kept so that
the migration to today's format is tested on real rows, not on hand-made ones.

Run from a checkout of that commit (it uses that commit's test helpers):

    git worktree add /tmp/eb-d7fdf04 d7fdf04
    PYTHONPATH=/tmp/eb-d7fdf04 .venv/bin/python tests/data/store/make_schema1_fixture.py OUT.db

It is not run by the tests (today's code cannot write schema 1).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.test_power_e2e import _fake_tegrastats
from tests.test_tensorrt import DATA as TRT_DATA
from tests.test_tensorrt import _fake_trtexec

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent.parent

SUITE = """\
name: fixture
models:
  - name: digits_cnn
    builder: digits_cnn
    params: {seed: 0, epochs: 15}
variants:
  - name: fp32-onnx
    recipe: [export_onnx]
  - name: int8-onnx
    recipe: [export_onnx, {onnx_int8_static: {per_channel: true}}]
  - name: fp32-tflite
    recipe: [export_tflite]
settings:
  - runtime: onnxruntime
    threads: [1]
  - runtime: litert
    threads: [1]
  - runtime: tensorrt
    precision: fp16
measure: {warmup_runs: 3, warmup_min_s: 0.0, min_runs: 20, min_duration_s: 0.3, repetitions: 2}
accuracy: {dataset: digits, split: test, limit: 100}
retries: 0
"""


def main(out: Path) -> None:
    work = Path(tempfile.mkdtemp(prefix="eb-fixture-"))
    env = {**os.environ, "EDGEBENCH_HOME": str(work / "home"), "EDGEBENCH_DB": f"sqlite:///{out}"}

    def eb(*args: str, check: bool = True) -> None:
        cmd = [sys.executable, "-c", "from harness.cli import main; main()", *args]
        proc = subprocess.run(cmd, env=env, cwd=work, capture_output=True, text=True)
        print(" ".join(args), "->", proc.returncode)
        if check and proc.returncode != 0:
            raise SystemExit(proc.stdout + proc.stderr)

    trtexec, _ = _fake_trtexec(work, run_s=0.05)
    tegra = _fake_tegrastats(work)
    # One device with a (replayed) power sensor and a stand-in trtexec, one that cannot
    # be reached (its jobs fail), so every stored shape is in the file.
    eb("device", "add", "jetson", "--option", f"trtexec={trtexec}", "--option", "power=tegrastats",
       "--option", f"power_tool={tegra}", "--option", "power_interval_ms=50", "--tag", "site=desk")
    eb("device", "add", "gone", "--transport", "ssh", "--host", "nobody@127.0.0.1:1",
       "--option", "connect_timeout=2")
    suite = work / "fixture.yaml"
    suite.write_text(SUITE)
    eb("run", str(suite), "--device", "jetson", "--device", "gone", "--no-report", check=False)
    eb("import", "--tool", "trtexec", "--device", "orin",
       str(TRT_DATA / "trt10.3.0_orin_nano_load_engine.log"),
       str(TRT_DATA / "trt10.3.0_orin_nano_times.json"),
       str(TRT_DATA / "trt8.2.1_xavier_nx_fp16.log"))
    eb("import", "--tool", "benchmark_model", "--device", "pixel",
       str(TESTS / "data/benchmark_model/android_logcat.txt"),
       str(TESTS / "data/benchmark_model/rpi4_op_profiling.txt"))
    eb("import", "--tool", "ort-perf-test", "--device", "pi5",
       str(TESTS / "data/ort_perf_test/1.20_rpi5.txt"))


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve())
