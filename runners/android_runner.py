"""Android phones through the vendor tools: LiteRT's ``benchmark_model`` (runtime
``benchmark_model``, .tflite) and ``onnxruntime_perf_test`` (runtime
``ort_perf_test``, .onnx), over the ``adb`` transport (``devices/adb.py``).

A phone has no Python for the agent, so the runner drives the tools itself.

Per job: cool down (``runners/cooldown.py``, options ``cooldown_below_c`` /
``cooldown_limit_s``), read the thermal zones, push the model (and the tool, when the
device options name a controller-side binary: ``benchmark_model`` or
``benchmark_model_<abi>``, likewise ``onnxruntime_perf_test``; otherwise the tool on
the phone's PATH or in the workdir), start the battery sampler, take an idle
baseline, run the tool ``repetitions`` times, stop the sampler, read the thermal
zones again.

Repetitions, windows and statistics
    Each repetition is one run of the tool (its own init, warm-up and timed phase) and
    is one measured window. The tools print no per-inference samples, only their own
    statistics of the timed phase, so ``JobMeasurement.windows`` stays **empty** (a
    made-up sample list would give wrong percentiles, std and n). Instead:

    * ``tool_stats`` is :func:`runners.tool_stats.median_across_repetitions` of the
      runs' own statistics: each figure is the median across repetitions of that
      run's figure. That is exactly how edgebench's headline comes from its windows
      (``summarize_windows``: each statistic is the median across windows of the
      per-window statistic), so ``latency_p50`` is the median across repetitions of
      each run's median (benchmark_model's median is ``sorted[floor(n/2)]``, the same
      sample as nearest-rank for odd n, the upper middle one for even n), ``mean`` the
      median of the runs' means, and ``count`` the total of timed inferences (the
      pooled n). It stays labelled as the tool's (its mean is a mean, std ddof 0).
    * The confidence interval of the median: edgebench's comes from the pooled raw
      samples, which do not exist here, so it is **unknown** (None), never
      approximated. ``details["repetition_median_ci_s"]`` holds the distribution-free
      CI of the median of the runs' medians (``harness.stats``' method, computed here
      on the R per-run figures) where R is large enough (R >= 6 at 95 %), labelled as
      a CI across repetitions: it says how reproducible the runs are.
    * Every run's own statistics and its parsed log stay in ``details["repetitions"]``.

Memory
    A wrapper on the phone starts the tool in the background and polls
    ``/proc/<pid>/status`` for VmHWM every ``memory_poll_ms`` (shell builtins only, so
    the poller costs one ``sleep`` per poll); the last VmHWM printed is the peak the
    poller saw (``peak_reset`` is False: the tool's own process starts fresh).
    ``dumpsys meminfo <pid>`` is taken once, in the first repetition, when the tool
    starts its warm-up (the model is loaded, the timed phase not begun, so dumpsys'
    own CPU use does not fall into a measured window where that is avoidable):
    ``TOTAL PSS`` -> ``Memory.pss_bytes``.

Power (battery current x voltage)
    A shell loop on the phone reads ``/proc/uptime`` (the device clock the windows are
    stamped on too), ``current_now``, ``voltage_now`` and ``status`` of
    ``/sys/class/power_supply/battery`` every ``power_interval_ms``. Calibration, per
    job, recorded in ``Power.note`` and ``details["power_calibration"]``:

    * current unit: µA when the median ``|current_now|`` is at least 10 000 (10 mA in
      µA; 10 A in mA is no phone), else mA; voltage: µV above 100 000, mV above 100,
      else V. Options ``battery_current_unit`` / ``battery_discharge_sign`` override.
    * sign: while the status says Discharging/Not charging, the battery's current is
      the phone's draw, so the sign that makes the idle baseline positive is the
      discharge sign (Pixels report discharge negative, many others positive).
      Without a discharging reading the Android convention (``BatteryManager``:
      negative = discharging) is assumed and the note says so.
    * a phone that is **charging** (status Charging/Full at any reading) draws from the
      charger, and the battery current is only the difference: the figures are kept
      but flagged (a ``WARNING`` at the head of ``Power.note``, ``"charging"`` in
      ``Power.errors`` and in ``health.flags``). Unplug the phone (``adb tcpip`` +
      Wi-Fi) to measure power.

    Fuel gauges update ``current_now`` every 0.25-1 s on most phones, so windows
    shorter than a few seconds get few distinct readings; the coverage says so.
    Energy per inference: ``devices.power.energy.window_energy`` over the windows.
    Each window lies on the device clock from ``end - count x mean`` to the moment the
    tool exited (``/proc/uptime`` right after it): after its timed phase the tool only
    prints its summary.

Heat
    Thermal zones (type and temperature) before and after the job in
    ``details["thermal"]``; ``health.temp_c`` is the hottest zone after the job, and
    ``details["cooldown"]`` what the cool-down did (how long it waited).

Accuracy
    Not measured: benchmark_model times random inputs and, in general, writes no
    outputs (recent LiteRT builds can dump the last run's outputs to a file, for one
    input at a time: not a way to evaluate a data set), and onnxruntime_perf_test
    neither. ``Accuracy(note=...)`` says so.

Op profiling (setting ``op_profiling``)
    benchmark_model's ``--enable_op_profiling`` table of the regular runs becomes
    ``layers`` (one :class:`LayerRow` per row of its "Run Order" table, from the last
    repetition). onnxruntime_perf_test writes its profile to a JSON file, which is not
    read here (a note says so).

A dropped connection mid-job raises :class:`~devices.errors.TransportError` (the
scheduler retries the job); nothing of an unfinished job is kept. A tool that cannot
apply the requested delegate (the GPU driver or NNAPI accelerator is missing; for
onnxruntime_perf_test, an execution provider its build lacks: ``NNAPI is not supported
in this build``) is a result: ``not_deployable`` with the tool's error.
"""

