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

from devices.errors import DeviceError
from devices.power import rpi
from devices.power.sources import choose_source, sampler_request
from devices.transport import PosixHost, Transport
from runners.agent_client import AgentClient
from runners.base import EvalSet, Job, ModelFile, Runner, fingerprint, register_runner
from runners.cooldown import wait_for_cooldown
from runners.power import power_record
from runners.records import Accuracy, DeviceHealth, JobMeasurement, Memory, Provenance

# What the agent's timed region holds on each runtime (see its Model.run methods).
TIMED_REGION = "set inputs + invoke + read outputs"


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
        try:
            agent = self._start()
            return self._measure(agent, job)
        finally:
            self._stop()

    def _measure(self, agent: AgentClient, job: Job) -> JobMeasurement:
        m = job.measure
        options = self.host.device.options
        cooldown = None
        if self.host.options.cooldown_below_c is not None:
            cooldown = wait_for_cooldown(
                lambda: linux_temperatures(self.host),
                self.host.options.cooldown_below_c,
                self.host.options.cooldown_limit_s,
            )
        remote = self.host.push(job.model.path, job.model.sha256, job.model.path.name)
        load = agent.load(remote, job.model.sha256, **load_fields(job.model, job.setting))
        sensor = choose_source(options, agent.facts)
        bench = agent.bench(
            power=sampler_request(sensor, options) if sensor else None,
            timeout=m.timeout_s,
            warmup_runs=m.warmup_runs,
            warmup_min_s=m.warmup_min_s,
            min_runs=m.min_runs,
            min_duration_s=m.min_duration_s,
            repetitions=m.repetitions,
            max_runs=m.max_runs,
        )
        replies = bench["windows"]
        windows = [list(w["samples_s"]) for w in replies]
        accuracy = accuracy_of(agent, job.evaluation()) if job.evaluation else None
        power = None
        if sensor:
            spans = [(w["t0_s"], w["t1_s"], len(w["samples_s"])) for w in replies]
            power = power_record(sensor, bench.get("power"), spans)
        return JobMeasurement(
            runner=self.name,
            provenance=Provenance(
                runner=self.name,
                runner_version=agent.hello.get("agent_version"),
                model_sha256=job.model.sha256,
                runtime=load.get("runtime"),
                runtime_version=load.get("runtime_version"),
                device_fingerprint=fingerprint(agent.facts),
                **job.provenance,
            ),
            windows=windows,
            window_spans=[[w["t0_s"], w["t1_s"]] for w in replies],
            init_s=load.get("init_s"),
            first_inference_s=bench.get("first_inference_s"),
            warmup_count=bench["warmup"]["count"],
            warmup_time_s=bench["warmup"]["time_s"],
            timer_floor_s=bench.get("timer_floor_s"),
            timed_region=TIMED_REGION,
            memory=Memory(
                peak_rss_bytes=bench.get("peak_rss_bytes"),
                rss_after_load_bytes=load.get("rss_after_load_bytes"),
                peak_reset=bench.get("vmhwm_reset"),
            ),
            power=power,
            accuracy=accuracy,
            health=pi_health(self.host, agent.facts),
            details={
                **({"cooldown": cooldown.to_dict()} if cooldown is not None else {}),
                "load": load,
                "bench": {k: v for k, v in bench.items() if k not in ("windows", "power")},
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

