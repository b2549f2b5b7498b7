"""The Python agent as a runner: onnxruntime, LiteRT and TorchScript on any device
that runs Python 3.8+ (the controller itself, Raspberry Pi and Jetson over SSH).

One fresh agent process per job (so peak RSS and RSS after load describe that
variant alone, not what earlier jobs left in the process): push the model, load,
bench (sampling the device's power sensor when it has one), evaluate on the
suite's split, then read the board's throttling flags.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from devices.errors import AgentError, DeviceError
from devices.power import rpi
from devices.power.sources import choose_source, sampler_request
from devices.transport import PosixHost, Transport
from runners.agent_client import AgentClient
from runners.base import EvalSet, Job, ModelFile, Runner, fingerprint, register_runner
from runners.cooldown import wait_for_cooldown
from runners.power import power_record
from runners.records import (
    Accuracy,
    DeviceHealth,
    Figure,
    JobMeasurement,
    Memory,
    Provenance,
)


def split_repetitions(repetitions: int, processes: int) -> list[int]:
    """Windows per fresh process, earlier processes taking the remainder
    (5 repetitions over 2 processes: 3 + 2)."""
    base, extra = divmod(repetitions, processes)
    return [base + (1 if i < extra else 0) for i in range(processes)]


def require_posix(transport: Transport) -> PosixHost:
    """The transport as a shell host, or a clear error for one without a shell."""
    if not isinstance(transport, PosixHost):
        raise DeviceError(
            f"the Python agent needs a device that runs commands; transport "
            f"{transport.name!r} does not",
            device=transport.device.name,
        )
    return transport


def load_fields(model: ModelFile, setting: dict[str, Any]) -> dict[str, Any]:
    """The agent's ``load`` request fields for a setting (runtimes/PROTOCOL.md)."""
    extra: dict[str, Any] = {}
    if setting.get("xnnpack") is not None:
        extra["xnnpack"] = setting["xnnpack"]
    if setting.get("device") is not None:
        extra["device"] = setting["device"]
    if setting.get("cpus") is not None:
        extra["cpus"] = parse_cpu_list(setting["cpus"])
    if model.format == "torchscript":
        # TorchScript archives do not declare their inputs; the export step recorded them.
        extra |= {
            "input_shapes": model.meta.get("input_shapes"),
            "input_dtypes": model.meta.get("input_dtypes"),
        }
    return {
        "runtime": setting["runtime"],
        "threads": setting.get("threads"),
        "providers": setting.get("providers"),
        **extra,
    }


def parse_cpu_list(text: str) -> list[int]:
    """``"0"``, ``"0,2"``, ``"4-7"`` (taskset -c's list form) -> CPU numbers."""
    cpus: set[int] = set()
    for part in str(text).split(","):
        first, dash, last = part.strip().partition("-")
        if not first.isdigit() or (dash and not last.isdigit()):
            raise ValueError(f"cpus {text!r}: not a CPU list like 0,2 or 4-7")
        lo, hi = int(first), int(last or first)
        if hi < lo:
            raise ValueError(f"cpus {text!r}: range {part.strip()} runs backwards")
        cpus.update(range(lo, hi + 1))
    return sorted(cpus)


def accuracy_of(agent: AgentClient, data: EvalSet) -> Accuracy:
    """Top-1 accuracy of the model the agent has loaded."""
    reply = agent.evaluate(np.ascontiguousarray(data.inputs), data.labels)
    return Accuracy(
        top1=reply.get("top1"),
        count=reply.get("count"),
        correct=reply.get("correct"),
        outputs_sha256=reply.get("outputs_sha256"),
    )


def pi_health(transport: PosixHost, facts: dict[str, Any]) -> DeviceHealth | None:
    """Raspberry Pi firmware flags and SoC temperature right after the bench."""
    vcgencmd = ((facts or {}).get("tools") or {}).get("vcgencmd")
    if not vcgencmd:
        return None
    try:
        throttled = rpi.parse_get_throttled(transport.run([vcgencmd, "get_throttled"], 30).stdout)
        temp = rpi.parse_measure_temp(transport.run([vcgencmd, "measure_temp"], 30).stdout)
    except (DeviceError, ValueError) as e:
        return DeviceHealth(error=str(e))
    return DeviceHealth(flags=list(throttled.active), ok=throttled.ok, temp_c=temp)


# The thermal zones of a Linux device, one "type millidegrees" line each. A constant
# script: nothing in it comes from a user.
_THERMAL_SCRIPT = (
    "for z in /sys/class/thermal/thermal_zone*; do "
    '[ -r "$z/temp" ] && echo "$(cat "$z/type" 2>/dev/null || echo "${z##*/}") $(cat "$z/temp")"; '
    "done; true"
)