from __future__ import annotations

import posixpath
import re
import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from devices.adb import (
    BATTERY_DIR,
    AdbOptions,
    AdbProcess,
    AdbTransport,
    probe_android,
    read_thermal,
    zone_temperatures,
)
from devices.errors import DeviceError, TransportError, TransportTimeout
from devices.power.energy import window_energy
from devices.power.sources import NONE
from runners.base import Job, MeasureRules, Runner, fingerprint, register_runner
from runners.benchmark_model import (
    BenchmarkModelParseError,
    BenchmarkModelResult,
    parse_benchmark_model,
)
from runners.cooldown import CooldownResult, wait_for_cooldown
from runners.ort_perf_test import OrtPerfTestParseError, OrtPerfTestResult, parse_ort_perf_test
from runners.records import (
    Accuracy,
    DeviceHealth,
    JobMeasurement,
    LayerRow,
    Memory,
    Power,
    Provenance,
    ToolStatistics,
    to_plain,
)
from runners.tool_stats import (
    benchmark_model_statistics,
    median_across_repetitions,
    ort_perf_test_statistics,
)

RUNNER_VERSION = "1"
ACCURACY_NOTE = "not measured on the phone: {tool} does not write outputs"
IDLE_S = 1.0

# The run wrapper (no input in it: $1 is the poll interval, the rest the tool's argv).
# It prints "edgebench-child PID T0" when the tool started, "edgebench-vmhwm KB" each
# time the peak grew, and "edgebench-end RC T1" when the tool exited. /proc is named
# through /proc/self: edgebench's emulated phone passes only /proc/<entry> words through.
RUN_WRAPPER = """\
read t0 _ < /proc/uptime
i="$1"; shift
"$@" 2>&1 &
p=$!
echo "edgebench-child $p $t0"
proc=/proc/self; proc=${proc%/self}
( h=; while kill -0 "$p" 2>/dev/null; do
    while read k v _; do
      if [ "$k" = VmHWM: ] && [ "$v" != "$h" ]; then h=$v; echo "edgebench-vmhwm $v"; fi
    done 2>/dev/null < "$proc/$p/status"
    sleep "$i"
  done ) &
w=$!
wait "$p"; rc=$?
read t1 _ < /proc/uptime
kill "$w" 2>/dev/null
echo "edgebench-end $rc $t1"
exit "$rc"
"""
_CHILD = re.compile(r"^edgebench-child (\d+) ([\d.]+)$")
_HWM = re.compile(r"^edgebench-vmhwm (\d+)$")
_END = re.compile(r"^edgebench-end (\d+) ([\d.]+)$")

# Battery sampler: $1 the battery directory, $2 the interval in seconds.
SAMPLER = """\
while :; do
  read up _ < /proc/uptime
  c=; v=; s=
  read c 2>/dev/null < "$1/current_now"
  read v 2>/dev/null < "$1/voltage_now"
  read s 2>/dev/null < "$1/status"
  echo "$up $c $v $s"
  sleep "$2"
done
"""


# --------------------------------------------------------------------------- setting


@dataclass(frozen=True)
class AndroidSetting:
    """A job setting of the runtimes this runner serves, typed (the runtime table has
    validated the suite's values; this reads the stored job setting)."""

    runtime: str
    threads: int | None
    delegate: Literal["none", "xnnpack", "gpu", "nnapi", "external"]
    external_delegate: str | None
    cores: str  # all | big | little | a hex mask
    op_profiling: bool

    @classmethod
    def from_setting(cls, setting: dict[str, Any]) -> AndroidSetting:
        keys = {"runtime", "threads", "delegate", "external_delegate", "cores", "op_profiling"}
        unknown = sorted(set(setting) - keys - {"providers"})
        if unknown:
            raise ValueError(f"setting keys this runner does not know: {', '.join(unknown)}")
        delegate = setting["delegate"] if setting.get("delegate") is not None else "xnnpack"
        cores = str(setting["cores"]) if setting.get("cores") is not None else "all"
        if cores not in ("all", "big", "little") and not re.fullmatch(r"(0x)?[0-9a-fA-F]+", cores):
            raise ValueError(f"cores={cores!r}: expected all, big, little or a hex mask")
        if delegate == "external" and not setting.get("external_delegate"):
            raise ValueError("delegate=external needs external_delegate=PATH on the phone")
        return cls(
            runtime=str(setting["runtime"]),
            threads=int(setting["threads"]) if setting.get("threads") is not None else None,
            delegate=delegate,
            external_delegate=setting.get("external_delegate"),
            cores=cores,
            op_profiling=bool(setting.get("op_profiling")),
        )


