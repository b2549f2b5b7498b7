"""Compression steps (pruning, low rank, distillation) and the analysis API, on the
real digits model: what each step claims it did is checked against the model and
the exported file."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from suites.analysis import describe_file, torch_stats
from suites.datasets import Dataset, load_dataset
from suites.errors import BuildError
from suites.recipes import BUILDERS, Stage, run_chain
from suites.schema import VariantSpec

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def base() -> Stage:
    return BUILDERS["digits_cnn"]({"seed": 0, "epochs": 15})


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits")


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("compression")


def chain(stage: Stage, name: str, recipe: list[Any], out: Path) -> Stage:
    return run_chain(stage, VariantSpec(name=name, recipe=recipe), out / name)


def ort_outputs(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: x[i : i + 1]})[0] for i in range(len(x))])


def tflite_outputs(path: Path, x: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path), num_threads=1)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]["index"]
    outp = interp.get_output_details()[0]["index"]
    outs = []
    for i in range(len(x)):
        interp.set_tensor(inp, x[i : i + 1])
        interp.invoke()
        outs.append(interp.get_tensor(outp).copy())
    return np.concatenate(outs)


def top1(logits: np.ndarray, y: np.ndarray) -> float:
    return float((logits.argmax(1) == y).mean())


@pytest.fixture(scope="module")
def dense_onnx(base: Stage, out: Path) -> Stage:
    return chain(base, "dense-onnx", ["export_onnx"], out)


@pytest.fixture(scope="module")
def pruned(base: Stage, out: Path) -> Stage:
    return chain(
        base,
        "pruned",
        [{"prune_unstructured": {"sparsity": 0.5}}, {"finetune": {"epochs": 3}}],
        out,
    )


# --------------------------------------------------------------------------- unstructured
def test_unstructured_50_percent(
    base: Stage, pruned: Stage, dense_onnx: Stage, digits: Dataset, out: Path
) -> None:
    stats = torch_stats(pruned.module, pruned.example_input)
    kept = stats["prunable_nonzero_params"] / stats["prunable_params"]
    assert kept == pytest.approx(0.5, abs=0.02)
    assert stats["params"] == torch_stats(base.module, base.example_input)["params"]

    pruned_onnx = chain(pruned, "pruned-onnx", ["export_onnx"], out)
    dense = describe_file(dense_onnx.path, "onnx")
    sparse = describe_file(pruned_onnx.path, "onnx")
    print(f"\ntorch (pruned): {stats}\nonnx dense: {dense}\nonnx pruned: {sparse}")
    assert sparse["error"] is None and dense["error"] is None
    # The file holds exactly what torch holds.
    assert sparse["params"] == stats["params"]
    assert sparse["nonzero_params"] == stats["nonzero_params"]
    assert dense["nonzero_params"] == dense["params"] == stats["params"]
    # Zeros are stored as zeros: same raw size, much smaller once compressed.
    assert abs(sparse["size_bytes"] - dense["size_bytes"]) <= 0.01 * dense["size_bytes"]
    assert sparse["zstd_size_bytes"] < 0.8 * dense["zstd_size_bytes"]
    # Dense MACs do not see unstructured sparsity.
    assert sparse["macs"] == dense["macs"] == stats["macs"]

    base_acc = top1(ort_outputs(dense_onnx.path, digits.test_x), digits.test_y)
    acc = top1(ort_outputs(pruned_onnx.path, digits.test_x), digits.test_y)
    print(f"accuracy: base {base_acc:.4f}, pruned 50% + finetune {acc:.4f}")
    assert acc >= base_acc - 0.03
    assert pruned.meta["techniques"] == [
        "prune 50% (global, unstructured)",
        "finetune 3 epochs (sparsity kept)",
    ]
    assert pruned.meta["pruning"]["sparsity"] == pytest.approx(0.5, abs=1e-3)


def test_base_model_is_not_modified(base: Stage, pruned: Stage) -> None:
    stats = torch_stats(base.module, base.example_input)
    assert stats["nonzero_params"] == stats["params"]
    assert "techniques" not in base.meta


def test_layer_scope_and_iterations_keep_the_mask(base: Stage, out: Path) -> None:
    params = {"sparsity": 0.7, "scope": "layer", "iterations": 2, "finetune_epochs": 1}
    stage = chain(base, "pruned-layer", [{"prune_unstructured": params}], out)
    layers = stage.meta["pruning"]["layers"]
    assert all(s == pytest.approx(0.7, abs=0.01) for s in layers.values()), layers
    # Fine-tuning after the last step kept the zeros (and left no masks or hooks).
    from torch import nn

    for m in stage.module.modules():
        assert not m._forward_pre_hooks and not m._forward_hooks
        if isinstance(m, nn.Conv2d | nn.Linear):
            assert "weight_orig" not in dict(m.named_parameters())
    again = chain(stage, "pruned-layer-ft", [{"finetune": {"epochs": 1}}], out)
    assert (
        torch_stats(again.module, again.example_input)["nonzero_params"]
        == (torch_stats(stage.module, stage.example_input)["nonzero_params"])
    )


# --------------------------------------------------------------------------- structured
def test_structured_pruning_removes_channels(base: Stage, digits: Dataset, out: Path) -> None:
    stage = chain(
        base, "channels", [{"prune_structured": {"ratio": 0.5, "finetune_epochs": 3}}], out
    )
    before = torch_stats(base.module, base.example_input)
    after = torch_stats(stage.module, stage.example_input)
    print(
        f"\nstructured 50%: params {before['params']} -> {after['params']}, "
        f"MACs {before['macs']} -> {after['macs']}, channels {stage.meta['pruning']['channels']}"
    )
    assert after["params"] < before["params"]
    assert after["macs"] < before["macs"]
    assert stage.meta["pruning"]["channels"] == {"0": [16, 8], "2": [32, 16]}

    onnx_stage = chain(stage, "channels-onnx", ["export_onnx"], out)
    described = describe_file(onnx_stage.path, "onnx")
    assert described["params"] == after["params"]
    assert described["macs"] == after["macs"]
    logits = ort_outputs(onnx_stage.path, digits.test_x)
    assert logits.shape == (len(digits.test_x), 10)
    onnx_acc = top1(logits, digits.test_y)

    tfl = chain(stage, "channels-tflite", ["export_tflite"], out)
    tfl_described = describe_file(tfl.path, "tflite")
    assert tfl_described["params"] == after["params"]
    assert tfl_described["macs"] == after["macs"]
    tfl_logits = tflite_outputs(tfl.path, digits.test_x)
    assert tfl_logits.shape == (len(digits.test_x), 10)
    np.testing.assert_allclose(tfl_logits, logits, rtol=1e-3, atol=1e-3)
    print(f"onnx {described}\ntflite {tfl_described}\naccuracy onnx {onnx_acc:.4f}")
    assert onnx_acc >= 0.9


def test_structured_pruning_refuses_what_it_cannot_rewire(base: Stage, tmp_path: Path) -> None:
    from torch import nn

    odd = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.Upsample(scale_factor=2), nn.Conv2d(4, 4, 3)
    )
    stage = Stage("torch", odd, base.example_input, dataset="digits")
    with pytest.raises(BuildError, match="Upsample"):
        chain(stage, "odd", ["prune_structured"], tmp_path)

    class NotSequential(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3)

        def forward(self, x: Any) -> Any:
            return self.conv(x)

    stage = Stage("torch", NotSequential(), base.example_input, dataset="digits")
    with pytest.raises(BuildError, match="nn.Sequential"):
        chain(stage, "not-seq", ["prune_structured"], tmp_path)


# --------------------------------------------------------------------------- low rank
def test_low_rank_factorizes_to_the_requested_rank(base: Stage, out: Path) -> None:
    stage = chain(base, "lowrank", [{"low_rank": {"rank_ratio": 0.25}}], out)
    r = math.ceil(0.25 * min(512, 64))
    first, second = stage.module[6]
    assert tuple(first.weight.shape) == (r, 512) and first.bias is None
    assert tuple(second.weight.shape) == (64, r) and second.bias is not None
    assert stage.meta["low_rank"]["layers"]["6"]["rank"] == r
    assert "8" in stage.meta["low_rank"]["skipped"]  # Linear(64, 10): below min_features
    before = torch_stats(base.module, base.example_input)
    after = torch_stats(stage.module, stage.example_input)
    print(
        f"\nlow rank r={r}: params {before['params']} -> {after['params']}, "
        f"MACs {before['macs']} -> {after['macs']}, acc {stage.meta['host_accuracy']:.4f}"
    )
    assert after["params"] == before["params"] - 512 * 64 + r * (512 + 64)
    assert after["macs"] < before["macs"]
    onnx_stage = chain(stage, "lowrank-onnx", ["export_onnx"], out)
    assert describe_file(onnx_stage.path, "onnx")["params"] == after["params"]


def test_low_rank_energy_picks_the_smallest_rank(base: Stage, out: Path) -> None:
    import torch

    stage = chain(base, "lowrank-energy", [{"low_rank": {"energy": 0.9}}], out)
    r = stage.meta["low_rank"]["layers"]["6"]["rank"]
    assert tuple(stage.module[6][0].weight.shape) == (r, 512)
    s = torch.linalg.svdvals(base.module[6].weight.detach().double())
    energy = torch.cumsum(s**2, 0) / (s**2).sum()
    assert energy[r - 1] >= 0.9 > energy[r - 2]


# --------------------------------------------------------------------------- distillation
def test_distillation_records_kd_and_scratch(base: Stage, out: Path) -> None:
    stage = chain(base, "kd", [{"distill": {"epochs": 15}}], out)
    info = stage.meta["distill"]
    teacher = torch_stats(base.module, base.example_input)["params"]
    student = torch_stats(stage.module, stage.example_input)["params"]
    print(f"\ndistill: teacher {teacher} params, student {student}: {info}")
    assert student < teacher
    for key in ("student_kd_accuracy", "student_scratch_accuracy", "teacher_accuracy"):
        assert isinstance(info[key], float) and 0.0 <= info[key] <= 1.0
    assert info["gain"] == pytest.approx(
        info["student_kd_accuracy"] - info["student_scratch_accuracy"]
    )
    assert stage.meta["host_accuracy"] == info["student_kd_accuracy"]  # the output is the KD one
    assert info["student_kd_accuracy"] > 0.5  # it learned something (not: KD beats scratch)


# --------------------------------------------------------------------------- int8 chain
def test_prune_finetune_int8_chain(base: Stage, digits: Dataset, out: Path) -> None:
    recipe = [
        {"prune_unstructured": {"sparsity": 0.5}},
        {"finetune": {"epochs": 3}},
        "export_onnx",
        {"onnx_int8_static": {"per_channel": True}},
    ]
    stage = chain(base, "pruned-int8", recipe, out)
    acc = top1(ort_outputs(stage.path, digits.test_x), digits.test_y)
    described = describe_file(stage.path, "onnx")
    print(f"\npruned 50% + int8: accuracy {acc:.4f}, {described}")
    assert acc >= 0.9
    assert described["params_by_dtype"]["int8"] == 38160  # the quantized Conv/Linear weights
    assert described["nonzero_params"] <= 0.51 * described["params"]


def test_describe_file_unknown_format_never_raises(dense_onnx: Stage, tmp_path: Path) -> None:
    got = describe_file(dense_onnx.path, "tensorrt")
    assert got["size_bytes"] > 0 and got["params"] is None and got["macs"] is None
    assert "unknown model format" in got["error"]
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a model")
    got = describe_file(junk, "tflite")
    assert got["params"] is None and got["error"]
    assert describe_file(tmp_path / "missing.onnx", "onnx")["size_bytes"] is None
