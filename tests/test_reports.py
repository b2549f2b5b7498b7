"""Report rendering: golden text table, highlights, HTML escaping / self-containment, SVG plots."""

from __future__ import annotations

import base64
import copy
import dataclasses
import itertools
import random
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from reports.html import render_report, write_report
from reports.plots import latency_distribution_svg, pareto_front, pareto_svg, size_latency_svg
from reports.tables import (
    cell,
    device_highlights,
    fmt_bytes,
    fmt_count,
    fmt_hz,
    fmt_joules,
    fmt_pct,
    fmt_pp,
    fmt_seconds,
    fmt_share,
    fmt_watts,
    format_summary,
    group_by_device,
    rich_summary,
    summary_rows,
)
from runners.records import DeviceInfo, JobResult, LatencyStats, RunInfo, RunReport
from tests.browser import CHROMIUM, dump_dom
from tests.browser import MISSING as CHROMIUM_MISSING

XSS = "<script>alert(1)</script>"
TAG_VALUE = 'rack "7" & <top>'
TECHNIQUE_XSS = '<b>prune</b> & "quant" <script>x</script>'
DESCRIPTION_XSS = '<img src="x" onerror="alert(2)"> & co'
SVG_NS = "{http://www.w3.org/2000/svg}"
XLINK_HREF = "{http://www.w3.org/1999/xlink}href"
MIB = 1024 * 1024
# The digits test split has 360 images: every accuracy is k / 360.
N_TEST = 360


def _samples(seed: int, median_s: float, n: int = 2000) -> list[float]:
    rng = random.Random(seed)
    return [median_s * rng.lognormvariate(0.0, 0.15) for _ in range(n)]


def _latency(
    p50: float, n: int, p90: float | None = None, p99: float | None = None
) -> LatencyStats:
    p90 = p50 * 1.2 if p90 is None else p90
    p99 = p50 * 1.6 if p99 is None else p99
    return LatencyStats(
        p50=p50,
        p90=p90,
        p95=(p90 + p99) / 2,
        p99=p99,
        mean=p50 * 1.05,
        min=p50 * 0.8,
        max=p50 * 3,
        std=p50 * 0.1,
        cv=0.1,
        n=n,
        throughput=1 / p50,
        ci_low=p50 * 0.98,
        ci_high=p50 * 1.02,
    )


def _result(device: str, variant: str, fmt: str, runtime: str, **over: Any) -> JobResult:
    """A finished job's record; ``over`` replaces any field (a typo is a TypeError)."""
    base: dict[str, Any] = {
        "job_id": 0,
        "device": device,
        "variant": variant,
        "model": "digits_cnn",
        "format": fmt,
        "runtime": runtime,
        "threads": 1,
        "setting": f"{runtime} t=1",
        "status": "done",
        "error": None,
        "file_size_bytes": 40421,
        "accuracy": 0.955,
        "accuracy_n": N_TEST,
        "latency_s": None,
        "init_s": 0.012,
        "first_inference_s": 0.0004,
        "timer_floor_s": 1.04e-7,
        "peak_rss_bytes": 123456789,
        "rss_after_load_bytes": 120000000,
        "samples_s": [],
        "estimated": [],
    }
    base.update(over)
    return JobResult(**base)


# digits_cnn: conv 1->16 and 16->32 (3x3, 8x8), fc 512->64->10: 38 282 parameters and
# 337 536 MACs. The distilled student halves the channels (8, 16) and the hidden layer (32):
# 9 802 parameters, 86 848 MACs.
PARAMS, MACS = 38282, 337536
STUDENT_PARAMS, STUDENT_MACS = 9802, 86848
EXPORT = ("export_onnx", {"opset": 17}, "export ONNX")
INT8 = ("onnx_int8_static", {"per_channel": True}, "int8 static QDQ per-channel")
PRUNE = ("prune_global_unstructured", {"amount": 0.5}, "prune 50% (global, unstructured)")
DISTILL = (
    "distill",
    {"teacher": "fp32-onnx", "channels": [8, 16], "temperature": 4},
    "distill to 8/16-channel student (T=4)",
)


def _chain(*steps: tuple[str, dict[str, Any], str]) -> dict[str, Any]:
    return {
        "recipe": [s[0] for s in steps],
        "recipe_params": [s[1] for s in steps],
        "techniques": [s[2] for s in steps],
    }


def _power(mean_w: float | None, energy_j: float) -> dict[str, Any]:
    # RAPL package energy at 1 kHz; energy / inference = (mean - idle) x mean latency.
    return {
        "energy_per_inference_j": energy_j,
        "mean_power_w": mean_w,
        "idle_power_w": 4.15 if mean_w is not None else None,
        "power_rail": "RAPL package-0" if mean_w is not None else None,
        "power_sample_rate_hz": 1000.0 if mean_w is not None else None,
    }


