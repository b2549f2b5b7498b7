"""QAT, mixed precision, int4, int16x8 and the identity step, on the real digits model.

The bundled ``compression`` suite is built here as ``edgebench variants`` builds it
(its own recipes through ``run_chain``, chain prefixes shared), from one digits
model trained once for this module; every check runs the built file in its
runtime (onnxruntime, the LiteRT interpreter) on the test split.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from suites.datasets import Dataset, load_dataset
from suites.errors import SuiteError
from suites.mixed_precision import Layer, Scores, sensitivity_search
from suites.recipes import BUILDERS, STEPS, NoParams, Stage, StepParams, check_chain, run_chain
from suites.schema import Suite, VariantSpec, bundled_suite, load_suite
from tests.conftest import Runner

pytestmark = pytest.mark.slow

NEW_STEPS = ("qat", "tflite_mixed", "onnx_mixed", "tflite_int4_weights", "tflite_int16x8")
# One test image is 1/360 = 0.28 percentage points.
PP = 0.01


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def suite() -> Suite:
    return load_suite(bundled_suite("compression"))


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits")


@pytest.fixture(scope="module")
def base(suite: Suite) -> Stage:
    (model,) = suite.models
    assert model.builder is not None
    return BUILDERS[model.builder](model.params)


@pytest.fixture(scope="module")
def build(
    suite: Suite, base: Stage, tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., Stage]:
    """Build a variant of the compression suite by name (or an extra ``recipe``), once;
    chain prefixes (the export, the QAT fine-tuning) are shared as in a suite build."""
    variants = {v.name: v for v in suite.variants}
    memo: dict[tuple[str, ...], Stage] = {}
    built: dict[str, Stage] = {}
    out = tmp_path_factory.mktemp("compression-suite")

    def make(name: str, recipe: list[Any] | None = None) -> Stage:
        if name not in built:
            variant = variants[name] if recipe is None else VariantSpec(name=name, recipe=recipe)
            built[name] = run_chain(base, variant, out / name, memo)
        return built[name]

    return make


def run_tflite(path: Path, x: np.ndarray) -> np.ndarray:
    """Float outputs of a LiteRT model, one sample at a time; a quantized input or
    output (int8, int16) is (de)quantized with its own scale and zero point."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path), num_threads=1)
    interp.allocate_tensors()
    (inp,), (out,) = interp.get_input_details(), interp.get_output_details()
    ys = []
    for sample in x[:, None]:
        if np.dtype(inp["dtype"]).kind == "i":
            scale, zero = inp["quantization"]
            info = np.iinfo(inp["dtype"])
            sample = np.clip(np.round(sample / scale + zero), info.min, info.max)
        interp.set_tensor(inp["index"], sample.astype(inp["dtype"]))
        interp.invoke()
        y = interp.get_tensor(out["index"])
        if np.dtype(out["dtype"]).kind == "i":
            scale, zero = out["quantization"]
            y = (y.astype(np.float32) - zero) * scale
        ys.append(y)
    return np.concatenate(ys)


def run_onnx(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: x[i : i + 1]})[0] for i in range(len(x))])


@pytest.fixture(scope="module")
def logits(build: Callable[..., Stage], digits: Dataset) -> Callable[..., np.ndarray]:
    """Test-split outputs of a variant, run in its runtime (once per variant)."""
    done: dict[str, np.ndarray] = {}

    def outputs(name: str, recipe: list[Any] | None = None) -> np.ndarray:
        if name not in done:
            stage = build(name, recipe)
            assert stage.path is not None
            run = run_tflite if stage.format == "tflite" else run_onnx
            done[name] = run(stage.path, digits.test_x)
        return done[name]

    return outputs


@pytest.fixture(scope="module")
def accuracy(logits: Callable[..., np.ndarray], digits: Dataset) -> Callable[..., float]:
    def top1(name: str, recipe: list[Any] | None = None) -> float:
        return float((logits(name, recipe).argmax(1) == digits.test_y).mean())

    return top1


def size(stage: Stage) -> int:
    assert stage.path is not None
    return stage.path.stat().st_size


