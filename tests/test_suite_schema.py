"""Suite files: valid ones load, mistakes name the file, key and line."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from suites.errors import SuiteError
from suites.recipes import (
    RECIPES_VERSION,
    STEPS,
    NoParams,
    StepParams,
    build_key,
    check_chain,
    step,
)
from suites.schema import RecipeStep, Suite, VariantSpec, bundled_suite, load_suite
from tests.conftest import Runner

GOOD = """\
name: s
models:
  - name: m
    builder: digits_cnn
variants:
  - name: v
    recipe: [export_onnx, {onnx_int8_static: {per_channel: false}}]
settings:
  - runtime: onnxruntime
    threads: 2
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    return path


def test_bundled_digits_suite_is_valid() -> None:
    suite = load_suite(bundled_suite("digits"))
    assert suite.name == "digits"
    assert {v.name for v in suite.variants} >= {"fp32-onnx", "int8-onnx", "fp32-tflite"}
    for variant in suite.variants:
        assert check_chain("torch", variant) in ("onnx", "tflite")


def test_defaults_and_step_shorthand(tmp_path: Path) -> None:
    suite = load_suite(_write(tmp_path, GOOD))
    assert suite.settings[0].threads == [2]  # a scalar becomes a list
    assert suite.measure.repetitions == 5  # DESIGN.md default
    step = suite.variants[0].recipe[1]
    assert step.name == "onnx_int8_static" and step.params == {"per_channel": False}


@pytest.mark.parametrize(
    ("replace", "by", "key", "line"),
    [
        ("    threads: 2", "    threads: two", "settings.0.threads", 10),
        ("  - runtime: onnxruntime", "  - runtime: tensorrtx", "settings.0.runtime", 9),
        ("    builder: digits_cnn", "    builder: digits_cnn\n    bogus: 1", "models.0.bogus", 5),
        ("name: s", "name: s\nmeasure: {min_runs: 0}", "measure.min_runs", 2),
        # A key the setting's runtime does not take is named at its own line.
        ("    threads: 2", "    threads: 2\n    xnnpack: false", "settings.0.xnnpack", 11),
    ],
)
def test_mistakes_name_file_key_and_line(
    tmp_path: Path, replace: str, by: str, key: str, line: int
) -> None:
    path = _write(tmp_path, GOOD.replace(replace, by))
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    err = info.value
    assert (err.file, err.key, err.line) == (str(path), key, line)
    assert str(err).startswith(f"{path}:{line}: {key}: ")


def test_missing_key_points_at_its_parent(tmp_path: Path) -> None:
    path = _write(
        tmp_path, GOOD.replace("settings:\n  - runtime: onnxruntime\n    threads: 2\n", "")
    )
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    assert info.value.key == "settings" and info.value.line == 1


def test_invalid_yaml_reports_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD.replace("  - name: v", "  - name: [v"))
    with pytest.raises(SuiteError, match="not valid YAML") as info:
        load_suite(path)
    assert info.value.line is not None and info.value.line >= 6


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SuiteError, match="file not found"):
        load_suite(tmp_path / "nope.yaml")


def test_recipe_chain_checks_formats() -> None:
    suite = Suite.model_validate(
        {
            "name": "s",
            "models": [{"name": "m", "builder": "digits_cnn"}],
            "variants": [{"name": "v", "recipe": ["onnx_int8_static"]}],
            "settings": [{"runtime": "onnxruntime"}],
        }
    )
    with pytest.raises(SuiteError, match="takes onnx but gets torch"):
        check_chain("torch", suite.variants[0])


def test_duplicate_variant_names_are_refused(tmp_path: Path) -> None:
    text = GOOD + "  - runtime: litert\n"
    text = text.replace("variants:\n", "variants:\n  - name: v\n    recipe: [export_tflite]\n")
    with pytest.raises(SuiteError, match="duplicate variants name"):
        load_suite(_write(tmp_path, text))


# --------------------------------------------------------------------------- recipe steps
def test_every_step_declares_a_strict_params_model() -> None:
    for name, info in STEPS.items():
        assert issubclass(info.params, StepParams), name
        assert info.params.model_config["extra"] == "forbid", name
        info.params()  # every parameter has a default


def test_a_step_name_is_registered_once() -> None:
    with pytest.raises(
        ValueError,
        match=r"'export_onnx' is already registered by "
        r"suites\.recipes\.export_onnx",
    ):

        @step("export_onnx", accepts=("torch",), produces="onnx", params=NoParams)
        def again(stage, params, ctx):  # noqa: ANN001, ANN202
            return stage