def local_results() -> list[JobResult]:
    """Six variants of digits_cnn on an x86 desk machine (plus one failed job)."""
    onnx = ("onnx", "onnxruntime")
    tflite = ("tflite", "litert")
    return [
        _result(
            "local",
            "fp32-onnx",
            *onnx,
            **_chain(EXPORT),
            description="fp32 reference",
            baseline=True,
            params=PARAMS,
            nonzero_params=PARAMS,
            macs=MACS,
            file_size_bytes=154317,  # 150.7 KiB
            zstd_size_bytes=142020,  # 92%: not shown
            accuracy=351 / N_TEST,
            accuracy_retention=1.0,
            accuracy_meaningful=True,
            latency_s=_latency(15.3e-6, 20000, 15.6e-6, 17.0e-6),
            samples_s=_samples(1, 15.3e-6),
            peak_rss_bytes=64172032,  # 61.2 MiB
            **_power(6.21, 31.5e-6),
        ),
        _result(
            "local",
            "int8-onnx",
            *onnx,
            **_chain(EXPORT, INT8),
            description="static QDQ, per-channel, calibrated on 256 training images",
            params=PARAMS,
            nonzero_params=PARAMS,
            macs=MACS,
            file_size_bytes=46212,  # 45.1 KiB
            zstd_size_bytes=36180,  # 35.3 KiB, 78%
            accuracy=350 / N_TEST,
            accuracy_retention=350 / 351,
            latency_s=_latency(11.8e-6, 20000, 12.1e-6, 13.4e-6),
            samples_s=_samples(2, 11.8e-6),
            peak_rss_bytes=61760000,  # 58.9 MiB
            **_power(6.05, 22.4e-6),
        ),
        _result(
            "local",
            "pruned50-onnx",
            *onnx,
            **_chain(PRUNE, EXPORT),
            description="magnitude pruning of 50% of all weights, 3 fine-tune epochs",
            params=PARAMS,
            nonzero_params=19141,
            macs=MACS,
            file_size_bytes=154317,
            zstd_size_bytes=82150,  # 80.2 KiB
            accuracy=349 / N_TEST,
            # accuracy_retention left out: the report derives it from the baseline row.
            latency_s=_latency(15.2e-6, 20000, 15.5e-6, 16.9e-6),
            samples_s=_samples(3, 15.2e-6),
            peak_rss_bytes=64172032,
            **_power(6.20, 31.2e-6),
        ),
        _result(
            "local",
            "pruned50-int8-onnx",
            *onnx,
            **_chain(PRUNE, EXPORT, INT8),
            params=PARAMS,
            nonzero_params=19141,
            macs=MACS,
            file_size_bytes=46212,
            zstd_size_bytes=27640,  # 27.0 KiB
            accuracy=348 / N_TEST,
            accuracy_retention=348 / 351,
            latency_s=_latency(11.9e-6, 20000, 12.3e-6, 13.6e-6),
            samples_s=_samples(4, 11.9e-6),
            peak_rss_bytes=61760000,
            **_power(6.07, 22.8e-6),
        ),
        _result(
            "local",
            "distilled-onnx",
            *onnx,
            **_chain(DISTILL, EXPORT),
            description="student trained on the teacher's logits, 30 epochs",
            params=STUDENT_PARAMS,
            nonzero_params=STUDENT_PARAMS,
            macs=STUDENT_MACS,
            file_size_bytes=40612,  # 39.7 KiB
            zstd_size_bytes=37410,  # 92%: not shown
            accuracy=346 / N_TEST,
            accuracy_retention=346 / 351,
            latency_s=_latency(6.10e-6, 20000, 6.31e-6, 7.02e-6),
            samples_s=_samples(5, 6.10e-6),
            peak_rss_bytes=60030976,  # 57.2 MiB
            **_power(6.17, 12.3e-6),
        ),
        _result(
            "local",
            "distilled-int8-tflite",
            *tflite,
            recipe=["distill", "export_tflite", "tflite_int8_full"],
            recipe_params=[DISTILL[1], {}, {"calibration_images": 256}],
            techniques=[DISTILL[2], "export LiteRT", "int8 full-integer"],
            params=STUDENT_PARAMS,
            nonzero_params=STUDENT_PARAMS,
            macs=STUDENT_MACS,
            file_size_bytes=13540,  # 13.2 KiB
            zstd_size_bytes=12600,  # 93%: not shown
            accuracy=345 / N_TEST,
            accuracy_retention=345 / 351,
            latency_s=_latency(8.40e-6, 20000, 8.95e-6, 9.81e-6),
            samples_s=_samples(6, 8.40e-6),
            peak_rss_bytes=33554432,  # 32.0 MiB
            # The sampler could not resolve this run: energy from a power model.
            **_power(None, 15.9e-6),
            estimated=["energy_per_inference_j"],
        ),
        _result(
            "local",
            "int8-tflite",
            *tflite,
            recipe=["export_tflite", "tflite_int8_full"],
            status="failed",
            error='AgentError: session init failed:\n  bad <model> & "quotes"',
            accuracy=None,
            accuracy_n=None,
            init_s=None,
            first_inference_s=None,
            peak_rss_bytes=None,
        ),
    ]


def make_data() -> RunReport:
    return RunReport(
        run=RunInfo(
            id="20261129-213000-ab12",
            suite="digits",
            status="finished",
            created_at="2026-11-29T21:30:00+00:00",
            edgebench_version="0.1.0",
            commit="abc1234",
            repetitions=5,
            baseline_variant="fp32-onnx",
        ),
        devices=[
            DeviceInfo(
                name="local",
                transport="local",
                address="",
                tags={"site": "desk"},
                facts={
                    "os": "Linux",
                    "os_release": "Debian GNU/Linux 12",
                    "kernel": "6.1.0",
                    "arch": "x86_64",
                    "cpu_model": "AMD EPYC",
                    "cpu_cores": 2,
                    "memory_total_bytes": 25000000000,
                    "python": "3.11.7",
                    "runtimes": {"onnxruntime": "1.32.0", "ai_edge_litert": "2.3.0"},
                },
            ),
            DeviceInfo(
                # Emulated board with sparse facts: missing keys must render as "-".
                name="qemu-arm",
                transport="ssh",
                address="10.0.0.7",
                tags={"note": TAG_VALUE},
                facts={"os": "Linux", "arch": "aarch64", "runtimes": {"onnxruntime": "1.32.0"}},
            ),
        ],
        results=[
            *local_results(),
            _result(
                "qemu-arm",
                "fp32-onnx",
                "onnx",
                "onnxruntime",
                # No baseline flag: the run's baseline_variant makes this the baseline.
                recipe=["export_onnx"],
                accuracy=351 / N_TEST,
                latency_s=_latency(1.234, 40),
                samples_s=_samples(3, 1.234, 40),
                estimated=["latency_s", "peak_rss_bytes"],
            ),
            _result(
                "qemu-arm",
                XSS,
                "tflite",
                "ai_edge_litert",
                techniques=[TECHNIQUE_XSS],
                recipe=["export_tflite", "<i>step</i>"],
                recipe_params=[{}, {"note": "<u>&</u>"}],
                description=DESCRIPTION_XSS,
                file_size_bytes=11234,
                accuracy=0.9512,  # retention derived: 0.9512 / 0.975 = 97.6%
                latency_s=_latency(0.001234, 987),
                samples_s=_samples(2, 0.001234),
                peak_rss_bytes=98765432,
            ),
            _result(
                "qemu-arm",
                "int8-tflite",
                "tflite",
                "ai_edge_litert",
                file_size_bytes=900,
                accuracy=None,
                accuracy_n=None,
                latency_s=_latency(0.0456, 200),
                samples_s=_samples(4, 0.0456, 200),
                peak_rss_bytes=2048,
            ),
        ],
    )


