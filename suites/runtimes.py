"""The runtime table: every runtime a suite can name, declared once.

A runtime says which model formats it takes, which settings it accepts (a
pydantic model: unknown keys and bad values are errors naming the suite's file,
line and key), and which registered runner serves it (``runners/base.py``). The
scheduler plans jobs and picks runners from this table only.

Adding a runtime: a settings class here decorated ``@runtime(...)``, naming
the runner that serves it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class RuntimeSettings(BaseModel):
    """Settings every runtime takes. A suite's ``threads: [1, 4]`` plans one job per
    thread count; everything else is one value per settings entry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: ClassVar[str]
    runtime: str
    threads: list[int] = Field(default_factory=lambda: [1])

    @field_validator("threads", mode="before")
    @classmethod
    def _threads_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, int) else value

    @field_validator("threads")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        if not value or any(t < 1 for t in value):
            raise ValueError("threads must be a list of positive integers")
        return value

    def job_settings(self) -> list[dict[str, Any]]:
        """One job setting per thread count, as stored with the job (its label and
        key are made from it, so its keys must not change between releases)."""
        return [{"runtime": self.name, "threads": t, **self.extra()} for t in self.threads]

    def extra(self) -> dict[str, Any]:
        """Runtime-specific keys of a job setting."""
        return {}


@dataclass(frozen=True)
class Runtime:
    name: str
    formats: tuple[str, ...]  # model file formats it loads
    runner: str  # the registered runner that serves it
    settings: type[RuntimeSettings]
    suffixes: tuple[str, ...] = ()  # model file suffixes `edgebench infer` maps to it


_TABLE: dict[str, Runtime] = {}


def runtime(
    name: str, *, formats: tuple[str, ...], runner: str, suffixes: tuple[str, ...] = ()
) -> Callable[[type[RuntimeSettings]], type[RuntimeSettings]]:
    """Class decorator: declare a runtime with these settings."""

    def decorate(cls: type[RuntimeSettings]) -> type[RuntimeSettings]:
        if name in _TABLE:
            raise ValueError(
                f"runtime {name!r} is already declared by {_TABLE[name].settings.__qualname__}"
            )
        cls.name = name
        _TABLE[name] = Runtime(name, formats, runner, cls, suffixes)
        return cls

    return decorate


def get_runtime(name: str) -> Runtime:
    try:
        return _TABLE[name]
    except KeyError:
        raise KeyError(f"unknown runtime {name!r} (known: {', '.join(_TABLE)})") from None


def runtimes() -> list[Runtime]:
    return list(_TABLE.values())


def runtime_for_file(suffix: str) -> Runtime | None:
    """The first declared runtime that loads files with this suffix."""
    return next((r for r in _TABLE.values() if suffix in r.suffixes), None)


# --------------------------------------------------------------------------- the table
class _AgentSettings(RuntimeSettings):
    """Runtimes the Python agent loads. ``cpus`` pins the agent and the runtime's
    threads to those CPUs (taskset -c's list form: ``"0"``, ``"0,2"``, ``"4-7"``), on
    the local device and over SSH alike; unset, the OS places them."""

    cpus: str | None = None

    @field_validator("cpus")
    @classmethod
    def _cpu_list(cls, value: str | None) -> str | None:
        import re

        if value is not None:
            if not re.fullmatch(r"\d+(-\d+)?(,\d+(-\d+)?)*", value):
                raise ValueError("cpus must be a CPU list like 0, 0,2 or 4-7")
            for part in value.split(","):
                lo, _, hi = part.partition("-")
                if hi and int(hi) < int(lo):
                    raise ValueError(f"cpus range {part} runs backwards")
        return value

    def job_settings(self) -> list[dict[str, Any]]:
        # cpus only where set: job settings of suites without it keep their old keys,
        # so their runs still pair in compare.
        pin = {"cpus": self.cpus} if self.cpus is not None else {}
        return [{**s, **pin} for s in super().job_settings()]


@runtime("onnxruntime", formats=("onnx",), runner="agent", suffixes=(".onnx",))
class OnnxRuntimeSettings(_AgentSettings):
    runtime: Literal["onnxruntime"]
    # Execution providers in order of preference; the agent refuses a silent fallback.
    providers: list[str] | None = None

    def extra(self) -> dict[str, Any]:
        return {"providers": self.providers}