# --------------------------------------------------------------------------- registry, suite
def test_new_steps_are_registered_with_typed_params() -> None:
    for name in (*NEW_STEPS, "identity"):
        info = STEPS[name]
        assert info.doc, name
        assert issubclass(info.params, StepParams), name
    assert STEPS["identity"].params is NoParams
    assert STEPS["qat"].accepts == ("torch",) and STEPS["qat"].produces == "torch"


def test_the_compression_suite_loads_and_chains(suite: Suite) -> None:
    steps = {s.name for v in suite.variants for s in v.recipe}
    assert set(NEW_STEPS) <= steps
    for variant in suite.variants:
        assert check_chain("torch", variant) in ("onnx", "tflite"), variant.name


SUITE_HEAD = """\
name: s
models:
  - name: m
    builder: digits_cnn
variants:
  - name: v
    recipe:
      - export_tflite
"""


@pytest.mark.parametrize(
    ("step_yaml", "key", "message"),
    [
        pytest.param(
            "tflite_mixed: {selct: sensitivity}", "tflite_mixed.selct", "Extra inputs", id="typo"
        ),
        pytest.param(
            "tflite_mixed: {select: first_last, accuracy_budget_pp: 1}",
            "tflite_mixed",
            "accuracy_budget_pp: not used with select: first_last",
            id="budget-without-sensitivity",
        ),
        pytest.param(
            "tflite_mixed: {select: patterns}",
            "tflite_mixed",
            "select: patterns needs 'patterns'",
            id="patterns-missing",
        ),
        pytest.param(
            "tflite_mixed: {select: patterns, patterns: ['Linear_(']}",
            "tflite_mixed.patterns",
            "not a regular expression",
            id="bad-regex",
        ),
        pytest.param(
            "tflite_mixed: {select: sensitivity, accuracy_budget_pp: -1}",
            "tflite_mixed.accuracy_budget_pp",
            "greater than or equal to 0",
            id="negative-budget",
        ),
        pytest.param(
            "tflite_int4_weights: {mode: weight_only, block_size: 32}",
            "tflite_int4_weights",
            "block_size needs mode: dynamic",
            id="blockwise-weight-only",
        ),
        pytest.param(
            "tflite_int4_weights: {block_size: 48}",
            "tflite_int4_weights.block_size",
            "Input should be 0, 32, 64, 128 or 256",
            id="block-size",
        ),
        pytest.param(
            "tflite_int16x8: {calibration_samples: '256'}",
            "tflite_int16x8.calibration_samples",
            "valid integer",
            id="wrong-type",
        ),
    ],
)
def test_step_mistakes_name_file_line_and_key(
    tmp_path: Path, step_yaml: str, key: str, message: str
) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(f"{SUITE_HEAD}      - {step_yaml}\nsettings:\n  - runtime: litert\n")
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    err = info.value
    assert (err.file, err.line) == (str(path), 9)
    assert err.key == f"variants.0.recipe.1.{key}"
    assert message in err.detail, err.detail


def test_qat_params_are_refused_when_wrong() -> None:
    with pytest.raises(ValueError, match="epochs"):
        VariantSpec(name="v", recipe=[{"qat": {"epochs": 0}}, "export_onnx"])
    with pytest.raises(ValueError, match="lerning_rate"):
        VariantSpec(name="v", recipe=[{"qat": {"lerning_rate": 1e-4}}, "export_onnx"])


# --------------------------------------------------------------------------- QAT
def test_qat_int8_matches_fp32_in_both_runtimes(
    build: Callable[..., Stage], accuracy: Callable[..., float]
) -> None:
    from ai_edge_litert.interpreter import Interpreter

    fp32 = accuracy("fp32-tflite")
    ptq = {"tflite": accuracy("int8-tflite"), "onnx": accuracy("int8-onnx")}
    for fmt in ("tflite", "onnx"):
        stage = build(f"qat-int8-{fmt}")
        qat = accuracy(f"qat-int8-{fmt}")
        print(f"\n{fmt}: fp32 {fp32:.4f}, PTQ int8 {ptq[fmt]:.4f}, QAT int8 {qat:.4f}")
        assert qat >= fp32 - 0.5 * PP
        assert "QAT" in stage.meta["techniques"][0]
        assert stage.meta["techniques"][-1] == build(f"int8-{fmt}").meta["techniques"][-1]
        # What QAT measured with fake quantization is what the int8 file delivers.
        assert abs(stage.meta["qat"]["fake_quant_accuracy"] - qat) <= 0.5 * PP
        # Same quantizer, same int8 layout as the PTQ variant: a like-for-like comparison.
        assert size(stage) == pytest.approx(size(build(f"int8-{fmt}")), rel=0.01)
    interp = Interpreter(model_path=str(build("qat-int8-tflite").path))
    for detail in (*interp.get_input_details(), *interp.get_output_details()):
        assert detail["dtype"] == np.int8  # full integer, as the MCU runs it


