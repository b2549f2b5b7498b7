"""Power parsers and energy math, on recorded tool outputs (tests/data/power) and
synthetic series with known integrals."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path

import pytest

from devices.errors import DeviceError
from devices.power import ina3221, nvml, rpi, tegrastats
from devices.power.energy import (
    coverage,
    energy_joules,
    mean_power,
    sample_rate_hz,
    window_energy,
)
from devices.power.errors import ParseError

DATA = Path(__file__).parent / "data" / "power"
TEGRA = DATA / "tegrastats"


def read(path: Path) -> str:
    return path.read_text()


# ---------------------------------------------------------------------- tegrastats


@pytest.mark.parametrize(
    "name, lines",
    [
        ("r32.7.4_jetson_nano.log", 16),
        ("r32.7.1_jetson_tx2.log", 8),
        ("r32.7.3_agx_xavier.log", 6),
        ("r32.6.1_xavier_nx_nonroot.log", 5),
        ("r35.4.1_agx_orin.log", 8),
        ("r36.4.0_orin_nano.log", 40),
    ],
)
def test_tegrastats_every_recorded_line_parses(name: str, lines: int) -> None:
    parsed = tegrastats.parse_log(read(TEGRA / name))
    assert parsed.skipped == []
    assert len(parsed.records) == lines
    for sample in parsed.records:
        assert sample.ram_total_mb > sample.ram_used_mb > 0
        assert sample.rails, "every recorded board prints its rails"
        assert tegrastats.total_input_rail(sample) is not None


def test_tegrastats_r32_nano_pom_rails() -> None:
    first, busy = tegrastats.parse_log(read(TEGRA / "r32.7.4_jetson_nano.log")).records[0:6:5]
    assert first.timestamp is None  # R32 prints no timestamp
    assert first.rails["POM_5V_IN"].instant_mw == first.rails["POM_5V_IN"].average_mw
    assert set(first.rails) == {"POM_5V_IN", "POM_5V_GPU", "POM_5V_CPU"}
    assert [c.freq_mhz for c in first.cpus] == [102] * 4
    assert first.gpu_load_pct == 0 and first.gpu_freq_mhz == (76,)
    assert first.emc_freq_mhz == 1600
    assert first.swap_total_mb == 1982
    assert first.temps_c["PMIC"] == 50.0
    assert first.engines == {"APE": "25"}
    assert busy.gpu_load_pct >= 88 and busy.gpu_freq_mhz == (921,)
    power = tegrastats.total_input_rail(busy)
    assert power.rail == "POM_5V_IN" and power.source == "input_rail"
    assert power.instant_mw == busy.rails["POM_5V_IN"].instant_mw


def test_tegrastats_tx2_offline_cores_and_vdd_in_among_other_rails() -> None:
    sample = tegrastats.parse_log(read(TEGRA / "r32.7.1_jetson_tx2.log")).records[-1]
    assert [c.online for c in sample.cpus] == [True, False, False, True, True, True]
    assert sample.cpus[1].load_pct is None and sample.cpus[1].freq_mhz is None
    assert list(sample.rails)[3] == "VDD_IN"  # not the first rail printed
    power = tegrastats.total_input_rail(sample)
    assert (power.rail, power.rails) == ("VDD_IN", ("VDD_IN",))


def test_tegrastats_agx_xavier_has_no_input_rail_so_rails_are_summed() -> None:
    sample = tegrastats.parse_log(read(TEGRA / "r32.7.3_agx_xavier.log")).records[-1]
    assert "CPU" in sample.rails and len(sample.cpus) == 8  # rail "CPU" and "CPU [...]"
    assert sample.engines["MTS"] == "fg 0% bg 0%"
    power = tegrastats.total_input_rail(sample)
    assert power.source == "sum_of_rails"
    assert power.rail == "sum(GPU+CPU+SOC+CV+VDDRQ+SYS5V)"
    assert power.instant_mw == sum(r.instant_mw for r in sample.rails.values())
    assert power.average_mw == sum(r.average_mw for r in sample.rails.values())


def test_tegrastats_non_root_prints_loads_without_frequencies() -> None:
    sample = tegrastats.parse_log(read(TEGRA / "r32.6.1_xavier_nx_nonroot.log")).records[0]
    assert sample.emc_load_pct == 0 and sample.emc_freq_mhz is None
    assert sample.gpu_load_pct == 0 and sample.gpu_freq_mhz == ()
    assert sum(c.online for c in sample.cpus) == 4 and len(sample.cpus) == 6


def test_tegrastats_r35_agx_orin_timestamp_gpcs_nc_and_absent_sensors() -> None:
    samples = tegrastats.parse_log(read(TEGRA / "r35.4.1_agx_orin.log")).records
    first, busy = samples[0], samples[-1]
    assert first.timestamp == datetime(2023, 9, 14, 16, 2, 11)
    assert busy.timestamp == datetime(2023, 9, 14, 16, 2, 18)
    assert first.gpu_freq_mhz == (0, 0) and busy.gpu_freq_mhz == (1300, 1300)
    assert "NC" not in first.rails  # printed twice, not connected
    assert not {"CV0", "CV1", "CV2"} & first.temps_c.keys()  # -256C = sensor absent
    assert first.temps_c["Tboard"] == 31.0
    assert len(first.cpus) == 12 and first.engines["VIC_FREQ"] == "115"
    power = tegrastats.total_input_rail(busy)
    assert power.rails == ("VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0", "VDDQ_VDD2_1V8AO")


def test_tegrastats_r36_orin_nano_mw_rails_and_one_second_timestamps() -> None:
    samples = tegrastats.parse_log(read(TEGRA / "r36.4.0_orin_nano.log")).records
    # --interval 100: ten lines share each printed second, so arrival time must be stamped
    assert len({s.timestamp for s in samples}) == 4
    idle, busy = samples[0], samples[20]
    assert idle.rails["VDD_IN"].instant_mw < 5100 < 9000 < busy.rails["VDD_IN"].instant_mw
    assert busy.rails["VDD_IN"].average_mw < busy.rails["VDD_IN"].instant_mw  # running mean
    assert busy.gpu_load_pct >= 94 and busy.gpu_freq_mhz == (1020,)
    assert busy.temps_c["tj"] == pytest.approx(busy.temps_c["cpu"])
    assert busy.engines["NVDEC"] == "off"
    assert tegrastats.total_input_rail(busy).rail == "VDD_IN"


def test_tegrastats_malformed_log_keeps_good_lines_and_reports_bad_ones() -> None:
    parsed = tegrastats.parse_log(read(TEGRA / "r36.4.0_orin_nano_malformed.log"))
    assert len(parsed.records) == 4
    assert [s.line_number for s in parsed.skipped] == [3, 6, 7, 8, 10]
    reasons = [s.reason for s in parsed.skipped]
    assert "VDD_CPU_GPU_CV reads '44'" in reasons[0]  # cut mid-rail
    assert "RAM appears 2 times" in reasons[1]  # two samples glued together
    assert "no 'RAM used/totalMB' field" in reasons[2]  # only a timestamp
    assert "unexpected token 'tj@48.5'" in reasons[3]  # cut inside a temperature
    assert parsed.skipped_count == 5


@pytest.mark.parametrize(
    "line, reason",
    [
        ("", "empty line"),
        ("RAM 3047/7620MB (lfb 9x4MB) VDD_IN 4976mW/49", "rail VDD_IN reads '4976mW/49'"),
        ("RAM 3047/7620MB (lfb 9x4MB) VDD_IN", "VDD_IN has no value"),
        ("RAM 3047/7620MB (lfb 9x4MB) CPU [2%@729,fast]", "CPU core 1 reads 'fast'"),
        ("RAM 3047/7620MB VDD_IN 1/1 VDD_IN 2/2", "rail VDD_IN appears twice"),
        ("13-45-2024 14:08:31 RAM 3047/7620MB", "invalid timestamp"),
        ("RAM 3047/7620MB GR3D_FREQ 12%@[", "GR3D_FREQ reads '12%@['"),
        ("tegrastats: cannot open /sys/kernel/debug", "no 'RAM used/totalMB' field"),
    ],
)
def test_tegrastats_parse_line_raises_with_the_line(line: str, reason: str) -> None:
    with pytest.raises(ParseError) as caught:
        tegrastats.parse_line(line, line_number=7)
    assert reason in caught.value.reason
    assert caught.value.line == line and caught.value.line_number == 7
    assert "tegrastats line 7" in str(caught.value)
    assert isinstance(caught.value, DeviceError) and isinstance(caught.value, ValueError)


def test_tegrastats_oldest_cpu_format_with_one_shared_frequency() -> None:
    sample = tegrastats.parse_line("RAM 220/38955MB (lfb 847x4MB) CPU [1%,5%,0%,0%]@102")
    assert [(c.load_pct, c.freq_mhz) for c in sample.cpus] == [(1, 102), (5, 102), (0, 102)] + [
        (0, 102)
    ]
    assert tegrastats.total_input_rail(sample) is None  # no rails at all


# ------------------------------------------------------------------------ INA3221


def test_ina3221_hwmon_orin_nano() -> None:
    rails = ina3221.discover(DATA / "ina3221/jp6_orin_nano")
    assert [(r.name, r.driver, r.channel) for r in rails] == [
        ("VDD_IN", "hwmon", 1),
        ("VDD_CPU_GPU_CV", "hwmon", 2),
        ("VDD_SOC", "hwmon", 3),
    ]
    assert all(r.directory.name == "hwmon1" for r in rails)  # hwmon0 is the fan
    readings = ina3221.read(rails)
    assert readings["VDD_IN"] == pytest.approx(5072 * 1033 / 1000)
    assert readings["VDD_SOC"] == pytest.approx(5072 * 283 / 1000)
    power = ina3221.total_input_rail(readings)
    assert (power.rail, power.instant_mw) == ("VDD_IN", readings["VDD_IN"])


def test_ina3221_two_chips_nc_channels_and_no_input_rail() -> None:
    rails = ina3221.discover(DATA / "ina3221/jp5_agx_orin")
    assert [r.name for r in rails] == [
        "VDD_GPU_SOC",
        "VDD_CPU_CV",
        "VIN_SYS_5V0",
        "VDDQ_VDD2_1V8AO",
    ]
    assert [r.directory.name for r in rails] == ["hwmon1"] * 3 + ["hwmon2"]
    readings = ina3221.read(rails)
    power = ina3221.total_input_rail(readings)
    assert power.source == "sum_of_rails"
    assert power.instant_mw == pytest.approx(
        (19896 * 201 + 19896 * 40 + 4976 * 729 + 4984 * 101) / 1000
    )


def test_ina3221x_iio_driver_of_jetpack4_uses_the_driver_power() -> None:
    rails = ina3221.discover(DATA / "ina3221/jp4_jetson_nano")
    assert [(r.name, r.driver, r.channel) for r in rails] == [
        ("POM_5V_IN", "iio", 0),
        ("POM_5V_GPU", "iio", 1),
        ("POM_5V_CPU", "iio", 2),
    ]
    assert rails[0].power_file.name == "in_power0_input"
    assert ina3221.read(rails) == {"POM_5V_IN": 2912.0, "POM_5V_GPU": 0.0, "POM_5V_CPU": 691.0}


def test_ina3221_broken_tree() -> None:
    rails = ina3221.discover(DATA / "ina3221/broken")
    # ch2 disabled, ch3 has no current file, hwmon1: unlabelled and NC channels skipped,
    # and its VDD_IN renamed so that names stay unique
    assert [r.name for r in rails] == ["VDD_IN", "VDD_IN@hwmon1"]
    with pytest.raises(ParseError) as caught:
        ina3221.read(rails)  # curr1_input is empty
    assert caught.value.source.endswith("hwmon0/curr1_input")
    assert ina3221.read(rails[1:]) == {"VDD_IN@hwmon1": pytest.approx(12016 * 402 / 1000)}


def test_ina3221_no_sensors(tmp_path: Path) -> None:
    assert ina3221.discover(tmp_path) == []
    assert ina3221.total_input_rail({}) is None


# ------------------------------------------------------------------- Raspberry Pi


def test_pmic_read_adc_pi5() -> None:
    reading = rpi.parse_pmic_read_adc(read(DATA / "rpi/pi5_pmic_read_adc.txt"))
    assert len(reading.rails) == 14
    core = reading.rails["VDD_CORE"]
    assert (core.current_channel, core.voltage_channel) == (7, 15)
    assert core.power_w == pytest.approx(3.12741800 * 0.86089630)
    assert reading.rails["EXT5V"].power_w is None  # voltage only
    assert reading.rails["BATT"].voltage_v == 0.0
    assert reading.input_voltage_v == pytest.approx(5.1192)
    assert len(reading.power_w) == 12
    assert reading.total_power_w == pytest.approx(sum(reading.power_w.values()))
    assert 3.0 < reading.total_power_w < 4.5


@pytest.mark.parametrize(
    "name, line_number",
    [("pi5_pmic_read_adc_truncated.txt", 8), ("pi4_pmic_read_adc_unsupported.txt", 1)],
)
def test_pmic_read_adc_broken(name: str, line_number: int) -> None:
    with pytest.raises(ParseError) as caught:
        rpi.parse_pmic_read_adc(read(DATA / "rpi" / name))
    assert caught.value.line_number == line_number


@pytest.mark.parametrize(
    "text, reason",
    [
        ("", "no ADC channels"),
        ("  VDD_CORE_A current(7)=1.0A\n  VDD_CORE_A current(7)=1.1A", "appears twice"),
        ("  VDD_CORE_A volt(7)=1.0V", "is a volt in V"),
    ],
)
def test_pmic_read_adc_inconsistent(text: str, reason: str) -> None:
    with pytest.raises(ParseError, match=reason):
        rpi.parse_pmic_read_adc(text)


def test_get_throttled() -> None:
    ok = rpi.parse_get_throttled(read(DATA / "rpi/get_throttled_ok.txt"))
    assert ok.ok and ok.active == []
    bad = rpi.parse_get_throttled(read(DATA / "rpi/get_throttled_undervoltage.txt"))
    assert bad.raw == 0x50005 and not bad.ok
    assert bad.active == [
        "under_voltage_now",
        "throttled_now",
        "under_voltage_occurred",
        "throttled_occurred",
    ]
    assert bad.under_voltage_now and not bad.arm_freq_capped_now
    hot = rpi.parse_get_throttled(read(DATA / "rpi/get_throttled_soft_temp_since_boot.txt"))
    assert hot.active == ["soft_temp_limit_occurred"] and not hot.soft_temp_limit_now
    assert rpi.parse_get_throttled("throttled=0x100000").unknown_bits == 0x100000


@pytest.mark.parametrize("text", ["throttled=", "throttled=0xZZ", 'error=1 error_msg="x"'])
def test_get_throttled_broken(text: str) -> None:
    with pytest.raises(ParseError):
        rpi.parse_get_throttled(text)


def test_measure_temp() -> None:
    assert rpi.parse_measure_temp(read(DATA / "rpi/measure_temp.txt")) == 61.8
    with pytest.raises(ParseError):
        rpi.parse_measure_temp("temp=61.")


# --------------------------------------------------------------------- nvidia-smi


def test_nvidia_smi_two_gpus() -> None:
    parsed = nvml.parse_csv(read(DATA / "nvml/nvidia_smi_2gpu_lms100.csv"))
    assert parsed.skipped == [] and len(parsed.records) == 52
    first = parsed.records[0]
    assert first.timestamp == datetime(2024, 5, 14, 10, 21, 33, 118000)
    assert (first.gpu_index, first.power_w, first.energy_mj) == (0, 12.46, 48213377091.0)
    gpu0 = [s for s in parsed.records if s.gpu_index == 0]
    series = nvml.power_series(parsed.records, gpu_index=0)
    assert len(series) == 26 and sample_rate_hz(series) == pytest.approx(9.7, abs=0.3)
    counter = nvml.energy_from_counter(gpu0[0], gpu0[-1])
    # the driver's counter and our trapezoid over the 100 ms samples agree within 3 %
    assert energy_joules(series, series[0][0], series[-1][0]) == pytest.approx(counter, rel=0.03)


def test_nvidia_smi_jetson_reports_no_power() -> None:
    parsed = nvml.parse_csv(read(DATA / "nvml/nvidia_smi_jetson_orin_na.csv"))
    assert len(parsed.records) == 3
    assert all(s.power_w is None and s.energy_mj is None for s in parsed.records)
    assert nvml.power_series(parsed.records) == []
    assert nvml.energy_from_counter(parsed.records[0], parsed.records[-1]) is None


def test_nvidia_smi_malformed_capture() -> None:
    parsed = nvml.parse_csv(read(DATA / "nvml/nvidia_smi_malformed.csv"))
    assert [s.line_number for s in parsed.skipped] == [1, 6, 7, 8]
    assert "header line" in parsed.skipped[0].reason
    assert "fields, expected 6" in parsed.skipped[1].reason  # two lines torn together
    assert len(parsed.records) == 4
    with_units, unknown = parsed.records[2], parsed.records[3]
    assert with_units.power_w == 11.65 and with_units.utilization_pct == 0.0
    assert unknown.power_w is None and unknown.energy_mj is None


def test_nvidia_smi_parse_line_errors() -> None:
    with pytest.raises(ParseError, match="timestamp"):
        nvml.parse_line("2024/05/14 10:21:3, 0, 12.20, 1, 0, 47")
    with pytest.raises(ParseError, match="power.draw reads 'ERR!'"):
        nvml.parse_line("2024/05/14 10:21:33.118, 0, ERR!, 1, 0, 47")


def test_energy_from_counter_refuses_meaningless_differences() -> None:
    a = nvml.parse_line("2024/05/14 10:21:33.118, 0, 12.46, 5000, 0, 47")
    b = nvml.parse_line("2024/05/14 10:21:34.118, 0, 12.46, 17460, 0, 47")
    other = nvml.parse_line("2024/05/14 10:21:34.118, 1, 12.46, 17460, 0, 47")
    reloaded = nvml.parse_line("2024/05/14 10:21:35.118, 0, 12.46, 100, 0, 47")
    assert nvml.energy_from_counter(a, b) == pytest.approx(12.46)
    with pytest.raises(ValueError, match="GPU 0 and GPU 1"):
        nvml.energy_from_counter(a, other)
    with pytest.raises(ValueError, match="went back"):
        nvml.energy_from_counter(b, reloaded)
    with pytest.raises(ValueError, match="out of order"):
        nvml.energy_from_counter(b, a)


# ------------------------------------------------------------------------- energy


def series(f, t0: float, t1: float, hz: float) -> list[tuple[float, float]]:
    n = round((t1 - t0) * hz)
    return [(t0 + i / hz, f(t0 + i / hz)) for i in range(n + 1)]


def test_constant_power() -> None:
    samples = series(lambda t: 5.0, 0.0, 10.0, 10)
    assert mean_power(samples, 2.05, 6.95) == pytest.approx(5.0)
    assert energy_joules(samples, 2.0, 7.0) == pytest.approx(25.0)
    assert sample_rate_hz(samples) == pytest.approx(10.0)


def test_ramp_is_integrated_exactly_including_interpolated_edges() -> None:
    samples = series(lambda t: 2.0 * t, 0.0, 10.0, 10)
    t0, t1 = 1.05, 3.05  # both edges between samples
    assert energy_joules(samples, t0, t1) == pytest.approx(t1**2 - t0**2)
    assert mean_power(samples, t0, t1) == pytest.approx(t1 + t0)


def test_step_sampled_at_1hz_and_exact_step() -> None:
    sampled = [(float(t), 2.0 if t < 5 else 10.0) for t in range(11)]
    # the interpolation ramps between t=4 and t=5: 2*4 + (2+10)/2 + 10*5
    assert energy_joules(sampled, 0.0, 10.0) == pytest.approx(64.0)
    exact = [(0.0, 2.0), (5.0, 2.0), (5.0, 10.0), (10.0, 10.0)]  # two samples at t=5
    assert energy_joules(exact, 0.0, 10.0) == pytest.approx(60.0)
    assert energy_joules(exact, 0.0, 5.0) == pytest.approx(10.0)
    assert energy_joules(exact, 5.0, 10.0) == pytest.approx(50.0)
    assert mean_power(exact, 4.0, 6.0) == pytest.approx(6.0)


def test_fewer_than_two_samples_in_a_window_is_none() -> None:
    samples = series(lambda t: 5.0, 0.0, 10.0, 1)
    assert mean_power(samples, 3.2, 3.8) is None  # no sample inside
    assert energy_joules(samples, 3.5, 4.5) is None  # one sample inside
    assert coverage(samples, 3.5, 4.5) is None
    assert energy_joules([], 0.0, 1.0) is None
    assert sample_rate_hz(samples[:1]) is None


def test_window_beyond_the_samples_counts_the_gap_at_the_covered_mean() -> None:
    samples = series(lambda t: 4.0 + t, 0.0, 10.0, 10)
    assert coverage(samples, -1.0, 4.0) == pytest.approx(0.8)
    covered_mean = mean_power(samples, 0.0, 4.0)
    assert mean_power(samples, -1.0, 4.0) == pytest.approx(covered_mean)
    assert energy_joules(samples, -1.0, 4.0) == pytest.approx(covered_mean * 5.0)


def test_window_energy_with_idle_baseline() -> None:
    samples = [(0.1 * i, 2.0 if i < 100 else 6.0) for i in range(201)]
    result = window_energy(
        samples, [(11.0, 13.0, 100), (15.0, 17.0, 100)], (1.0, 9.0), rail="VDD_IN"
    )
    assert (result.rail, result.estimated, result.note) == ("VDD_IN", False, None)
    assert result.inferences == 200 and result.duration_s == pytest.approx(4.0)
    assert result.energy_j == pytest.approx(24.0)
    assert result.mean_power_w == pytest.approx(6.0)
    assert result.energy_per_inference_j == pytest.approx(0.12)
    assert result.idle_power_w == pytest.approx(2.0)
    assert result.energy_per_inference_above_idle_j == pytest.approx(0.08)
    assert result.sample_count == 42 and result.idle_sample_count == 81
    assert result.sample_rate_hz == pytest.approx(10.0)
    assert result.coverage == pytest.approx(1.0)
    assert [w.energy_j for w in result.windows] == pytest.approx([12.0, 12.0])
    assert result.windows[0].energy_per_inference_j == pytest.approx(0.12)


def test_window_energy_unmeasured_window_gives_no_numbers() -> None:
    samples = series(lambda t: 3.0, 0.0, 10.0, 2)  # a 2 Hz sampler
    result = window_energy(
        samples,
        [(1.0, 3.0, 10), (5.1, 5.3, 1)],
        (7.1, 7.4),
        rail="PMIC_RAILS_SUM",
        estimated=True,
    )
    assert result.estimated is True
    assert result.energy_j is None and result.energy_per_inference_j is None
    assert result.mean_power_w is None and result.idle_power_w is None
    assert result.energy_per_inference_above_idle_j is None and result.coverage is None
    assert result.windows[0].energy_j == pytest.approx(6.0)
    assert "1 of 2 windows had fewer than 2 samples" in result.note
    assert "no idle baseline" in result.note


@pytest.mark.parametrize(
    "samples, windows, message",
    [
        ([(1.0, 1.0), (0.0, 1.0)], [(0.0, 1.0, 1)], "out of time order"),
        ([(0.0, math.nan), (1.0, 1.0)], [(0.0, 1.0, 1)], "not finite"),
        ([(0.0, 1.0), (1.0, 1.0)], [(1.0, 1.0, 1)], "t0 < t1"),
        ([(0.0, 1.0), (1.0, 1.0)], [(0.0, 1.0, 0)], "0 inferences"),
        ([(0.0, 1.0), (1.0, 1.0)], [], "no measured windows"),
    ],
)
def test_window_energy_rejects_bad_input(samples, windows, message) -> None:
    with pytest.raises(ValueError, match=message):
        window_energy(samples, windows, rail="VDD_IN")
