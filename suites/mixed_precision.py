"""Recipe steps: mixed precision per layer (see suites/recipes.py for the step registry).

- ``tflite_mixed``: full-integer int8 (ai-edge-quantizer's ``static_wi8_ai8``, as
  ``tflite_int8_full``) except chosen layers, which stay float32 or keep float16
  weights (float compute), through ai-edge-quantizer's per-operation recipe
  entries (a regex on the op's scope, i.e. its output tensor names).
- ``onnx_mixed``: int8 static QDQ (onnxruntime's ``quantize_static``, as
  ``onnx_int8_static``) except chosen nodes (``nodes_to_exclude``), which stay float32.

Which layers stay in higher precision ("layers" are the ops that hold weights:
convolutions, fully connected / Gemm / MatMul), by ``select``:

* ``first_last`` (default): the first and the last layer in execution order. In
  LiteRT the graph input and the ops before the first layer, and the graph output
  and the ops after the last layer, stay float with them, so the model takes and
  gives float32 rather than int8 around a float layer.
* ``patterns``: the layers whose name matches one of ``patterns`` (regular
  expressions, searched; LiteRT: the op's scope, e.g. ``...linear.Linear_6;...``;
  ONNX: the node name, e.g. ``/6/Gemm``). Every layer with its name, op and
  precision is listed in ``meta["mixed_precision"]["layers"]``, so patterns can be
  written from a first build.
* ``sensitivity``: every layer is quantized on its own (the rest of the model
  float), its accuracy drop against the float model is measured on validation
  data, and the most sensitive layers are kept in higher precision, one at a
  time, until the mixed model's drop is within ``accuracy_budget_pp``
  (percentage points; none is kept when full int8 is already within it). Ties in
  the drop are broken by the share of changed predictions, then by the output
  error. The per-layer drops and every step of the search are recorded in
  ``meta["mixed_precision"]["sensitivity"]``.

Validation data: the datasets have train, calibration and test splits, and the
test split is what the report's accuracy is measured on, so choosing layers on it
would select on the test set. Sensitivity is measured on the last
``validation_samples`` of the train split instead (the calibration split is its
first samples, so calibration and validation do not overlap).
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from suites.datasets import Dataset
from suites.errors import BuildError
from suites.quantization import onnx_logits, tflite_logits, tflite_op_name
from suites.recipes import BuildContext, Stage, StepParams, _quiet_native_logs, step

log = logging.getLogger(__name__)

TFLITE_WEIGHTED_OPS = (
    "CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D_TRANSPOSE", "FULLY_CONNECTED",
    "BATCH_MATMUL", "EMBEDDING_LOOKUP",
)  # fmt: skip
ONNX_WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


# --------------------------------------------------------------------------- params
class MixedSelectionParams(StepParams):
    """Which layers keep a higher precision (shared by ``tflite_mixed`` and ``onnx_mixed``)."""

    select: Literal["first_last", "patterns", "sensitivity"] = "first_last"
    patterns: list[str] = Field(default_factory=list)  # with select: patterns
    accuracy_budget_pp: float = Field(0.5, ge=0, le=100)  # with select: sensitivity
    validation_samples: int = Field(512, ge=1)  # with select: sensitivity
    calibration_samples: int = Field(256, ge=1)

    @field_validator("patterns")
    @classmethod
    def _patterns_compile(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as e:
                raise PydanticCustomError(
                    "bad_pattern",
                    "not a regular expression: {pattern!r} ({why})",
                    {"pattern": pattern, "why": str(e)},
                ) from None
        return patterns

    @model_validator(mode="after")
    def _settings_of_the_selection(self) -> MixedSelectionParams:
        if self.select == "patterns" and not self.patterns:
            raise PydanticCustomError(
                "no_patterns", "select: patterns needs 'patterns' (a list of regular expressions)"
            )
        # A setting that the chosen selection does not read would be silently ignored.
        applies_to = {
            "patterns": "patterns",
            "accuracy_budget_pp": "sensitivity",
            "validation_samples": "sensitivity",
        }
        unused = sorted(
            key for key in self.model_fields_set if applies_to.get(key, self.select) != self.select
        )
        if unused:
            raise PydanticCustomError(
                "unused_setting",
                "{keys}: not used with select: {select}",
                {"keys": ", ".join(unused), "select": self.select},
            )
        return self


class TfliteMixedParams(MixedSelectionParams):
    # A layer is kept out of int8 for accuracy, so by default it stays exactly float32;
    # fp16 (float16 weights, float32 compute) halves its weights' size.
    high_precision: Literal["fp16", "fp32"] = "fp32"


class OnnxMixedParams(MixedSelectionParams):
    per_channel: bool = True


# --------------------------------------------------------------------------- shared search
@dataclass(frozen=True)
class Layer:
    """A weighted op of the model, as the quantizer addresses it."""

    index: int  # position among the graph's ops, in execution order
    op: str  # TFLite builtin op / ONNX op type
    name: str  # LiteRT: the op scope (its output tensor names); ONNX: the node name
    weights: int  # elements of its weight tensor

    @property
    def label(self) -> str:
        return f"{self.op}@{self.index}"


@dataclass(frozen=True)
class Scores:
    """A candidate model measured against the float model on the validation samples."""

    accuracy: float
    agreement: float  # share of top-1 predictions equal to the float model's
    output_mse: float  # mean squared logit error relative to the float logits' mean square

    @staticmethod
    def of(logits: np.ndarray, labels: np.ndarray, reference: np.ndarray) -> Scores:
        scale = float(np.mean(reference.astype(np.float64) ** 2)) or 1.0
        return Scores(
            accuracy=float((logits.argmax(1) == labels).mean()),
            agreement=float((logits.argmax(1) == reference.argmax(1)).mean()),
            output_mse=float(np.mean((logits.astype(np.float64) - reference) ** 2)) / scale,
        )


def validation_split(data: Dataset, samples: int) -> tuple[np.ndarray, np.ndarray]:
    """The last ``samples`` of the train split (see the module docstring: not the test split)."""
    n = min(samples, len(data.train_x))
    return data.train_x[-n:], data.train_y[-n:]


def select_layers(
    layers: list[Layer], params: MixedSelectionParams
) -> tuple[list[Layer], dict[str, list[str]]]:
    """The layers that ``select: first_last`` or ``select: patterns`` keep, and why each one
    (none for ``select: sensitivity``, which searches)."""
    reasons: dict[str, list[str]] = {}

    def keep(layer: Layer, why: str) -> None:
        reasons.setdefault(layer.name, []).append(why)

    if params.select == "first_last":
        keep(layers[0], "first layer")
        keep(layers[-1], "last layer")
    elif params.select == "patterns":
        for pattern in params.patterns:
            matched = [layer for layer in layers if re.search(pattern, layer.name)]
            if not matched:
                names = "; ".join(layer.name for layer in layers)
                raise BuildError(f"patterns: {pattern!r} matches no layer (layers: {names})")
            for layer in matched:
                keep(layer, f"pattern {pattern!r}")
    return [layer for layer in layers if layer.name in reasons], reasons


def sensitivity_search(
    layers: list[Layer],
    *,
    budget_pp: float,
    float_scores: Scores,
    measure_only: Callable[[Layer], Scores],
    measure_except: Callable[[list[Layer]], Scores],
) -> tuple[list[Layer], dict[str, Any]]:
    """Keep the most sensitive layers in higher precision until the accuracy drop
    (float accuracy - mixed accuracy, in percentage points) is within ``budget_pp``.

    ``measure_only(layer)`` scores a model in which only ``layer`` is quantized;
    ``measure_except(kept)`` one in which every layer but ``kept`` is."""

    def drop(scores: Scores) -> float:
        return round(100 * (float_scores.accuracy - scores.accuracy), 4)

    per_layer = []
    for layer in layers:
        s = measure_only(layer)
        per_layer.append(
            {
                "layer": layer.label,
                "name": layer.name,
                "op": layer.op,
                "weights": layer.weights,
                "accuracy": s.accuracy,
                "drop_pp": drop(s),
                "agreement": s.agreement,
                "output_mse": s.output_mse,
            }
        )
    # Most sensitive first: largest drop, then most changed predictions, then output error.
    order = sorted(
        range(len(layers)),
        key=lambda i: (
            -per_layer[i]["drop_pp"],
            per_layer[i]["agreement"],
            -per_layer[i]["output_mse"],
            layers[i].index,
        ),
    )
    full = measure_except([])
    kept: list[Layer] = []
    current = full
    trail = [
        {"kept": [k.label for k in kept], "accuracy": current.accuracy, "drop_pp": drop(current)}
    ]
    for i in order:
        if drop(current) <= budget_pp:
            break
        kept.append(layers[i])
        current = measure_except(kept)
        trail.append(
            {
                "kept": [k.label for k in kept],
                "accuracy": current.accuracy,
                "drop_pp": drop(current),
            }
        )
    met = drop(current) <= budget_pp
    if not met:
        log.warning(
            "mixed precision: accuracy budget %.3g pp not met (drop %.3g pp with every layer kept)",
            budget_pp,
            drop(current),
        )
    info = {
        "budget_pp": budget_pp,
        "float_accuracy": float_scores.accuracy,
        "int8_accuracy": full.accuracy,
        "int8_drop_pp": drop(full),
        "per_layer": per_layer,
        "ranking": [layers[i].label for i in order],
        "search": trail,
        "accuracy": current.accuracy,
        "drop_pp": drop(current),
        "budget_met": met,
    }
    return [layer for layer in layers if layer in kept], info


def _by_sensitivity(
    mixer: Any,
    layers: Any,
    params: Any,
    data: Any,
    model: Path,
    logits: Callable[[Path, np.ndarray], np.ndarray],
    reasons: dict[str, list[str]],
) -> tuple[Any, dict[str, Any]]:
    """select: sensitivity, for either format: score each candidate the mixer builds
    on the validation split against the float model's own outputs, keep layers until
    the budget is met (``sensitivity_search``), and say why each was kept."""
    x, y = validation_split(data, params.validation_samples)
    reference = logits(model, x)
    float_scores = Scores.of(reference, y, reference)

    def score(path: Path) -> Scores:
        return Scores.of(logits(path, x), y, reference)

    kept, sensitivity = sensitivity_search(
        layers,
        budget_pp=params.accuracy_budget_pp,
        float_scores=float_scores,
        measure_only=lambda layer: score(mixer.build_only(layer)),
        measure_except=lambda keep: score(mixer.build_except(keep)),
    )
    sensitivity["validation"] = _validation_info(x)
    for layer in kept:
        reasons.setdefault(layer.name, []).append("sensitivity")
    return kept, sensitivity


def _validation_info(x: np.ndarray) -> str:
    return f"last {len(x)} samples of the train split (the test split stays unseen)"


# --------------------------------------------------------------------------- LiteRT
@dataclass(frozen=True)
class _TfliteGraph:
    """The ops of the main subgraph, as ai-edge-quantizer scopes them."""

    ops: list[tuple[str, str]]  # (op name, scope) in execution order
    input_scope: str  # scope of the INPUT pseudo-op (the graph inputs)
    output_scope: str  # scope of the OUTPUT pseudo-op (the graph outputs)
    layers: list[Layer]


def _tflite_graph(path: Path) -> _TfliteGraph:
    # The quantizer matches a recipe entry's regex against this scope (the op's output
    # tensor names joined with ';'), so the layers are listed with its own helpers.
    from ai_edge_quantizer.utils import tfl_flatbuffer_utils as tfu

    model = tfu.read_model(Path(path))
    if len(model.subgraphs) != 1:
        raise BuildError(f"tflite_mixed: expected one subgraph, got {len(model.subgraphs)}")
    graph = model.subgraphs[0]
    ops: list[tuple[str, str]] = []
    layers: list[Layer] = []
    for i, op in enumerate(graph.operators):
        name = tflite_op_name(model, op)
        scope = tfu.get_op_scope(op, graph.tensors)
        ops.append((name, scope))
        if name in TFLITE_WEIGHTED_OPS and len(op.inputs) > 1 and op.inputs[1] >= 0:
            weight = graph.tensors[op.inputs[1]]
            if tfu.get_tensor_data(weight, model.buffers) is not None:
                layers.append(Layer(i, name, scope, int(np.prod(weight.shape))))
    io = tfu.get_subgraph_input_output_operators(graph)
    input_scope, output_scope = (tfu.get_op_scope(o, graph.tensors) for o in io)
    if not layers:
        raise BuildError("tflite_mixed: the model has no convolution or fully connected layer")
    return _TfliteGraph(ops, input_scope, output_scope, layers)


def _exact(scope: str) -> str:
    return "^" + re.escape(scope) + "$"


class _TfliteMixer:
    """Builds LiteRT models with chosen layers in int8 and the rest in higher precision,
    all from one calibration."""

    def __init__(self, path: Path, calib: np.ndarray, out_dir: Path, high_precision: str) -> None:
        from ai_edge_litert.interpreter import Interpreter
        from ai_edge_quantizer import quantizer, recipe

        self.path = path
        self.out_dir = out_dir
        self.high_precision = high_precision
        self.graph = _tflite_graph(path)
        self._n = 0
        with _quiet_native_logs():
            signatures = Interpreter(model_path=str(path)).get_signature_list()
            if len(signatures) != 1:
                raise BuildError(f"tflite_mixed: expected one signature, got {list(signatures)}")
            ((signature, io),) = signatures.items()
            (name,) = io["inputs"]
            qt = quantizer.Quantizer(str(path))
            qt.load_quantization_recipe(recipe.static_wi8_ai8())
            # The full int8 recipe's statistics cover every tensor any mixture quantizes.
            self.qsvs = qt.calibrate(
                {signature: [{name: calib[i : i + 1]} for i in range(len(calib))]}
            )

    def _extended(self, kept: Iterable[Layer]) -> tuple[set[int], bool, bool]:
        """Op indices kept float: the kept layers, plus everything before the first layer
        (and the graph input) or after the last one (and the graph output) when kept."""
        layers = self.graph.layers
        ops = {layer.index for layer in kept}
        keep_input = layers[0].index in ops
        keep_output = layers[-1].index in ops
        if keep_input:
            ops |= set(range(layers[0].index))
        if keep_output:
            ops |= set(range(layers[-1].index + 1, len(self.graph.ops)))
        return ops, keep_input, keep_output

    def build_except(self, kept: list[Layer], out: Path | None = None) -> Path:
        """int8 everywhere except ``kept`` (fp16 weights or float32)."""
        from ai_edge_quantizer import qtyping, quantizer, recipe

        weighted = {layer.index for layer in self.graph.layers}
        ops, keep_input, keep_output = self._extended(kept)
        qt = quantizer.Quantizer(str(self.path))
        qt.load_quantization_recipe(recipe.static_wi8_ai8())
        # Later entries take precedence over the '.*' int8 entry for the ops they name.
        for i in sorted(ops):
            op, scope = self.graph.ops[i]
            if i in weighted and self.high_precision == "fp16":
                qt.add_weight_only_config(
                    regex=_exact(scope),
                    operation_name=qtyping.TFLOperationName(op),
                    num_bits=16,
                    algorithm_key=quantizer.AlgorithmName.FLOAT_CASTING,
                )
            else:
                self._no_quantize(qt, scope, op)
        if keep_input:
            self._no_quantize(qt, self.graph.input_scope, "INPUT")
        if keep_output:
            self._no_quantize(qt, self.graph.output_scope, "OUTPUT")
        return self._export(qt, out)

    def build_only(self, layer: Layer) -> Path:
        """Only ``layer`` in int8 (its inputs and output quantized), the rest float32."""
        from ai_edge_quantizer import qtyping, quantizer

        qt = quantizer.Quantizer(str(self.path))
        qt.add_static_config(
            regex=_exact(layer.name),
            operation_name=qtyping.TFLOperationName(layer.op),
            activation_num_bits=8,
            weight_num_bits=8,
        )
        return self._export(qt, None)

    @staticmethod
    def _no_quantize(qt: Any, scope: str, op: str) -> None:
        from ai_edge_quantizer import qtyping, quantizer

        qt.update_quantization_recipe(
            regex=_exact(scope),
            operation_name=qtyping.TFLOperationName(op),
            algorithm_key=quantizer.AlgorithmName.NO_QUANTIZE,
        )

    def _export(self, qt: Any, out: Path | None) -> Path:
        if out is None:
            self._n += 1
            out = self.out_dir / f"candidate_{self._n}.tflite"
        with _quiet_native_logs():
            qt.quantize(self.qsvs, enable_progress_report=False).export_model(
                str(out), overwrite=True
            )
        return out


@step("tflite_mixed", accepts=("tflite",), produces="tflite", params=TfliteMixedParams)
def tflite_mixed(stage: Stage, params: TfliteMixedParams, ctx: BuildContext) -> Stage:
    """LiteRT mixed precision per layer: full-integer int8 except the chosen layers,
    which stay float32 (``high_precision: fp32``, the default) or keep float16 weights
    with float32 compute (``fp16``).

    Params: ``select`` (``first_last``, the default; ``patterns`` with ``patterns``,
    regexes on the op scope; ``sensitivity``: keep the most sensitive layers until
    the accuracy drop on validation data is within ``accuracy_budget_pp``, default
    0.5, with ``validation_samples``, 512), ``calibration_samples`` (256),
    ``high_precision`` (``fp32``, the default, or ``fp16``).
    Meta ``mixed_precision``: every layer with its precision, why each kept layer is
    kept, and with ``sensitivity`` the per-layer drops and the search.
    """
    assert stage.path is not None
    data = ctx.dataset(stage)
    calib = data.calibration_x[: params.calibration_samples]
    if len(calib) == 0:
        raise BuildError("tflite_mixed: the calibration split is empty")
    work = ctx.out_dir / "candidates"
    work.mkdir(exist_ok=True)
    mixer = _TfliteMixer(stage.path, calib, work, params.high_precision)
    layers = mixer.graph.layers
    kept, reasons = select_layers(layers, params)

    sensitivity = None
    if params.select == "sensitivity":
        kept, sensitivity = _by_sensitivity(
            mixer, layers, params, data, stage.path, tflite_logits, reasons
        )

    out = mixer.build_except(kept, ctx.out_dir / _output_name(kept, "tflite"))
    shutil.rmtree(work)
    tflite_logits(out, data.calibration_x[:1])  # the runtime loads and runs it
    high = "fp16 weights" if params.high_precision == "fp16" else "float32"
    info = _describe(layers, kept, reasons, high, sensitivity)
    info["high_precision"] = params.high_precision
    description = (
        f"mixed int8 / {high}: {len(kept)} of {len(layers)} layers in {high} "
        f"({', '.join(layer.label for layer in kept) or 'none'}), the rest full integer int8"
    )
    return _with_mixed(stage, out, description, info)


def _output_name(kept: list[Layer], fmt: str) -> str:
    """The built file's name. With no layer kept (sensitivity found full int8 within the
    budget) the model is, byte for byte, the one ``tflite_int8_full`` / ``onnx_int8_static``
    build with the same calibration, so it gets their file name: the artifact cache keeps
    one file per content and does not find a content stored under two names."""
    if kept:
        return f"model_mixed.{fmt}"
    return "model_int8_full.tflite" if fmt == "tflite" else "model_int8.onnx"


def _describe(
    layers: list[Layer],
    kept: list[Layer],
    reasons: dict[str, list[str]],
    high: str,
    sensitivity: dict[str, Any] | None,
) -> dict[str, Any]:
    return {
        "layers": [
            {
                "layer": layer.label,
                "name": layer.name,
                "op": layer.op,
                "weights": layer.weights,
                "precision": high if layer in kept else "int8",
                "why": reasons.get(layer.name, []),
            }
            for layer in layers
        ],
        "kept": [layer.label for layer in kept],
        "sensitivity": sensitivity,
    }


def _with_mixed(stage: Stage, path: Path, description: str, info: dict[str, Any]) -> Stage:
    from dataclasses import replace

    meta = {**stage.meta, "quantization": description, "mixed_precision": info}
    return replace(stage, path=path, meta=meta)


# --------------------------------------------------------------------------- ONNX
def _onnx_layers(path: Path) -> list[Layer]:
    import onnx

    model = onnx.load(str(path))
    initializers = {init.name: init for init in model.graph.initializer}
    layers = []
    for i, node in enumerate(model.graph.node):
        if node.op_type not in ONNX_WEIGHTED_OPS:
            continue
        weight = next((initializers[n] for n in node.input[1:2] if n in initializers), None)
        if weight is None:
            continue
        if not node.name:
            raise BuildError(f"onnx_mixed: node {i} ({node.op_type}) has no name to address it")
        layers.append(Layer(i, node.op_type, node.name, int(np.prod(weight.dims))))
    if not layers:
        raise BuildError("onnx_mixed: the model has no Conv, Gemm or MatMul with weights")
    return layers


class _OnnxMixer:
    """int8 QDQ models with chosen nodes quantized, from one pre-processed model."""

    def __init__(self, path: Path, calib: np.ndarray, out_dir: Path, per_channel: bool) -> None:
        from onnxruntime.quantization.shape_inference import quant_pre_process

        self.out_dir = out_dir
        self.calib = calib
        self.per_channel = per_channel
        self.pre = out_dir / "preprocessed.onnx"
        quant_pre_process(str(path), str(self.pre))
        self.layers = _onnx_layers(self.pre)
        self._n = 0

    def _quantize(self, out: Path | None, **selection: Any) -> Path:
        from onnxruntime.quantization import (
            CalibrationDataReader,
            QuantFormat,
            QuantType,
            quantize_static,
        )

        calib = self.calib

        class Reader(CalibrationDataReader):
            def __init__(self) -> None:
                self._it = iter({"input": calib[i : i + 1]} for i in range(len(calib)))

            def get_next(self) -> dict[str, np.ndarray] | None:
                return next(self._it, None)

        if out is None:
            self._n += 1
            out = self.out_dir / f"candidate_{self._n}.onnx"
        # The same settings as onnx_int8_static, so that the two compare.
        quantize_static(
            str(self.pre),
            str(out),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=self.per_channel,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            **selection,
        )
        return out

    def build_except(self, kept: list[Layer], out: Path | None = None) -> Path:
        return self._quantize(out, nodes_to_exclude=[layer.name for layer in kept])

    def build_only(self, layer: Layer) -> Path:
        return self._quantize(None, nodes_to_quantize=[layer.name])


@step("onnx_mixed", accepts=("onnx",), produces="onnx", params=OnnxMixedParams)
def onnx_mixed(stage: Stage, params: OnnxMixedParams, ctx: BuildContext) -> Stage:
    """ONNX mixed precision per node: int8 static QDQ (as ``onnx_int8_static``)
    except the chosen Conv/Gemm/MatMul nodes, which stay float32 (onnxruntime's
    ``nodes_to_exclude``).

    Params: ``select`` (``first_last``, the default; ``patterns`` with ``patterns``,
    regexes on node names such as ``/0/Conv``; ``sensitivity`` with
    ``accuracy_budget_pp``, 0.5, and ``validation_samples``, 512),
    ``calibration_samples`` (256), ``per_channel`` (true).
    Meta ``mixed_precision`` as for ``tflite_mixed``.
    """
    assert stage.path is not None
    data = ctx.dataset(stage)
    calib = data.calibration_x[: params.calibration_samples]
    if len(calib) == 0:
        raise BuildError("onnx_mixed: the calibration split is empty")
    work = ctx.out_dir / "candidates"
    work.mkdir(exist_ok=True)
    mixer = _OnnxMixer(stage.path, calib, work, params.per_channel)
    layers = mixer.layers
    kept, reasons = select_layers(layers, params)

    sensitivity = None
    if params.select == "sensitivity":
        kept, sensitivity = _by_sensitivity(
            mixer, layers, params, data, stage.path, onnx_logits, reasons
        )

    out = mixer.build_except(kept, ctx.out_dir / _output_name(kept, "onnx"))
    shutil.rmtree(work)
    onnx_logits(out, data.calibration_x[:1])  # the runtime loads and runs it
    info = _describe(layers, kept, reasons, "float32", sensitivity)
    info["per_channel"] = params.per_channel
    description = (
        f"mixed int8 QDQ / float32: {len(kept)} of {len(layers)} nodes kept float32 "
        f"({', '.join(layer.name for layer in kept) or 'none'})"
    )
    return _with_mixed(stage, out, description, info)