@runtime("litert", formats=("tflite",), runner="agent", suffixes=(".tflite",))
class LiteRTSettings(_AgentSettings):
    """ai-edge-litert or tflite-runtime."""

    runtime: Literal["litert"]
    # XNNPACK on (true) or off (false); unset = the interpreter's default (on).
    xnnpack: bool | None = None

    def extra(self) -> dict[str, Any]:
        out: dict[str, Any] = {"providers": None}
        if self.xnnpack is not None:
            out["xnnpack"] = self.xnnpack
        return out


# No file suffix for `infer`: a TorchScript archive does not declare its inputs.
@runtime("torch", formats=("torchscript",), runner="agent")
class TorchSettings(_AgentSettings):
    """A TorchScript archive (``export_torchscript``)."""

    runtime: Literal["torch"]
    device: Literal["cpu", "cuda"] = "cpu"

    def extra(self) -> dict[str, Any]:
        return {"providers": None, "device": self.device}


@runtime("tensorrt", formats=("onnx",), runner="trtexec")
class TensorRTSettings(RuntimeSettings):
    """An engine built on the device by trtexec from the ONNX variant."""

    runtime: Literal["tensorrt"]
    precision: Literal["fp32", "fp16", "int8"] = "fp32"

    def extra(self) -> dict[str, Any]:
        return {"providers": None, "precision": self.precision}


@runtime("mcu", formats=("tflite",), runner="mcu", suffixes=(".tflite",))
class McuSettings(RuntimeSettings):
    """A full-integer int8 .tflite compiled to C with edgebench's kernels and run by
    the runner firmware on a microcontroller (real or emulated). ``threads`` does not
    apply (one core, no OS)."""

    runtime: Literal["mcu"]
    # The compiler's optimisation level for the whole image (model, kernels, runtime).
    optimize: Literal["O2", "O3", "Os"] = "O2"
    # Cortex-M4/M7 DSP instructions (SMLAD) in the conv and fully-connected loops;
    # false builds the portable C kernels (same outputs, more instructions).
    dsp: bool = True

    def job_settings(self) -> list[dict[str, Any]]:
        return [{"runtime": self.name, "threads": None, "providers": None, **self.extra()}]

    def extra(self) -> dict[str, Any]:
        return {"optimize": self.optimize, "dsp": self.dsp}


class _AndroidToolSettings(RuntimeSettings):
    """A vendor benchmark binary on an Android phone, driven over ADB (runner
    ``android``): one job per thread count; ``cores`` pins it with taskset (big or
    little cores as the phone's cpufreq groups them, or a hex mask)."""

    delegate: Literal["none", "xnnpack", "gpu", "nnapi", "external"] = "xnnpack"
    external_delegate: str | None = None  # the delegate .so on the phone (delegate: external)
    cores: str = "all"
    op_profiling: bool = False

    @field_validator("cores")
    @classmethod
    def _cores(cls, value: str) -> str:
        import re

        if value not in ("all", "big", "little") and not re.fullmatch(r"(0x)?[0-9a-fA-F]+", value):
            raise ValueError("cores must be all, big, little or a hex CPU mask")
        return value

    def extra(self) -> dict[str, Any]:
        return {
            "providers": None,
            "delegate": self.delegate,
            "external_delegate": self.external_delegate,
            "cores": self.cores,
            "op_profiling": self.op_profiling,
        }


@runtime("benchmark_model", formats=("tflite",), runner="android", suffixes=(".tflite",))
class BenchmarkModelSettings(_AndroidToolSettings):
    """LiteRT's ``benchmark_model`` on the phone."""

    runtime: Literal["benchmark_model"]


@runtime("ort_perf_test", formats=("onnx",), runner="android", suffixes=(".onnx",))
class OrtPerfTestSettings(_AndroidToolSettings):
    """``onnxruntime_perf_test`` on the phone (delegate: none = the CPU provider,
    nnapi = the NNAPI execution provider)."""

    runtime: Literal["ort_perf_test"]
    delegate: Literal["none", "xnnpack", "gpu", "nnapi", "external"] = "none"
