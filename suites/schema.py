"""The suite file: what to benchmark, how, and where.

A suite names its models (a file or a built-in builder), the variants to make
of each (a chain of recipe steps), the runtime settings to try, the measurement
rules, and which devices to use. Every key is validated; a mistake is reported
with the file, the key and the line (see ``suites.yamlio``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    field_validator,
    model_validator,
)

from suites.runtimes import RuntimeSettings, get_runtime, runtimes
from suites.yamlio import error_at, errors_at, validate_file


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
    """One step of a recipe: a step registered in ``suites.recipes`` and its params.

    Written as a bare name (``export_onnx``), as ``{name: {params}}`` or as
    ``{name: ..., params: ...}``. The name must be registered and the params must
    validate against the step's params model, when the suite is loaded; a mistake
    is reported at the key the file wrote (``recipe.1.onnx_int8_static.per_chanel``).

    ``params`` keeps what the suite wrote: the build key hashes it, so the defaults
    the model fills in never change a cache key. ``options`` is the validated model,
    defaults filled in, that the step function receives.
    """

    name: str
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _registered_step(cls, value: Any, handler: Any) -> Any:
        if isinstance(value, str):
            value, at = {"name": value}, {"name": (), "params": ()}
        elif isinstance(value, dict) and len(value) == 1 and "name" not in value:
            ((name, params),) = value.items()
            value = {"name": name, "params": {} if params is None else params}
            at = {"name": (name,), "params": (name,)}
        else:
            at = {"name": ("name",), "params": ("params",)}

        def where(loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
            if loc and loc[0] in at:
                return (*at[str(loc[0])], *loc[1:])
            return loc

        with errors_at(where):
            step = handler(value)
            model = cls.params_model(step.name, loc=("name",))
        with errors_at(lambda loc: where(("params", *loc))):
            model.model_validate(step.params)
        return step

    @staticmethod
    def params_model(name: str, *, loc: tuple[str | int, ...] = ()) -> Any:
        """The params model of the registered recipe step ``name``; a validation error
        at ``loc`` listing the known steps when there is none."""
        from suites.recipes import STEPS  # the step registry imports this module

        info = STEPS.get(name)
        if info is None:
            known = ", ".join(sorted(STEPS))
            raise error_at(loc, f"unknown recipe step {name!r} (known: {known})", name)
        return info.params

    @property
    def options(self) -> Any:
        """The params as the step's ``StepParams`` model, defaults filled in."""
        return self.params_model(self.name).model_validate(self.params)


class ReferenceSpec(Strict):
    """Published figures a variant is compared with (the report puts the measured ratios
    beside them). Fractions for accuracy and battery impact (the energy per inference as a
    share of the publication's original: 1.0 there); ``source`` says where they are from."""

    source: str = Field(min_length=1)
    size_bytes: float | None = Field(None, gt=0)
    accuracy: float | None = Field(None, ge=0, le=1)
    latency_s: float | None = Field(None, gt=0)
    battery_impact: float | None = Field(None, gt=0)


class VariantSpec(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.+-]+$")
    recipe: list[RecipeStep] = Field(min_length=1)
    description: str = ""
    # Not part of the build key: published figures describe, they do not build.
    reference: ReferenceSpec | None = None


def _validate_setting(value: Any) -> RuntimeSettings:
    """A settings entry, validated by the settings model of the runtime it names (looked
    up in the runtime table when the file is loaded, so every declared runtime counts)."""
    if isinstance(value, RuntimeSettings):
        return value
    name = value.get("runtime") if isinstance(value, dict) else None
    try:
        declared = get_runtime(str(name)) if name is not None else None
    except KeyError:
        declared = None
    if declared is None:
        known = ", ".join(r.name for r in runtimes())
        message = f"runtime must be one of: {known}" + (f" (not {name!r})" if name else "")
        raise error_at(("runtime",), message, name)
    return declared.settings.model_validate(value)


# A settings entry: typed by its runtime (suites/runtimes.py).
SettingSpec = Annotated[
    Any,
    PlainValidator(_validate_setting),
    PlainSerializer(lambda s: s.model_dump(mode="json"), return_type=dict),
]


class MeasureSpec(Strict):
    warmup_runs: int = Field(10, ge=0)
    warmup_min_s: float = Field(0.1, ge=0)
    min_runs: int = Field(50, ge=1)
    min_duration_s: float = Field(0.5, ge=0)
    repetitions: int = Field(5, ge=1)
    max_runs: int = Field(100_000, ge=1)
    timeout_s: float = Field(600, gt=0)
    # Adaptive stopping: a window ends once the 95% CI of its median is within this
    # fraction of the median (0.01 = 1%), after min_runs and min_duration_s (a floor
    # then, not the rule: set it low, e.g. 0.1), or at max_window_s.
    target_rel_ci: float | None = Field(None, gt=0, lt=1)
    max_window_s: float = Field(10.0, gt=0)
    # Spread the repetitions over this many fresh agent processes: a process that
    # runs slow for its whole life (placement, memory layout) then shows in the CI.
    processes: int = Field(1, ge=1)
    # One extra window timing the whole call (inputs set, invoke, outputs read)
    # beside the invoke-only headline, on runtimes where the two differ.
    io_window: bool = True

    @model_validator(mode="after")
    def _processes_fit(self) -> MeasureSpec:
        if self.processes > self.repetitions:
            raise ValueError(
                f"processes ({self.processes}) cannot exceed repetitions ({self.repetitions})"
            )
        return self


