"""The typed records of a measurement: what runners produce, the store keeps and
reports render.

This is a leaf module (standard library only): runners, ``edgebench import``, the
store (``harness``) and ``reports`` all import it, and it imports none of them.

Two groups:

* :class:`JobMeasurement` and its parts: what one job measured on a device, as a
  runner (or an imported vendor log) produced it. Raw latency samples travel in
  ``windows`` and are stored in their own table; everything else is stored as the
  record's JSON (:meth:`JobMeasurement.to_json`), which carries
  :data:`FORMAT_VERSION`.
* :class:`RunReport` and its parts: a stored run as reports render it (one
  :class:`JobResult` per job, with the statistics the controller computed).

A figure nobody measured is ``None`` (unknown), never zero. A figure that is
estimated (no sensor, emulation) is named in ``estimated``, and reports mark it.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any

# Version of the JSON a JobMeasurement is stored as. A change appends a migration to
# harness/store.py; records of older versions are read through it, never guessed at.
FORMAT_VERSION = 1


# --------------------------------------------------------------------------- parts
@dataclass(frozen=True)
class Memory:
    """Memory figures in bytes. Linux: VmHWM over the measured windows (reset before
    them where ``/proc/self/clear_refs`` allowed it) and VmRSS after load. MCUs:
    static RAM/flash of the firmware image and the arena's peak."""

    peak_rss_bytes: float | None = None
    rss_after_load_bytes: float | None = None
    peak_reset: bool | None = None  # was the peak reset before the windows?
    static_ram_bytes: float | None = None
    flash_bytes: float | None = None
    arena_bytes: float | None = None
    pss_bytes: float | None = None  # Android dumpsys meminfo


@dataclass(frozen=True)
class Power:
    """Power over the measured windows from a device's own sensor (or, marked
    ``estimated``, a model of it). Energies in joules, powers in watts."""

    source: str
    rail: str | None = None
    mean_power_w: float | None = None
    idle_power_w: float | None = None
    energy_per_inference_j: float | None = None
    energy_per_inference_above_idle_j: float | None = None
    sample_rate_hz: float | None = None
    sample_count: int | None = None
    coverage: float | None = None  # share of the windows the readings span
    skipped_readings: int | None = None
    interval_ms: float | None = None
    note: str | None = None
    errors: list[str] = field(default_factory=list)
    # Raw [t, text] readings as the sampler took them, kept for re-analysis.
    readings: list[list[Any]] = field(default_factory=list)
    idle: list[float] | None = None  # [t0, t1] of the idle baseline
    clock: str | None = None  # whose clock the readings' t is on, when not the agent's
    telemetry: dict[str, Any] | None = None  # GPU/EMC load, temperatures, ...
    estimated: bool = False


@dataclass(frozen=True)
class Accuracy:
    """Top-1 accuracy on the suite's split, computed with the very file that was timed."""

    top1: float | None = None
    count: int | None = None
    correct: int | None = None
    outputs_sha256: str | None = None
    note: str | None = None  # why it was not measured, when it was not


@dataclass(frozen=True)
class ToolStatistics:
    """Latency figures a vendor tool printed itself (``benchmark_model``,
    ``trtexec``, ``onnxruntime_perf_test``), in seconds. They are the tool's
    statistics, not edgebench's: its mean is not a median, its std has the tool's
    ddof, and its percentiles its own method."""

    tool: str
    mean_s: float | None = None
    median_s: float | None = None
    min_s: float | None = None
    max_s: float | None = None
    std_s: float | None = None
    std_ddof: int | None = None
    percentiles_s: dict[str, float] = field(default_factory=dict)  # "90" -> seconds
    count: int | None = None
    throughput_per_s: float | None = None
    first_s: float | None = None  # the timed phase's first run, where printed
    note: str | None = None


@dataclass(frozen=True)
class Figure:
    """A runner-specific named figure in SI units (e.g. trtexec's GPU compute median)."""

    name: str
    value: float | None
    unit: str


@dataclass(frozen=True)
class LayerRow:
    """One operator of a per-layer profile (op profiling, firmware cycle counters)."""

    name: str
    op: str | None = None
    time_s: float | None = None  # mean time per inference
    share: float | None = None  # of the whole inference, 0..1
    count: int | None = None
    instructions: int | None = None  # emulated MCUs: executed instructions


@dataclass(frozen=True)
class DeviceHealth:
    """What the device said about itself right after a job (throttling, heat): a
    throttled board measures its firmware, not the model."""

    flags: list[str] = field(default_factory=list)
    ok: bool | None = None
    temp_c: float | None = None
    error: str | None = None


