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
from dataclasses import dataclass
from typing import Any

from devices.errors import CommandError, DeviceError
from devices.transport import Transport
from runners.trtexec import (
    JETSON_TRTEXEC,
    TrtexecResult,
    build_engine_argv,
    engine_cache_key,
    parse_export_times,
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


class TrtexecRunner:
    def __init__(self, transport: Transport, facts: dict[str, Any]) -> None:
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
    ) -> TrtexecWindows:
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
        windows, summaries = [], []
        times_dir = posixpath.join(workdir, "runs")
        self._run(["mkdir", "-p", times_dir], 60)
        for rep in range(repetitions):
            times = posixpath.join(times_dir, f"{job_tag}-{rep}.json")
            argv = time_engine_argv(
                engine,
                iterations=min_runs,
                warmup_ms=warmup_min_s * 1000.0,
                duration_s=min_duration_s,
                avg_runs=1,
                export_times=times,
                trtexec=self.trtexec,
            )
            log = self._run(argv, timeout=max(120.0, 20 * min_duration_s + 60))
            summaries.append(parse_trtexec_log(log))
            windows.append(parse_export_times(self._run(["cat", times], 60)))
            self._run(["rm", "-f", times], 60)
        return TrtexecWindows(windows, summaries, engine, built, version, build_tail)