def random_weight_data() -> RunReport:
    """MobileNetV3-Small with random weights: latency model, accuracy is meaningless."""
    data = make_data()

    def mobilenet(variant: str, size: int, p50: float, **over: Any) -> JobResult:
        return _result(
            "local",
            variant,
            "onnx",
            "onnxruntime",
            model="mobilenet_v3_small",
            file_size_bytes=size,
            accuracy=0.1,  # chance level: must not be shown as a figure
            accuracy_meaningful=False,
            latency_s=_latency(p50, 500),
            samples_s=_samples(7, p50, 500),
            **over,
        )

    return data.replace(
        devices=data.devices[:1],
        results=[
            mobilenet("fp32-onnx", 10_240_000, 0.0041, baseline=True, accuracy_retention=1.0),
            mobilenet("int8-onnx", 2_700_000, 0.0032, accuracy_retention=0.5),
            mobilenet("pruned50-onnx", 10_240_000, 0.0042),
        ],
    )


GOLDEN = """\
run 20261129-213000-ab12  suite digits  status finished
warning: some figures are estimated (marked *): no sensor or board measured them

Device local (local): Linux x86_64, AMD EPYC, 2 cores
Highlights: smallest file distilled-int8-tflite (13.2 KiB) | fastest p90 distilled-onnx (6.31 µs) | most accurate fp32-onnx (97.5%) |
            lowest energy distilled-onnx (12.3 µJ)
Accuracy vs baseline fp32-onnx: int8-onnx: -0.3 pp, pruned50-onnx: -0.6 pp, pruned50-int8-onnx: -0.8 pp, distilled-onnx: -1.4 pp, distilled-int8-tflite: -1.7 pp
                                                                                           Params /            Accuracy            Latency      Peak     Energy /
Variant                Technique                    Runtime                File size      non-zeros   MACs  (retention)          p50 / p90    memory    inference      n
---------------------  ---------------------------  ---------------  ---------------  -------------  -----  -----------  -----------------  --------  -----------  -----
fp32-onnx              export ONNX                  onnxruntime t=1        150.7 KiB          38.3k   338k        97.5%  15.3 µs / 15.6 µs  61.2 MiB     31.5 µJ   20000
                                                                                                             (baseline)                               (baseline)
int8-onnx              export ONNX →                onnxruntime t=1         45.1 KiB          38.3k   338k        97.2%  11.8 µs / 12.1 µs  58.9 MiB     22.4 µJ   20000
                       int8 static QDQ per-channel                   (zstd 35.3 KiB)                            (99.7%)                                    (71%)
pruned50-onnx          prune 50% (global,           onnxruntime t=1        150.7 KiB  38.3k / 19.1k   338k        96.9%  15.2 µs / 15.5 µs  61.2 MiB     31.2 µJ   20000
                       unstructured) → export ONNX                   (zstd 80.2 KiB)                            (99.4%)                                    (99%)
pruned50-int8-onnx     prune 50% (global,           onnxruntime t=1         45.1 KiB  38.3k / 19.1k   338k        96.7%  11.9 µs / 12.3 µs  58.9 MiB     22.8 µJ   20000
                       unstructured) →                               (zstd 27.0 KiB)                            (99.1%)                                    (72%)
                       export ONNX →
                       int8 static QDQ per-channel
distilled-onnx         distill to 8/16-channel      onnxruntime t=1         39.7 KiB          9.80k  86.8k        96.1%  6.10 µs / 6.31 µs  57.2 MiB     12.3 µJ   20000
                       student (T=4) → export ONNX                                                              (98.6%)                                    (39%)
distilled-int8-tflite  distill to 8/16-channel      litert t=1              13.2 KiB          9.80k  86.8k        95.8%  8.40 µs / 8.95 µs  32.0 MiB     15.9 µJ*  20000
                       student (T=4) →                                                                          (98.3%)                                    (50%)*
                       export LiteRT →
                       int8 full-integer
int8-tflite            export_tflite →              litert t=1       FAILED: AgentError: session init failed: bad <model> & "quotes"
                       tflite_int8_full
* estimated (no sensor / emulation)
energy (n%): battery impact, the energy per inference as a share of the baseline's on this device
power: rail RAPL package-0 sampled at 1 kHz, idle 4.15 W
percentiles: nearest-rank; latency = median across 5 repetitions

Device qemu-arm (ssh): Linux aarch64
Highlights: smallest file int8-tflite (900 B) | fastest p90 <script>alert(1)</script> (1.48 ms) | most accurate fp32-onnx (97.5%)
Accuracy vs baseline fp32-onnx: <script>alert(1)</script>: -2.4 pp
                                                                                   Params /           Accuracy             Latency        Peak   Energy /
Variant                    Technique               Runtime             File size  non-zeros  MACs  (retention)           p50 / p90      memory  inference    n
-------------------------  ----------------------  ------------------  ---------  ---------  ----  -----------  ------------------  ----------  ---------  ---
fp32-onnx                  export_onnx             onnxruntime t=1      39.5 KiB          -     -        97.5%    1.23 s / 1.48 s*  117.7 MiB*          -   40
                                                                                                    (baseline)
<script>alert(1)</script>  <b>prune</b> & "quant"  ai_edge_litert t=1   11.0 KiB          -     -        95.1%  1.23 ms / 1.48 ms    94.2 MiB           -  987
                           <script>x</script>                                                          (97.6%)
int8-tflite                -                       ai_edge_litert t=1      900 B          -     -            -  45.6 ms / 54.7 ms     2.0 KiB           -  200
* estimated (no sensor / emulation)
percentiles: nearest-rank; latency = median across 5 repetitions
"""  # noqa: E501


