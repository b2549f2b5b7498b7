"""The vendor-log parsers across tool versions: benchmark_model (TF 1.14 to LiteRT,
desktop, Raspberry Pi and Android logcat captures), trtexec (TensorRT 7 blocks to 10.x
summaries, with lines missing) and onnxruntime_perf_test (0.x, NXP's fork, --data_shape).

Every figure a recorded log prints comes back in seconds / bytes, labelled as the tool's
own statistic; every figure it does not print is None, never 0; and no log, nor any
prefix of one (a capture cut off anywhere), makes a parser fail with anything but its
own parse error.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

import pytest

from runners.benchmark_model import (
    MIB,
    BenchmarkModelParseError,
    PhaseStats,
    parse_benchmark_model,
)
from runners.ort_perf_test import OrtPerfTestParseError, parse_ort_perf_test
from runners.trtexec import TrtexecParseError, parse_trtexec_log

DATA = Path(__file__).parent / "data"
BM = DATA / "benchmark_model"
ORT = DATA / "ort_perf_test"
TRT = DATA / "trtexec"
US = 1e-6
MS = 1e-3


def bm(name: str):
    return parse_benchmark_model((BM / name).read_text())


def approx(value: float):
    return pytest.approx(value, rel=1e-9)


# ------------------------------------------------------------------ benchmark_model


def test_tf24_desktop_build_without_percentiles() -> None:
    r = bm("tf2.4_x86_64_desktop.txt")
    assert (r.graph, r.num_threads) == ("/home/lab/models/mobilenet_v2_1.0_224.tflite", 4)
    assert r.settings["Use xnnpack"] == "1"
    assert r.timings_line == "Inference timings in us"
    assert r.model_size_bytes == approx(13.9786e6)  # the tool's model "MB" is 1e6 bytes
    assert r.init_s == approx(21462 * US)
    assert r.first_inference_s == approx(6021 * US)
    assert r.warmup_avg_s == approx(4233.57 * US)
    assert r.inference_avg_s == approx(4176.38 * US)
    assert r.warmup == PhaseStats(
        count=118,
        first_s=approx(6021 * US),
        min_s=approx(4034 * US),
        max_s=approx(6021 * US),
        avg_s=approx(4233.57 * US),
        std_s=approx(262 * US),
        curr_s=approx(4113 * US),
        requested_min_runs=1,
        requested_min_s=0.5,
        requested_max_s=150.0,
    )
    t = r.timed
    assert t is not None
    assert (t.count, t.first_s, t.curr_s) == (240, approx(4188 * US), approx(4151 * US))
    assert (t.min_s, t.max_s) == (approx(4019 * US), approx(5270 * US))
    assert (t.avg_s, t.std_s) == (approx(4176.38 * US), approx(139 * US))
    assert (t.requested_min_runs, t.requested_min_s, t.requested_max_s) == (50, 1.0, 150.0)
    # no percentiles in this build: unknown, not zero
    assert (t.median_s, t.p5_s, t.p95_s) == (None, None, None) and t.percentiles_s == {}
    assert not t.all_same
    # "Peak memory footprint (MB): init= overall=" is the pre-2.5 name of the footprint
    # delta, not a peak: the peak (periodic monitor) is not in this log
    assert r.memory_init_bytes == approx(30.9844 * MIB)
    assert r.memory_overall_bytes == approx(39.6641 * MIB)
    assert r.peak_memory_bytes is None and r.vm_rss_end_bytes is None
    # desktop builds of that era print no "Replacing ... node(s)" line
    assert r.delegates == [] and r.delegate_coverage == {}
    assert r.op_profile_timed is None and r.errors == []


def test_tf21_android_logcat_gpu_single_warmup_run_and_old_summary_line() -> None:
    r = bm("android_logcat_tf2.1_gpu.txt")
    assert r.num_threads == 1 and r.graph == "/data/local/tmp/edgebench/fp16-tflite.tflite"
    assert r.settings["Use gpu"] == "1" and r.settings["Min warmup runs duration (seconds)"] == "0"
    assert r.timings_line == "Average inference timings in us"
    # "Warmup: 20349, Init: 838514, Inference: 5369.02"
    assert r.init_s == approx(0.838514)
    assert r.warmup_avg_s == approx(20349 * US)
    assert r.inference_avg_s == approx(5369.02 * US)
    # the one warm-up run prints "count=1 curr=20349": all-same form, no first/min/...
    w = r.warmup
    assert w is not None and (w.count, w.all_same, w.curr_s) == (1, True, approx(20349 * US))
    assert (w.first_s, w.min_s, w.max_s, w.avg_s, w.std_s) == (None,) * 5
    # TF 2.1 prints no "First inference"; it is the first warm-up run, here the only one
    assert r.first_inference_s == approx(20349 * US)
    t = r.timed
    assert t is not None and (t.count, t.first_s) == (187, approx(5511 * US))
    assert (t.min_s, t.max_s, t.std_s) == (approx(5187 * US), approx(6894 * US), approx(211 * US))
    assert (t.median_s, t.p95_s) == (None, None)
    # old delegate line: no "out of M"
    assert r.delegates == [{"delegate": "TfLiteGpuDelegateV2", "nodes": 66, "of": None}]
    # lines of other logcat tags (Adreno, ActivityManager) are not the tool's
    assert r.errors == []
    # no model size, no memory lines in this build
    assert r.model_size_bytes is None
    assert (r.memory_init_bytes, r.memory_overall_bytes, r.peak_memory_bytes) == (None,) * 3


def test_litert_with_percentiles_peak_memory_and_statm() -> None:
    r = bm("litert_rpi5_peak_memory.txt")
    assert r.settings["Report the peak memory footprint"] == "1"
    assert r.first_inference_s == approx(14408 * US) and r.init_s == approx(27113 * US)
    t = r.timed
    assert t is not None and t.count == 106
    assert (t.p5_s, t.median_s, t.p95_s) == (
        approx(9301 * US),
        approx(9394 * US),
        approx(9913 * US),
    )
    assert t.percentiles_s == {
        5.0: approx(9301 * US),
        50.0: approx(9394 * US),
        95.0: approx(9913 * US),
    }
    assert r.warmup is not None and r.warmup.median_s == approx(9461 * US)
    assert r.memory_init_bytes == approx(9.83203 * MIB)
    assert r.memory_overall_bytes == approx(16.9883 * MIB)
    assert r.peak_memory_bytes == approx(24.3672 * MIB)
    assert r.vm_rss_end_bytes == 24 * MIB
    assert (r.rss_anon_end_bytes, r.rss_file_shmem_end_bytes) == (14 * MIB, 10 * MIB)
    assert r.delegates == [{"delegate": "TfLiteXNNPackDelegate", "nodes": 66, "of": 66}]
    assert r.delegate_coverage == {"XNNPACK": "completely"}
    assert r.model_size_bytes == approx(5.42279e6)


def test_tf114_slow_model_scientific_notation_and_no_stats_summary() -> None:
    r = bm("tf1.14_rpi3_armv7_slow.txt")
    assert r.timings_line == "Average inference timings in us"
    # "Initialized session in 51.874ms" (no full stop) agrees with the summary's Init
    assert r.init_s == approx(51874 * US)
    # C++ streams print means of >= 1e6 us as 1.24853e+06
    assert r.inference_avg_s == approx(1.24853) and r.warmup_avg_s == approx(1.28776)
    assert r.timed is not None and r.timed.avg_s == approx(1.24853)
    assert r.timed.std_s == approx(5207 * US)
    # no "but terminate if exceeding" clause in this build
    assert (r.timed.requested_min_runs, r.timed.requested_max_s) == (50, None)
    assert r.warmup is not None and r.warmup.all_same and r.warmup.count == 1
    assert r.first_inference_s == approx(1287764 * US)
    assert r.settings["Use nnapi"] == "0" and r.num_threads == 4
    assert r.delegates == [] and r.model_size_bytes is None


def test_op_profiling_timings_are_kept_apart_from_the_timed_phase() -> None:
    r = bm("rpi4_op_profiling.txt")
    assert r.timed is not None and r.timed.avg_s == approx(73051.4 * US)
    op = r.op_profile_timed
    assert op is not None and (op.count, op.avg_s) == (50, approx(73044.1 * US))
    assert (op.first_s, op.curr_s, op.std_s) == (
        approx(72866 * US),
        approx(72595 * US),
        approx(1380 * US),
    )
    init = r.op_profile_init
    assert init is not None and init.all_same and init.curr_s == approx(35197 * US)


def test_op_profile_printed_before_the_summary_line_and_without_headers() -> None:
    # TF 2.0/2.1 printed the op tables, headerless, before "Average inference timings".
    text = "\n".join(
        [
            "Running benchmark for at least 1 iterations and at least 0.5 seconds",
            "count=6 first=91810 curr=85097 min=84834 max=91810 avg=86184.3 std=2519",
            "Running benchmark for at least 50 iterations and at least 1 seconds",
            "count=50 first=118810 curr=114219 min=88216 max=129193 avg=115062 std=7678",
            "============================== Run Order ==============================",
            "\t CONV_2D\t 0.000\t 9.411\t 9.402\t 11.827%\t 11.827%\t 0.000\t 1\t[conv]",
            "Timings (microseconds): count=50 first=1234 curr=1100 min=1080 max=1500 "
            "avg=1150.5 std=45",
            "Memory (bytes): count=0",
            "31 nodes observed",
            "Average inference timings in us: Warmup: 86184.3, Init: 1892, Inference: 115062",
        ]
    )
    r = parse_benchmark_model(text)
    assert r.timed is not None and r.timed.avg_s == approx(115062 * US)
    op = r.op_profile_timed
    assert op == PhaseStats(
        count=50,
        first_s=approx(1234 * US),
        min_s=approx(1080 * US),
        max_s=approx(1500 * US),
        avg_s=approx(1150.5 * US),
        std_s=approx(45 * US),
        curr_s=approx(1100 * US),
    )
    assert r.first_inference_s == approx(91810 * US)  # warm-up's first run
    assert r.init_s == approx(1892 * US)


def test_all_same_phase_with_percentiles() -> None:
    text = "\n".join(
        [
            "INFO: Running benchmark for at least 5 iterations and at least 0 seconds but "
            "terminate if exceeding 150 seconds.",
            "INFO: count=5 curr=100(all same) p5=100 median=100 p95=100",
            "INFO: Running benchmark for at least 50 iterations and at least 1 seconds but "
            "terminate if exceeding 150 seconds.",
            "INFO: count=10000 first=104 curr=99 min=97 max=412 avg=100.2 std=4 p5=98 "
            "median=100 p95=103",
            "INFO: Inference timings in us: Init: 2001, First inference: 100, "
            "Warmup (avg): 100, Inference (avg): 100.2",
        ]
    )
    r = parse_benchmark_model(text)
    w = r.warmup
    assert w is not None and w.all_same and w.count == 5 and w.curr_s == approx(100 * US)
    assert w.percentiles_s == {
        5.0: approx(100 * US),
        50.0: approx(100 * US),
        95.0: approx(100 * US),
    }
    assert w.avg_s is None  # not printed (equal to curr_s by the tool's rule)


def test_empty_warmup_phase_is_unknown_not_zero() -> None:
    # --warmup_runs=0 --warmup_min_secs=-1: the tool prints count=0 and, for the
    # empty phase, "First inference: 0, Warmup (avg): 0" (or nan).
    for empty_avg in ("0", "nan", "-nan"):
        text = "\n".join(
            [
                "INFO: Running benchmark for at least 0 iterations and at least -1 seconds "
                "but terminate if exceeding 150 seconds.",
                "INFO: count=0 p5=0 median=0 p95=0",
                "INFO: Running benchmark for at least 50 iterations and at least 1 seconds "
                "but terminate if exceeding 150 seconds.",
                "INFO: count=50 first=2004 curr=2001 min=1990 max=2100 avg=2010 std=12 "
                "p5=1995 median=2008 p95=2050",
                "INFO: Inference timings in us: Init: 5000, First inference: 0, "
                f"Warmup (avg): {empty_avg}, Inference (avg): 2010",
            ]
        )
        r = parse_benchmark_model(text)
        assert r.warmup is not None and r.warmup.count == 0
        assert r.warmup.percentiles_s == {} and r.warmup.curr_s is None
        assert (r.first_inference_s, r.warmup_avg_s) == (None, None)
        assert r.inference_avg_s == approx(2010 * US)


@pytest.mark.parametrize(
    "text, message",
    [
        # dry run: both phases empty
        (
            "Running benchmark for at least 0 iterations and at least -1 seconds\ncount=0\n"
            "Running benchmark for at least 0 iterations and at least -1 seconds\ncount=0\n"
            "Inference timings in us: Init: 812, First inference: 0, Warmup (avg): 0, "
            "Inference (avg): 0\n",
            "ran no inference",
        ),
        # killed during the timed phase: the lone count line is the warm-up's
        (
            "INFO: Initialized session in 3.1ms.\n"
            "INFO: Running benchmark for at least 1 iterations and at least 0.5 seconds but "
            "terminate if exceeding 150 seconds.\n"
            "INFO: count=40 first=13000 curr=12500 min=12400 max=13000 avg=12510 std=90\n"
            "INFO: Running benchmark for at least 50 iterations and at least 1 seconds but "
            "terminate if exceeding 150 seconds.\n",
            "only the warm-up ran",
        ),
    ],
)
def test_logs_without_a_timed_phase_raise(text: str, message: str) -> None:
    with pytest.raises(BenchmarkModelParseError, match=message):
        parse_benchmark_model(text)


def test_count_line_cut_off_mid_line_is_left_out() -> None:
    text = (BM / "tf2.4_x86_64_desktop.txt").read_text()
    cut = text[: text.index("count=240") + len("count=240 first=4188 curr=4151 min=40")]
    with pytest.raises(BenchmarkModelParseError, match="no benchmark_model timings"):
        parse_benchmark_model(cut)
    # with the summary line after it, the summary's figures stand and the phase is unknown
    r = parse_benchmark_model(cut + "\n" + text.splitlines()[17])
    assert r.timed is None and r.inference_avg_s == approx(4176.38 * US)
    assert r.problems == ["cut off: 'count=240 first=4188 curr=4151 min=40'"]


def test_logcat_brief_format_and_grepped_lines() -> None:
    text = "\n".join(
        [
            "I/tflite  ( 4242): Num threads: [2]",
            "I/tflite  ( 4242): count=3 first=900 curr=800 min=800 max=900 avg=833.333 std=47",
            "I/tflite  ( 4242): count=60 first=810 curr=790 min=780 max=950 avg=801.5 std=20",
        ]
    )
    r = parse_benchmark_model(text)
    # no "Running benchmark" lines (grepped): the last two count lines are the phases
    assert r.num_threads == 2
    assert r.warmup is not None and r.warmup.count == 3
    assert r.timed is not None and r.timed.count == 60 and r.timed.requested_min_runs is None
    assert (r.init_s, r.inference_avg_s) == (None, None)
    assert r.first_inference_s == approx(900 * US)  # the warm-up's first run


def test_phase_stats_say_which_statistic_they_are() -> None:
    assert PhaseStats.STD_DDOF == 0
    assert "floor" in PhaseStats.PERCENTILE_METHOD
    doc = " ".join((PhaseStats.__doc__ or "").split())
    assert "mean" in doc and "ddof=0" in doc and "not nearest-rank" in doc


# ------------------------------------------------------------------------- trtexec


def trt(name: str):
    return parse_trtexec_log((TRT / name).read_text())


def test_trt85_plain_summary_without_trace_or_query_count() -> None:
    r = trt("trt8.5.2_orin_nx_summary_only.log")
    assert (r.style, r.trt_version, r.status) == ("summary", "8.5.2", "PASSED")
    assert r.throughput_qps == 398.1
    lat = r.latency
    assert lat is not None
    assert (lat.min_s, lat.max_s) == (approx(2.61963 * MS), approx(3.51904 * MS))
    assert (lat.mean_s, lat.median_s) == (approx(2.7398 * MS), approx(2.72363 * MS))
    assert dict(lat.percentiles_s) == {
        90.0: approx(2.80371 * MS),
        95.0: approx(2.84155 * MS),
        99.0: approx(3.27905 * MS),
    }
    assert r.gpu_compute_time is not None and r.gpu_compute_time.median_s == approx(2.4729 * MS)
    assert r.h2d_latency is not None and r.d2h_latency is not None and r.enqueue_time is not None
    assert (r.total_host_walltime_s, r.total_gpu_compute_time_s) == (1.25597, 1.24465)
    # not in this log: unknown
    assert (r.timed_queries, r.timed_s, r.warmup_queries, r.warmup_s) == (None,) * 4
    assert r.trace_averages == [] and r.gpu_compute_cv_pct is None
    assert r.options == {} and r.precision is None and r.device_name is None
    assert r.end_to_end is None and r.problems == ()


def test_trt84_summary_excerpt_without_throughput() -> None:
    r = trt("trt8.4.1_xavier_summary_excerpt_no_throughput.log")
    assert r.style == "summary" and r.throughput_qps is None
    assert (r.trt_version, r.status, r.command, r.argv) == (None, None, None, [])
    assert r.latency is not None and r.latency.mean_s == approx(8.0129 * MS)
    assert r.latency.percentile(95) == approx(8.17578 * MS)
    assert r.gpu_compute_time is not None and r.gpu_compute_time.max_s == approx(8.88477 * MS)
    assert (r.enqueue_time, r.h2d_latency, r.d2h_latency) == (None, None, None)
    assert (r.total_host_walltime_s, r.total_gpu_compute_time_s) == (None, None)
    assert r.problems == ()


def test_trt7_legacy_blocks_without_percentiles_or_throughput() -> None:
    r = trt("trt7.1.3_xavier_legacy_excerpt_no_percentiles.log")
    assert (r.style, r.status) == ("legacy", "PASSED")
    lat = r.latency
    assert lat is not None and lat.percentiles_s == {} and lat.percentile(99) is None
    assert (lat.min_s, lat.max_s) == (approx(1.43945 * MS), approx(2.60205 * MS))
    assert (lat.mean_s, lat.median_s) == (approx(1.50127 * MS), approx(1.48779 * MS))
    assert r.end_to_end is not None and r.end_to_end.median_s == approx(1.49951 * MS)
    gpu = r.gpu_compute_time
    assert gpu is not None and gpu.mean_s == approx(1.43787 * MS) and gpu.percentiles_s == {}
    assert r.throughput_qps is None and r.problems == ()  # absent, not the 0-qps bug
    assert (r.total_host_walltime_s, r.total_gpu_compute_time_s) == (None, None)
    assert r.trace_averages == [] and r.timed_queries is None


def test_trt_summary_with_nan_is_not_a_figure() -> None:
    text = "\n".join(
        [
            "[04/14/2023-01:36:52] [I] === Performance summary ===",
            "[04/14/2023-01:36:52] [I] Throughput: 100 qps",
            "[04/14/2023-01:36:52] [I] Latency: min = 1 ms, max = 2 ms, mean = 1.5 ms, "
            "median = 1.4 ms, percentile(99%) = nan ms",
            "[04/14/2023-01:36:52] [I] GPU Compute Time: min = nan ms, max = nan ms, "
            "mean = nan ms, median = nan ms",
        ]
    )
    r = parse_trtexec_log(text)
    assert r.latency is not None and r.latency.percentiles_s == {}
    assert r.gpu_compute_time is None
    assert any("GPU Compute Time" in p for p in r.problems)


# -------------------------------------------------------------- onnxruntime_perf_test


def ort(name: str):
    return parse_ort_perf_test((ORT / name).read_text())


def test_ort_0x_compact_summary_without_units_percentiles_or_peak() -> None:
    r = ort("0.4_jetson_tx2_compact.txt")
    assert (r.requests, r.timed_requests) == (100, 100)
    assert r.mean_s == approx(19.4521 * MS)
    assert r.total_time_s == approx(1.94521)  # printed without a unit: seconds
    assert r.percentiles_s == {} and (r.min_s, r.max_s) == (None, None)
    assert r.peak_working_set_bytes is None and r.cpu_usage_pct is None
    assert (r.session_creation_s, r.first_inference_s, r.run_time_s) == (None, None, None)
    assert (r.throughput_per_s, r.intra_op_threads, r.runs) == (None, None, None)


def test_ort_nxp_fork_counts_its_warmup_request() -> None:
    r = ort("nxp_imx8mp_eiq.txt")
    assert (r.requests, r.timed_requests) == (101, 100)
    assert r.mean_s == approx(28.525 * MS)  # "(excluding warm-up)"
    assert r.first_inference_s == approx(41.7241 * MS)  # "Warm-up inference time cost"
    assert r.total_time_including_warmup_s == approx(2.89422)
    assert r.total_time_s is None and r.run_time_s == approx(2.85711)
    assert (r.intra_op_threads, r.inter_op_threads) == (4, 1)
    assert r.peak_working_set_bytes == 87511040 and r.cpu_usage_pct == 96.0
    assert r.percentiles_s == {} and r.throughput_per_s is None


def test_ort_shape_groups_stay_out_of_the_overall_figures() -> None:
    r = ort("data_shape_groups.txt")
    assert (r.requests, r.runs, r.first_inference_s) == (200, 200, approx(21 * MS))
    assert r.mean_s == approx(7.51155 * MS)
    # the overall figures, not group 1's "Min Latency: 3.9871 ms" printed before them
    assert (r.min_s, r.max_s) == (approx(0.00398712), approx(0.0128813))
    assert r.percentiles_s[50] == approx(0.0106542)
    assert r.percentiles_s[99.9] == approx(0.0128813)
    g1, g2 = r.shape_groups
    assert (g1.index, g1.label, g1.iterations) == (1, "input : [1,3,224,224]", 100)
    assert g1.mean_s == approx(4.1022 * MS) and g1.min_s == approx(3.9871 * MS)
    assert g1.percentiles_s[99] == approx(5.0127 * MS)
    assert (g2.index, g2.label, g2.max_s) == (2, "input : [1,3,320,320]", approx(12.8813 * MS))


def test_ort_other_units_result_file_form_and_unmeasured_peak() -> None:
    text = "\n".join(
        [
            "Setting intra_op_num_threads to 1",
            "Session creation time cost: 312.5 ms",
            "Total inference requests: 40",
            "Average inference time cost: 850 us",
            "Average inference time cost submission: 120 us",
            "Peak working set size: 0 bytes",
            "P50 Latency is 0.000841sec",
            "Min Latency is 0.000802sec",
        ]
    )
    r = parse_ort_perf_test(text)
    assert r.session_creation_s == approx(0.3125)
    assert r.mean_s == approx(850 * US) and r.mean_submission_s == approx(120 * US)
    assert r.peak_working_set_bytes is None  # 0: the build could not measure it
    assert r.percentiles_s == {50.0: approx(0.000841)} and r.min_s == approx(0.000802)


def test_ort_run_without_requests_raises() -> None:
    with pytest.raises(OrtPerfTestParseError, match="no timed request"):
        parse_ort_perf_test("Total inference requests: 0\nAverage inference time cost: 0 ms\n")


# ----------------------------------------------------------- never a crash, any cut


def _cuts(text: str) -> list[str]:
    """The text cut after every line and in the middle of every line."""
    out, pos = [], 0
    for line in text.splitlines(keepends=True):
        out.append(text[: pos + len(line) // 2])
        pos += len(line)
        out.append(text[:pos])
    return out


_PARSERS = [
    (BM, parse_benchmark_model, BenchmarkModelParseError),
    (ORT, parse_ort_perf_test, OrtPerfTestParseError),
    (TRT, parse_trtexec_log, TrtexecParseError),
]


@pytest.mark.parametrize(
    "path, parse, error",
    [
        (path, parse, error)
        for folder, parse, error in _PARSERS
        for path in sorted(folder.iterdir())
        if path.suffix in (".txt", ".log")
    ],
    ids=lambda v: v.name if isinstance(v, Path) else "",
)
def test_every_cut_of_every_recorded_log_parses_or_says_why(path: Path, parse, error) -> None:
    for text in _cuts(path.read_text()):
        try:
            result = parse(text)
        except error:
            continue
        # whatever came back holds no zero (nor nan) standing in for a missing time
        for name, value in _times(result):
            assert value is None or value > 0, (path.name, name, value)


def _times(obj: object, prefix: str = "") -> list[tuple[str, object]]:
    """Every ``*_s`` figure in a parser result, nested records and mappings included."""
    out: list[tuple[str, object]] = []
    if dataclasses.is_dataclass(obj):
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            name = f"{prefix}{f.name}"
            if f.name.startswith("requested_"):
                continue  # settings echoed (0 and -1 are valid there), not measurements
            if f.name.endswith("_s"):
                items = value.values() if isinstance(value, Mapping) else [value]
                out += [(name, v) for v in items]
            else:
                out += _times(value, name + ".")
    elif isinstance(obj, list | tuple):
        for i, item in enumerate(obj):
            out += _times(item, f"{prefix}{i}.")
    return out


def test_threads_fall_back_to_what_the_cpu_path_used() -> None:
    lines = [
        "INFO: Num threads: [-1]",
        "INFO: #threads used for CPU inference: [6]",
        "INFO: count=60 first=810 curr=790 min=780 max=950 avg=801.5 std=20",
    ]
    assert parse_benchmark_model("\n".join(lines)).num_threads == 6
    assert parse_benchmark_model("\n".join(lines[2:])).num_threads is None
