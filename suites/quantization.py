"""Recipe steps: quantization (see suites/recipes.py for the step registry).

Float16 and int8 variants of exported models, for onnxruntime (``onnx_fp16``,
``onnx_int8_dynamic``) and LiteRT (``tflite_fp16``, ``tflite_int8_full``). Each
step chains after an export step, e.g. ``[export_onnx, onnx_fp16]`` or
``[export_tflite, tflite_int8_full]``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
from pydantic import Field

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