def test_the_int8_file_stores_the_weights_qat_trained(build: Callable[..., Stage]) -> None:
    import onnx
    from onnx import numpy_helper
    from torch import nn

    qat = build("qat", [{"qat": {"epochs": 3}}])  # the suite's QAT step, shared
    stage = build("qat-int8-onnx")
    model = onnx.load(str(stage.path))
    init = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    dequantized = []
    for node in model.graph.node:
        if node.op_type == "DequantizeLinear" and init.get(node.input[0], np.empty(0)).ndim >= 2:
            q, scale, zero = (init[n] for n in node.input[:3])
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            shape = [1] * q.ndim
            shape[axis] = -1
            w = (q.astype(np.float64) - zero.reshape(shape)) * scale.reshape(shape)
            dequantized.append(w)
    layers = [m for m in qat.module.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    assert len(dequantized) == len(layers)
    for m in layers:
        w = m.weight.detach().double().numpy()
        (match,) = [d for d in dequantized if d.shape == w.shape]
        np.testing.assert_allclose(match, w, rtol=0, atol=1e-5 * np.abs(w).max())


def test_qat_is_seeded_and_leaves_the_base_model_alone(base: Stage, tmp_path: Path) -> None:
    import torch

    before = {k: v.clone() for k, v in base.module.state_dict().items()}
    variant = VariantSpec(name="q", recipe=[{"qat": {"epochs": 1}}])
    first = run_chain(base, variant, tmp_path / "a")
    again = run_chain(base, variant, tmp_path / "b")
    for key, value in first.module.state_dict().items():
        assert torch.equal(value, again.module.state_dict()[key]), key
    for key, value in base.module.state_dict().items():
        assert torch.equal(value, before[key]), key
    # A plain module again: no fake-quant hooks or parametrizations are exported.
    for m in first.module.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks
        assert not hasattr(m, "parametrizations")


# --------------------------------------------------------------------------- mixed precision
def test_mixed_precision_sits_between_int8_and_fp16(
    build: Callable[..., Stage], accuracy: Callable[..., float]
) -> None:
    from ai_edge_litert.interpreter import Interpreter

    for fmt, fp16_recipe in (
        ("tflite", ["export_tflite", "tflite_fp16"]),
        ("onnx", ["export_onnx", "onnx_fp16"]),
    ):
        mixed, int8 = build(f"mixed-{fmt}"), build(f"int8-{fmt}")
        fp16 = build(f"fp16-{fmt}", fp16_recipe)
        acc = {name: accuracy(name) for name in (f"mixed-{fmt}", f"int8-{fmt}")}
        print(f"\n{fmt}: sizes int8 {size(int8)}, mixed {size(mixed)}, fp16 {size(fp16)}; {acc}")
        assert acc[f"mixed-{fmt}"] >= acc[f"int8-{fmt}"]
        assert size(int8) < size(mixed) < size(fp16)
        layers = mixed.meta["mixed_precision"]["layers"]
        kept = [layer["why"] for layer in layers if layer["precision"] != "int8"]
        assert kept == [["first layer"], ["last layer"]]
        assert "mixed int8" in mixed.meta["techniques"][-1]
    # LiteRT: float I/O around the float first and last layers, int8 inside.
    interp = Interpreter(model_path=str(build("mixed-tflite").path))
    interp.allocate_tensors()
    assert interp.get_input_details()[0]["dtype"] == np.float32
    assert interp.get_output_details()[0]["dtype"] == np.float32
    assert np.int8 in {t["dtype"] for t in interp.get_tensor_details()}


def test_mixed_precision_by_pattern_and_in_fp16(
    build: Callable[..., Stage], accuracy: Callable[..., float]
) -> None:
    params = {"select": "patterns", "patterns": ["Linear_6"], "high_precision": "fp16"}
    recipe = ["export_tflite", {"tflite_mixed": params}]
    stage = build("hidden-fp16-tflite", recipe)
    (kept,) = [layer for layer in stage.meta["mixed_precision"]["layers"] if layer["why"]]
    assert kept["op"] == "FULLY_CONNECTED" and kept["precision"] == "fp16 weights"
    # The largest layer in fp16 weights: between int8 and fp16 in size.
    int8, fp16 = build("int8-tflite"), build("fp16-tflite", ["export_tflite", "tflite_fp16"])
    assert size(int8) < size(stage) < size(fp16)
    assert accuracy("hidden-fp16-tflite") >= accuracy("fp32-tflite") - 1 * PP


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_sensitivity_records_a_drop_per_layer(
    build: Callable[..., Stage], accuracy: Callable[..., float], fmt: str
) -> None:
    stage = build(f"sensitive-mixed-{fmt}")
    info = stage.meta["mixed_precision"]
    sens = info["sensitivity"]
    drops = {p["layer"]: p["drop_pp"] for p in sens["per_layer"]}
    print(f"\n{fmt} per-layer drops (pp): {json.dumps(drops)}")
    assert [p["layer"] for p in sens["per_layer"]] == [layer["layer"] for layer in info["layers"]]
    assert len(sens["per_layer"]) == 4  # two convolutions, two fully connected layers
    for p in sens["per_layer"]:
        assert p["drop_pp"] == pytest.approx(100 * (sens["float_accuracy"] - p["accuracy"]))
        assert 0.0 <= p["agreement"] <= 1.0 and p["output_mse"] >= 0.0
    assert sorted(sens["ranking"]) == sorted(p["layer"] for p in sens["per_layer"])
    assert sens["budget_met"] and sens["drop_pp"] <= sens["budget_pp"] == 0.5
    assert "train split" in sens["validation"]  # chosen without looking at the test split
    # The search's last step is the model that was built.
    assert sens["search"][-1]["kept"] == info["kept"]
    assert accuracy(f"sensitive-mixed-{fmt}") >= accuracy(f"fp32-{fmt}") - 1 * PP


def _scores(accuracy: float) -> Scores:
    return Scores(accuracy=accuracy, agreement=accuracy, output_mse=1 - accuracy)


def test_sensitivity_search_keeps_the_most_sensitive_layers_until_the_budget() -> None:
    layers = [Layer(i, "CONV_2D", f"layer{i}", 10) for i in range(4)]
    alone = {"layer0": 0.99, "layer1": 0.90, "layer2": 0.995, "layer3": 0.95}
    cost = {"layer0": 0.01, "layer1": 0.10, "layer2": 0.005, "layer3": 0.05}  # additive

    def without(kept: list[Layer]) -> Scores:
        return _scores(1.0 - sum(c for n, c in cost.items() if n not in {k.name for k in kept}))

    kept, info = sensitivity_search(
        layers,
        budget_pp=2.0,
        float_scores=_scores(1.0),
        measure_only=lambda layer: _scores(alone[layer.name]),
        measure_except=without,
    )
    assert info["ranking"] == ["CONV_2D@1", "CONV_2D@3", "CONV_2D@0", "CONV_2D@2"]
    assert [k.name for k in kept] == ["layer1", "layer3"]  # 16.5 pp -> 6.5 -> 1.5 <= 2
    assert [step["drop_pp"] for step in info["search"]] == [16.5, 6.5, 1.5]
    assert info["budget_met"] and info["int8_drop_pp"] == 16.5

    kept, info = sensitivity_search(
        layers,
        budget_pp=0.0,
        float_scores=_scores(1.0),
        measure_only=lambda layer: _scores(alone[layer.name]),
        measure_except=lambda kept: _scores(0.98),  # int8 elsewhere always costs 2 pp
    )
    assert len(kept) == 4 and not info["budget_met"]


# --------------------------------------------------------------------------- int4, int16x8
def test_int4_is_smaller_than_int8(
    build: Callable[..., Stage], accuracy: Callable[..., float]
) -> None:
    int8 = build("int8-tflite")
    for name in ("int4-tflite", "int4-b32-tflite"):
        stage = build(name)
        print(f"\n{name}: {size(stage)} B (int8 {size(int8)} B), accuracy {accuracy(name):.4f}")
        assert size(stage) < 0.7 * size(int8)
        assert "FULLY_CONNECTED" in stage.meta["int4"]["quantized_ops"]
        assert accuracy(name) >= accuracy("fp32-tflite") - 2 * PP
    assert build("int4-b32-tflite").meta["int4"]["block_size"] == 32


def test_int16x8_runs_in_litert_and_keeps_int8_accuracy(
    build: Callable[..., Stage], accuracy: Callable[..., float]
) -> None:
    from ai_edge_litert.interpreter import Interpreter

    stage = build("int16x8-tflite")
    interp = Interpreter(model_path=str(stage.path))
    interp.allocate_tensors()
    for detail in (*interp.get_input_details(), *interp.get_output_details()):
        assert detail["dtype"] == np.int16 and detail["quantization"][0] > 0
    assert np.int16 in {t["dtype"] for t in interp.get_tensor_details()}
    acc, int8 = accuracy("int16x8-tflite"), accuracy("int8-tflite")
    print(f"\nint16x8 {acc:.4f}, int8 {int8:.4f}")
    assert acc >= int8 - 1 * PP


# --------------------------------------------------------------------------- every variant
NEW_VARIANTS = (
    "qat-int8-tflite", "mixed-tflite", "sensitive-mixed-tflite", "int4-tflite",
    "int4-b32-tflite", "int16x8-tflite", "qat-int8-onnx", "mixed-onnx", "sensitive-mixed-onnx",
)  # fmt: skip


@pytest.mark.parametrize("name", NEW_VARIANTS)
def test_every_new_variant_loads_and_runs(
    name: str, logits: Callable[..., np.ndarray], digits: Dataset
) -> None:
    out = logits(name)
    assert out.shape == (len(digits.test_x), 10)
    assert np.isfinite(out).all()


# --------------------------------------------------------------------------- identity
def test_identity_benchmarks_a_file_as_it_is(
    eb: Runner, build: Callable[..., Stage], tmp_path: Path
) -> None:
    files = {}
    for fmt in ("onnx", "tflite"):
        src = build(f"fp32-{fmt}").path
        assert src is not None
        files[fmt] = tmp_path / f"given.{fmt}"
        shutil.copyfile(src, files[fmt])
    (tmp_path / "files.yaml").write_text(
        "name: files\n"
        "models:\n"
        "  - {name: given-onnx, file: given.onnx}\n"
        "  - {name: given-tflite, file: given.tflite}\n"
        "variants:\n"
        "  - {name: as-is, recipe: [identity]}\n"
        "settings:\n"
        "  - runtime: onnxruntime\n"
        "  - runtime: litert\n"
    )
    rows = json.loads(eb("variants", str(tmp_path / "files.yaml"), "--json").stdout)
    assert {(r["model"], r["format"]) for r in rows} == {
        ("given-onnx", "onnx"),
        ("given-tflite", "tflite"),
    }
    for row in rows:
        given = files[row["format"]].read_bytes()
        assert row["sha256"] == hashlib.sha256(given).hexdigest()
        assert Path(row["path"]).read_bytes() == given
        assert row["techniques"] == ["model file as given"]


def test_identity_is_for_model_files_only() -> None:
    with pytest.raises(SuiteError, match="takes onnx/tflite/torchscript but gets torch"):
        check_chain("torch", VariantSpec(name="v", recipe=["identity"]))
    assert check_chain("tflite", VariantSpec(name="v", recipe=["identity"])) == "tflite"
    assert check_chain("onnx", VariantSpec(name="v", recipe=["identity", "onnx_fp16"])) == "onnx"
