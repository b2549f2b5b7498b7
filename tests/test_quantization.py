"""Quantization steps and the MobileNetV3-Small builder: real outcomes.

The digits CNN is trained once per module (seconds); every variant is built
through ``run_chain`` from an export step, as a suite would build it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from suites.datasets import load_dataset
from suites.errors import BuildError
from suites.recipes import BUILDERS, STEPS, Stage, check_chain, run_chain
from suites.schema import VariantSpec, bundled_suite, load_suite

NEW_STEPS = ("onnx_fp16", "onnx_int8_dynamic", "tflite_fp16", "tflite_int8_full")


@pytest.fixture(scope="module")
def digits() -> Stage:
    return BUILDERS["digits_cnn"]({"seed": 0, "epochs": 15})


@pytest.fixture(scope="module")
def build(
    digits: Stage, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str, list[Any]], Stage]:
    """Build a digits variant from its recipe (once per recipe in this module)."""
    built: dict[str, Stage] = {}

    def make(name: str, recipe: list[Any]) -> Stage:
        if name not in built:
            variant = VariantSpec(name=name, recipe=recipe)
            assert check_chain("torch", variant) in ("onnx", "tflite")
            built[name] = run_chain(digits, variant, tmp_path_factory.mktemp(name))
        return built[name]

    return make


def _size(stage: Stage) -> int:
    assert stage.path is not None
    return stage.path.stat().st_size


def _onnx_predict(stage: Stage, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(stage.path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: x[i : i + 1]})[0] for i in range(len(x))])


def _tflite_predict(stage: Stage, x: np.ndarray) -> np.ndarray:
    """Outputs as float32; int8 inputs/outputs are (de)quantized with their own
    scale and zero point, as a device would."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(stage.path))
    interp.allocate_tensors()
    (inp,), (out,) = interp.get_input_details(), interp.get_output_details()
    ys = []
    for sample in x[:, None]:
        if inp["dtype"] == np.int8:
            scale, zero = inp["quantization"]
            sample = np.clip(np.round(sample / scale + zero), -128, 127).astype(np.int8)
        interp.set_tensor(inp["index"], sample)
        interp.invoke()
        y = interp.get_tensor(out["index"])
        if out["dtype"] == np.int8:
            scale, zero = out["quantization"]
            y = (y.astype(np.float32) - zero) * scale
        ys.append(y)
    return np.concatenate(ys)


def _accuracy(logits: np.ndarray) -> float:
    return float((logits.argmax(1) == load_dataset("digits").test_y).mean())


def test_steps_are_registered_and_documented() -> None:
    for name in NEW_STEPS:
        info = STEPS[name]
        assert info.doc, name
        assert info.accepts == (info.produces,)


