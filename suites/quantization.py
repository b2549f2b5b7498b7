"""Recipe steps: quantization (see suites/recipes.py for the step registry).

Float16, int8, int4 and int16x8 variants of exported models, for onnxruntime
(``onnx_fp16``, ``onnx_int8_dynamic``) and LiteRT (``tflite_fp16``,
``tflite_int8_full``, ``tflite_int4_weights``, ``tflite_int16x8``). Each step
chains after an export step, e.g. ``[export_onnx, onnx_fp16]`` or
``[export_tflite, tflite_int8_full]``. Mixed precision per layer is in
suites/mixed_precision.py, quantization-aware training in suites/qat.py.
"""

from __future__ import annotations

from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from suites.errors import BuildError
from suites.recipes import BuildContext, NoParams, Stage, StepParams, _quiet_native_logs, step


def _with_quantization(stage: Stage, path: Path, description: str) -> Stage:
    return replace(stage, path=path, meta={**stage.meta, "quantization": description})


def _onnx_smoke_run(path: Path, example_input: np.ndarray | None) -> None:
    """Load the model in onnxruntime's CPU provider (and run it once if we have an
    input), so that a model the runtime cannot execute fails at build time."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    if example_input is not None:
        session.run(None, {session.get_inputs()[0].name: example_input})


def onnx_logits(path: Path, x: np.ndarray) -> np.ndarray:
    """The model's first output for every sample of ``x`` (fed one at a time, batch 1),
    with onnxruntime's CPU provider on one thread."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: x[i : i + 1]})[0] for i in range(len(x))])


def tflite_logits(path: Path, x: np.ndarray) -> np.ndarray:
    """The model's first output as float32 for every sample of ``x`` (batch 1), with the
    LiteRT interpreter on one thread. A quantized input (int8, int16) is fed
    ``round(x / scale + zero_point)``, a quantized output is dequantized with its own
    scale and zero point, as the runner agent does."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path), num_threads=1)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    in_scale, in_zero = inp["quantization"]
    out_scale, out_zero = out["quantization"]
    in_dtype = np.dtype(inp["dtype"])
    ys = []
    for i in range(len(x)):
        sample = x[i : i + 1]
        if in_dtype.kind == "i" and in_scale:
            info = np.iinfo(in_dtype)
            q = np.round(sample.astype(np.float64) / in_scale + in_zero)
            sample = np.clip(q, info.min, info.max).astype(in_dtype)
        interp.set_tensor(inp["index"], sample.astype(in_dtype, copy=False))
        interp.invoke()
        y = interp.get_tensor(out["index"])
        if y.dtype.kind == "i" and out_scale:
            y = (y.astype(np.float32) - out_zero) * out_scale
        ys.append(y.astype(np.float32))
    return np.concatenate(ys)


def _tflite_smoke_run(path: Path) -> None:
    """Load the model in the LiteRT interpreter and run it once on zeros, so that a
    model the runtime cannot execute fails at build time."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path), num_threads=1)
    interp.allocate_tensors()
    for d in interp.get_input_details():
        interp.set_tensor(d["index"], np.zeros(d["shape"], dtype=d["dtype"]))
    interp.invoke()


def _tflite_calibration(
    stage: Stage, ctx: BuildContext, samples: int, step_name: str
) -> tuple[str, list[dict[str, np.ndarray]]]:
    """(signature, one feed per sample) of the calibration split for ai-edge-quantizer."""
    from ai_edge_litert.interpreter import Interpreter

    assert stage.path is not None
    calib = ctx.dataset(stage).calibration_x[:samples]
    if len(calib) == 0:
        raise BuildError(f"{step_name}: the calibration split is empty")
    with _quiet_native_logs():
        signatures = Interpreter(model_path=str(stage.path)).get_signature_list()
    if len(signatures) != 1:
        raise BuildError(f"{step_name}: expected one signature, got {list(signatures)}")
    ((signature, io),) = signatures.items()
    if len(io["inputs"]) != 1:
        raise BuildError(f"{step_name}: expected one input, got {io['inputs']}")
    name = io["inputs"][0]
    return signature, [{name: calib[i : i + 1]} for i in range(len(calib))]


