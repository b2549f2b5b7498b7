"""trtexec: log and --exportTimes parsers on recorded outputs (tests/data/trtexec) of
TensorRT 7.1 to 10.3, and the argv builders."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from devices.errors import DeviceError
from runners.trtexec import (
    JETSON_TRTEXEC,
    TrtexecParseError,
    build_engine_argv,
    engine_cache_key,
    parse_export_times,
    parse_export_trace,
    parse_trtexec_log,
    time_engine_argv,
)

DATA = Path(__file__).parent / "data" / "trtexec"


def log(name: str):
    return parse_trtexec_log((DATA / name).read_text())


# ---------------------------------------------------------------------- summaries


def test_trt10_timing_run_with_three_percentiles() -> None:
    r = log("trt10.3.0_orin_nano_load_engine.log")
    assert (r.style, r.trt_version, r.status, r.device_name) == (
        "summary",
        "10.3.0",
        "PASSED",
        "Orin",
    )
    assert r.argv[0] == JETSON_TRTEXEC and r.argv[1].startswith("--loadEngine=")
    assert "--exportTimes=/tmp/edgebench-job-41/times.json" in r.argv
    assert r.precision_flags == ()
    assert r.options["Reporting"]["Percentiles"] == "90,95,99"
    assert r.options["Inference"]["Duration"] == "1s (+ 500ms warm up)"
    assert r.throughput_qps == 212.259
    assert r.latency.min_s == pytest.approx(4.38955e-3)
    assert r.latency.mean_s == pytest.approx(4.68331e-3)
    assert r.latency.median_s == pytest.approx(4.65773e-3)
    assert r.latency.max_s == pytest.approx(6.18727e-3)
    assert dict(r.latency.percentiles_s) == pytest.approx(
        {90.0: 4.78679e-3, 95.0: 4.84485e-3, 99.0: 6.10487e-3}
    )
    assert r.latency.percentile(99) == pytest.approx(6.10487e-3)
    assert r.gpu_compute_time.percentile(90) == pytest.approx(4.03429e-3)
    assert r.h2d_latency.mean_s == pytest.approx(0.330604e-3)
    assert r.d2h_latency.median_s == pytest.approx(0.413435e-3)
    assert r.enqueue_time.max_s == pytest.approx(0.782333e-3)
    assert r.end_to_end is None  # dropped from the summary after 8.2
    assert r.total_host_walltime_s == 1.07416 and r.total_gpu_compute_time_s == 0.898452
    assert (r.warmup_queries, r.warmup_s, r.timed_queries) == (112, 0.5, 228)
    assert r.gpu_compute_cv_pct == 5.63915
    assert len(r.trace_averages) == 11 and r.trace_averages[0].runs == 20
    assert r.trace_averages[0].end_to_end_s is None
    assert r.problems == ()
    # the summary is what the exported per-iteration times say
    times = parse_export_times((DATA / "trt10.3.0_orin_nano_times.json").read_text())
    assert len(times) == r.timed_queries
    assert sum(times) / len(times) == pytest.approx(r.latency.mean_s, rel=1e-5)
    assert min(times) == pytest.approx(r.latency.min_s, rel=1e-5)
    assert r.throughput_qps == pytest.approx(len(times) / r.total_host_walltime_s, rel=1e-5)


def test_trt86_int8_build_log() -> None:
    r = log("trt8.6.2_orin_nx_build_int8.log")
    assert (r.trt_version, r.status, r.precision) == ("8.6.2", "PASSED", "FP32+FP16+INT8")
    assert r.precision_flags == ("--int8", "--fp16")
    assert r.options["Build"]["Calibration"].endswith("resnet50_calib.cache")
    assert r.options["Build"]["Memory Pools"].startswith("workspace: 2048 MiB")
    assert r.options["Model"]["Format"] == "ONNX"
    assert r.throughput_qps == 361.522
    assert sorted(r.gpu_compute_time.percentiles_s) == [90.0, 95.0, 99.0]
    assert r.timed_queries == 1031 and len(r.trace_averages) == 103


def test_trt82_single_percentile_and_end_to_end_host_latency() -> None:
    r = log("trt8.2.1_xavier_nx_fp16.log")
    assert (r.trt_version, r.device_name, r.precision) == ("8.2.1", "Xavier", "FP32+FP16")
    assert r.argv[-2:] == ["--workspace=1024", "--avgRuns=50"]
    assert list(r.latency.percentiles_s) == [99.0]
    assert r.latency.percentile(90) is None
    assert r.end_to_end.mean_s == pytest.approx(1.33286e-3)
    assert r.end_to_end.percentile(99) == pytest.approx(1.41253e-3)
    assert r.trace_averages[0].end_to_end_s == pytest.approx(1.33056e-3)
    assert r.trace_averages[0].runs == 50


def test_trt7_legacy_blocks_and_average_on_n_runs() -> None:
    r = log("trt7.1.3_jetson_nano_legacy.log")
    assert (r.style, r.trt_version, r.status) == ("legacy", None, "PASSED")
    assert r.precision == "FP32+FP16" and r.precision_flags == ("--fp16",)
    assert r.latency.min_s == pytest.approx(6.55748e-3)
    assert r.latency.percentile(99) == pytest.approx(9.17184e-3)
    assert r.end_to_end.median_s == pytest.approx(6.94752e-3)
    assert r.end_to_end.percentile(99) == pytest.approx(9.17784e-3)
    assert r.enqueue_time.mean_s is None and r.enqueue_time.median_s == pytest.approx(1.94131e-3)
    assert r.gpu_compute_time.mean_s == pytest.approx(6.81806e-3)
    assert r.h2d_latency is None and r.d2h_latency is None
    assert r.total_host_walltime_s == 2.95049 and r.total_gpu_compute_time_s == 2.8704
    # TRT 7 prints 0 qps for explicit-batch engines; that is not a measurement
    assert r.throughput_qps is None
    assert any("0 qps" in p for p in r.problems)
    assert len(r.trace_averages) == 42
    first = r.trace_averages[0]
    assert (first.gpu_latency_s, first.host_latency_s) == pytest.approx((6.79078e-3, 6.95569e-3))
    assert first.end_to_end_s == pytest.approx(6.96169e-3)
    assert first.enqueue_s == pytest.approx(1.93852e-3)


def test_trt7_legacy_implicit_batch_throughput_is_kept() -> None:
    text = "\n".join(
        f"[11/26/2023-13:46:01] [I] {line}"
        for line in [
            "Host Latency",
            "min: 2.38086 ms (end to end 2.3877 ms)",
            "max: 7.18164 ms (end to end 7.19727 ms)",
            "mean: 2.56869 ms (end to end 2.57815 ms)",
            "median: 2.50391 ms (end to end 2.51367 ms)",
            "percentile: 3.17871 ms at 99% (end to end 3.19629 ms at 99%)",
            "throughput: 383.698 qps",
            "walltime: 26.0622 s",
        ]
    )
    r = parse_trtexec_log(text)
    assert r.throughput_qps == 383.698 and r.latency.mean_s == pytest.approx(2.56869e-3)
    assert r.gpu_compute_time is None and r.status is None


@pytest.mark.parametrize(
    "lines, version",
    [
        (["&&&& RUNNING TensorRT.trtexec [TensorRT v8001] # trtexec --onnx=m.onnx"], "8.0.1"),
        (["[04/14/2023-01:36:48] [I] TensorRT version: 8001"], "8.0.1"),
        (["&&&& RUNNING TensorRT.trtexec [TensorRT v101600] [b72] # trtexec"], "10.16.0"),
        (["[04/14/2023-01:36:48] [I] TensorRT version: 8.4.12"], "8.4.12"),
    ],
)
def test_version_forms(lines: list[str], version: str) -> None:
    summary = [
        "[04/14/2023-01:36:52] [I] === Performance summary ===",
        "[04/14/2023-01:36:52] [I] Throughput: 100 qps",
    ]
    assert parse_trtexec_log("\n".join(lines + summary)).trt_version == version


# ---------------------------------------------------------------------- broken logs


def test_failed_build_has_no_summary_and_says_why() -> None:
    with pytest.raises(TrtexecParseError) as caught:
        log("trt8.6.2_build_failed_unsupported_op.log")
    message = str(caught.value)
    assert "no performance summary" in message
    assert "trtexec FAILED" in message and "Engine set up failed" in message
    assert isinstance(caught.value, DeviceError)


def test_summary_cut_off_mid_line() -> None:
    r = log("trt10.3.0_orin_nano_truncated_summary.log")
    assert r.status is None  # no PASSED line
    assert r.throughput_qps == 212.259
    assert r.latency is None and r.gpu_compute_time is None
    assert r.total_host_walltime_s is None
    assert r.problems == ("cannot read 'Latency': 'min = 4.38955 ms, max = 6.'",)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "&&&& RUNNING TensorRT.trtexec [TensorRT v8602] # trtexec --onnx=m.onnx\n",
        "[03/28/2024-10:02:44] [I] === Performance summary ===\n",
    ],
)
def test_logs_without_figures_raise(text: str) -> None:
    with pytest.raises(TrtexecParseError, match="no performance summary"):
        parse_trtexec_log(text)


# --------------------------------------------------------------------- exportTimes


def test_export_times_trt7_names_and_warmup() -> None:
    text = (DATA / "trt7.1.3_jetson_nano_times.json").read_text()
    trace = parse_export_trace(text)
    assert len(trace) == 40 and "inMs" in trace[0] and "h2dMs" not in trace[0]
    h2d = parse_export_times(text, "h2dMs")  # read from the old "inMs"
    assert h2d[0] == pytest.approx(trace[0]["inMs"] / 1000)
    compute = parse_export_times(text, "computeMs")
    assert all(1e-3 < c < 20e-3 for c in compute)


def test_export_times_truncated_file() -> None:
    with pytest.raises(TrtexecParseError, match="not valid JSON"):
        parse_export_times((DATA / "trt10.3.0_orin_nano_times_truncated.json").read_text())


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"latencyMs": 1}', "must be a JSON list"),
        ('[{"computeMs": 1.0}]', "has no 'latencyMs'"),
        ('[{"latencyMs": "1.0"}]', "latencyMs = '1.0'"),
        ("[1.0]", "is not an object"),
    ],
)
def test_export_times_malformed_records(text: str, message: str) -> None:
    with pytest.raises(TrtexecParseError, match=message):
        parse_export_times(text)


def test_export_times_field_must_be_known() -> None:
    with pytest.raises(ValueError, match="field must be one of"):
        parse_export_times("[]", "wallMs")


# ---------------------------------------------------------------------------- argv


def test_build_engine_argv_trt10_fp16_workspace() -> None:
    argv = build_engine_argv(
        "/var/lib/edgebench/a b/model.onnx",
        "/var/lib/edgebench/engines/m.engine",
        precision="fp16",
        trt_major=10,
        workspace_mib=2048,
        extra=["--useCudaGraph"],
    )
    assert argv == [
        JETSON_TRTEXEC,
        "--onnx=/var/lib/edgebench/a b/model.onnx",  # one argv element, never a shell string
        "--saveEngine=/var/lib/edgebench/engines/m.engine",
        "--fp16",
        "--memPoolSize=workspace:2048M",
        "--useCudaGraph",
    ]


def test_build_engine_argv_trt8_int8_calibrated() -> None:
    argv = build_engine_argv(
        "m.onnx",
        "m.engine",
        precision="int8",
        trt_major=8,
        calib_cache="m.cache",
        workspace_mib=512,
        trtexec="trtexec",
    )
    assert argv == [
        "trtexec",
        "--onnx=m.onnx",
        "--saveEngine=m.engine",
        "--int8",
        "--calib=m.cache",
        "--workspace=512",
    ]
    fp32 = build_engine_argv("m.onnx", "m.engine", precision="fp32", trt_major=7)
    assert fp32[1:] == ["--onnx=m.onnx", "--saveEngine=m.engine"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"precision": "bf16", "trt_major": 10}, "precision must be one of"),
        ({"precision": "fp16", "trt_major": 10, "calib_cache": "c"}, "for int8 builds"),
        ({"precision": "fp16", "trt_major": 10, "workspace_mib": 0}, "must be positive"),
        ({"precision": "fp16", "trt_major": 6}, "not supported"),
    ],
)
def test_build_engine_argv_rejects(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        build_engine_argv("m.onnx", "m.engine", **kwargs)
    with pytest.raises(ValueError, match="onnx_remote"):
        build_engine_argv(" m.onnx", "m.engine", precision="fp16", trt_major=10)


def test_time_engine_argv() -> None:
    argv = time_engine_argv(
        "/e/m.engine",
        iterations=200,
        warmup_ms=500,
        duration_s=0.5,
        avg_runs=20,
        export_times="/tmp/t.json",
        separate_profile_run=True,
        extra=["--dumpProfile"],
    )
    assert argv == [
        JETSON_TRTEXEC,
        "--loadEngine=/e/m.engine",
        "--iterations=200",
        "--warmUp=500",
        "--duration=0.5",
        "--avgRuns=20",
        "--exportTimes=/tmp/t.json",
        "--separateProfileRun",
        "--dumpProfile",
    ]
    plain = time_engine_argv(
        "m.engine", iterations=10, warmup_ms=200.0, duration_s=3.0, avg_runs=10
    )
    assert shlex.join(plain[1:]) == (
        "--loadEngine=m.engine --iterations=10 --warmUp=200 --duration=3 --avgRuns=10"
    )
    with pytest.raises(ValueError):
        time_engine_argv("m.engine", iterations=0, warmup_ms=0, duration_s=0, avg_runs=1)
    with pytest.raises(ValueError):
        time_engine_argv("m.engine", iterations=1, warmup_ms=-1, duration_s=0, avg_runs=1)


def test_engine_cache_key() -> None:
    sha = "ab" * 32
    key = engine_cache_key(sha, "jetson-orin-nano/cc8.7/l4t-36.4.0", "10.3.0", "int8")
    assert len(key) == 64 and int(key, 16) >= 0
    assert key == engine_cache_key(
        sha.upper(), "jetson-orin-nano/cc8.7/l4t-36.4.0", "10.3.0", "int8"
    )
    others = {
        engine_cache_key("cd" * 32, "jetson-orin-nano/cc8.7/l4t-36.4.0", "10.3.0", "int8"),
        engine_cache_key(sha, "jetson-agx-orin/cc8.7/l4t-36.4.0", "10.3.0", "int8"),
        engine_cache_key(sha, "jetson-orin-nano/cc8.7/l4t-36.4.0", "8.6.2", "int8"),
        engine_cache_key(sha, "jetson-orin-nano/cc8.7/l4t-36.4.0", "10.3.0", "fp16"),
        engine_cache_key(
            sha, "jetson-orin-nano/cc8.7/l4t-36.4.0", "10.3.0", "int8", extra=["calib:" + "ef" * 32]
        ),
    }
    assert key not in others and len(others) == 5
    with pytest.raises(ValueError, match="sha256"):
        engine_cache_key("not-a-digest", "d", "10.3.0", "fp16")
    with pytest.raises(ValueError, match="precision"):
        engine_cache_key(sha, "d", "10.3.0", "best")
