"""`edgebench import`: a lab's existing trtexec, benchmark_model and onnxruntime_perf_test
logs become a run; the parsers on recorded outputs of each tool, failures included."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from runners.benchmark_model import MIB, BenchmarkModelParseError, parse_benchmark_model
from runners.ort_perf_test import OrtPerfTestParseError, parse_ort_perf_test
from runners.trtexec import parse_export_times, parse_trtexec_log
from tests.conftest import Runner

DATA = Path(__file__).parent / "data" / "trtexec"
LOG10 = DATA / "trt10.3.0_orin_nano_load_engine.log"
TIMES10 = DATA / "trt10.3.0_orin_nano_times.json"
LOG8 = DATA / "trt8.2.1_xavier_nx_fp16.log"
BM = Path(__file__).parent / "data" / "benchmark_model"
ORT = Path(__file__).parent / "data" / "ort_perf_test"


def _rows(eb: Runner, sql: str) -> list[tuple]:
    db = eb.env["EDGEBENCH_DB"].removeprefix("sqlite:///")  # type: ignore[attr-defined]
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def test_import_logs_with_and_without_raw_times(eb: Runner) -> None:
    out = eb("import", "--tool", "trtexec", "--device", "orin", str(LOG10), str(TIMES10), str(LOG8))
    assert "imported 2 log(s)" in out.stdout
    runs = json.loads(eb("runs", "list", "--json").stdout)
    assert runs[0]["suite_name"] == "import-trtexec" and runs[0]["done"] == 2

    metrics = {
        (variant, name): value
        for variant, name, value in _rows(
            eb, "SELECT j.variant, m.name, m.value FROM metrics m JOIN jobs j ON j.id = m.job_id"
        )
    }
    # With --exportTimes: every raw sample is stored and the stats are ours (nearest rank).
    raw = parse_export_times(TIMES10.read_text())
    (n_stored,) = _rows(eb, "SELECT SUM(n) FROM samples")[0]
    assert n_stored == len(raw)
    assert metrics[(LOG10.stem, "latency_n")] == len(raw)
    assert metrics[(LOG10.stem, "latency_p50")] == sorted(raw)[(len(raw) + 1) // 2 - 1]
    # Summary only: trtexec's own median is reported as is.
    summary = parse_trtexec_log(LOG8.read_text())
    assert metrics[(LOG8.stem, "latency_p50")] == summary.latency.median_s
    assert metrics[(LOG8.stem, "throughput")] == summary.throughput_qps


def test_import_rejects_bad_input_in_one_line(eb: Runner, tmp_path: Path) -> None:
    broken = tmp_path / "build.log"
    broken.write_text((DATA / "trt8.6.2_build_failed_unsupported_op.log").read_text())
    for args, needle in [
        (["--tool", "trtexec", str(broken)], str(broken)),
        (["--tool", "tflite-bench", str(LOG8)], "not supported (supported: trtexec, "),
        (["--tool", "benchmark_model", str(LOG8)], "no benchmark_model timings found"),
        (["--tool", "ort-perf-test", str(LOG8)], "no onnxruntime_perf_test summary"),
        (["--tool", "trtexec", str(TIMES10)], "must follow the log"),
        (["--tool", "trtexec", str(tmp_path / "nope.log")], "no such file"),
    ]:
        proc = eb("import", *args, check=False)
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr
        assert needle in proc.stderr.strip().splitlines()[-1]


# --------------------------------------------------------------------------- benchmark_model


def test_benchmark_model_logcat_with_percentiles() -> None:
    r = parse_benchmark_model((BM / "android_logcat.txt").read_text())
    assert (r.num_threads, r.graph) == (4, "/data/local/tmp/edgebench/int8-tflite.tflite")
    assert r.delegates == [{"delegate": "TfLiteXNNPackDelegate", "nodes": 7, "of": 8}]
    assert r.model_size_bytes == pytest.approx(0.046183e6)  # the tool divides by 1e6
    assert (r.init_s, r.first_inference_s) == (pytest.approx(0.014211), pytest.approx(412e-6))
    assert r.inference_avg_s == pytest.approx(6.88e-6)
    assert r.warmup is not None and r.warmup.count == 61209
    assert r.timed is not None and r.timed.count == 139871
    assert (r.timed.median_s, r.timed.p95_s) == (pytest.approx(7e-6), pytest.approx(8e-6))
    assert r.memory_overall_bytes == pytest.approx(4.57031 * MIB) and r.peak_memory_bytes is None


def test_benchmark_model_ignores_op_profiling_counts() -> None:
    r = parse_benchmark_model((BM / "rpi4_op_profiling.txt").read_text())
    # The timed phase, not "Timings (microseconds): count=50 ... avg=73044.1" nor
    # "Memory (bytes): count=0" from the op profile printed after it.
    assert r.timed is not None and r.timed.count == 50
    assert r.timed.avg_s == pytest.approx(73051.4e-6) and r.timed.median_s is None
    assert r.warmup is not None and r.warmup.count == 7
    assert r.peak_memory_bytes == pytest.approx(20.3711 * MIB) and r.num_threads == 1


def test_benchmark_model_failures_say_why() -> None:
    with pytest.raises(BenchmarkModelParseError, match="not supported by GPU delegate"):
        parse_benchmark_model((BM / "gpu_failed.txt").read_text())
    with pytest.raises(BenchmarkModelParseError, match="no benchmark_model timings"):
        parse_benchmark_model("count=x first=\nInference timings in us: Init: ?\n")


# --------------------------------------------------------------------------- onnxruntime_perf_test


def test_ort_perf_test_recent_summary() -> None:
    r = parse_ort_perf_test((ORT / "1.20_rpi5.txt").read_text())
    assert (r.requests, r.intra_op_threads, r.cpu_usage_pct) == (500, 2, 49.0)
    assert r.mean_s == pytest.approx(1.426616e-3) and r.throughput_per_s == 700.4
    assert (r.session_creation_s, r.first_inference_s) == (
        pytest.approx(0.0412837),
        pytest.approx(3e-3),
    )
    assert r.peak_working_set_bytes == 48562176  # printed twice; same value
    assert r.percentiles_s == {
        50: pytest.approx(0.00141002),
        90: pytest.approx(0.00147517),
        95: pytest.approx(0.00151308),
        99: pytest.approx(0.00171455),
        99.9: pytest.approx(0.00227806),
    }
    assert (r.min_s, r.max_s) == (pytest.approx(0.00138211), pytest.approx(0.00227806))


def test_ort_perf_test_old_summary_and_failure() -> None:
    r = parse_ort_perf_test((ORT / "1.8_jetson_nano.txt").read_text())
    assert r.requests == 1000 and r.mean_s == pytest.approx(5.81344e-3)
    assert r.percentiles_s == {} and r.first_inference_s is None and r.throughput_per_s is None
    with pytest.raises(OrtPerfTestParseError, match="Protobuf parsing failed"):
        parse_ort_perf_test((ORT / "failed.txt").read_text())
    with pytest.raises(OrtPerfTestParseError, match="empty output"):
        parse_ort_perf_test("")


def test_import_benchmark_model_and_ort_perf_test_logs(eb: Runner, tmp_path: Path) -> None:
    eb(
        "import",
        "--tool",
        "benchmark_model",
        "--device",
        "pixel",
        *(str(BM / f) for f in ("android_logcat.txt", "rpi4_op_profiling.txt")),
    )
    out = eb("import", "--tool", "ort-perf-test", "--device", "pi5", str(ORT / "1.20_rpi5.txt"))
    assert "imported 1 log(s)" in out.stdout
    metrics = {
        (variant, name): value
        for variant, name, value in _rows(
            eb, "SELECT j.variant, m.name, m.value FROM metrics m JOIN jobs j ON j.id = m.job_id"
        )
    }
    assert metrics[("android_logcat", "latency_p50")] == pytest.approx(7e-6)
    assert metrics[("android_logcat", "latency_n")] == 139871
    assert ("rpi4_op_profiling", "latency_p50") not in metrics  # no median printed: none
    assert metrics[("rpi4_op_profiling", "latency_mean")] == pytest.approx(0.0730514)
    assert metrics[("rpi4_op_profiling", "peak_rss")] == pytest.approx(20.3711 * MIB)
    assert metrics[("1.20_rpi5", "latency_p90")] == pytest.approx(0.00147517)
    assert metrics[("1.20_rpi5", "init")] == pytest.approx(0.0412837)
    settings = dict(_rows(eb, "SELECT variant, setting FROM jobs"))
    assert json.loads(settings["android_logcat"])["threads"] == 4
    assert json.loads(settings["1.20_rpi5"])["tool"] == "ort-perf-test"
    assert {s for (s,) in _rows(eb, "SELECT SUM(n) FROM samples")} == {None}  # no raw samples

    runs = json.loads(eb("runs", "list", "--json").stdout)
    out_dir = tmp_path / "report"
    eb("report", runs[0]["id"], "-o", str(out_dir))
    html = (out_dir / "index.html").read_text()
    assert "imported from ort-perf-test logs" in html and "1.41 ms" in html

    same_name = tmp_path / "x" / "android_logcat.txt"
    same_name.parent.mkdir()
    same_name.write_text((BM / "android_logcat.txt").read_text())
    clash = eb(
        "import",
        "--tool",
        "benchmark_model",
        str(BM / "android_logcat.txt"),
        str(same_name),
        check=False,
    )
    assert clash.returncode == 2 and "give them different names" in clash.stderr