# --------------------------------------------------------------------------- ONNX
@step("onnx_fp16", accepts=("onnx",), produces="onnx", params=NoParams)
def onnx_fp16(stage: Stage, params: NoParams, ctx: BuildContext) -> Stage:
    """ONNX float16: weights and activations in float16, model inputs and outputs
    kept float32 (Cast nodes at the boundary), so callers feed the same data.

    Uses onnxruntime's ``convert_float_to_float16`` (``keep_io_types=True``; ops
    on its default block list stay float32). The result is loaded and run once
    in onnxruntime's CPU provider at build time. Roughly halves the file size.
    """
    import onnx

    try:
        from onnxruntime.transformers.float16 import convert_float_to_float16
    except ImportError:  # older onnxruntime wheels: the same converter, packaged separately
        from onnxconverter_common.float16 import convert_float_to_float16

    assert stage.path is not None
    out = ctx.out_dir / "model_fp16.onnx"
    model = convert_float_to_float16(onnx.load(str(stage.path)), keep_io_types=True)
    onnx.save(model, str(out))
    _onnx_smoke_run(out, stage.example_input)
    return _with_quantization(stage, out, "fp16 weights and activations, float32 I/O")


class OnnxInt8DynamicParams(StepParams):
    per_channel: bool = False


@step("onnx_int8_dynamic", accepts=("onnx",), produces="onnx", params=OnnxInt8DynamicParams)
def onnx_int8_dynamic(stage: Stage, params: OnnxInt8DynamicParams, ctx: BuildContext) -> Stage:
    """ONNX dynamic quantization with onnxruntime: int8 (QInt8) weights, activations
    quantized to 8 bits at run time (MatMulInteger/ConvInteger), float32 I/O.
    No calibration data is needed.

    Params: ``per_channel`` (default false): one weight scale per output channel
    instead of one per tensor.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    assert stage.path is not None
    per_channel = params.per_channel
    out = ctx.out_dir / "model_int8_dynamic.onnx"
    quantize_dynamic(
        str(stage.path), str(out), per_channel=per_channel, weight_type=QuantType.QInt8
    )
    _onnx_smoke_run(out, stage.example_input)
    granularity = "per-channel" if per_channel else "per-tensor"
    return _with_quantization(stage, out, f"int8 dynamic ({granularity} int8 weights)")


# --------------------------------------------------------------------------- LiteRT
@step("tflite_fp16", accepts=("tflite",), produces="tflite", params=NoParams)
def tflite_fp16(stage: Stage, params: NoParams, ctx: BuildContext) -> Stage:
    """LiteRT float16 weights with ai-edge-quantizer (the ``float_casting``
    algorithm, weight-only, 16 bits): weights of FULLY_CONNECTED, CONV_2D,
    DEPTHWISE_CONV_2D, CONV_2D_TRANSPOSE and EMBEDDING_LOOKUP are stored as
    float16 and DEQUANTIZE ops turn them back to float32, so compute and I/O stay
    float32. Roughly halves the file size; accuracy is essentially unchanged.
    """
    from ai_edge_quantizer import qtyping, quantizer

    assert stage.path is not None
    out = ctx.out_dir / "model_fp16.tflite"
    with _quiet_native_logs():
        qt = quantizer.Quantizer(str(stage.path))
        qt.add_weight_only_config(
            regex=".*",
            operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
            num_bits=16,
            algorithm_key=quantizer.AlgorithmName.FLOAT_CASTING,
        )
        qt.quantize(enable_progress_report=False).export_model(str(out))
    return _with_quantization(stage, out, "fp16 weights (float32 compute and I/O)")


class TfliteInt8FullParams(StepParams):
    calibration_samples: int = Field(256, ge=1)


@step("tflite_int8_full", accepts=("tflite",), produces="tflite", params=TfliteInt8FullParams)
def tflite_int8_full(stage: Stage, params: TfliteInt8FullParams, ctx: BuildContext) -> Stage:
    """LiteRT full-integer int8: int8 weights (symmetric, per-channel) and int8
    activations (asymmetric, per-tensor), with **int8 model inputs and outputs**,
    as a microcontroller consumes it (feed ``round(x / scale + zero_point)``, read
    ``(y - zero_point) * scale`` with the input/output tensor's quantization).

    Uses ai-edge-quantizer's static recipe ``static_wi8_ai8`` calibrated on the
    dataset's calibration split. That recipe applies to every op, including the
    quantizer's INPUT and OUTPUT pseudo-ops, so the quantizer itself makes the
    graph's input and output tensors int8; no QUANTIZE/DEQUANTIZE is left at the
    boundary and no post-processing is needed. The step checks the result (int8
    input and output with a quantization scale) and fails otherwise.

    Params: ``calibration_samples`` (default 256), taken in order from the
    calibration split and fed one at a time (batch 1, the model's input shape).
    """
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_quantizer import quantizer, recipe

    assert stage.path is not None
    calib = ctx.dataset(stage).calibration_x[: params.calibration_samples]
    if len(calib) == 0:
        raise BuildError("tflite_int8_full: the calibration split is empty")
    out = ctx.out_dir / "model_int8_full.tflite"

    with _quiet_native_logs():
        signatures = Interpreter(model_path=str(stage.path)).get_signature_list()
        if len(signatures) != 1:
            raise BuildError(f"tflite_int8_full: expected one signature, got {list(signatures)}")
        ((signature, io),) = signatures.items()
        if len(io["inputs"]) != 1:
            raise BuildError(f"tflite_int8_full: expected one input, got {io['inputs']}")
        name = io["inputs"][0]
        qt = quantizer.Quantizer(str(stage.path))
        qt.load_quantization_recipe(recipe.static_wi8_ai8())
        qsvs = qt.calibrate({signature: [{name: calib[i : i + 1]} for i in range(len(calib))]})
        qt.quantize(qsvs, enable_progress_report=False).export_model(str(out))

        interp = Interpreter(model_path=str(out))
    for kind, details in (
        ("input", interp.get_input_details()),
        ("output", interp.get_output_details()),
    ):
        for d in details:
            scale, _ = d["quantization"]
            if d["dtype"] != np.int8 or not scale:
                raise BuildError(
                    f"tflite_int8_full: model {kind} {d['name']!r} is {np.dtype(d['dtype']).name}"
                    " without int8 quantization; the quantizer did not produce int8 I/O"
                )
    return _with_quantization(
        stage,
        out,
        f"int8 full integer (int8 weights, activations and I/O), {len(calib)} calibration samples",
    )


class TfliteInt4WeightsParams(StepParams):
    mode: Literal["weight_only", "dynamic"] = "weight_only"
    # 0: one scale per output channel; else one per block of this many input elements
    # (the block sizes of ai-edge-quantizer's QuantGranularity.BLOCKWISE_*).
    block_size: Literal[0, 32, 64, 128, 256] = 0

    @model_validator(mode="after")
    def _blockwise_is_dynamic(self) -> TfliteInt4WeightsParams:
        if self.block_size and self.mode != "dynamic":
            raise PydanticCustomError(
                "blockwise_weight_only",
                "block_size needs mode: dynamic (ai-edge-quantizer 0.10 offers blockwise int4 "
                "only for dynamic quantization); use block_size: 0 with weight_only",
            )
        return self


@step("tflite_int4_weights", accepts=("tflite",), produces="tflite", params=TfliteInt4WeightsParams)
def tflite_int4_weights(stage: Stage, params: TfliteInt4WeightsParams, ctx: BuildContext) -> Stage:
    """LiteRT int4 weights with ai-edge-quantizer (symmetric, packed two per byte).

    ``mode: weight_only`` (default): int4 weights turned back to float32 by DEQUANTIZE
    ops, float compute (``weight_only_wi4_afp32``); ``mode: dynamic``: int4 weights,
    activations quantized at run time for integer compute (``dynamic_wi4_afp32``).
    ``block_size``: 0 (default) is one scale per output channel; 32/64/128/256 are
    blockwise scales (dynamic only, and only for FULLY_CONNECTED and EMBEDDING_LOOKUP
    in ai-edge-quantizer 0.10: the convolutions keep per-channel int4 then).
    Ops that int4 does not cover in ai-edge-quantizer (e.g. DEPTHWISE_CONV_2D) stay
    float32; ``meta["int4"]`` says which ops were quantized. The result is loaded and
    run once at build time.
    """
    from ai_edge_quantizer import qtyping, quantizer

    assert stage.path is not None
    out = ctx.out_dir / "model_int4.tflite"
    with _quiet_native_logs():
        qt = quantizer.Quantizer(str(stage.path))
        add = qt.add_dynamic_config if params.mode == "dynamic" else qt.add_weight_only_config
        # Per-channel int4 wherever ai-edge-quantizer supports it...
        add(regex=".*", operation_name=qtyping.TFLOperationName.ALL_SUPPORTED, num_bits=4)
        if params.block_size:
            # ...then blockwise where it offers blockwise (later entries take precedence;
            # an op that does not support it keeps the per-channel entry).
            granularity = qtyping.QuantGranularity(f"BLOCKWISE_{params.block_size}")
            for op in (
                qtyping.TFLOperationName.FULLY_CONNECTED,
                qtyping.TFLOperationName.EMBEDDING_LOOKUP,
            ):
                qt.add_dynamic_config(
                    regex=".*", operation_name=op, num_bits=4, granularity=granularity
                )
        qt.quantize(enable_progress_report=False).export_model(str(out))
    _tflite_smoke_run(out)
    quantized = _int4_ops(out)
    if not quantized:
        raise BuildError("tflite_int4_weights: no op of the model got int4 weights")
    granularity_text = f"blockwise {params.block_size}" if params.block_size else "per-channel"
    what = "weight-only" if params.mode == "weight_only" else "dynamic"
    stage = _with_quantization(
        stage, out, f"int4 {what} ({granularity_text} int4 weights, float32 I/O)"
    )
    info = {"mode": params.mode, "block_size": params.block_size, "quantized_ops": quantized}
    return replace(stage, meta={**stage.meta, "int4": info})


@cache
def _builtin_op_names() -> dict[int, str]:
    from ai_edge_quantizer import qtyping

    ops = qtyping.BuiltinOperator
    return {code: name for name, code in vars(ops).items() if not name.startswith("_")}


def tflite_op_name(model: Any, op: Any) -> str:
    """The builtin name (``CONV_2D``...) of an operator of a flatbuffer ``ModelT``."""
    code = model.operatorCodes[op.opcodeIndex].builtinCode
    return _builtin_op_names().get(code, f"BUILTIN_{code}")


def _int4_ops(path: Path) -> list[str]:
    """Ops of a LiteRT model that read an int4 constant (directly or via DEQUANTIZE)."""
    from ai_edge_quantizer.utils import tfl_flatbuffer_utils as tfu

    model = tfu.read_model(Path(path))
    graph = model.subgraphs[0]
    int4 = {i for i, t in enumerate(graph.tensors) if tfu.TENSOR_CODE_TO_TYPE[t.type] == "INT4"}
    dequantized = set()
    names = []
    for op in graph.operators:
        name = tflite_op_name(model, op)
        if name == "DEQUANTIZE" and op.inputs[0] in int4:
            dequantized.update(op.outputs)
        elif any(i in int4 or i in dequantized for i in op.inputs):
            names.append(name)
    return names


class TfliteInt16x8Params(StepParams):
    calibration_samples: int = Field(256, ge=1)


@step("tflite_int16x8", accepts=("tflite",), produces="tflite", params=TfliteInt16x8Params)
def tflite_int16x8(stage: Stage, params: TfliteInt16x8Params, ctx: BuildContext) -> Stage:
    """LiteRT 16x8 integer quantization: int16 activations (symmetric, per tensor) and
    int8 weights (symmetric, per channel), with **int16 model inputs and outputs**
    (feed ``round(x / scale)``; zero point 0), calibrated on the calibration split.

    Uses ai-edge-quantizer's ``static_wi8_ai16`` recipe. More accurate than int8
    activations where activation ranges are wide, at about the int8 file size; LiteRT
    runs it with its reference int16 kernels (XNNPACK does not take int16), so it is
    usually slower than int8 on CPUs. The result is loaded and run once at build time.
    Params: ``calibration_samples`` (256).
    """
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_quantizer import quantizer, recipe

    signature, feeds = _tflite_calibration(stage, ctx, params.calibration_samples, "tflite_int16x8")
    out = ctx.out_dir / "model_int16x8.tflite"
    with _quiet_native_logs():
        qt = quantizer.Quantizer(str(stage.path))
        qt.load_quantization_recipe(recipe.static_wi8_ai16())
        qsvs = qt.calibrate({signature: feeds})
        qt.quantize(qsvs, enable_progress_report=False).export_model(str(out))
        interp = Interpreter(model_path=str(out))
    for kind, details in (
        ("input", interp.get_input_details()),
        ("output", interp.get_output_details()),
    ):
        for d in details:
            if d["dtype"] != np.int16 or not d["quantization"][0]:
                raise BuildError(
                    f"tflite_int16x8: model {kind} {d['name']!r} is "
                    f"{np.dtype(d['dtype']).name} without int16 quantization"
                )
    _tflite_smoke_run(out)
    return _with_quantization(
        stage,
        out,
        f"int16x8 (int16 activations and I/O, int8 weights), {len(feeds)} calibration samples",
    )
