"""The suite file: what to benchmark, how, and where.

A suite names its models (a file or a built-in builder), the variants to make
of each (a chain of recipe steps), the runtime settings to try, the measurement
rules, and which devices to use. Every key is validated; a mistake is reported
with the file, the key and the line (see ``suites.yamlio``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from suites.yamlio import validate_file

# Which model file format each runtime takes. tensorrt builds an engine on the device
# from the ONNX file (runners/trtexec.py); torch loads a TorchScript archive.
RUNTIME_FORMATS = {
    "onnxruntime": "onnx",
    "litert": "tflite",
    "tensorrt": "onnx",
    "torch": "torchscript",
}


class Strict(BaseModel):
    # Unknown keys are mistakes (a typo must not silently fall back to a default).
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSpec(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    builder: str | None = None
    file: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_source(self) -> ModelSpec:
        if (self.builder is None) == (self.file is None):
            raise ValueError("give exactly one of 'builder' or 'file'")
        return self


class RecipeStep(Strict):
    name: str
    params: dict[str, Any] = Field(default_factory=dict)


class VariantSpec(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.+-]+$")
    recipe: list[RecipeStep] = Field(min_length=1)
    description: str = ""

    @field_validator("recipe", mode="before")
    @classmethod
    def _steps(cls, value: Any) -> Any:
        # A step is written either as a bare name or as {name: {params}}.
        if not isinstance(value, list):
            return value
        steps = []
        for item in value:
            if isinstance(item, str):
                steps.append({"name": item})
            elif isinstance(item, dict) and len(item) == 1:
                ((name, params),) = item.items()
                steps.append({"name": name, "params": params or {}})
            else:
                steps.append(item)
        return steps


class SettingSpec(Strict):
    runtime: Literal["onnxruntime", "litert", "tensorrt", "torch"]
    # tensorrt: engine precision; torch: "cpu" or "cuda" via `device`.
    precision: Literal["fp32", "fp16", "int8"] = "fp32"
    device: Literal["cpu", "cuda"] = "cpu"
    threads: list[int] = Field(default_factory=lambda: [1])
    providers: list[str] | None = None
    # litert only: XNNPACK on (true) or off (false); unset = the interpreter's default (on).
    xnnpack: bool | None = None

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

    @model_validator(mode="after")
    def _xnnpack_is_litert(self) -> SettingSpec:
        if self.xnnpack is not None and self.runtime != "litert":
            raise ValueError(f"xnnpack applies to runtime litert only, not {self.runtime}")
        return self


class MeasureSpec(Strict):
    warmup_runs: int = Field(10, ge=0)
    warmup_min_s: float = Field(0.1, ge=0)
    min_runs: int = Field(50, ge=1)
    min_duration_s: float = Field(0.5, ge=0)
    repetitions: int = Field(5, ge=1)
    max_runs: int = Field(100_000, ge=1)
    timeout_s: float = Field(600, gt=0)


class AccuracySpec(Strict):
    dataset: str
    split: Literal["test", "train", "calibration"] = "test"
    limit: int | None = Field(None, ge=1)


class DeviceSelection(Strict):
    names: list[str] = Field(default_factory=list)
    tags: dict[str, str] = Field(default_factory=dict)


class Suite(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    models: list[ModelSpec] = Field(min_length=1)
    variants: list[VariantSpec] = Field(min_length=1)
    settings: list[SettingSpec] = Field(min_length=1)
    measure: MeasureSpec = MeasureSpec()
    accuracy: AccuracySpec | None = None
    devices: DeviceSelection = DeviceSelection()
    retries: int = Field(1, ge=0, le=10)
    # Variant that accuracy retention is measured against; default: the first variant.
    baseline: str | None = None

    @property
    def baseline_variant(self) -> str:
        return self.baseline or self.variants[0].name

    @model_validator(mode="after")
    def _unique_names(self) -> Suite:
        if self.baseline is not None and self.baseline not in {v.name for v in self.variants}:
            raise ValueError(f"baseline {self.baseline!r} is not one of the variants")
        for what, names in (
            ("models", [m.name for m in self.models]),
            ("variants", [v.name for v in self.variants]),
        ):
            dup = {n for n in names if names.count(n) > 1}
            if dup:
                raise ValueError(f"duplicate {what} name(s): {', '.join(sorted(dup))}")
        return self


def load_suite(path: Path) -> Suite:
    """Read and validate a suite file (raises SuiteError naming file, key, line)."""
    return validate_file(Suite, path)


def bundled_suite(name: str) -> Path:
    """Path of a suite shipped inside the package (``suites/NAME.yaml``)."""
    return Path(__file__).resolve().parent / f"{name}.yaml"