def test_formatters() -> None:
    assert fmt_seconds(0.000123) == "123 µs"
    assert fmt_seconds(0.00123) == "1.23 ms"
    assert fmt_seconds(1.23) == "1.23 s"
    assert fmt_seconds(0.0012) == "1.20 ms"
    assert fmt_seconds(0.00099996) == "1.00 ms"  # rounding moves up a unit
    assert fmt_seconds(0.0000999) == "99.9 µs"
    assert fmt_seconds(None) == "-"
    assert fmt_bytes(40421) == "39.5 KiB"
    assert fmt_bytes(123456789) == "117.7 MiB"
    assert fmt_bytes(900) == "900 B"
    assert fmt_bytes(None) == "-"
    assert fmt_pct(0.955) == "95.5%"
    assert fmt_pct(None) == "-"
    assert fmt_count(38600) == "38.6k"
    assert fmt_count(19300) == "19.3k"
    assert fmt_count(1234567) == "1.23M"
    assert fmt_count(999999) == "1.00M"  # rounding moves up a unit
    assert fmt_count(512) == "512"
    assert fmt_count(None) == "-"
    assert fmt_joules(0.0123) == "12.3 mJ"
    assert fmt_joules(31.5e-6) == "31.5 µJ"
    assert fmt_joules(None) == "-"
    assert fmt_watts(2.3104) == "2.31 W"
    assert fmt_watts(0.512) == "512 mW"
    assert fmt_hz(1000.0) == "1 kHz"
    assert fmt_hz(1250) == "1.25 kHz"
    assert fmt_hz(50) == "50 Hz"
    assert fmt_pp(-0.003) == "-0.3 pp"
    assert fmt_pp(0.0) == fmt_pp(-0.0001) == "+0.0 pp"  # never "-0.0"
    assert fmt_pp(0.012) == "+1.2 pp"
    assert fmt_share(0.55) == "55%" and fmt_share(1.0) == "100%" and fmt_share(0.714) == "71%"
    assert fmt_share(0.001) == "<1%"  # a small share never reads as nothing
    assert fmt_share(None) == fmt_share(float("nan")) == "-"


def test_text_table_golden() -> None:
    assert format_summary(make_data()) == GOLDEN


def test_text_table_fits_about_160_columns() -> None:
    table = [
        line
        for line in GOLDEN.split("Device qemu-arm")[0].splitlines()
        if not line.startswith(("Highlights", "Accuracy vs", "            "))
    ]
    assert max(len(line) for line in table) <= 170
    assert max(len(line) for line in GOLDEN.splitlines()) <= 170


def test_rows_combine_the_new_figures() -> None:
    rows = {r["variant"]: r for r in summary_rows(make_data()) if r["device"] == "local"}
    assert rows["pruned50-onnx"]["size"] == "150.7 KiB (zstd 80.2 KiB)"
    assert rows["fp32-onnx"]["size"] == "150.7 KiB"  # zstd 92% of the file: not shown
    assert rows["pruned50-onnx"]["params"] == "38.3k / 19.1k"
    assert rows["int8-onnx"]["params"] == "38.3k"
    assert rows["int8-onnx"]["macs"] == "338k"
    assert rows["int8-onnx"]["accuracy"] == "97.2% (99.7%)"
    assert rows["fp32-onnx"]["accuracy"] == "97.5% (baseline)"
    # Derived from the baseline when accuracy_retention is absent: 349 / 351.
    assert rows["pruned50-onnx"]["accuracy"] == "96.9% (99.4%)"
    assert rows["int8-onnx"]["latency"] == "11.8 µs / 12.1 µs"
    assert rows["int8-onnx"]["p99"] == "13.4 µs"
    assert rows["int8-onnx"]["technique"] == "export ONNX → int8 static QDQ per-channel"
    assert rows["int8-tflite"]["technique"] == "export_tflite → tflite_int8_full"  # recipe
    # Energy with its battery impact: the share of the baseline's 31.5 µJ.
    assert rows["fp32-onnx"]["energy"] == "31.5 µJ (baseline)"
    assert rows["int8-onnx"]["energy"] == "22.4 µJ (71%)"
    assert rows["distilled-int8-tflite"]["energy"] == "15.9 µJ (50%)"
    assert rows["distilled-int8-tflite"]["estimated"] == ["energy", "battery_impact"]
    # Each figure carries its own marker.
    assert cell(rows["distilled-int8-tflite"], "energy") == "15.9 µJ* (50%)*"
    assert cell(rows["int8-onnx"], "energy") == "22.4 µJ (71%)"
    assert rows["distilled-int8-tflite"]["mean_power"] == "-"
    assert rows["fp32-onnx"]["mean_power"] == "6.21 W"


def test_highlights_pick_the_right_variants() -> None:
    results = local_results()
    h = device_highlights(results)
    assert (h["smallest"]["variant"], h["smallest"]["value"]) == (
        "distilled-int8-tflite",
        "13.2 KiB",
    )
    assert (h["fastest"]["variant"], h["fastest"]["value"]) == ("distilled-onnx", "6.31 µs")
    assert (h["most_accurate"]["variant"], h["most_accurate"]["value"]) == ("fp32-onnx", "97.5%")
    assert (h["lowest_energy"]["variant"], h["lowest_energy"]["value"]) == (
        "distilled-onnx",
        "12.3 µJ",
    )
    assert h["baseline"] == "fp32-onnx"
    assert [(c["variant"], c["value"]) for c in h["accuracy_cost"]] == [
        ("int8-onnx", "-0.3 pp"),
        ("pruned50-onnx", "-0.6 pp"),
        ("pruned50-int8-onnx", "-0.8 pp"),
        ("distilled-onnx", "-1.4 pp"),
        ("distilled-int8-tflite", "-1.7 pp"),
    ]
    # An estimated figure that wins is still picked, and flagged.
    cheaper = copy.deepcopy(results)
    cheaper[5] = cheaper[5].replace(energy_per_inference_j=1e-6)
    lowest = device_highlights(cheaper)["lowest_energy"]
    assert (lowest["variant"], lowest["estimated"]) == ("distilled-int8-tflite", True)
    # Ties go to the first in table order; failed jobs never win.
    tied = copy.deepcopy(results)
    tied[3] = tied[3].replace(accuracy=tied[0].accuracy)
    tied[6] = tied[6].replace(file_size_bytes=1, latency_s=_latency(1e-9, 10))
    h = device_highlights(tied)
    assert h["most_accurate"]["variant"] == "fp32-onnx"
    assert h["smallest"]["variant"] == "distilled-int8-tflite"