# --------------------------------------------------------------------------- ONNX
def test_onnx_fp16_halves_the_file_and_agrees_with_fp32(build: Callable[..., Stage]) -> None:
    fp32 = build("fp32-onnx", ["export_onnx"])
    fp16 = build("fp16-onnx", ["export_onnx", "onnx_fp16"])
    ratio = _size(fp16) / _size(fp32)
    assert 0.4 < ratio < 0.6, ratio
    assert "fp16" in fp16.meta["quantization"]

    import onnxruntime as ort

    session = ort.InferenceSession(str(fp16.path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].type == "tensor(float)"  # float32 I/O kept
    assert session.get_outputs()[0].type == "tensor(float)"

    x = load_dataset("digits").test_x
    agree = (_onnx_predict(fp32, x).argmax(1) == _onnx_predict(fp16, x).argmax(1)).mean()
    assert agree >= 0.99, agree


@pytest.mark.parametrize("per_channel", [False, True])
def test_onnx_int8_dynamic_is_3x_smaller(build: Callable[..., Stage], per_channel: bool) -> None:
    fp32 = build("fp32-onnx", ["export_onnx"])
    int8 = build(
        f"int8dyn-onnx-{per_channel}",
        ["export_onnx", {"onnx_int8_dynamic": {"per_channel": per_channel}}],
    )
    assert _size(fp32) / _size(int8) >= 3
    assert ("per-channel" if per_channel else "per-tensor") in int8.meta["quantization"]
    x = load_dataset("digits").test_x
    assert _accuracy(_onnx_predict(int8, x)) >= 0.97 * _accuracy(_onnx_predict(fp32, x))


# --------------------------------------------------------------------------- LiteRT
def test_tflite_fp16_halves_the_file(build: Callable[..., Stage]) -> None:
    fp32 = build("fp32-tflite", ["export_tflite"])
    fp16 = build("fp16-tflite", ["export_tflite", "tflite_fp16"])
    ratio = _size(fp16) / _size(fp32)
    assert 0.4 < ratio < 0.6, ratio
    x = load_dataset("digits").test_x
    agree = (_tflite_predict(fp32, x).argmax(1) == _tflite_predict(fp16, x).argmax(1)).mean()
    assert agree >= 0.99, agree


def test_tflite_int8_full_has_int8_io_and_keeps_accuracy(build: Callable[..., Stage]) -> None:
    from ai_edge_litert.interpreter import Interpreter

    fp32 = build("fp32-tflite", ["export_tflite"])
    int8 = build(
        "int8-tflite", ["export_tflite", {"tflite_int8_full": {"calibration_samples": 256}}]
    )
    interp = Interpreter(model_path=str(int8.path))
    for detail in (*interp.get_input_details(), *interp.get_output_details()):
        assert detail["dtype"] == np.int8, detail
        scale, _zero = detail["quantization"]
        assert scale > 0
    # Full integer: no float tensor left anywhere (int32 only for biases/shapes).
    interp.allocate_tensors()
    dtypes = {np.dtype(t["dtype"]).name for t in interp.get_tensor_details()}
    assert dtypes <= {"int8", "int32"}, dtypes
    assert "int8 full integer" in int8.meta["quantization"]
    assert _size(fp32) / _size(int8) >= 3

    x = load_dataset("digits").test_x
    fp32_acc = _accuracy(_tflite_predict(fp32, x))
    assert fp32_acc > 0.9
    assert _accuracy(_tflite_predict(int8, x)) >= 0.97 * fp32_acc


def test_tflite_int8_full_needs_a_dataset(build: Callable[..., Stage], tmp_path: Path) -> None:
    fp32 = build("fp32-tflite", ["export_tflite"])
    no_data = replace(fp32, dataset=None)
    with pytest.raises(BuildError, match="calibration data"):
        run_chain(no_data, VariantSpec(name="v", recipe=["tflite_int8_full"]), tmp_path)


# --------------------------------------------------------------------------- MobileNetV3
def test_mobilenet_v3_small_matches_the_paper_size() -> None:
    stage = BUILDERS["mobilenet_v3_small"]({"resolution": 96})
    assert abs(stage.meta["params"] - 2_542_856) / 2_542_856 < 0.03  # paper: 2.5M
    assert stage.meta["accuracy_meaningful"] is False
    assert stage.dataset is None
    assert stage.example_input is not None
    assert stage.example_input.shape == (1, 3, 96, 96)
    assert stage.example_input.dtype == np.float32
    assert not stage.module.training


def test_mobilenet_v3_small_exports_to_onnx(tmp_path: Path) -> None:
    import onnxruntime as ort
    import torch

    stage = BUILDERS["mobilenet_v3_small"]({"resolution": 96, "num_classes": 10, "seed": 1})
    assert stage.example_input is not None
    with torch.no_grad():
        expected = stage.module(torch.from_numpy(stage.example_input)).numpy()
    assert expected.shape == (1, 10)
    assert np.abs(expected).max() > 1e-2  # logits at a realistic scale, not vanishing

    onnx = run_chain(stage, VariantSpec(name="v", recipe=["export_onnx"]), tmp_path / "fp32")
    session = ort.InferenceSession(str(onnx.path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": stage.example_input})[0]
    np.testing.assert_allclose(got, expected, atol=1e-4)

    # The ONNX steps of the mobilenet suite build and run on it as well.
    for name in ("onnx_fp16", "onnx_int8_dynamic"):
        out = run_chain(stage, VariantSpec(name="v", recipe=["export_onnx", name]), tmp_path / name)
        session = ort.InferenceSession(str(out.path), providers=["CPUExecutionProvider"])
        assert session.run(None, {"input": stage.example_input})[0].shape == (1, 10)


def test_mobilenet_suite_is_valid() -> None:
    suite = load_suite(bundled_suite("mobilenet"))
    assert suite.accuracy is None
    assert [m.builder for m in suite.models] == ["mobilenet_v3_small"]
    assert {v.name for v in suite.variants} == {
        "fp32-onnx",
        "fp16-onnx",
        "int8dyn-onnx",
        "fp32-tflite",
        "fp16-tflite",
        "int8dr-tflite",
    }
    for variant in suite.variants:
        assert check_chain("torch", variant) in ("onnx", "tflite")