@dataclass(frozen=True)
class Provenance:
    """Everything needed to tell later what exactly produced a job's numbers."""

    runner: str
    runner_version: str | None = None
    model_sha256: str | None = None
    runtime: str | None = None
    runtime_version: str | None = None
    device_fingerprint: str | None = None
    edgebench_version: str | None = None
    commit: str | None = None
    controller: str | None = None
    recipe: list[str] | None = None
    percentiles: str | None = None  # the method edgebench's own percentiles use
    std_ddof: int | None = None
    imported_from: str | None = None  # a vendor log brought in by `edgebench import`
    extra: dict[str, Any] = field(default_factory=dict)  # runner-specific (trtexec engine)


@dataclass(frozen=True)
class JobMeasurement:
    """What one job measured. Produced by a runner (``Runner.measure``) or by
    ``edgebench import``; stored as is (raw windows in the samples table)."""

    runner: str
    provenance: Provenance
    # Raw latencies in seconds, one list per measured window (repetition). Empty when
    # only a tool's own summary is known (``tool_stats``).
    windows: list[list[float]] = field(default_factory=list)
    # Where each window lay on the clock the power readings use: [t0, t1] per window.
    window_spans: list[list[float]] | None = None
    init_s: float | None = None
    first_inference_s: float | None = None
    warmup_count: int | None = None
    warmup_time_s: float | None = None
    timer_floor_s: float | None = None
    # What the timed region includes, e.g. "invoke" or "set inputs + invoke + get outputs".
    timed_region: str | None = None
    # Which fresh runner process measured each window (suite ``processes:``); None:
    # all windows in one process.
    window_processes: list[int] | None = None
    # What the with-I/O figure (metric latency_io_p50) times, where it was measured.
    io_region: str | None = None
    memory: Memory = field(default_factory=Memory)
    power: Power | None = None
    accuracy: Accuracy | None = None
    tool_stats: ToolStatistics | None = None
    layers: list[LayerRow] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    health: DeviceHealth | None = None
    # Figure names that are estimated (no sensor) and whether the device was emulated
    # (figures are instruction counts at a board clock, not a board's own timing).
    estimated: list[str] = field(default_factory=list)
    emulated: bool = False
    executed_instructions: int | None = None
    note: str | None = None
    # Why the variant cannot run on this device at all (does not fit RAM/flash, an
    # unsupported operator): a result, shown as a "not deployable" row, not a failure.
    not_deployable: str | None = None
    # Runner-specific raw replies kept for re-analysis (agent load reply, trtexec
    # engine and build log tail); reports never read them.
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The stored form: every field but the raw windows, plus the format version."""
        out = to_plain(self)
        del out["windows"]
        return {"format_version": FORMAT_VERSION, **out}

    @classmethod
    def from_json(
        cls, doc: dict[str, Any], windows: list[list[float]] | None = None
    ) -> JobMeasurement:
        version = doc.get("format_version")
        if version != FORMAT_VERSION:
            raise ValueError(
                f"job record has format version {version!r}; this edgebench reads "
                f"{FORMAT_VERSION} (the store migrates older ones when it opens)"
            )
        body = {k: v for k, v in doc.items() if k != "format_version"}
        body["windows"] = windows or []
        return _from_plain(cls, body)


# --------------------------------------------------------------------------- reports
@dataclass(frozen=True)
class LatencyStats:
    """Latency figures of a job, in seconds (``n`` is a count). ``source`` says whose
    statistics they are: ``edgebench`` (computed from every raw sample: nearest-rank
    percentiles, std with ddof 1, headline = median across repetitions) or a vendor
    tool's name (its own figures as printed; its mean is not a median)."""

    p50: float | None = None
    p90: float | None = None
    p95: float | None = None
    p99: float | None = None
    mean: float | None = None
    min: float | None = None
    max: float | None = None
    std: float | None = None
    cv: float | None = None
    n: int | None = None
    throughput: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    source: str = "edgebench"


@dataclass(frozen=True)
class PublishedFigures:
    """Figures a variant is compared with, as a publication gave them (a suite's
    ``reference:`` on the variant). Sizes in bytes, latency in seconds, accuracy and
    battery impact as fractions (battery impact: energy per inference as a share of the
    publication's original, so 1.0 there). None: the publication does not give it."""

    source: str
    size_bytes: float | None = None
    accuracy: float | None = None
    latency_s: float | None = None
    battery_impact: float | None = None


@dataclass(frozen=True)
class RunInfo:
    id: str
    suite: str
    status: str
    created_at: str = "-"
    edgebench_version: str | None = None
    commit: str | None = None
    repetitions: int | None = None
    baseline_variant: str | None = None
    # Set for runs made by `edgebench import`: figures are that tool's own.
    imported_tool: str | None = None