def taskset_mask(cores: str, big_little: dict[str, list[int]]) -> str | None:
    """The taskset mask for a ``cores`` setting (None: every core, no taskset)."""
    if cores == "all":
        return None
    if cores in ("big", "little"):
        cpus = big_little.get(cores) or []
        if not cpus:
            raise ValueError(f"cores={cores}: the phone's cores could not be grouped")
        return format(sum(1 << c for c in cpus), "x")
    return cores.lower().removeprefix("0x")


# --------------------------------------------------------------------------- tools


@dataclass(frozen=True)
class ToolRun:
    """What one repetition gave."""

    text: str
    returncode: int
    pid: int | None
    t0: float | None  # device clock (/proc/uptime) when the wrapper started the tool
    t1: float | None  # ... when the tool exited
    vmhwm_kb: int | None
    pss_bytes: float | None
    pss_note: str | None


@dataclass(frozen=True)
class ParsedRun:
    stats: ToolStatistics
    parsed: BenchmarkModelResult | OrtPerfTestResult
    init_s: float | None
    first_s: float | None
    warmup_count: int | None
    tool_peak_bytes: float | None


class Tool:
    """One vendor tool: its binary's name, its argv for a setting, its parser."""

    binary: str
    runtime_name: str
    timed_region: str

    def argv(
        self, binary: str, model: str, s: AndroidSetting, m: MeasureRules, workdir: str
    ) -> list[str]:
        raise NotImplementedError

    def parse(self, text: str) -> ParsedRun:
        raise NotImplementedError

    def layers(self, text: str) -> list[LayerRow]:
        return []

    def failure(self, text: str, delegate: str) -> tuple[str | None, bool]:
        """A failed run's log: (its first error line, whether it says the requested
        delegate cannot be applied, which makes the job not deployable)."""
        errors = [ln for ln in text.splitlines() if "ERROR" in ln or "failed" in ln.lower()]
        why = errors[0].removeprefix("ERROR: ") if errors else None
        return why, delegate in ("gpu", "nnapi", "external") and any(
            "delegate" in e.lower() or "unsupported" in e.lower() for e in errors
        )


class BenchmarkModelTool(Tool):
    binary = "benchmark_model"
    runtime_name = "litert"
    timed_region = "benchmark_model timed runs (invoke only, inputs set once)"
    _DELEGATE_FLAGS: dict[str, list[str]] = {
        "none": ["--use_xnnpack=false"],
        "xnnpack": ["--use_xnnpack=true"],
        "gpu": ["--use_gpu=true"],
        "nnapi": ["--use_nnapi=true"],
        "external": [],
    }

    def argv(
        self, binary: str, model: str, s: AndroidSetting, m: MeasureRules, workdir: str
    ) -> list[str]:
        argv = [
            binary,
            f"--graph={model}",
            f"--num_threads={s.threads if s.threads is not None else -1}",
            f"--warmup_runs={m.warmup_runs}",
            f"--warmup_min_secs={m.warmup_min_s:g}",
            f"--num_runs={m.min_runs}",
            f"--min_secs={m.min_duration_s:g}",
            f"--max_secs={max(m.timeout_s, m.min_duration_s):g}",
            *self._DELEGATE_FLAGS[s.delegate],
        ]
        if s.delegate == "external":
            argv.append(f"--external_delegate_path={s.external_delegate}")
        if s.op_profiling:
            argv.append("--enable_op_profiling=true")
        return argv

    def parse(self, text: str) -> ParsedRun:
        r = parse_benchmark_model(text)
        return ParsedRun(
            benchmark_model_statistics(r),
            r,
            r.init_s,
            r.first_inference_s,
            r.warmup.count if r.warmup else None,
            r.peak_memory_bytes,
        )

    def layers(self, text: str) -> list[LayerRow]:
        return parse_op_table(text)