def test_highlights_baseline_from_run_and_runtimes_in_names() -> None:
    # No baseline flag: only the run's baseline_variant names it.
    results = [r.replace(baseline=False) for r in local_results()[:2]]
    # The same variant on two runtimes: names gain the runtime, and each compares with the
    # baseline on its own runtime.
    other = [r.replace(setting="onnxruntime t=4") for r in results]
    other[0] = other[0].replace(accuracy=352 / N_TEST)
    h = device_highlights(results + other, baseline_variant="fp32-onnx")
    assert h["baseline"] == "fp32-onnx (onnxruntime t=1)"
    assert [(c["variant"], c["value"]) for c in h["accuracy_cost"]] == [
        ("int8-onnx (onnxruntime t=1)", "-0.3 pp"),
        ("int8-onnx (onnxruntime t=4)", "-0.6 pp"),
    ]
    assert device_highlights(results)["accuracy_cost"] == []  # no baseline known


def battery_data() -> RunReport:
    """Energy per inference on three devices, each with its own baseline (run's
    baseline_variant "fp32"): the phone's at 2.00 mJ, the board's at 4.00 mJ (estimated),
    the kit's unknown."""

    def job(device: str, variant: str, energy: float | None, **over: Any) -> JobResult:
        return _result(
            device,
            variant,
            "onnx",
            "onnxruntime",
            latency_s=_latency(0.01, 100),
            energy_per_inference_j=energy,
            **over,
        )

    return RunReport(
        run=RunInfo(id="battery", suite="digits", status="finished", baseline_variant="fp32"),
        devices=[DeviceInfo(name="phone"), DeviceInfo(name="board"), DeviceInfo(name="kit")],
        results=[
            job("phone", "fp32", 2.0e-3),
            job("phone", "int8", 1.1e-3),
            job("phone", "pruned", 1.5e-3, estimated=["energy_per_inference_j"]),
            job("phone", "distilled", None),
            # Another runtime setting on which the baseline ran too: compared with that row.
            job("phone", "fp32", 1.0e-3, setting="onnxruntime t=4", threads=4),
            job("phone", "int8", 0.8e-3, setting="onnxruntime t=4", threads=4),
            # A setting the baseline did not run with: its row with the default setting.
            job("phone", "int8", 0.5e-3, setting="onnxruntime t=2", threads=2),
            # The board's baseline energy comes from a power model: every share is estimated.
            job("board", "fp32", 4.0e-3, estimated=["energy_per_inference_j"]),
            job("board", "int8", 1.1e-3),
            job("kit", "fp32", None),
            job("kit", "int8", 1.0e-3),
        ],
    )


def test_battery_impact_against_each_devices_baseline() -> None:
    rows = summary_rows(battery_data())
    got = [
        (r["device"], r["variant"], r["runtime"], r["energy"], r["battery_impact"]) for r in rows
    ]
    assert got == [
        ("phone", "fp32", "onnxruntime t=1", "2.00 mJ (baseline)", "100%"),
        ("phone", "int8", "onnxruntime t=1", "1.10 mJ (55%)", "55%"),
        ("phone", "pruned", "onnxruntime t=1", "1.50 mJ (75%)", "75%"),
        # Unknown energy: "-", never a share of 0.
        ("phone", "distilled", "onnxruntime t=1", "-", "-"),
        ("phone", "fp32", "onnxruntime t=4", "1.00 mJ (baseline)", "100%"),
        ("phone", "int8", "onnxruntime t=4", "800 µJ (80%)", "80%"),
        ("phone", "int8", "onnxruntime t=2", "500 µJ (25%)", "25%"),
        # Against the board's own 4.00 mJ baseline (the phone's would give 55%).
        ("board", "fp32", "onnxruntime t=1", "4.00 mJ (baseline)", "100%"),
        ("board", "int8", "onnxruntime t=1", "1.10 mJ (28%)", "28%"),
        # The baseline's energy is unknown: so is the share.
        ("kit", "fp32", "onnxruntime t=1", "-", "-"),
        ("kit", "int8", "onnxruntime t=1", "1.00 mJ (-)", "-"),
    ]
    estimated = {(r["device"], r["variant"], r["runtime"]): r["estimated"] for r in rows}
    # Either energy estimated marks the share; the baseline against itself is 100% exactly.
    assert estimated["phone", "pruned", "onnxruntime t=1"] == ["energy", "battery_impact"]
    assert estimated["phone", "int8", "onnxruntime t=1"] == []
    assert estimated["board", "fp32", "onnxruntime t=1"] == ["energy"]
    assert estimated["board", "int8", "onnxruntime t=1"] == ["battery_impact"]


def _text_column(device_text: str, index: int) -> list[str]:
    """Column `index` of a device's text table (cut where its "----" rule runs, trailing
    blanks dropped), from the two header lines to the last row; the notes have no double
    blank, the table's lines all have one."""
    lines = device_text.splitlines()
    rule = next(n for n, line in enumerate(lines) if line.startswith("---"))
    start, end = [m.span() for m in re.finditer(r"-+", lines[rule])][index]
    table = list(itertools.takewhile(lambda line: "  " in line, lines[rule - 2 :]))
    return [line[start:end].rstrip() for line in table]


