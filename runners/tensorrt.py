"""TensorRT on the device through NVIDIA's ``trtexec``.

The ONNX variant is pushed, an engine is built on the device once (engines are
valid only for one TensorRT version and GPU, so the cache key is model hash +
device fingerprint + TensorRT version + precision), then each measured window
is one ``trtexec --loadEngine`` run whose ``--exportTimes`` JSON gives every
per-inference latency. Commands are argv lists (runners/trtexec.py); the
transport quotes them.
"""

from __future__ import annotations

import posixpath
import threading
import time
from dataclasses import dataclass
from typing import Any

from devices.errors import AgentError, CommandError, DeviceError
from devices.power.sources import choose_source, sampler_request
from devices.transport import PosixHost, Stream, Transport
from runners.agent_client import AgentClient
from runners.agent_runner import AgentRunner, accuracy_of, require_posix
from runners.base import Job, Runner, fingerprint, register_runner
from runners.power import power_record
from runners.records import Accuracy, Figure, JobMeasurement, Power, Provenance
from runners.trtexec import (
    JETSON_TRTEXEC,
    TrtexecResult,
    build_engine_argv,
    engine_cache_key,
    parse_export_times,
    parse_export_trace,
    parse_trtexec_log,
    time_engine_argv,
    trt_version_from_text,
)

BUILD_TIMEOUT_S = 3600.0  # a large model's int8 build on a Nano takes many minutes


@dataclass
class TrtexecWindows:
    windows: list[list[float]]  # seconds, one list per trtexec run
    summaries: list[TrtexecResult]
    engine: str
    engine_built: bool
    trt_version: str
    build_log_tail: str | None
    # Where each run's inferences lay on the controller's clock, and the sensor
    # readings taken meanwhile (same shape as the agent's bench "power" reply).
    spans: list[tuple[float, float]] | None = None
    power: dict[str, Any] | None = None


def inference_span_s(records: list[dict[str, float]]) -> float:
    """Time from the first inference's start to the last one's end in an
    --exportTimes trace (TRT 8+: startEnqMs..endD2hMs; TRT 7: startInMs..endOutMs)."""
    starts = [v for r in records for k, v in r.items() if k.startswith("start")]
    ends = [v for r in records for k, v in r.items() if k.startswith("end") and k != "endToEndMs"]
    return (max(ends) - min(starts)) / 1000.0 if starts and ends else 0.0


class HostStampedStream:
    """A sensor tool (tegrastats, nvidia-smi) started on the device for the length of
    the trtexec runs, each line stamped on arrival at the controller: trtexec runs
    outside the agent, so the agent's own sampler cannot cover it."""

    def __init__(self, transport: PosixHost, argv: list[str]) -> None:
        self.readings: list[list[Any]] = []
        self.errors: list[str] = []
        self._proc: Stream = transport.open_stream(argv)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        while not self._stop.is_set():
            try:
                line = self._proc.read_line(timeout=1.0)
            except DeviceError:
                continue  # no line this second; the tool may print slower than that
            if line is None:
                self.errors.append(f"sensor tool exited: {self._proc.stderr_tail()[-200:]}")
                return
            self.readings.append([time.monotonic(), line])

    def wait_for_reading(self, after: float, timeout: float) -> bool:
        """Wait until a line stamped at or after ``after`` arrived (as the agent's
        sampler does), so readings bracket the idle period and the windows."""
        deadline = time.monotonic() + timeout
        while not (self.readings and self.readings[-1][0] >= after):
            if time.monotonic() >= deadline or self.errors:
                return False
            time.sleep(0.005)
        return True

    def stop(self) -> None:
        self._stop.set()
        self._proc.terminate()
        self._thread.join(timeout=5)


