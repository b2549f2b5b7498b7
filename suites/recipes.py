"""Model builders and compression recipe steps.

A variant is a chain of steps applied to a base model, e.g.
``[export_onnx, onnx_int8_static]``. Each step is a small named function
registered with :func:`step`, together with its parameters model (a
:class:`StepParams` subclass: unknown keys, wrong types and out-of-range values
are refused when the suite file is loaded, see ``suites.schema.RecipeStep``); it
takes a :class:`Stage` (the model so far) and the validated parameters, and
returns the next stage. Builders make base models (torch modules) from code, so
no weights are downloaded. torch and the converters are imported lazily: a
controller that only runs prebuilt files does not need them.

Adding a step: in the module of its technique (quantization.py, pruning.py...),
declare ``class MyParams(StepParams)`` with typed, defaulted fields and decorate
the function with ``@step("my_step", accepts=(...), produces=..., params=MyParams)``;
a module that is new must be added to the imports at the end of this file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from suites.datasets import Dataset, load_dataset
from suites.errors import BuildError, SuiteError
from suites.schema import ModelSpec, VariantSpec

# Bump when a builder or step changes what it produces: it invalidates build caches.
RECIPES_VERSION = "2"
ONNX_OPSET = 17
# A step's ``produces`` when it gives back the format it was given (``identity``).
SAME_FORMAT = "same"

log = logging.getLogger(__name__)


@dataclass
class Stage:
    """The model as it moves through a recipe chain."""

    format: str  # "torch" | "onnx" | "tflite"
    module: Any = None  # torch.nn.Module when format == "torch"
    example_input: np.ndarray | None = None
    path: Path | None = None  # file when format is onnx/tflite
    dataset: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class BuildContext:
    out_dir: Path  # where this variant's files go
    seed: int = 0

    def dataset(self, stage: Stage) -> Dataset:
        if not stage.dataset:
            raise BuildError("this step needs calibration data but the model has no dataset")
        return load_dataset(stage.dataset)


class StepParams(BaseModel):
    """The parameters of a recipe step, as the suite writes them under the step's name.

    Unknown keys are refused (a typo must not fall back to a default); types are
    strict (``per_channel: 1`` or ``epochs: "3"`` is a mistake, not a conversion),
    except that a whole number is a valid float.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class NoParams(StepParams):
    """A step that takes no parameters."""


# A learning rate above this is a typo (Adam on these models diverges long before).
MAX_LR = 10.0


class SeededParams(StepParams):
    """Parameters of a step that trains: a seed, by default the build's."""

    seed: int | None = Field(None, ge=0)

    def seed_for(self, ctx: BuildContext) -> int:
        return self.seed if self.seed is not None else ctx.seed


# A step function gets its own StepParams subclass (the one it registered).
StepFn = Callable[[Stage, Any, BuildContext], Stage]


@dataclass(frozen=True)
class StepInfo:
    name: str
    accepts: tuple[str, ...]
    produces: str
    fn: StepFn
    doc: str
    params: type[StepParams] = NoParams


STEPS: dict[str, StepInfo] = {}
BUILDERS: dict[str, Callable[[dict[str, Any]], Stage]] = {}


def step(
    name: str,
    accepts: tuple[str, ...],
    produces: str,
    params: type[StepParams] = NoParams,
) -> Callable[[StepFn], StepFn]:
    """Register a recipe step ``name`` taking ``accepts`` formats, producing ``produces``,
    with its parameters model ``params`` (the function receives a validated instance)."""

    def decorate(fn: StepFn) -> StepFn:
        if name in STEPS:
            holder = STEPS[name].fn
            raise ValueError(
                f"recipe step {name!r} is already registered by "
                f"{holder.__module__}.{holder.__qualname__}"
            )
        STEPS[name] = StepInfo(name, accepts, produces, fn, (fn.__doc__ or "").strip(), params)
        return fn

    return decorate


