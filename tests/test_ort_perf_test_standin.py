"""The stand-in onnxruntime_perf_test (devices/emulators/ort_perf_test_standin.py): its
output against the parser of the real tool's output, its failures, and the Android
runner measuring an ONNX job with it on edgebench's emulated phone (direct route)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from devices.emulators.ort_perf_test_standin import STANDIN_FIRST_WORDS
from devices.transport import sha256_file
from runners.android_runner import AndroidRunner, AndroidSetting, OrtPerfTestTool
from runners.base import Job, MeasureRules, ModelFile
from runners.ort_perf_test import parse_ort_perf_test
from tests.adb_phone import adb_key, make, phone

__all__ = ["adb_key", "phone"]  # fixtures

STANDIN = Path(__file__).parents[1] / "devices" / "emulators" / "ort_perf_test_standin.py"

RULES = MeasureRules(
    warmup_runs=1,
    warmup_min_s=0.0,
    min_runs=30,
    min_duration_s=0.0,
    repetitions=3,
    max_runs=100_000,
    timeout_s=60.0,
)


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 -> 64 -> 4 MLP with a free batch dimension (the tool makes it 1 under -I)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w1 = rng.standard_normal((16, 64)).astype(np.float32)
    w2 = rng.standard_normal((64, 4)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w1"], ["h"]),
            helper.make_node("Relu", ["h"], ["r"]),
            helper.make_node("MatMul", ["r", "w2"], ["y"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    onnx.save(model, str(path))
    return path


def standin(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-I", str(STANDIN), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )


# --------------------------------------------------------------------------- the stand-in


def test_standin_output_parses_as_the_real_tools(tiny_onnx: Path, tmp_path: Path) -> None:
    prefix = tmp_path / "profile"
    run = standin("-I", "-m", "times", "-r", "40", "-e", "cpu", "-x", "1", "-p", str(prefix),
                  str(tiny_onnx))  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.splitlines()[0].startswith(STANDIN_FIRST_WORDS)
    r = parse_ort_perf_test(run.stdout)
    assert r.requests == r.timed_requests == r.runs == 40
    assert r.intra_op_threads == 1
    assert r.session_creation_s is not None and r.session_creation_s > 0
    assert r.first_inference_s is not None and r.first_inference_s >= 0
    assert r.min_s is not None and r.max_s is not None and 0 < r.min_s <= r.max_s
    assert set(r.percentiles_s) == {50.0, 90.0, 95.0, 99.0, 99.9}
    assert r.min_s <= r.percentiles_s[50.0] <= r.percentiles_s[99.0] <= r.max_s
    assert r.min_s <= r.mean_s <= r.max_s
    assert r.total_time_s == pytest.approx(r.mean_s * 40, rel=1e-3)
    assert r.run_time_s is not None and r.run_time_s >= r.total_time_s
    assert r.throughput_per_s == pytest.approx(40 / r.run_time_s, rel=1e-3)
    assert r.peak_working_set_bytes is not None and r.peak_working_set_bytes > 1e6
    assert r.cpu_usage_pct is not None and 0 <= r.cpu_usage_pct <= 100
    # onnxruntime's own profile under the real tool's name: PREFIX_<date>_<time>.json.
    (profile,) = tmp_path.glob("profile_*.json")
    events = json.loads(profile.read_text())
    assert any(e.get("name") == "model_run" for e in events)


def test_result_file_and_duration_mode(tiny_onnx: Path, tmp_path: Path) -> None:
    results = tmp_path / "results.csv"
    run = standin("-I", "-m", "duration", "-t", "1", str(tiny_onnx), str(results))
    assert run.returncode == 0, run.stdout + run.stderr
    r = parse_ort_perf_test(run.stdout)
    assert r.run_time_s is not None and r.run_time_s >= 1.0
    assert r.percentiles_s == {} and r.min_s is None  # a result file without -s
    rows = results.read_text().splitlines()
    assert len(rows) == r.requests and rows[0].startswith("tiny,")


def test_missing_provider_fails_as_the_real_tool(tiny_onnx: Path) -> None:
    run = standin("-I", "-r", "5", "-e", "nnapi", str(tiny_onnx))
    assert run.returncode == 255
    assert "NNAPI is not supported in this build" in run.stderr
    assert "Total inference requests" not in run.stdout


def test_command_line_and_model_mistakes_exit_255(tiny_onnx: Path, tmp_path: Path) -> None:
    for args in (["-k", str(tiny_onnx)], ["-m", "often", str(tiny_onnx)], ["-I"],
                 ["-C", "a|b", str(tiny_onnx)]):  # fmt: skip
        run = standin(*args)
        assert run.returncode == 255, args
        assert "model_path [result_file]" in run.stdout, args
    assert "not emulated" in standin("-C", "a|b", str(tiny_onnx)).stderr
    missing = standin("-I", "-r", "5", str(tmp_path / "none.onnx"))
    assert missing.returncode == 255 and "Load model from" in missing.stderr
    assert "[ONNXRuntimeError]" not in missing.stderr  # the C++ tool's text, not Python's
    no_data = standin("-r", "5", str(tiny_onnx))
    assert no_data.returncode == 255 and "no test data for model tiny" in no_data.stderr


# --------------------------------------------------------------------------- the runner


def ort_setting(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {
        "runtime": "ort_perf_test",
        "threads": 1,
        "delegate": "none",
        "external_delegate": None,
        "cores": "all",
        "op_profiling": False,
    }
    return {**base, **kw}


def test_ort_argv_and_failure_reading() -> None:
    tool = OrtPerfTestTool()
    s = AndroidSetting.from_setting(ort_setting(op_profiling=True))
    argv = tool.argv("/bin/ort", "/w/m.onnx", s, RULES, "/w")
    assert argv == ["/bin/ort", "-I", "-m", "times", "-r", "30", "-e", "cpu", "-x", "1",
                    "-p", "/w/ort_profile", "/w/m.onnx"]  # fmt: skip
    thrown = "ort_test_session.cc OnnxRuntimeTestSession NNAPI is not supported in this build"
    assert tool.failure(thrown, "nnapi") == ("NNAPI is not supported in this build", True)
    load = "Load model from /w/m.onnx failed:Protobuf parsing failed."
    assert tool.failure(f"banner\n{load}\n", "none") == (load, False)
    assert tool.failure("", "nnapi") == (None, False)


def onnx_job(model: Path, **kw: object) -> Job:
    return Job(
        id=1,
        key="k",
        model=ModelFile(model, sha256_file(model), "onnx", model.stat().st_size),
        setting=ort_setting(**kw),
        measure=RULES,
        evaluation=None,
    )


def test_android_runner_measures_onnx_on_the_emulated_phone(
    phone: object, adb_key: Path, tiny_onnx: Path, tmp_path: Path
) -> None:
    t = make(tmp_path, host=phone.serial, adb_key=str(adb_key))  # type: ignore[attr-defined]
    try:
        runner = AndroidRunner(t)
        m = runner.measure(onnx_job(tiny_onnx, op_profiling=True))
        assert m.not_deployable is None
        assert m.windows == [] and m.tool_stats is not None
        assert m.tool_stats.tool == "onnxruntime_perf_test"
        assert m.tool_stats.median_s and m.tool_stats.mean_s and m.tool_stats.min_s
        assert "99.9" in m.tool_stats.percentiles_s
        reps = m.details["repetitions"]
        assert len(reps) == 3 and m.tool_stats.count == 3 * 30
        assert m.details["argv"][-1].endswith("tiny.onnx") and "-p" in m.details["argv"]
        assert m.window_spans and len(m.window_spans) == 3
        assert m.init_s and m.first_inference_s is not None and m.warmup_count == 1
        assert m.memory.peak_rss_bytes and m.memory.peak_rss_bytes > 1e6
        assert m.provenance.runtime == "onnxruntime" and m.emulated
        assert m.provenance.extra["tool_path"] == "/system/bin/onnxruntime_perf_test"
        assert "JSON profile is not read" in (m.note or "")
        # The profile the tool wrote on the phone, under onnxruntime's name for it.
        workdir = Path(phone.sandbox.device_to_host(t.workdir))  # type: ignore[attr-defined]
        assert list(workdir.glob("ort_profile_*.json"))

        nnapi = runner.measure(onnx_job(tiny_onnx, delegate="nnapi"))
        assert nnapi.not_deployable is not None
        assert "nnapi delegate" in nnapi.not_deployable
        assert "NNAPI is not supported in this build" in nnapi.not_deployable
        assert nnapi.tool_stats is None
    finally:
        t.close()