class TrtexecDriver:
    """Builds and times engines with trtexec on one board."""

    def __init__(self, transport: PosixHost, facts: dict[str, Any]) -> None:
        self.transport = transport
        options = transport.device.options
        tools = (facts or {}).get("tools") or {}
        self.trtexec = str(options.get("trtexec") or tools.get("trtexec") or JETSON_TRTEXEC)
        self._version: str | None = None

    def _run(self, argv: list[str], timeout: float) -> str:
        result = self.transport.run(argv, timeout=timeout)
        if result.returncode != 0:
            raise CommandError(
                argv,
                result.returncode,
                result.stdout[-2000:] + result.stderr,
                device=self.transport.device.name,
            )
        return result.stdout

    def version(self) -> str:
        if self._version is None:
            try:
                out = self.transport.run([self.trtexec, "--help"], timeout=60)
            except DeviceError as e:
                raise DeviceError(
                    f"cannot run {self.trtexec} ({e}); set the device option trtexec=PATH",
                    device=self.transport.device.name,
                ) from e
            version = trt_version_from_text(out.stdout + out.stderr)
            if version is None:
                raise DeviceError(
                    f"{self.trtexec} --help did not say its TensorRT version",
                    device=self.transport.device.name,
                )
            self._version = version
        return self._version

    def measure(
        self,
        onnx_remote: str,
        model_sha256: str,
        fingerprint: str,
        *,
        precision: str,
        repetitions: int,
        min_runs: int,
        min_duration_s: float,
        warmup_min_s: float,
        job_tag: str,
        power: dict[str, Any] | None = None,
    ) -> TrtexecWindows:
        """Build (once) and time the engine. ``power``: the agent-style sampler request
        of the device's sensor; only streaming tools can run alongside trtexec."""
        version = self.version()
        major = int(version.split(".")[0])
        workdir = self.transport.workdir
        key = engine_cache_key(model_sha256, fingerprint, version, precision)
        engine = posixpath.join(workdir, "engines", f"{key}.engine")
        built = False
        build_tail = None
        if self.transport.remote_sha256(engine) is None:
            self._run(["mkdir", "-p", posixpath.dirname(engine)], 60)
            partial = engine + ".part"
            out = self._run(
                build_engine_argv(
                    onnx_remote, partial, precision=precision, trt_major=major, trtexec=self.trtexec
                ),
                BUILD_TIMEOUT_S,
            )
            self._run(["mv", "-f", partial, engine], 60)  # never leave half an engine
            built, build_tail = True, out[-4000:]
        windows, summaries, spans = [], [], []
        times_dir = posixpath.join(workdir, "runs")
        self._run(["mkdir", "-p", times_dir], 60)
        stream = idle = None
        settle = 0.0  # how long to wait for a sensor line (set with the stream)
        if power is not None and power.get("mode") == "stream":
            stream = HostStampedStream(self.transport, power["argv"])
            settle = 3 * float(power.get("interval_ms") or 100) / 1000.0 + 1.0
            stream.wait_for_reading(float("-inf"), settle)  # the tool is talking
            idle_t0 = time.monotonic()
            time.sleep(float(power.get("idle_s", 1.0)))  # engine on disk, GPU idle
            idle = [idle_t0, time.monotonic()]
        try:
            for rep in range(repetitions):
                times = posixpath.join(times_dir, f"{job_tag}-{rep}.json")
                log = self._run(
                    time_engine_argv(
                        engine,
                        iterations=min_runs,
                        warmup_ms=warmup_min_s * 1000.0,
                        duration_s=min_duration_s,
                        avg_runs=1,
                        export_times=times,
                        trtexec=self.trtexec,
                    ),
                    timeout=max(120.0, 20 * min_duration_s + 60),
                )
                ended = time.monotonic()
                summaries.append(parse_trtexec_log(log))
                trace = self._run(["cat", times], 60)
                windows.append(parse_export_times(trace))
                # The inferences end just before trtexec exits (it then only prints its
                # summary), so the window is placed to end when the process returned.
                spans.append((ended - inference_span_s(parse_export_trace(trace)), ended))
                self._run(["rm", "-f", times], 60)
        finally:
            if stream is not None:
                if spans:  # one reading after the last window closes it
                    stream.wait_for_reading(spans[-1][1], settle)
                stream.stop()
        power_reply = None
        if stream is not None:
            power_reply = {
                "mode": "stream",
                "interval_ms": power.get("interval_ms") if power else None,
                "idle": idle,
                "readings": stream.readings,
                "errors": stream.errors,
                "clock": "controller monotonic; windows aligned to the end of each trtexec run",
            }
        return TrtexecWindows(
            windows, summaries, engine, built, version, build_tail, spans, power_reply
        )