class OrtPerfTestTool(Tool):
    binary = "onnxruntime_perf_test"
    runtime_name = "onnxruntime"
    timed_region = "onnxruntime_perf_test requests (session.Run, generated inputs)"
    _PROVIDERS = {"none": "cpu", "xnnpack": "xnnpack", "nnapi": "nnapi"}
    _MISSING_PROVIDER = re.compile(r"\b\w+ is not supported in this build")

    def argv(
        self, binary: str, model: str, s: AndroidSetting, m: MeasureRules, workdir: str
    ) -> list[str]:
        if s.delegate not in self._PROVIDERS:
            raise ValueError(f"onnxruntime_perf_test has no {s.delegate} execution provider here")
        # The tool stops on a count or a duration, not both: the count is kept (the
        # rule's minimum duration is recorded as not applied in the job's note).
        argv = [
            binary,
            "-I",
            "-m",
            "times",
            "-r",
            str(m.min_runs),
            "-e",
            self._PROVIDERS[s.delegate],
        ]
        if s.threads is not None:
            argv += ["-x", str(s.threads)]
        if s.op_profiling:
            argv += ["-p", posixpath.join(workdir, "ort_profile")]
        return [*argv, model]

    def parse(self, text: str) -> ParsedRun:
        r = parse_ort_perf_test(text)
        return ParsedRun(
            ort_perf_test_statistics(r),
            r,
            r.session_creation_s,
            r.first_inference_s,
            1 if r.first_inference_s is not None else None,
            float(r.peak_working_set_bytes) if r.peak_working_set_bytes else None,
        )

    def failure(self, text: str, delegate: str) -> tuple[str | None, bool]:
        # A provider missing from the tool's build is thrown as "NNAPI is not supported
        # in this build" (no "ERROR", no "delegate" in it); other failures are
        # onnxruntime's messages ("Load model from M failed:...").
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        for line in lines:
            if m := self._MISSING_PROVIDER.search(line):
                return m.group(0), delegate != "none"
        errors = [ln for ln in lines if "error" in ln.lower() or "failed" in ln.lower()]
        return (errors[0] if errors else None), False


TOOLS: dict[str, Tool] = {
    "benchmark_model": BenchmarkModelTool(),
    "ort_perf_test": OrtPerfTestTool(),
}
_PARSE_ERRORS = (BenchmarkModelParseError, OrtPerfTestParseError)


def parse_op_table(text: str) -> list[LayerRow]:
    """The "Run Order" table of benchmark_model's regular-runs op profile."""
    rows: list[LayerRow] = []
    section = None
    in_table = False
    for raw in text.splitlines():
        line = re.sub(r"^(?:INFO|WARNING|ERROR):\s", "", raw.strip("\r"))
        if "Profiling Info for Regular Benchmark Runs" in line:
            section, rows = "runs", []
            continue
        if "Profiling Info for Benchmark Initialization" in line:
            section = "init"
            continue
        if "== Run Order ==" in line:
            in_table = True
            continue
        if line.startswith("==") or line.startswith("Timings (") or not line.strip():
            in_table = False
            continue
        if not in_table or section != "runs" or "[node type]" in line:
            continue
        cells = [c.strip() for c in line.strip().split("\t") if c.strip()]
        if len(cells) < 8:
            continue
        try:
            avg_ms = float(cells[2])
            share = float(cells[3].rstrip("%")) / 100.0
            count = int(cells[6])
        except ValueError:
            continue
        rows.append(
            LayerRow(
                name=cells[7].strip("[]")
                if cells[7].startswith("[") and cells[7].endswith("]")
                else cells[7],
                op=cells[0],
                time_s=avg_ms / 1000.0,
                share=share,
                count=count,
            )
        )
    return rows


def parse_total_pss_kb(text: str) -> int | None:
    """``dumpsys meminfo PID``: the App Summary's ``TOTAL PSS:`` or the table's TOTAL."""
    if m := re.search(r"TOTAL PSS:\s+(\d+)", text):
        return int(m.group(1))
    if m := re.search(r"^\s*TOTAL\s+(\d+)", text, flags=re.M):
        return int(m.group(1))
    return None


# --------------------------------------------------------------------------- power