class AccuracySpec(Strict):
    dataset: str
    split: Literal["test", "train", "calibration"] = "test"
    limit: int | None = Field(None, ge=1)

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, value: str) -> str:
        # Found when the suite loads, not when the first job wants the split.
        from suites.datasets import DATASETS

        if value not in DATASETS:
            raise ValueError(f"unknown dataset {value!r} (known: {', '.join(sorted(DATASETS))})")
        return value


class DeviceSelection(Strict):
    names: list[str] = Field(default_factory=list)
    tags: dict[str, str] = Field(default_factory=dict)


class TargetSpec(Strict):
    """What a progressive compression must reach; every figure given must hold on
    every device the run measures on."""

    max_size_bytes: int | None = Field(None, gt=0)
    max_latency_s: float | None = Field(None, gt=0)  # p50, measured on the device
    max_peak_ram_bytes: int | None = Field(None, gt=0)  # peak RSS; static RAM on an MCU
    min_accuracy: float | None = Field(None, ge=0, le=1)  # top-1 on the suite's split

    @model_validator(mode="after")
    def _some_target(self) -> TargetSpec:
        if all(getattr(self, f) is None for f in type(self).model_fields):
            raise ValueError(
                "give at least one of max_size_bytes, max_latency_s, max_peak_ram_bytes, "
                "min_accuracy"
            )
        return self


class ProgressiveSpec(Strict):
    """Compress step by step until the target is met (``edgebench run``): stage 0 is
    the model as it is, stage i applies ``steps[:i]``; a stage whose chain still ends
    in a torch model gets ``export`` appended to be measured. Each stage is measured
    (on the devices, for latency and memory) before the next is built; the run stops
    at the first stage that meets the target."""

    model: str | None = None  # default: the suite's first model
    steps: list[RecipeStep] = Field(min_length=1)
    export: list[RecipeStep] = Field(default_factory=lambda: [RecipeStep(name="export_tflite")])
    target: TargetSpec


class Suite(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    models: list[ModelSpec] = Field(min_length=1)
    variants: list[VariantSpec] = Field(default_factory=list)
    settings: list[SettingSpec] = Field(min_length=1)
    progressive: ProgressiveSpec | None = None
    measure: MeasureSpec = MeasureSpec()
    accuracy: AccuracySpec | None = None
    devices: DeviceSelection = DeviceSelection()
    retries: int = Field(1, ge=0, le=10)
    # Wait before retry k (1-based): retry_backoff_s * 2**(k-1), so a board that is
    # rebooting or a network that blips gets time to come back.
    retry_backoff_s: float = Field(1.0, ge=0, le=300)
    # Variant that accuracy retention is measured against; default: the first variant.
    baseline: str | None = None

    @property
    def baseline_variant(self) -> str:
        return self.baseline or self.all_variants()[0].name

    def variants_of(self, model: str) -> list[VariantSpec]:
        """What is built of one model: the variants, and the progressive stages of the
        progressive model."""
        if self.progressive is None or (self.progressive.model or self.models[0].name) != model:
            return list(self.variants)
        return self.all_variants()

    def all_variants(self) -> list[VariantSpec]:
        """The variants, then the progressive stages (suites/progressive.py)."""
        if self.progressive is None:
            return list(self.variants)
        from suites.progressive import stages

        return [*self.variants, *stages(self)]

    @model_validator(mode="after")
    def _unique_names(self) -> Suite:
        if not self.variants and self.progressive is None:
            raise ValueError("variants: give at least one variant (or a progressive: section)")
        if self.progressive is not None and self.progressive.model not in (
            None,
            *(m.name for m in self.models),
        ):
            raise ValueError(f"progressive.model {self.progressive.model!r} is not a model")
        names_all = {v.name for v in self.all_variants()}
        if self.baseline is not None and self.baseline not in names_all:
            raise ValueError(f"baseline {self.baseline!r} is not one of the variants")
        for what, names in (
            ("models", [m.name for m in self.models]),
            ("variants", [v.name for v in self.all_variants()]),
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


def suite_path(ref: str | os.PathLike[str]) -> Path:
    """A suite file, or the name of a bundled suite (``digits``), as `edgebench run`
    and the pytest plugin take it."""
    path = Path(ref).expanduser()
    text = os.fspath(ref)
    if path.exists() or path.suffix in (".yaml", ".yml") or "/" in text:
        return path
    bundled = bundled_suite(text)
    return bundled if bundled.is_file() else path