def test_battery_impact_renders_alike_in_text_rich_and_html() -> None:
    data = battery_data()
    text = format_summary(data)
    phone = text[text.index("Device phone") : text.index("Device board")]
    board = text[text.index("Device board") : text.index("Device kit")]
    kit = text[text.index("Device kit") :]
    # The share goes on the line below the energy, as Accuracy's retention does; its own
    # marker follows it, and unmarked figures keep a blank so the digits line up.
    assert _text_column(phone, -2) == [
        "   Energy /",
        "  inference",
        "-----------",
        "   2.00 mJ",
        "(baseline)",
        "   1.10 mJ",
        "     (55%)",
        "   1.50 mJ*",
        "     (75%)*",
        "         -",  # unknown energy: no share
        "",
        "   1.00 mJ",
        "(baseline)",
        "    800 µJ",
        "     (80%)",
        "    500 µJ",
        "     (25%)",
    ]
    assert _text_column(board, -2)[3:] == ["   4.00 mJ*", "(baseline)", "   1.10 mJ", "     (28%)*"]
    # Nothing marked on the kit: no blank kept for a marker, and the table as narrow as before.
    assert _text_column(kit, -2) == [
        " Energy /",
        "inference",
        "---------",
        "        -",
        "",
        "  1.00 mJ",
        "      (-)",  # the baseline's energy is unknown
    ]
    assert "(0%)" not in kit
    for device in (phone, board, kit):
        assert "energy (n%): battery impact" in device
    assert "* estimated" in phone and "* estimated" in board and "* estimated" not in kit
    # No baseline on the device: no share in brackets, and no note.
    alone = data.replace(results=[r for r in data.results if r.variant != "fp32"])
    assert [r["energy"] for r in summary_rows(alone)][:2] == ["1.10 mJ", "1.50 mJ"]
    assert "battery impact" not in format_summary(alone)

    console = Console(record=True, width=200, color_system=None)
    for table in rich_summary(data):
        console.print(table)
    shown = console.export_text()
    assert "(55%)" in shown and "(75%)*" in shown and "(28%)*" in shown and "(-)" in shown
    assert "energy (n%): battery impact" in shown

    html = render_report(data)
    assert "<th>Energy / inference (battery impact)</th>" in html
    assert '<td>2.00 mJ<span class="sub">(baseline)</span></td>' in html
    assert '<td>1.10 mJ<span class="sub">(55%)</span></td>' in html
    assert (
        '<td class="estimated" title="estimated">1.50 mJ<span class="est">*</span>'
        '<span class="sub">(75%)<span class="est">*</span></span></td>'
    ) in html
    assert (
        '<td class="best">1.10 mJ<span class="sub">(28%)<span class="est">*</span></span></td>'
        in html
    )
    assert '<td class="best">1.00 mJ<span class="sub">(-)</span></td>' in html


def test_pareto_front() -> None:
    assert pareto_front([]) == set()
    assert pareto_front([(1.0, 0.5)]) == {0}
    # (latency, accuracy): faster-or-equal and more-or-equally accurate, one strictly.
    points = [(10.0, 0.97), (5.0, 0.96), (12.0, 0.95), (10.0, 0.96), (20.0, 0.97), (4.0, 0.90)]
    assert pareto_front(points) == {0, 1, 5}
    # Duplicates dominate neither each other nor are dominated by each other.
    assert pareto_front([(1.0, 0.9), (1.0, 0.9), (2.0, 0.8)]) == {0, 1}
    # Ties on one axis: the better on the other axis dominates.
    assert pareto_front([(1.0, 0.9), (1.0, 0.8)]) == {0}
    assert pareto_front([(1.0, 0.9), (2.0, 0.9)]) == {0}
    assert pareto_front([(1.0, 0.9), (2.0, 0.95)]) == {0, 1}


def _svg_root(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG_NS}svg"
    return root


def _group_markers(root: ET.Element, gid: str) -> list[str]:
    """Outline ("d") of each marker of a scatter group: drawn as <path>, or as <use> of a
    path in <defs> (matplotlib picks depending on clipping)."""
    group = root.find(f".//{SVG_NS}g[@id='{gid}']")
    assert group is not None, gid
    defs = {p.get("id"): p for p in root.iter(f"{SVG_NS}path") if p.get("id")}
    markers = []
    for element in group.iter():
        if element.tag == f"{SVG_NS}use":
            markers.append((defs[element.get(XLINK_HREF, "")[1:]].get("d"), element.get("style")))
        elif element.tag == f"{SVG_NS}path" and not element.get("id"):  # not a <defs> one
            markers.append((element.get("d"), element.get("style")))
    return markers


def test_pareto_svg_draws_front_solid_and_dominated_faded() -> None:
    results = local_results()
    svg = pareto_svg(results)
    assert svg is not None and svg == pareto_svg(copy.deepcopy(results))
    root = _svg_root(svg)
    solid = _group_markers(root, "pareto-optimal")
    faded = _group_markers(root, "dominated")
    # fp32, int8 and distilled are optimal; both pruned ones and distilled-int8 dominated.
    assert (len(solid), len(faded)) == (3, 3)
    assert all("fill-opacity: 0.3" in (style or "") for _, style in faded)
    assert not any("opacity" in (style or "") for _, style in solid)
    assert root.find(f".//{SVG_NS}g[@id='pareto-step-line']") is not None
    # Marker area follows file size: the 150.7 KiB marker is drawn bigger than 39.7 KiB.
    extents = []
    for outline, _ in solid:
        xs = [float(x) for x in re.findall(r"(-?\d+(?:\.\d+)?) -?\d+(?:\.\d+)?", outline)]
        extents.append(max(xs) - min(xs))
    assert max(extents) > 1.5 * min(extents)


def test_pareto_svg_skips_when_it_cannot_compare() -> None:
    results = local_results()
    assert pareto_svg(results[:1]) is None
    assert pareto_svg([r.replace(accuracy=None) for r in results]) is None
    assert pareto_svg(random_weight_data().results) is None
    assert pareto_svg([]) is None
    # Estimated inputs and "$" in names render (math text is off).
    odd = [
        results[0].replace(variant="cost$ $\\frac{"),
        results[1].replace(estimated=["latency_s"]),
    ]
    assert pareto_svg(odd) is not None


def test_size_latency_svg() -> None:
    results = random_weight_data().results
    svg = size_latency_svg(results)
    assert svg is not None and svg == size_latency_svg(copy.deepcopy(results))
    root = _svg_root(svg)
    # int8 is smaller and faster than both others, which it therefore dominates.
    assert len(_group_markers(root, "pareto-optimal")) == 1
    assert len(_group_markers(root, "dominated")) == 2
    assert size_latency_svg(results[:1]) is None