@dataclass(frozen=True)
class DeviceInfo:
    name: str
    transport: str | None = None
    address: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class JobResult:
    """One job of a run as reports render it."""

    job_id: int
    device: str
    model: str
    variant: str
    runtime: str
    setting: str  # the setting's label, e.g. "onnxruntime t=1"
    status: str  # pending | done | failed
    threads: int | None = None
    format: str | None = None
    error: str | None = None
    # What the variant is (recipe step names, their params, human labels).
    recipe: list[str] | None = None
    recipe_params: list[dict[str, Any]] | None = None
    techniques: list[str] | None = None
    description: str | None = None
    # Size and compute.
    file_size_bytes: int | None = None
    zstd_size_bytes: int | None = None
    params: int | None = None
    nonzero_params: int | None = None
    macs: int | None = None
    # Accuracy; retention = accuracy / the baseline variant's on the same device.
    accuracy: float | None = None
    accuracy_n: int | None = None
    accuracy_retention: float | None = None
    accuracy_meaningful: bool = True
    baseline: bool = False
    note: str | None = None  # the runner's note (why accuracy was not measured, ...)
    # Speed and memory.
    latency_s: LatencyStats | None = None
    window_p50_s: list[float] = field(default_factory=list)  # each repetition's own p50
    init_s: float | None = None
    first_inference_s: float | None = None
    timer_floor_s: float | None = None
    peak_rss_bytes: float | None = None
    rss_after_load_bytes: float | None = None
    samples_s: list[float] = field(default_factory=list)  # raw latencies, for plots
    # Energy / power.
    energy_per_inference_j: float | None = None
    mean_power_w: float | None = None
    idle_power_w: float | None = None
    power_rail: str | None = None
    power_sample_rate_hz: float | None = None
    # MCUs: static RAM / flash and executed instructions (emulated).
    static_ram_bytes: float | None = None
    flash_bytes: float | None = None
    executed_instructions: int | None = None
    arena_bytes: float | None = None
    ram_limit_bytes: float | None = None  # the board's limits the fit check used
    flash_limit_bytes: float | None = None
    emulated: bool = False
    not_deployable: str | None = None  # why it cannot run there (fit, operators)
    timed_region: str | None = None  # what latency_s times
    # The same rule around the whole call (inputs in, outputs out), where it differs.
    latency_io_p50_s: float | None = None
    io_region: str | None = None
    processes: int | None = None  # fresh runner processes the windows came from
    runtime_version: str | None = None
    # The device's own warnings for the job: throttling flags, "charging", a CPU clock
    # that fell during the windows.
    health_flags: list[str] = field(default_factory=list)
    # Field names of this record whose figure is estimated ("latency_s", ...).
    estimated: list[str] = field(default_factory=list)
    # How many raw samples each measured window gave, in order (`samples_s` is the
    # windows one after another): where the run-sequence plot draws window boundaries.
    window_sample_counts: list[int] = field(default_factory=list)
    warmup_count: int | None = None  # warm-up runs before the first window
    warmup_time_s: float | None = None
    # The runner's per-layer profile (op profiling, firmware cycle counters); empty
    # when the runner gave none.
    layers: list[LayerRow] = field(default_factory=list)
    # A failed job: the structured error's kind ("load_failed", ...), the attempts made,
    # and the lines the run's log holds for it (each attempt's error, a traceback).
    error_kind: str | None = None
    attempts: int | None = None
    log_excerpt: list[str] = field(default_factory=list)
    # The published figures the suite compares this variant with.
    reference: PublishedFigures | None = None

    def replace(self, **changes: Any) -> JobResult:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class RunReport:
    run: RunInfo
    devices: list[DeviceInfo] = field(default_factory=list)
    results: list[JobResult] = field(default_factory=list)
    # The verdicts of `edgebench compare` against a baseline run (report --baseline,
    # the site): the plain JSON that `compare --format json` prints.
    comparison: dict[str, Any] | None = None

    def replace(self, **changes: Any) -> RunReport:
        return dataclasses.replace(self, **changes)


# --------------------------------------------------------------------------- JSON
def to_plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    return obj


def _from_plain(cls: type, data: Any) -> Any:
    """A dataclass from its plain JSON form; unknown keys are refused (a record that
    does not match its format version is damaged, not to be half-read)."""
    if not isinstance(data, dict):
        raise ValueError(f"{cls.__name__}: expected an object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown field(s) {', '.join(sorted(unknown))}")
    return cls(**{k: _coerce(hints[k], v) for k, v in data.items()})


def _coerce(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(hint):
            if arg is type(None):
                continue
            return _coerce(arg, value)
    if dataclasses.is_dataclass(hint):
        return _from_plain(hint, value)
    if origin is list:
        (arg,) = typing.get_args(hint) or (Any,)
        return [_coerce(arg, v) for v in value]
    return value