@register_runner("trtexec")
class TensorRTRunner(Runner):
    """Runtime ``tensorrt``: the engine is built and timed by trtexec on the board; the
    agent supplies the device's facts and, where the board has TensorRT's Python API
    and torch with CUDA, the engine's accuracy (trtexec cannot compute it)."""

    def __init__(self, transport: Transport) -> None:
        super().__init__(transport)
        self.host = require_posix(transport)
        self._agent: AgentClient | None = None
        self._driver: TrtexecDriver | None = None

    def probe(self) -> dict[str, Any]:
        self.facts = AgentRunner(self.host).probe()  # the agent asks the board
        return self.facts

    def measure(self, job: Job) -> JobMeasurement:
        try:
            self._agent = agent = AgentClient.start(self.host)
            self.facts = agent.facts
            return self._measure(agent, job)
        finally:
            if self._agent is not None:
                self._agent.close()
                self._agent = None

    def _measure(self, agent: AgentClient, job: Job) -> JobMeasurement:
        m = job.measure
        options = self.host.device.options
        precision = str(job.setting.get("precision") or "fp32")
        if self._driver is None:
            self._driver = TrtexecDriver(self.host, agent.facts)
        remote = self.host.push(job.model.path, job.model.sha256, job.model.path.name)
        sensor = choose_source(options, agent.facts)
        device_fingerprint = fingerprint(agent.facts)
        measured = self._driver.measure(
            remote,
            job.model.sha256,
            device_fingerprint,
            precision=precision,
            repetitions=m.repetitions,
            min_runs=m.min_runs,
            min_duration_s=m.min_duration_s,
            warmup_min_s=m.warmup_min_s,
            job_tag=f"job{job.id}",
            power=sampler_request(sensor, options) if sensor else None,
        )
        power = None
        if sensor and measured.power and measured.spans:
            spans = [
                (t0, t1, len(w))
                for (t0, t1), w in zip(measured.spans, measured.windows, strict=True)
            ]
            power = power_record(sensor, measured.power, spans, clock=measured.power["clock"])
        elif sensor:
            power = Power(
                source=sensor["kind"],
                note="only streaming sensors (tegrastats, nvidia-smi) are sampled during "
                "trtexec runs",
            )
        accuracy, note = self._engine_accuracy(agent, job, measured.engine, precision)
        gpu = sorted(s.gpu_compute_time.median_s for s in measured.summaries if s.gpu_compute_time)
        figures = [Figure("gpu_compute_median", gpu[(len(gpu) - 1) // 2], "s")] if gpu else []
        return JobMeasurement(
            runner=self.name,
            provenance=Provenance(
                runner=self.name,
                runner_version=agent.hello.get("agent_version"),
                model_sha256=job.model.sha256,
                runtime="tensorrt",
                runtime_version=measured.trt_version,
                device_fingerprint=device_fingerprint,
                extra={"engine": measured.engine},
                **job.provenance,
            ),
            windows=measured.windows,
            window_spans=[list(s) for s in measured.spans] if measured.spans else None,
            timed_region="trtexec per-inference latency (enqueue to output copy)",
            power=power,
            accuracy=accuracy,
            figures=figures,
            note=note,
            details={
                "trtexec": {
                    "engine": measured.engine,
                    "engine_built": measured.engine_built,
                    "trt_version": measured.trt_version,
                    "build_log_tail": measured.build_log_tail,
                    "throughput_qps": [s.throughput_qps for s in measured.summaries],
                }
            },
        )

    def _engine_accuracy(
        self, agent: AgentClient, job: Job, engine: str, precision: str
    ) -> tuple[Accuracy | None, str | None]:
        """Accuracy of the engine itself through the TensorRT Python API in the agent.
        Timing stays trtexec's: the Python path adds copies and interpreter overhead."""
        if job.evaluation is None:
            return None, None
        if precision == "int8":
            return None, "int8 engine built without a calibration cache: accuracy not measured"
        sha = self.host.remote_sha256(engine)
        try:
            load = agent.load(engine, sha, "tensorrt", device="cuda")
        except AgentError as e:
            if e.kind in ("missing_runtime", "load_failed"):
                return None, f"accuracy not measured: {e}"
            raise
        if load.get("io_memory") != "torch_cuda":
            return None, "accuracy not measured: the TensorRT Python API is not backed by CUDA"
        return accuracy_of(agent, job.evaluation()), None

    def kill(self) -> None:
        if self._agent is not None:
            self._agent.kill()
