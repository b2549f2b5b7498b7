"""The Android runner: its pure parts on synthetic input, then a job measured on
edgebench's emulated phone (devices/emulators/adbd.py) with the stand-in
benchmark_model, through both adb routes (fixtures in tests/test_adb_transport.py)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

from devices.adb import AdbOptions, big_little, cpu_clusters
from harness.stats import median_ci, summarize_windows
from runners.android_runner import (
    AndroidSetting,
    BenchmarkModelTool,
    battery_power,
    calibrate,
    parse_op_table,
    parse_total_pss_kb,
    repetition_median_ci,
    taskset_mask,
)
from runners.base import MeasureRules
from runners.cooldown import wait_for_cooldown
from runners.records import ToolStatistics
from runners.tool_stats import median_across_repetitions

RULES = MeasureRules(
    warmup_runs=2,
    warmup_min_s=0.0,
    min_runs=20,
    min_duration_s=0.1,
    repetitions=3,
    max_runs=1000,
    timeout_s=60.0,
)


def setting(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {
        "runtime": "benchmark_model",
        "threads": 2,
        "delegate": "xnnpack",
        "external_delegate": None,
        "cores": "all",
        "op_profiling": False,
    }
    return {**base, **kw}


# --------------------------------------------------------------------------- argv


def test_benchmark_model_argv_follows_the_setting_and_rules() -> None:
    s = AndroidSetting.from_setting(setting(delegate="none", op_profiling=True))
    argv = BenchmarkModelTool().argv("/bin/bm", "/w/m.tflite", s, RULES, "/w")
    assert argv[:2] == ["/bin/bm", "--graph=/w/m.tflite"]
    assert "--num_threads=2" in argv and "--use_xnnpack=false" in argv
    assert "--warmup_runs=2" in argv and "--num_runs=20" in argv and "--min_secs=0.1" in argv
    assert "--enable_op_profiling=true" in argv
    gpu = BenchmarkModelTool().argv(
        "bm", "m", AndroidSetting.from_setting(setting(delegate="gpu")), RULES, "/w"
    )
    assert "--use_gpu=true" in gpu
    ext = AndroidSetting.from_setting(setting(delegate="external", external_delegate="/x.so"))
    assert "--external_delegate_path=/x.so" in BenchmarkModelTool().argv("bm", "m", ext, RULES, "/")


def test_setting_mistakes_are_refused() -> None:
    with pytest.raises(ValueError, match="external_delegate"):
        AndroidSetting.from_setting(setting(delegate="external"))
    with pytest.raises(ValueError, match="cores"):
        AndroidSetting.from_setting(setting(cores="fast"))
    with pytest.raises(ValueError, match="thread"):
        AndroidSetting.from_setting({**setting(), "thread": 4})


def test_big_little_masks() -> None:
    clusters = cpu_clusters({0: 1_800_000, 1: 1_800_000, 2: 2_400_000, 3: 2_400_000, 4: 3_000_000})
    split = big_little(clusters)
    assert split == {"big": [2, 3, 4], "little": [0, 1]}  # prime cores count as big
    assert taskset_mask("big", split) == "1c"
    assert taskset_mask("little", split) == "3"
    assert taskset_mask("0xF0", split) == "f0"
    assert taskset_mask("all", split) is None
    one = big_little(cpu_clusters({0: 2_000_000, 1: 2_000_000}))
    assert one["big"] == one["little"] == [0, 1]


# --------------------------------------------------------------------------- statistics


def tool(median: float, mean: float, count: int = 10) -> ToolStatistics:
    return ToolStatistics(
        tool="benchmark_model",
        mean_s=mean,
        median_s=median,
        min_s=median / 2,
        max_s=median * 2,
        std_s=0.001,
        std_ddof=0,
        percentiles_s={"5": median / 2, "95": median * 1.5},
        count=count,
        throughput_per_s=1 / mean,
        note="n",
    )


def test_median_across_repetitions_means_what_the_windowed_headline_means() -> None:
    # Three windows with known raw samples (odd n: the tool's median is the
    # nearest-rank median); the tool-side figures per window, combined, must equal
    # edgebench's headline of the raw windows.
    windows = [[1.0, 2.0, 9.0], [2.0, 3.0, 4.0], [1.5, 2.5, 3.5]]
    per_run = [tool(sorted(w)[1], sum(w) / 3, 3) for w in windows]
    combined = median_across_repetitions(per_run)
    head = summarize_windows(windows).headline
    assert combined.median_s == pytest.approx(head.p50)
    assert combined.mean_s == pytest.approx(head.mean)
    assert combined.count == head.n == 9
    assert combined.throughput_per_s == pytest.approx(head.throughput)
    assert combined.note.startswith("median across 3 runs")


def test_a_figure_missing_in_one_run_is_unknown() -> None:
    runs = [tool(0.01, 0.011), ToolStatistics(tool="benchmark_model", mean_s=0.012, count=5)]
    combined = median_across_repetitions(runs)
    assert combined.median_s is None and combined.mean_s == pytest.approx(0.0115)


def test_repetition_ci_matches_harness_median_ci() -> None:
    values = [0.010, 0.011, 0.009, 0.012, 0.0105, 0.0108, 0.0099]
    assert repetition_median_ci(values) == list(median_ci(values))
    assert repetition_median_ci(values[:5]) is None  # 5 runs cannot reach 95 %


# --------------------------------------------------------------------------- parsers


def test_op_table_of_the_regular_runs() -> None:
    text = (
        "INFO: Profiling Info for Benchmark Initialization:\n"
        "============================== Run Order ==============================\n"
        "\t [node type]\t [first]\t [avg ms]\t [%]\t [cdf%]\t [mem KB]\t[times called]\t[Name]\n"
        "\t AllocateTensors\t 1.0\t 1.0\t 100.0%\t 100.0%\t 0.0\t 1\tAllocateTensors/0\n"
        "\nTimings (microseconds): count=1 curr=1000\n"
        "INFO: Operator-wise Profiling Info for Regular Benchmark Runs:\n"
        "============================== Run Order ==============================\n"
        "\t [node type]\t [first]\t [avg ms]\t [%]\t [cdf%]\t [mem KB]\t[times called]\t[Name]\n"
        "\t CONV_2D\t 0.200\t 0.150\t 75.000%\t 75.000%\t 0.000\t 1\t[conv/Relu]:0\n"
        "\t FULLY_CONNECTED\t 0.060\t 0.050\t 25.000%\t 100.000%\t 0.000\t 1\t[dense]\n"
        "\nTimings (microseconds): count=10 first=1 curr=1 min=1 max=1 avg=1 std=0\n"
    )
    rows = parse_op_table(text)
    assert [(r.op, r.name, r.count) for r in rows] == [
        ("CONV_2D", "[conv/Relu]:0", 1),
        ("FULLY_CONNECTED", "dense", 1),
    ]
    assert rows[0].time_s == pytest.approx(150e-6) and rows[0].share == pytest.approx(0.75)


def test_total_pss_from_dumpsys_meminfo() -> None:
    assert parse_total_pss_kb("           TOTAL PSS:    12345            TOTAL RSS:  2") == 12345
    assert parse_total_pss_kb("  Native Heap 1 2\n        TOTAL    4321    10    0") == 4321
    assert parse_total_pss_kb("No process found for: 99") is None


# --------------------------------------------------------------------------- power


def readings(current: int, voltage: int, status: str, n: int = 40, dt: float = 0.1) -> list:
    return [
        [100.0 + i * dt, f"{100.0 + i * dt:.2f} {current} {voltage} {status}"] for i in range(n)
    ]


OPTIONS = AdbOptions(serial="x")


@pytest.mark.parametrize(
    ("current", "voltage", "unit", "sign"),
    [(-500_000, 4_000_000, "uA", -1), (500_000, 4_000_000, "uA", 1), (500, 4000, "mA", 1)],
)
def test_battery_calibration_by_magnitude_and_idle_sign(
    current: int, voltage: int, unit: str, sign: int
) -> None:
    rs = readings(current, voltage, "Discharging")
    power, cal = battery_power(rs, [(101.0, 103.0, 100)], (100.0, 100.9), OPTIONS, 100, [])
    assert cal is not None and cal.current_unit == unit and cal.discharge_sign == sign
    assert power.mean_power_w == pytest.approx(2.0)  # 0.5 A x 4 V, whatever the convention
    assert power.energy_per_inference_j == pytest.approx(2.0 * 2.0 / 100)
    assert "calibration" in (power.note or "") and not power.errors


def test_a_charging_phone_is_flagged() -> None:
    rs = readings(1_500_000, 4_200_000, "Charging")
    power, cal = battery_power(rs, [(101.0, 103.0, 10)], (100.0, 100.9), OPTIONS, 100, [])
    assert cal is not None and cal.charging
    assert (power.note or "").startswith("WARNING: the phone was charging")
    assert any(e.startswith("charging") for e in power.errors)
    assert "assumed" in cal.how  # no discharging reading to calibrate the sign on


def test_calibration_overrides() -> None:
    o = AdbOptions(serial="x", battery_current_unit="mA", battery_discharge_sign="positive")
    cal = calibrate([(0.0, 50_000, 3_900_000, "Discharging")], None, o)
    assert (cal.current_unit, cal.discharge_sign) == ("mA", 1)


# --------------------------------------------------------------------------- cooldown


def test_cooldown_waits_until_below_the_threshold() -> None:
    now = [0.0]
    temps = iter([50.0, 47.0, 44.0, 41.0, 39.0])
    result = wait_for_cooldown(
        lambda: {"cpu": next(temps), "skin": 30.0},
        40.0,
        60.0,
        poll_s=5.0,
        clock=lambda: now[0],
        sleep=lambda s: now.__setitem__(0, now[0] + s),
    )
    assert result.reached and result.waited_s == 20.0 and result.polls == 5
    assert (result.start_max_c, result.end_max_c, result.hottest_zone) == (50.0, 39.0, "cpu")


def test_cooldown_gives_up_at_the_limit_and_records_reader_errors() -> None:
    now = [0.0]

    def reader() -> dict[str, float]:
        if now[0] == 0.0:
            raise OSError("sysfs gone")
        return {"cpu": 80.0}

    result = wait_for_cooldown(
        reader, 40.0, 7.0, poll_s=2.0, clock=lambda: now[0],
        sleep=lambda s: now.__setitem__(0, now[0] + s),
    )  # fmt: skip
    assert not result.reached and math.isclose(result.waited_s, 7.0)
    assert result.errors == ["OSError: sysfs gone"] and result.end_max_c == 80.0
    none = wait_for_cooldown(lambda: {"cpu": 90.0}, None, 10.0)
    assert none.reached and none.waited_s == 0.0


def test_tool_binary_options_per_abi(tmp_path: Path) -> None:
    o = AdbOptions.model_validate(
        {"serial": "x", "benchmark_model": "/any", "benchmark_model_arm64-v8a": "/arm64"}
    )
    assert o.tool_path("benchmark_model", "arm64-v8a") == "/arm64"
    assert o.tool_path("benchmark_model", "x86_64") == "/any"
    assert o.tool_path("onnxruntime_perf_test", "x86_64") is None


# --------------------------------------------------------------------------- the phone

from devices.transport import sha256_file  # noqa: E402
from runners.android_runner import AndroidRunner  # noqa: E402
from runners.base import Job, ModelFile  # noqa: E402
from tests.adb_phone import (  # noqa: E402
    adb_key,
    adb_server,
    make,
    phone,
    route,
    tiny_tflite,
    transport,
)

__all__ = ["adb_key", "adb_server", "phone", "route", "tiny_tflite", "transport"]  # fixtures


# Windows long enough for several battery readings at the default 100 ms interval.
PHONE_RULES = MeasureRules(
    warmup_runs=2,
    warmup_min_s=0.2,
    min_runs=20,
    min_duration_s=0.6,
    repetitions=3,
    max_runs=100_000,
    timeout_s=60.0,
)


def job_for(model: Path, repetitions: int = 3, **kw: object) -> Job:
    return Job(
        id=1,
        key="k",
        model=ModelFile(model, sha256_file(model), "tflite", model.stat().st_size),
        setting=setting(**kw),
        measure=dataclasses.replace(PHONE_RULES, repetitions=repetitions),
        evaluation=None,
    )


def test_measure_on_the_emulated_phone(transport: object, tiny_tflite: Path) -> None:
    runner = AndroidRunner(transport)  # type: ignore[arg-type]
    m = runner.measure(job_for(tiny_tflite, cores="big", op_profiling=True))
    assert m.windows == [] and m.tool_stats is not None
    assert m.tool_stats.tool == "benchmark_model" and m.tool_stats.median_s
    reps = m.details["repetitions"]
    assert len(reps) == 3 and m.tool_stats.count == sum(r["stats"]["count"] for r in reps)
    assert m.details["taskset_mask"] == "f0" and m.details["argv"][:2] == ["taskset", "f0"]
    assert m.window_spans and len(m.window_spans) == 3
    assert m.memory.peak_rss_bytes and m.memory.peak_rss_bytes > 1e6
    assert m.memory.pss_bytes and m.memory.pss_bytes > 1e6
    assert m.power is not None and m.power.mean_power_w and m.power.mean_power_w > 0
    assert m.power.energy_per_inference_j and m.power.energy_per_inference_j > 0
    assert "calibration: current unit uA" in (m.power.note or "")
    assert m.details["power_calibration"]["discharge_sign"] == -1  # Pixel convention
    assert m.details["thermal"]["before"] and m.details["thermal"]["after"]
    assert m.health is not None and m.health.temp_c is not None
    assert m.layers and m.layers[0].op == "Invoke"
    assert m.emulated and m.provenance.runtime == "litert"
    assert runner.facts["big_little"]["big"] == [4, 5, 6, 7]


def test_cooldown_charging_and_missing_delegate(
    phone: object, adb_key: Path, tiny_tflite: Path, tmp_path: Path
) -> None:
    t = make(
        tmp_path,
        host=phone.serial,  # type: ignore[attr-defined]
        adb_key=str(adb_key),
        cooldown_below_c=1.0,  # never reached: the wait stops at the limit
        cooldown_limit_s=1.0,
    )
    runner = AndroidRunner(t)
    phone.set_charging(True)  # type: ignore[attr-defined]
    try:
        m = runner.measure(job_for(tiny_tflite, repetitions=1))
    finally:
        phone.set_charging(False)  # type: ignore[attr-defined]
    cooldown = m.details["cooldown"]
    assert not cooldown["reached"] and 0.9 <= cooldown["waited_s"] < 5
    assert m.health is not None and "not cooled down" in m.health.flags
    assert "charging" in m.health.flags
    assert m.power is not None and (m.power.note or "").startswith(
        "WARNING: the phone was charging"
    )
    gpu = runner.measure(job_for(tiny_tflite, repetitions=1, delegate="gpu"))
    assert gpu.not_deployable and "gpu delegate" in gpu.not_deployable
    t.close()