def linux_temperatures(host: PosixHost) -> dict[str, float]:
    """Thermal zone -> degrees C (sysfs millidegrees); empty where the device has none."""
    return parse_thermal_lines(host.run(["sh", "-c", _THERMAL_SCRIPT], 30).stdout)


def parse_thermal_lines(out: str) -> dict[str, float]:
    """``type millidegrees`` lines as zone -> degrees C (a zone type repeated, as on
    boards with several ``cpu-thermal`` zones, keeps its hottest)."""
    temps: dict[str, float] = {}
    for line in out.splitlines():
        name, _, value = line.rpartition(" ")
        try:
            degrees = int(value) / 1000.0
        except ValueError:
            continue  # a zone whose sensor answered with an error
        key = name or "zone"
        temps[key] = max(degrees, temps.get(key, degrees))
    return temps


def stats_p50(samples: list[float]) -> float:
    """Nearest-rank median (the convention of harness/stats.py, which runners cannot
    import)."""
    ordered = sorted(samples)
    return ordered[max(1, -(-len(ordered) // 2)) - 1]


# A CPU whose clock fell by more than this between the start and the end of the
# windows was throttled (thermal or power capping) while it was being measured.
CLOCK_DROP_FLAG = 0.10


def clock_drops(benches: list[dict[str, Any]]) -> list[str]:
    """"cpu N clock fell X%" for each CPU whose cpufreq fell during a bench."""
    flags = []
    for bench in benches:
        freqs = bench.get("cpu_freq_khz") or {}
        before, after = freqs.get("before") or {}, freqs.get("after") or {}
        for cpu, khz in before.items():
            now = after.get(cpu)
            if khz and now is not None and now < khz * (1 - CLOCK_DROP_FLAG):
                flags.append(f"cpu {cpu} clock fell {1 - now / khz:.0%} during the windows")
    return list(dict.fromkeys(flags))


def _with_clock_drops(
    health: DeviceHealth | None, benches: list[dict[str, Any]]
) -> DeviceHealth | None:
    drops = clock_drops(benches)
    if not drops:
        return health
    if health is None:
        return DeviceHealth(flags=drops, ok=False)
    return DeviceHealth(
        flags=[*health.flags, *drops], ok=False, temp_c=health.temp_c, error=health.error
    )


def _max_of(values: Any) -> float | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None


@register_runner("agent")
class AgentRunner(Runner):
    def __init__(self, transport: Transport) -> None:
        super().__init__(transport)
        self.host = require_posix(transport)
        self._agent: AgentClient | None = None

    def _start(self) -> AgentClient:
        agent = AgentClient.start(self.host)
        self._agent = agent
        self.facts = agent.facts
        return agent

    def _stop(self) -> None:
        if self._agent is not None:
            self._agent.close()
            self._agent = None

    def probe(self) -> dict[str, Any]:
        try:
            self._start()
        finally:
            self._stop()
        return self.facts

    def measure(self, job: Job) -> JobMeasurement:
        m = job.measure
        cooldown = None
        if self.host.options.cooldown_below_c is not None:
            cooldown = wait_for_cooldown(
                lambda: linux_temperatures(self.host),
                self.host.options.cooldown_below_c,
                self.host.options.cooldown_limit_s,
            )
        pushed_before = self.host.pushed_bytes
        # Not pushed (checked) here: the agent verifies the model's hash before loading
        # it anyway, so a warm device costs no remote command for it; a missing or
        # damaged copy is pushed when the load says so (_load).
        remote = self.host.artifact_path(job.model.path, job.model.sha256, job.model.path.name)
        # One fresh agent process per share of the repetitions: a process that runs
        # slow for its whole life (placement, memory layout) is then one of several
        # in the job's windows and its CI, not the whole job.
        benches: list[dict[str, Any]] = []
        window_processes: list[int] = []
        shares = split_repetitions(m.repetitions, m.processes)
        for process, repetitions in enumerate(shares):
            last = process == len(shares) - 1
            try:
                agent = self._start()
                load = self._load(agent, job.model, job.setting, remote)
                if process == 0:
                    first_load, sensor = load, choose_source(self.host.device.options, agent.facts)
                bench = self._bench(agent, job, sensor, repetitions, io_window=last)
                benches.append(bench)
                window_processes += [process] * len(bench["windows"])
                if last:
                    accuracy = accuracy_of(agent, job.evaluation()) if job.evaluation else None
                    hello = agent.hello
                    facts = agent.facts
            finally:
                self._stop()
        record = self._record(
            job, first_load, benches, window_processes, sensor, accuracy, hello, facts, cooldown
        )
        # The agent file and the model: what this job copied to the device (0 when both
        # were there already, content-addressed).
        record.details["pushed_bytes"] = self.host.pushed_bytes - pushed_before
        return record

    def _load(
        self, agent: AgentClient, model: ModelFile, setting: dict[str, Any], remote: str
    ) -> dict[str, Any]:
        """Load the model from where it is pushed; if the device's copy is not there or
        damaged, push it (checked and copied) and load once more."""
        try:
            return agent.load(remote, model.sha256, **load_fields(model, setting))
        except AgentError as e:
            if e.kind not in ("hash_mismatch", "missing_file"):
                raise
        self.host.forget(remote)
        remote = self.host.push(model.path, model.sha256, model.path.name)
        return agent.load(remote, model.sha256, **load_fields(model, setting))

    def _bench(
        self, agent: AgentClient, job: Job, sensor: Any, repetitions: int, io_window: bool
    ) -> dict[str, Any]:
        m = job.measure
        options = self.host.device.options
        return agent.bench(
            power=sampler_request(sensor, options) if sensor else None,
            timeout=m.timeout_s,
            warmup_runs=m.warmup_runs,
            warmup_min_s=m.warmup_min_s,
            min_runs=m.min_runs,
            min_duration_s=m.min_duration_s,
            repetitions=repetitions,
            max_runs=m.max_runs,
            target_rel_ci=m.target_rel_ci,
            max_window_s=m.max_window_s,
            io_window=m.io_window and io_window,
        )

    def _record(
        self,
        job: Job,
        load: dict[str, Any],
        benches: list[dict[str, Any]],
        window_processes: list[int],
        sensor: Any,
        accuracy: Accuracy | None,
        hello: dict[str, Any],
        facts: dict[str, Any],
        cooldown: Any,
    ) -> JobMeasurement:
        bench = benches[0]
        replies = [w for b in benches for w in b["windows"]]
        windows = [list(w["samples_s"]) for w in replies]
        power = None
        if sensor:
            # Power comes from the first process's windows: one idle baseline and one
            # sensor timeline (later processes' clocks are their own).
            spans = [(w["t0_s"], w["t1_s"], len(w["samples_s"])) for w in bench["windows"]]
            power = power_record(sensor, bench.get("power"), spans)
        with_io = benches[-1].get("with_io")
        figures = []
        if with_io and with_io["samples_s"]:
            io_samples = with_io["samples_s"]
            figures = [
                Figure("latency_io_p50", stats_p50(io_samples), "s"),
                Figure("latency_io_n", len(io_samples), "count"),
            ]
        multi = len(benches) > 1
        return JobMeasurement(
            runner=self.name,
            provenance=Provenance(
                runner=self.name,
                runner_version=hello.get("agent_version"),
                model_sha256=job.model.sha256,
                runtime=load.get("runtime"),
                runtime_version=load.get("runtime_version"),
                device_fingerprint=fingerprint(facts),
                **job.provenance,
            ),
            windows=windows,
            window_spans=None if multi else [[w["t0_s"], w["t1_s"]] for w in replies],
            window_processes=window_processes if multi else None,
            init_s=load.get("init_s"),
            first_inference_s=bench.get("first_inference_s"),
            warmup_count=bench["warmup"]["count"],
            warmup_time_s=bench["warmup"]["time_s"],
            timer_floor_s=bench.get("timer_floor_s"),
            timed_region=bench.get("timed_region") or "set inputs + invoke + read outputs",
            io_region=benches[-1].get("io_region"),
            memory=Memory(
                # The worst of the processes: each is one load of the same variant.
                peak_rss_bytes=_max_of(b.get("peak_rss_bytes") for b in benches),
                rss_after_load_bytes=load.get("rss_after_load_bytes"),
                peak_reset=bench.get("vmhwm_reset"),
            ),
            power=power,
            accuracy=accuracy,
            figures=figures,
            health=_with_clock_drops(pi_health(self.host, facts), benches),
            details={
                **({"cooldown": cooldown.to_dict()} if cooldown is not None else {}),
                "load": load,
                "bench": [
                    {k: v for k, v in b.items() if k not in ("windows", "power", "with_io")}
                    for b in benches
                ],
                "window_durations_s": [w.get("duration_s") for w in replies],
            },
        )

    def evaluate(self, job: Job) -> Accuracy | None:
        if job.evaluation is None:
            return None
        try:
            agent = self._start()
            remote = self.host.push(job.model.path, job.model.sha256, job.model.path.name)
            agent.load(remote, job.model.sha256, **load_fields(job.model, job.setting))
            return accuracy_of(agent, job.evaluation())
        finally:
            self._stop()

    def infer(self, model: ModelFile, setting: dict[str, Any], inputs: np.ndarray) -> np.ndarray:
        try:
            agent = self._start()
            remote = self.host.push(model.path, model.sha256, model.path.name)
            agent.load(remote, model.sha256, **load_fields(model, setting))
            reply = agent.evaluate(np.ascontiguousarray(inputs), None, return_outputs=True)
        finally:
            self._stop()
        return reply["outputs"]

    def kill(self) -> None:
        agent = self._agent
        if agent is not None:
            agent.kill()  # a request in flight fails at once

    def close(self) -> None:
        self._stop()