def test_steps_receive_the_typed_params_with_defaults() -> None:
    written = RecipeStep.model_validate({"prune_unstructured": {"sparsity": 0.7}})
    assert written.params == {"sparsity": 0.7}  # what the suite wrote
    options = written.options
    assert (options.sparsity, options.scope, options.iterations, options.lr) == (
        0.7, "global", 1, 1e-3,
    )  # fmt: skip
    assert RecipeStep.model_validate("export_onnx").options.opset == 17
    long_form = RecipeStep.model_validate({"name": "onnx_int8_dynamic", "params": {}})
    assert long_form.options.per_channel is False
    with pytest.raises(ValidationError) as info:
        VariantSpec(name="v", recipe=[{"name": "onnx_int8_static", "params": {"per_chanel": 1}}])
    assert info.value.errors()[0]["loc"] == ("recipe", 0, "params", "per_chanel")


def test_build_keys_hash_the_params_as_written_not_the_defaults() -> None:
    """Typed params must not change the cache key of a suite that did not change: the
    key is the one the untyped recipe had (see suites.recipes.build_key)."""
    path = bundled_suite("digits")
    suite = load_suite(path)
    model = suite.models[0]
    variant = next(v for v in suite.variants if v.name == "int8-onnx")
    assert variant.recipe[1].options.calibration_samples == 256  # a default filled in...
    blob = json.dumps(
        {
            "v": RECIPES_VERSION,
            "model": model.model_dump(),
            "recipe": [
                {"name": "export_onnx", "params": {}},
                {"name": "onnx_int8_static", "params": {"per_channel": True}},
            ],
        },
        sort_keys=True,
    )
    assert build_key(model, variant, path.parent) == hashlib.sha256(blob.encode()).hexdigest()


def test_bundled_mobilenet_suite_is_valid() -> None:
    suite = load_suite(bundled_suite("mobilenet"))
    for variant in suite.variants:
        assert check_chain("torch", variant) in ("onnx", "tflite")


BAD_STEP_SUITE = """\
name: s
models:
  - name: m
    builder: digits_cnn
variants:
  - name: fp32
    recipe: [export_onnx]
  - name: bad
    recipe:
{recipe}
settings:
  - runtime: onnxruntime
"""


@pytest.mark.parametrize(
    ("recipe", "line", "key", "message"),
    [
        pytest.param(
            "      - export_onnx\n      - {onnx_int8_static: {per_chanel: true}}",
            11,
            "variants.1.recipe.1.onnx_int8_static.per_chanel",
            "Extra inputs are not permitted",
            id="typo",
        ),
        pytest.param(
            "      - export_onnx\n      - onnx_int8_static:\n          calibration_samples: all",
            12,
            "variants.1.recipe.1.onnx_int8_static.calibration_samples",
            "Input should be a valid integer",
            id="wrong-type",
        ),
        pytest.param(
            "      - {prune_unstructured: {sparsity: 1.5}}\n      - export_onnx",
            10,
            "variants.1.recipe.0.prune_unstructured.sparsity",
            "Input should be less than 1",
            id="out-of-range",
        ),
        pytest.param(
            "      - export_onnx\n      - onnx_int8_statik",
            11,
            "variants.1.recipe.1",
            "unknown recipe step 'onnx_int8_statik' (known: distill, export_onnx,",
            id="unknown-step",
        ),
    ],
)
def test_recipe_step_mistakes_stop_variants_before_any_build(
    eb: Runner, tmp_path: Path, recipe: str, line: int, key: str, message: str
) -> None:
    (tmp_path / "bad.yaml").write_text(BAD_STEP_SUITE.format(recipe=recipe))
    proc = eb("variants", "bad.yaml", check=False)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    (error,) = proc.stderr.strip().splitlines()  # one line, and no variant was built
    assert error.startswith(f"edgebench: error: bad.yaml:{line}: {key}: {message}"), error


@pytest.mark.parametrize(
    ("params", "loc"),
    [
        ({"method": "compile"}, ("recipe", 0, "export_torchscript", "method")),
        ({"frezee": False}, ("recipe", 0, "export_torchscript", "frezee")),
        ({"tolerance": 2}, ("recipe", 0, "export_torchscript", "tolerance")),
    ],
)
def test_bad_step_params_are_refused_when_the_variant_is_made(params: dict, loc: tuple) -> None:
    # Before anything is built: no model, no converter is touched.
    with pytest.raises(ValidationError) as info:
        VariantSpec(name="ts", recipe=[{"export_torchscript": params}])
    assert info.value.errors()[0]["loc"] == loc