def builder(name: str) -> Callable[[Callable[[dict[str, Any]], Stage]], Callable[..., Stage]]:
    def decorate(fn: Callable[[dict[str, Any]], Stage]) -> Callable[..., Stage]:
        if name in BUILDERS:
            raise ValueError(f"model builder {name!r} is already registered")
        BUILDERS[name] = fn
        return fn

    return decorate


# --------------------------------------------------------------------------- builders
@builder("digits_cnn")
def build_digits_cnn(params: dict[str, Any]) -> Stage:
    """A small CNN trained on scikit-learn's digits (8x8 grey images, 10 classes)."""
    import torch
    from torch import nn

    seed = int(params.get("seed", 0))
    epochs = int(params.get("epochs", 15))
    torch.manual_seed(seed)
    data = load_dataset("digits")
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, 64),
        nn.ReLU(),
        nn.Linear(64, 10),
    )
    x = torch.from_numpy(data.train_x)
    y = torch.from_numpy(data.train_y)
    opt = torch.optim.Adam(model.parameters(), lr=float(params.get("lr", 5e-3)))
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), 64):
            idx = order[i : i + 64]
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        acc = float((model(torch.from_numpy(data.test_x)).argmax(1).numpy() == data.test_y).mean())
    return Stage(
        format="torch",
        module=model,
        example_input=data.test_x[:1],
        dataset="digits",
        meta={"host_accuracy": acc, "params": sum(p.numel() for p in model.parameters())},
    )


# --------------------------------------------------------------------------- steps
class ExportOnnxParams(StepParams):
    # 7 is the oldest opset the TorchScript exporter writes.
    opset: int = Field(ONNX_OPSET, ge=7)


@step("export_onnx", accepts=("torch",), produces="onnx", params=ExportOnnxParams)
def export_onnx(stage: Stage, params: ExportOnnxParams, ctx: BuildContext) -> Stage:
    """torch -> ONNX with the TorchScript exporter at a pinned opset (``opset``, 17)."""
    import torch

    out = ctx.out_dir / "model.onnx"
    opset = params.opset
    # The TorchScript exporter is chosen on purpose (stable graphs for the quantizers,
    # pinned opset); torch flags it deprecated, which says nothing about this export.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            stage.module,
            (torch.from_numpy(stage.example_input),),
            str(out),
            input_names=["input"],
            output_names=["output"],
            opset_version=opset,
            dynamo=False,
        )
    return replace(stage, format="onnx", path=out, module=None, meta={**stage.meta, "opset": opset})


@step("export_tflite", accepts=("torch",), produces="tflite", params=NoParams)
def export_tflite(stage: Stage, params: NoParams, ctx: BuildContext) -> Stage:
    """torch -> LiteRT .tflite with litert-torch (no TensorFlow needed)."""
    import litert_torch
    import torch

    out = ctx.out_dir / "model.tflite"
    with _quiet_native_logs():
        edge_model = litert_torch.convert(stage.module, (torch.from_numpy(stage.example_input),))
        edge_model.export(str(out))
    return replace(stage, format="tflite", path=out, module=None)


class OnnxInt8StaticParams(StepParams):
    calibration_samples: int = Field(256, ge=1)
    per_channel: bool = True