class BatterySampler:
    """The phone-side battery loop (module doc), its lines kept as [t, text]."""

    def __init__(self, transport: AdbTransport, interval_ms: int) -> None:
        self.readings: list[list[Any]] = []
        self.errors: list[str] = []
        self.interval_ms = interval_ms
        self._proc: AdbProcess = transport.open_stream(
            ["sh", "-c", SAMPLER, "sh", BATTERY_DIR, f"{interval_ms / 1000:g}"]
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        while not self._stop.is_set():
            try:
                line = self._proc.read_line(timeout=1.0)
            except TransportTimeout:
                continue
            except TransportError as e:
                self.errors.append(f"sampler: {e}")
                return
            if line is None:
                if not self._stop.is_set():
                    self.errors.append(f"sampler exited: {self._proc.stderr_tail()[-200:]}")
                return
            fields = line.split(maxsplit=3)
            try:
                self.readings.append([float(fields[0]), line])
            except (ValueError, IndexError):
                self.errors.append(f"unreadable sampler line {line[:80]!r}")

    def last_t(self) -> float | None:
        return self.readings[-1][0] if self.readings else None

    def wait_until(self, t: float, timeout: float) -> bool:
        """Wait for a reading stamped at or after device time ``t``."""
        deadline = time.monotonic() + timeout
        while (last := self.last_t()) is None or last < t:
            if time.monotonic() > deadline or self.errors:
                return False
            time.sleep(0.02)
        return True

    def stop(self) -> None:
        self._stop.set()
        self._proc.terminate()
        self._thread.join(timeout=5)


@dataclass(frozen=True)
class Calibration:
    current_unit: str  # uA | mA
    voltage_unit: str  # uV | mV | V
    discharge_sign: int  # +1: current_now > 0 while discharging
    how: str
    charging: bool
    statuses: list[str] = field(default_factory=list)


_CURRENT_SCALE = {"uA": 1e-6, "mA": 1e-3}
_VOLTAGE_SCALE = {"uV": 1e-6, "mV": 1e-3, "V": 1.0}


def battery_readings(readings: list[list[Any]]) -> list[tuple[float, int, int, str]]:
    """(t, current, voltage, status) of the readings that have both numbers."""
    out = []
    for t, text in readings:
        fields = str(text).split(maxsplit=3)
        if (
            len(fields) >= 3
            and re.fullmatch(r"-?\d+", fields[1])
            and re.fullmatch(r"-?\d+", fields[2])
        ):
            out.append(
                (
                    float(t),
                    int(fields[1]),
                    int(fields[2]),
                    fields[3].strip() if len(fields) > 3 else "",
                )
            )
    return out


def calibrate(
    values: list[tuple[float, int, int, str]],
    idle: tuple[float, float] | None,
    options: AdbOptions,
) -> Calibration:
    """Units and sign of this phone's battery readings (module doc)."""
    statuses = sorted({s for *_, s in values if s})
    charging = any(s in ("Charging", "Full") for s in statuses)
    magnitude = statistics.median(abs(c) for _, c, _, _ in values)
    volts = statistics.median(abs(v) for _, _, v, _ in values)
    how = []
    if options.battery_current_unit != "auto":
        unit = options.battery_current_unit
        how.append(f"current unit {unit} (option)")
    else:
        unit = "uA" if magnitude >= 10_000 else "mA"
        how.append(f"current unit {unit} (median |current_now| {magnitude:g})")
    vunit = "uV" if volts > 100_000 else "mV" if volts > 100 else "V"
    how.append(f"voltage unit {vunit} (median {volts:g})")
    if options.battery_discharge_sign != "auto":
        sign = 1 if options.battery_discharge_sign == "positive" else -1
        how.append(f"discharge sign {options.battery_discharge_sign} (option)")
    else:
        discharging = [
            c for t, c, _, s in values if s in ("Discharging", "Not charging")
            and (idle is None or idle[0] <= t <= idle[1])
        ] or [c for _, c, _, s in values if s in ("Discharging", "Not charging")]  # fmt: skip
        if discharging and statistics.median(discharging) != 0:
            sign = 1 if statistics.median(discharging) > 0 else -1
            how.append(
                f"discharge sign {'positive' if sign > 0 else 'negative'} (idle readings "
                "while Discharging)"
            )
        else:
            sign = -1
            how.append("discharge sign negative (assumed: Android's convention; no "
                       "discharging reading to calibrate on)")  # fmt: skip
    return Calibration(unit, vunit, sign, "; ".join(how), charging, statuses)


def battery_power(
    readings: list[list[Any]],
    windows: list[tuple[float, float, int]],
    idle: tuple[float, float] | None,
    options: AdbOptions,
    interval_ms: int,
    errors: list[str],
) -> tuple[Power, Calibration | None]:
    values = battery_readings(readings)
    common: dict[str, Any] = {
        "source": "android_battery",
        "rail": "battery",
        "interval_ms": float(interval_ms),
        "readings": readings,
        "idle": list(idle) if idle else None,
        "clock": "device /proc/uptime (seconds since boot)",
        "skipped_readings": len(readings) - len(values),
    }
    if len(values) < 2 or all(c == 0 for _, c, _, _ in values):
        return Power(**common, errors=errors, note="no usable battery current readings"), None
    cal = calibrate(values, idle, options)
    scale = _CURRENT_SCALE[cal.current_unit] * _VOLTAGE_SCALE[cal.voltage_unit]
    samples = [(t, cal.discharge_sign * c * v * scale) for t, c, v, _ in values]
    energy = window_energy(samples, windows, idle, rail="battery")
    notes = [f"battery current x voltage; calibration: {cal.how}"]
    errs = list(errors)
    if cal.charging:
        notes.insert(
            0,
            "WARNING: the phone was charging (status "
            + "/".join(cal.statuses)
            + "): the battery current is what the charger does not supply, not the "
            "phone's draw; these figures are flagged, unplug the phone to measure power",
        )
        errs.append("charging: power figures are not the phone's consumption")
    if energy.note:
        notes.append(energy.note)
    distinct = len({c for _, c, _, _ in values})
    if distinct < 3:
        notes.append(f"only {distinct} distinct current readings: the fuel gauge updates slowly")
    return (
        Power(
            **common,
            mean_power_w=energy.mean_power_w,
            idle_power_w=energy.idle_power_w,
            energy_per_inference_j=energy.energy_per_inference_j,
            energy_per_inference_above_idle_j=energy.energy_per_inference_above_idle_j,
            sample_rate_hz=energy.sample_rate_hz,
            sample_count=energy.sample_count,
            coverage=energy.coverage,
            errors=errs,
            note="; ".join(notes),
        ),
        cal,
    )


# --------------------------------------------------------------------------- runner


def repetition_median_ci(values: list[float], confidence: float = 0.95) -> list[float] | None:
    """Distribution-free CI of the median of ``values`` (order statistics, exact
    binomial coverage, as ``harness.stats.median_ci``); None when R is too small."""
    from math import comb

    n = len(values)
    ordered = sorted(values)
    best = None
    for low in range(1, (n + 1) // 2 + 1):
        coverage = sum(comb(n, k) for k in range(low, n - low + 1)) / 2**n
        if coverage >= confidence - 1e-12:
            best = low
    return None if best is None else [ordered[best - 1], ordered[n - best]]


@register_runner("android")
class AndroidRunner(Runner):
    """Runtimes ``benchmark_model`` and ``ort_perf_test`` on an Android phone (module doc)."""

    serves = AdbTransport

    def __init__(self, transport: AdbTransport) -> None:  # type: ignore[override]
        super().__init__(transport)
        if not isinstance(transport, AdbTransport):
            raise DeviceError(
                f"the android runner needs an adb device, not {transport.name!r}",
                device=transport.device.name,
            )
        self.phone = transport
        self._tools: dict[str, str] = {}  # tool name -> its path on the phone
        self._current: AdbProcess | None = None

    @property
    def options(self) -> AdbOptions:
        return self.phone.options

    def probe(self) -> dict[str, Any]:
        self.facts = probe_android(self.phone)
        return self.facts

    # ------------------------------------------------------------------ tools

    def _tool_path(self, tool: Tool, facts: dict[str, Any]) -> str:
        if tool.binary in self._tools:
            return self._tools[tool.binary]
        from pathlib import Path

        from devices.transport import sha256_file

        local = self.options.tool_path(tool.binary, facts.get("arch"))
        if local:
            path = Path(local).expanduser()
            if not path.is_file():
                raise DeviceError(
                    f"option {tool.binary}: no such file {path} on the controller",
                    device=self.device,
                )
            remote = self.phone.push(path, sha256_file(path), tool.binary)
            self.phone.check(["chmod", "755", remote], 30)
        else:
            found = self.phone.run(["sh", "-c", 'command -v "$1"', "sh", tool.binary], 30)
            in_workdir = posixpath.join(self.phone.workdir, "bin", tool.binary)
            if found.returncode == 0 and found.stdout.strip():
                remote = found.stdout.strip().splitlines()[0]
            elif self.phone.is_executable(in_workdir):
                remote = in_workdir
            else:
                raise DeviceError(
                    f"no {tool.binary} on the phone (not on PATH nor in {in_workdir}); set the "
                    f"device option {tool.binary}=PATH (or {tool.binary}_<abi>) to a build "
                    "for the phone's ABI",
                    device=self.device,
                )
        self._tools[tool.binary] = remote
        return remote

    # ------------------------------------------------------------------ one run

    def _run_tool(self, argv: list[str], timeout: float, take_pss: bool) -> ToolRun:
        poll = f"{self.options.memory_poll_ms / 1000:g}"
        proc = self.phone.open_stream(["sh", "-c", RUN_WRAPPER, "sh", poll, *argv])
        self._current = proc
        lines: list[str] = []
        pid = t0 = t1 = None
        hwm = None
        code: int | None = None
        pss: dict[str, Any] = {}
        pss_thread: threading.Thread | None = None
        running_lines = 0
        deadline = time.monotonic() + timeout
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    proc.terminate()
                    raise TransportTimeout(
                        f"{argv[0]} did not finish within {timeout:g} s; it was killed",
                        device=self.device,
                    )
                try:
                    line = proc.read_line(min(left, 5.0))
                except TransportTimeout:
                    continue
                if line is None:
                    break
                if m := _CHILD.match(line):
                    pid, t0 = int(m.group(1)), float(m.group(2))
                elif m := _HWM.match(line):
                    hwm = int(m.group(1))
                elif m := _END.match(line):
                    code, t1 = int(m.group(1)), float(m.group(2))
                else:
                    lines.append(line)
                    if "Running benchmark for" in line:
                        running_lines += 1
                        if running_lines == 1 and take_pss and pid is not None:
                            pss_thread = threading.Thread(
                                target=self._pss, args=(pid, pss), daemon=True
                            )
                            pss_thread.start()
                        elif (
                            running_lines == 2 and pss_thread is not None and pss_thread.is_alive()
                        ):
                            pss["overlap"] = True
            status = proc.wait(10.0)
        finally:
            self._current = None
            proc.terminate()
        if pss_thread is not None:
            pss_thread.join(60)
        if code is None:
            # The wrapper never said the tool ended: the phone went away mid-run.
            raise TransportError(
                f"{argv[0]} ended without its exit status (exit {status}); connection dropped?",
                device=self.device,
            )
        note = None
        if pss.get("error"):
            note = f"dumpsys meminfo: {pss['error']}"
        elif pss.get("overlap"):
            note = "dumpsys meminfo ran into the first repetition's timed phase"
        return ToolRun("\n".join(lines), code, pid, t0, t1, hwm, pss.get("bytes"), note)

    def _pss(self, pid: int, into: dict[str, Any]) -> None:
        try:
            done = self.phone.run(["dumpsys", "meminfo", str(pid)], 60)
        except DeviceError as e:
            into["error"] = str(e)
            return
        kb = parse_total_pss_kb(done.stdout)
        if kb is None:
            into["error"] = (done.stdout.strip().splitlines() or ["no TOTAL PSS line"])[-1][:200]
        else:
            into["bytes"] = float(kb * 1024)

    # ------------------------------------------------------------------ a job

    def measure(self, job: Job) -> JobMeasurement:
        try:
            setting = AndroidSetting.from_setting(job.setting)
        except ValueError as e:
            raise DeviceError(f"setting {job.setting}: {e}", device=self.device) from None
        tool = TOOLS.get(setting.runtime)
        if tool is None:
            raise DeviceError(
                f"the android runner serves {', '.join(TOOLS)}, not {setting.runtime!r}",
                device=self.device,
            )
        facts = self.facts or self.probe()
        o = self.options
        cooldown: CooldownResult = wait_for_cooldown(
            lambda: zone_temperatures(read_thermal(self.phone)),
            o.cooldown_below_c,
            o.cooldown_limit_s,
        )
        thermal_before = read_thermal(self.phone)
        model = self.phone.push(job.model.path, job.model.sha256, job.model.path.name)
        binary = self._tool_path(tool, facts)
        try:
            mask = taskset_mask(setting.cores, facts.get("big_little") or {})
            argv = tool.argv(binary, model, setting, job.measure, self.phone.workdir)
        except ValueError as e:
            raise DeviceError(f"{setting.runtime}: {e}", device=self.device) from None
        if mask is not None:
            argv = ["taskset", mask, *argv]

        sampling = o.power != NONE and bool((facts.get("battery") or {}).get("current_sensor"))
        sampler = BatterySampler(self.phone, o.power_interval_ms) if sampling else None
        idle: tuple[float, float] | None = None
        runs: list[ToolRun] = []
        try:
            if sampler is not None:
                # Two readings at least, then an idle second on the device clock.
                if sampler.wait_until(float("-inf"), 10.0) and sampler.readings:
                    start = sampler.readings[0][0]
                    if sampler.wait_until(start + IDLE_S, IDLE_S + 10.0):
                        idle = (start, sampler.readings[-1][0])
            for rep in range(job.measure.repetitions):
                runs.append(self._run_tool(argv, job.measure.timeout_s, take_pss=rep == 0))
                if runs[-1].returncode != 0:
                    break
            if sampler is not None and runs and runs[-1].t1 is not None:
                sampler.wait_until(runs[-1].t1, 3 * o.power_interval_ms / 1000 + 5.0)
        finally:
            if sampler is not None:
                sampler.stop()
        thermal_after = read_thermal(self.phone)
        return self._record(job, tool, setting, argv, facts, runs, sampler, idle, cooldown,
                            thermal_before, thermal_after, mask)  # fmt: skip

    def _record(
        self,
        job: Job,
        tool: Tool,
        setting: AndroidSetting,
        argv: list[str],
        facts: dict[str, Any],
        runs: list[ToolRun],
        sampler: BatterySampler | None,
        idle: tuple[float, float] | None,
        cooldown: CooldownResult,
        thermal_before: dict[str, dict[str, Any]],
        thermal_after: dict[str, dict[str, Any]],
        mask: str | None,
    ) -> JobMeasurement:
        hottest_after = max((z["temp_c"] for z in thermal_after.values()), default=None)
        flags = [] if cooldown.reached else ["not cooled down"]
        details: dict[str, Any] = {
            "tool": tool.binary,
            "argv": argv,
            "taskset_mask": mask,
            "cooldown": cooldown.to_dict(),
            "thermal": {"before": thermal_before, "after": thermal_after},
        }
        provenance = Provenance(
            runner=self.name,
            runner_version=RUNNER_VERSION,
            model_sha256=job.model.sha256,
            runtime=tool.runtime_name,
            device_fingerprint=fingerprint(facts),
            extra={"tool": tool.binary, "tool_path": self._tools[tool.binary]},
            **job.provenance,
        )
        failed = runs[-1] if runs and runs[-1].returncode != 0 else None
        if failed is not None:
            error, delegate_problem = tool.failure(failed.text, setting.delegate)
            why = error or f"exit {failed.returncode}"
            if not delegate_problem:
                raise DeviceError(
                    f"{tool.binary} exited with {failed.returncode}: {why}", device=self.device
                )
            return JobMeasurement(
                runner=self.name,
                provenance=provenance,
                not_deployable=f"{tool.binary} cannot apply the {setting.delegate} delegate: {why}",
                health=DeviceHealth(flags=flags, ok=cooldown.reached, temp_c=hottest_after),
                details={**details, "log_tail": failed.text[-4000:]},
            )
        try:
            parsed = [tool.parse(r.text) for r in runs]
        except _PARSE_ERRORS as e:
            raise DeviceError(f"{tool.binary}: {e}", device=self.device) from None
        per_run = [p.stats for p in parsed]
        stats = median_across_repetitions(per_run)
        medians = [s.median_s if s.median_s is not None else s.mean_s for s in per_run]
        details["repetitions"] = [
            {
                "stats": to_plain(p.stats),
                "parsed": to_plain(p.parsed),
                "t0": r.t0,
                "t1": r.t1,
                "pid": r.pid,
                "vmhwm_kb": r.vmhwm_kb,
            }
            for p, r in zip(parsed, runs, strict=True)
        ]
        if all(v is not None for v in medians):
            details["repetition_median_ci_s"] = repetition_median_ci([float(v) for v in medians])  # type: ignore[arg-type]
        spans: list[tuple[float, float, int]] = []
        for p, r in zip(parsed, runs, strict=True):
            count, mean = p.stats.count, p.stats.mean_s
            if r.t1 is not None and count and mean:
                start = r.t1 - count * mean
                spans.append((max(start, r.t0) if r.t0 is not None else start, r.t1, count))
        power = None
        health_flags = list(flags)
        if sampler is not None:
            if len(spans) == len(runs) and spans:
                power, cal = battery_power(
                    sampler.readings, spans, idle, self.options, sampler.interval_ms, sampler.errors
                )
                if cal is not None:
                    details["power_calibration"] = to_plain(cal)
                    if cal.charging:
                        health_flags.append("charging")
            else:
                power = Power(
                    source="android_battery",
                    rail="battery",
                    errors=sampler.errors,
                    note="the runs' windows could not be placed on the device clock",
                )
        hwm = [r.vmhwm_kb for r in runs if r.vmhwm_kb is not None]
        pss = next((r for r in runs if r.pss_bytes is not None or r.pss_note), None)
        if pss is not None and pss.pss_note:
            details["pss_note"] = pss.pss_note
        notes = [f"{tool.binary}'s own statistics, median across {len(runs)} runs (no raw samples)"]
        if isinstance(tool, OrtPerfTestTool):
            notes.append(
                "onnxruntime_perf_test stops on a count: the minimum duration was not applied"
            )
        layers = tool.layers(runs[-1].text) if setting.op_profiling else []
        if setting.op_profiling and isinstance(tool, OrtPerfTestTool):
            notes.append("op profiling: onnxruntime_perf_test's JSON profile is not read")
        return JobMeasurement(
            runner=self.name,
            provenance=provenance,
            windows=[],
            window_spans=[[a, b] for a, b, _ in spans] or None,
            init_s=parsed[0].init_s,
            first_inference_s=parsed[0].first_s,
            warmup_count=parsed[0].warmup_count,
            timed_region=tool.timed_region,
            memory=Memory(
                peak_rss_bytes=float(max(hwm) * 1024) if hwm else parsed[0].tool_peak_bytes,
                peak_reset=False if hwm else None,
                pss_bytes=pss.pss_bytes if pss is not None else None,
            ),
            power=power,
            accuracy=Accuracy(note=ACCURACY_NOTE.format(tool=tool.binary))
            if job.evaluation is not None
            else None,
            tool_stats=stats,
            layers=layers,
            health=DeviceHealth(
                flags=health_flags,
                ok=cooldown.reached and "charging" not in health_flags,
                temp_c=hottest_after,
            ),  # fmt: skip
            emulated=bool(facts.get("emulated")),
            note="; ".join(notes),
            details=details,
        )

    def kill(self) -> None:
        proc = self._current
        if proc is not None:
            proc.terminate()

    def close(self) -> None:
        self.kill()