def test_accuracy_not_meaningful() -> None:
    data = random_weight_data()
    text = format_summary(data)
    assert "accuracy is not meaningful for this model (random weights)" in text
    assert "most accurate" not in text and "Accuracy vs baseline" not in text
    assert "10.0%" not in text and "50.0%" not in text
    assert [r["accuracy"] for r in summary_rows(data)] == ["n/a"] * 3
    html = render_report(data)
    assert "accuracy is not meaningful for this model (random weights)" in html
    assert "<td>n/a</td>" in html and "10.0%" not in html
    assert 'alt="File size vs p90 latency on local"' in html
    assert "Accuracy vs p90 latency" not in html
    assert 'class="card most_accurate"' not in html


def test_rich_summary_treats_strings_as_text() -> None:
    data = make_data()
    # "[/]" would raise MarkupError if cells were parsed as rich markup.
    results = list(data.results)
    results[0] = results[0].replace(variant="[bold]fp32[/] [/x]")
    results[1] = results[1].replace(techniques=["[red]int8[/]"])
    tables = rich_summary(data.replace(results=results))
    assert len(tables) == 2
    console = Console(record=True, width=200, color_system=None)
    for table in tables:
        console.print(table)
    text = console.export_text()
    assert "[bold]fp32[/] [/x]" in text
    assert "[red]int8[/]" in text
    assert "FAILED: AgentError" in text
    assert "* estimated (no sensor / emulation)" in text
    assert "Highlights: smallest file distilled-int8-tflite (13.2 KiB)" in text
    assert "(baseline)" in text and "(zstd 80.2 KiB)" in text


def _data_uris(html: str) -> list[str]:
    return re.findall(r'src="(data:[^"]*)"', html)


def test_html_escapes_user_strings() -> None:
    html = render_report(make_data())
    assert "<script" not in html.lower()
    assert "<b>" not in html and "<i>" not in html and "<u>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "rack &#34;7&#34; &amp; &lt;top&gt;" in html
    assert "bad &lt;model&gt; &amp; &#34;quotes&#34;" in html
    technique = "&lt;b&gt;prune&lt;/b&gt; &amp; &#34;quant&#34; &lt;script&gt;x&lt;/script&gt;"
    assert html.count(technique) == 3  # case-study and full tables, Variants section
    assert "&lt;img src=&#34;x&#34; onerror=&#34;alert(2)&#34;&gt; &amp; co" in html
    assert "<code>&lt;i&gt;step&lt;/i&gt;</code>" in html
    assert "(note=&lt;u&gt;&amp;&lt;/u&gt;)" in html


def test_html_is_self_contained() -> None:
    html = render_report(make_data())
    outside = re.sub(r'src="data:[^"]*"', 'src=""', html)
    assert "http://" not in outside and "https://" not in outside
    assert not re.search(r"[a-z][a-z0-9+.-]*://", outside, re.I)  # no URL of any scheme
    # Only data: URIs are loaded; no scripts or imports of any kind; the only links are
    # to the raw data written beside the page.
    assert set(re.findall(r'\bsrc="([^"]*)"', outside)) == {""}
    assert re.findall(r'\bhref="([^"]*)"', outside) == ["jobs.json", "jobs.csv"]
    assert "<link" not in html and "@import" not in html and "url(" not in html
    assert '<meta http-equiv="Content-Security-Policy"' in html


def test_html_plots_are_valid_svg() -> None:
    html = render_report(make_data())
    uris = _data_uris(html)
    # Per device: accuracy vs latency, distribution + ECDF, run sequence, memory/energy.
    assert len(uris) == 8
    for uri in uris:
        prefix = "data:image/svg+xml;base64,"
        assert uri.startswith(prefix)
        _svg_root(base64.b64decode(uri[len(prefix) :]).decode("utf-8"))
    assert 'alt="Accuracy vs p90 latency on local"' in html
    assert 'alt="Accuracy vs p90 latency on qemu-arm"' in html


def test_html_header_and_facts() -> None:
    html = render_report(make_data())
    for text in [
        "20261129-213000-ab12",
        "digits",
        "finished",
        "2026-11-29T21:30:00+00:00",
        "0.1.0",
        "abc1234",
        "Debian GNU/Linux 12",
        "AMD EPYC",
        "23.3 GiB",
        "3.11.7",
        "ai_edge_litert 2.3.0, onnxruntime 1.32.0",
        "ssh 10.0.0.7",
        "site=desk",
        "percentiles: nearest-rank; latency = median across 5 repetitions",
        "12.0 ms",
        "400 µs",  # init and first inference columns
        "power: rail RAPL package-0 sampled at 1 kHz, idle 4.15 W",
        '31.5 µJ<span class="sub">(baseline)</span><span class="sub">at 6.21 W</span>',
        "104 ns per sample (timing a no-op call)",  # the agent's timing floor
    ]:
        assert text in html, text


def test_html_table_columns_and_highlights() -> None:
    html = render_report(make_data())
    local = html[html.index("Device local") : html.index("Device qemu-arm")]
    headers = re.findall(r"<th[^>]*>([^<]*)</th>", _all_figures_table(local))
    assert headers == [
        "Variant",
        "Technique",
        "Runtime",
        "File size",
        "Params / non-zeros",
        "MACs",
        "Accuracy (retention)",
        "Latency p50 / p90",
        "p99",
        "Peak memory",
        "Energy / inference (battery impact)",
        "n",
        "Init",
        "First inference",
    ]
    # Secondary figures go on a second line of the cell.
    assert '<td>150.7 KiB<span class="sub">(zstd 80.2 KiB)</span></td>' in local
    assert '<td title="n=360">97.2%<span class="sub">(99.7%)</span></td>' in local
    assert '<td>22.4 µJ<span class="sub">(71%)</span><span class="sub">at 6.05 W</span>' in local
    cards = re.findall(
        r'<div class="card (\w+)"><div class="what">[^<]*</div><div class="who">([^<]*)</div>'
        r'<div class="how">([^<]*)',
        local,
    )
    assert cards == [
        ("smallest", "distilled-int8-tflite", "13.2 KiB"),
        ("fastest", "distilled-onnx", "6.31 µs"),
        ("most_accurate", "fp32-onnx", "97.5%"),
        ("lowest_energy", "distilled-onnx", "12.3 µJ"),
    ]
    assert '<span class="cost loss">int8-onnx: -0.3 pp</span>' in local
    # The winning cells are marked in the table too.
    best = re.findall(r'<td class="best"[^>]*>([^<]*)', local)
    assert best == ["97.5%", "6.10 µs / 6.31 µs", "12.3 µJ", "13.2 KiB"]
    assert '<td class="best" title="n=360">97.5%<span class="sub">(baseline)</span>' in local