@step("onnx_int8_static", accepts=("onnx",), produces="onnx", params=OnnxInt8StaticParams)
def onnx_int8_static(stage: Stage, params: OnnxInt8StaticParams, ctx: BuildContext) -> Stage:
    """ONNX int8 static quantization (QDQ, per-channel by default) calibrated on the
    dataset's calibration split, with onnxruntime's quantization tools.

    Params: ``calibration_samples`` (256, the first ones of the calibration split),
    ``per_channel`` (true: one weight scale per output channel, else per tensor).
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    calib = ctx.dataset(stage).calibration_x[: params.calibration_samples]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter({"input": calib[i : i + 1]} for i in range(len(calib)))

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

    assert stage.path is not None
    pre = ctx.out_dir / "preprocessed.onnx"
    out = ctx.out_dir / "model_int8.onnx"
    quant_pre_process(str(stage.path), str(pre))
    quantize_static(
        str(pre),
        str(out),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=params.per_channel,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
    )
    pre.unlink()
    return replace(
        stage,
        path=out,
        meta={
            **stage.meta,
            "quantization": "int8 static QDQ"
            + (" per-channel" if params.per_channel else " per-tensor"),
        },
    )


@step("tflite_int8_dynamic", accepts=("tflite",), produces="tflite", params=NoParams)
def tflite_int8_dynamic(stage: Stage, params: NoParams, ctx: BuildContext) -> Stage:
    """LiteRT dynamic-range quantization (int8 weights, float activations) with
    ai-edge-quantizer."""
    from ai_edge_quantizer import quantizer, recipe

    assert stage.path is not None
    out = ctx.out_dir / "model_int8_dynamic.tflite"
    with _quiet_native_logs():
        qt = quantizer.Quantizer(str(stage.path))
        qt.load_quantization_recipe(recipe.dynamic_wi8_afp32())
        qt.quantize().export_model(str(out))
    return replace(stage, path=out, meta={**stage.meta, "quantization": "int8 dynamic range"})


@step("identity", accepts=("onnx", "tflite", "torchscript"), produces=SAME_FORMAT)
def identity(stage: Stage, params: NoParams, ctx: BuildContext) -> Stage:
    """The model file as it is, for a suite that benchmarks a ``file:`` model unchanged
    (a variant needs at least one step). The artifact has the input's exact bytes."""
    import shutil

    if stage.path is None:
        raise BuildError("identity needs a model file")
    out = ctx.out_dir / stage.path.name
    shutil.copyfile(stage.path, out)
    techniques = [*(stage.meta.get("techniques") or []), "model file as given"]
    return replace(stage, path=out, meta={**stage.meta, "techniques": techniques})


# --------------------------------------------------------------------------- building
@dataclass(frozen=True)
class BuiltVariant:
    model: str
    variant: str
    format: str
    path: Path
    recipe: list[str]
    dataset: str | None
    meta: dict[str, Any]


def base_model(spec: ModelSpec, suite_dir: Path) -> Stage:
    if spec.builder:
        try:
            make = BUILDERS[spec.builder]
        except KeyError:
            raise SuiteError(
                f"unknown builder {spec.builder!r} (known: {', '.join(sorted(BUILDERS))})",
                key=f"models.{spec.name}.builder",
            ) from None
        return make(spec.params)
    path = (suite_dir / str(spec.file)).resolve()
    fmt = {".onnx": "onnx", ".tflite": "tflite"}.get(path.suffix)
    if not path.is_file():
        raise SuiteError(f"model file not found: {path}", key=f"models.{spec.name}.file")
    if fmt is None:
        raise SuiteError(
            f"model file must be .onnx or .tflite, not {path.name}", key=f"models.{spec.name}.file"
        )
    return Stage(format=fmt, path=path, dataset=spec.params.get("dataset"))


def check_chain(model_format: str, variant: VariantSpec) -> str:
    """Validate a recipe chain against the formats it passes through; return the final format.

    (Step names and parameters were checked when the suite was loaded.)"""
    fmt = model_format
    for i, s in enumerate(variant.recipe):
        info = STEPS[s.name]
        if fmt not in info.accepts:
            raise SuiteError(
                f"step {s.name!r} takes {'/'.join(info.accepts)} but gets {fmt}",
                key=f"variants.{variant.name}.recipe.{i}",
            )
        fmt = fmt if info.produces == SAME_FORMAT else info.produces
    if fmt not in ("onnx", "tflite", "torchscript"):
        raise SuiteError(
            f"recipe ends with a {fmt} model; add an export step",
            key=f"variants.{variant.name}.recipe",
        )
    return fmt


