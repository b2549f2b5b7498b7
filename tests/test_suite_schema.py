"""Suite files: valid ones load, mistakes name the file, key and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from suites.errors import SuiteError
from suites.recipes import check_chain
from suites.schema import Suite, bundled_suite, load_suite

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
        ("    threads: 2", "    threads: 2\n    xnnpack: false", "settings.0", 9),
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
            "variants": [
                {"name": "v", "recipe": ["onnx_int8_static"]},
                {"name": "w", "recipe": ["no_such_step"]},
            ],
            "settings": [{"runtime": "onnxruntime"}],
        }
    )
    with pytest.raises(SuiteError, match="takes onnx but gets torch"):
        check_chain("torch", suite.variants[0])
    with pytest.raises(SuiteError, match="unknown recipe step 'no_such_step'"):
        check_chain("torch", suite.variants[1])


def test_duplicate_variant_names_are_refused(tmp_path: Path) -> None:
    text = GOOD + "  - runtime: litert\n"
    text = text.replace("variants:\n", "variants:\n  - name: v\n    recipe: [export_tflite]\n")
    with pytest.raises(SuiteError, match="duplicate variants name"):
        load_suite(_write(tmp_path, text))