def test_html_variants_section() -> None:
    html = render_report(make_data())
    variants = html[html.index("<h2>Variants</h2>") :]
    assert 'fp32-onnx <span class="badge">baseline</span>' in variants
    assert "magnitude pruning of 50% of all weights, 3 fine-tune epochs" in variants
    assert (
        '<code>prune_global_unstructured</code> <span class="params">(amount=0.5)</span>'
        ' → <code>export_onnx</code> <span class="params">(opset=17)</span>'
    ) in variants
    assert "(teacher=fp32-onnx, channels=[8, 16], temperature=4)" in variants
    assert "prune 50% (global, unstructured) → export ONNX" in variants
    # One entry per variant name, in order of first appearance.
    names = re.findall(r'<td class="name">([^<]*)', variants)
    assert names == [
        "fp32-onnx ",
        "int8-onnx",
        "pruned50-onnx",
        "pruned50-int8-onnx",
        "distilled-onnx",
        "distilled-int8-tflite",
        "int8-tflite",
        "&lt;script&gt;alert(1)&lt;/script&gt;",
    ]


def _all_figures_table(section: str) -> str:
    """A device section's full table ("All figures"), without the case-study table above."""
    start = section.index("<h3>All figures</h3>")
    return section[start : section.index("</table>", start)]


def test_html_marks_estimated_figures() -> None:
    html = render_report(make_data())
    qemu = html[html.index("Device qemu-arm") : html.index("<h2>Variants</h2>")]
    marked = re.findall(
        r'<td class="estimated[^"]*" title="estimated">([^<]*)<span class="est">\*',
        _all_figures_table(qemu),
    )
    assert marked == ["1.23 s / 1.48 s", "1.97 s", "117.7 MiB"]
    assert "* estimated (no sensor / emulation)" in qemu
    local = html[: html.index("Device qemu-arm")]
    marked = re.findall(
        r'<td class="estimated[^"]*" title="estimated">([^<]*)<span class="est">\*',
        _all_figures_table(local),
    )
    assert marked == ["15.9 µJ"]
    assert '<span class="sub">(50%)<span class="est">*</span></span>' in local
    assert "* estimated (no sensor / emulation)" in local


def test_estimated_power_setup_gets_the_footnote() -> None:
    data = make_data()
    data = data.replace(results=[data.results[0].replace(estimated=["power_sample_rate_hz"])])
    text = format_summary(data)
    assert "power: rail RAPL package-0 sampled at 1 kHz*, idle 4.15 W" in text
    assert "* estimated (no sensor / emulation)" in text


def test_rendering_is_deterministic(tmp_path: Path) -> None:
    assert render_report(make_data()) == render_report(copy.deepcopy(make_data()))
    a = write_report(make_data(), tmp_path / "a").read_bytes()
    b = write_report(make_data(), tmp_path / "b").read_bytes()
    assert a == b


def test_write_report_creates_dir(tmp_path: Path) -> None:
    path = write_report(make_data(), tmp_path / "nested" / "out")
    assert path == tmp_path / "nested" / "out" / "index.html"
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_minimal_results_still_render() -> None:
    # Every optional field at its default: the required ones, latency and error only,
    # render with "-".
    data = make_data()
    required = ("job_id", "device", "model", "variant", "runtime", "setting", "status")
    data = data.replace(
        run=dataclasses.replace(data.run, baseline_variant=None),
        results=[
            JobResult(**{k: getattr(r, k) for k in required}, latency_s=r.latency_s, error=r.error)
            for r in data.results
        ],
    )
    text = format_summary(data)
    assert "Accuracy vs baseline" not in text
    html = render_report(data)
    assert "<td>-</td>" in html
    assert len(group_by_device(data)) == 2


def test_plot_skips_results_without_samples() -> None:
    results = [r for r in make_data().results if r.device == "qemu-arm"]
    svg = latency_distribution_svg(results)
    assert svg is not None and svg == latency_distribution_svg(copy.deepcopy(results))
    ET.fromstring(svg)
    assert latency_distribution_svg([r.replace(samples_s=[]) for r in results]) is None
    assert latency_distribution_svg([]) is None


def test_plot_draws_dollar_signs_literally() -> None:
    # parse_math is off: an odd "$" would otherwise make matplotlib's mathtext raise.
    result = make_data().results[0]
    svg = latency_distribution_svg([result.replace(variant="cost$ $\\frac{")])
    assert svg is not None


def test_reports_does_not_import_controller_packages() -> None:
    # The typed records (a standard-library leaf module) are the only thing reports reads
    # from the rest of edgebench.
    code = (
        "import sys, reports.html, reports.tables, reports.plots, reports.export, "
        "reports.compare, reports.site; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('harness', 'devices', 'runners', 'suites')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['runners', 'runners.records']"


@pytest.mark.skipif(not CHROMIUM.exists(), reason=CHROMIUM_MISSING)
def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    path = write_report(make_data(), tmp_path / "report")
    dom = dump_dom(path, tmp_path / "profile")
    for variant in [
        "fp32-onnx",
        "int8-onnx",
        "pruned50-onnx",
        "distilled-onnx",
        "int8-tflite",
        "&lt;script&gt;alert(1)&lt;/script&gt;",
    ]:
        assert f'<td class="label">{variant}</td>' in dom, variant
    assert "<script" not in dom.lower()
    imgs = re.findall(r'<img src="data:image/svg\+xml;base64,[A-Za-z0-9+/=]+"', dom)
    assert len(imgs) == 8
    assert 'class="card smallest"' in dom