def build_key(spec: ModelSpec, variant: VariantSpec, suite_dir: Path) -> str:
    """Cache key: recipe chain + what goes into it (builder params or file hash).

    A step counts with its params as the suite wrote them (``RecipeStep.params``), not
    with the defaults its params model fills in: keys stay what they were before the
    params were typed. Bump RECIPES_VERSION when a default changes."""
    source: dict[str, Any] = spec.model_dump()
    if spec.file:
        data = (suite_dir / spec.file).resolve().read_bytes()
        source["file_sha256"] = hashlib.sha256(data).hexdigest()
    blob = json.dumps(
        {"v": RECIPES_VERSION, "model": source, "recipe": [s.model_dump() for s in variant.recipe]},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def run_chain(
    base: Stage,
    variant: VariantSpec,
    out_dir: Path,
    memo: dict[tuple[str, ...], Stage] | None = None,
) -> Stage:
    """Apply a variant's steps to ``base``; files go under ``out_dir``.

    ``memo`` (shared across the variants of one model) remembers the stage after
    every chain prefix, so variants that start alike ([export_tflite, ...]) convert
    once. Steps never see a memoized torch module itself, only a copy, because
    torch steps may change modules in place.
    """
    stage = base
    prefix: tuple[str, ...] = ()
    for s in variant.recipe:
        info = STEPS[s.name]
        prefix = (*prefix, json.dumps(s.model_dump(), sort_keys=True))
        if memo is not None and prefix in memo:
            stage = _private_copy(memo[prefix])
            continue
        if stage.format == "torch" and info.produces != "torch":
            # Last chance to count MACs and non-zeros on the module itself, before export.
            from suites.analysis import torch_stats

            stats = torch_stats(stage.module, stage.example_input)
            stage = replace(stage, meta={**stage.meta, "torch_stats": stats})
        before = stage.meta
        step_dir = out_dir / hashlib.sha256("|".join(prefix).encode()).hexdigest()[:16]
        step_dir.mkdir(parents=True, exist_ok=True)
        try:
            stage = info.fn(_private_copy(stage), s.options, BuildContext(out_dir=step_dir))
        except (SuiteError, BuildError):
            raise
        except Exception as e:  # noqa: BLE001 - any converter failure becomes a BuildError
            raise BuildError(
                f"variant {variant.name!r}: step {s.name!r} failed: {type(e).__name__}: {e}"
            ) from e
        stage = _with_technique(stage, s.name, before)
        if memo is not None:
            memo[prefix] = stage
    return stage


_EXPORT_LABELS = {"export_onnx": "export ONNX", "export_tflite": "export LiteRT"}


def _with_technique(stage: Stage, step_name: str, before: dict[str, Any]) -> Stage:
    """Make sure every step leaves a human label in meta["techniques"] (the report's
    Technique column): torch steps write their own; quantizers describe themselves in
    meta["quantization"]; exports get a fixed label."""
    techniques = list(stage.meta.get("techniques") or [])
    if len(techniques) > len(before.get("techniques") or []):
        return stage
    quant = stage.meta.get("quantization")
    label = quant if quant and quant != before.get("quantization") else None
    techniques.append(label or _EXPORT_LABELS.get(step_name, step_name))
    return replace(stage, meta={**stage.meta, "techniques": techniques})


def _private_copy(stage: Stage) -> Stage:
    import copy

    module = copy.deepcopy(stage.module) if stage.module is not None else None
    return replace(stage, module=module, meta=copy.deepcopy(stage.meta))


class _quiet_native_logs:
    """Silence the TF/absl chatter litert-torch and the quantizer print on import."""

    def __enter__(self) -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        logging.getLogger("absl").setLevel(logging.ERROR)

    def __exit__(self, *exc: object) -> None:
        return None


# Modules that register more builders and steps with the decorators above. Imported
# last, because they import `step`/`builder` from this module.
from suites import (  # noqa: E402, F401
    distill,
    lowrank,
    mixed_precision,
    mobilenet,
    pruning,
    qat,
    quantization,
    torch_export,
)
