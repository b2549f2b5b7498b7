"""Progressive compression to a target (`progressive:` in a suite): the stages a
section expands to, the misses a stage reports, and `edgebench run` stopping at the
first stage that meets the target (or exiting 1 saying what was never met)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from suites.progressive import StageFigures, gaps, stages
from suites.schema import Suite, TargetSpec
from tests.conftest import Runner

SUITE = """\
name: progressive-digits
models:
  - name: digits_cnn
    builder: digits_cnn
    params: {{seed: 0, epochs: 15}}
settings:
  - runtime: litert
measure: {{warmup_runs: 2, warmup_min_s: 0, min_runs: 20, min_duration_s: 0.02, repetitions: 2}}
accuracy: {{dataset: digits, split: test}}
progressive:
  steps:
    - {{prune_unstructured: {{sparsity: 0.5}}}}
    - tflite_int8_dynamic
    - identity
  target: {target}
"""


def _suite(**extra: object) -> Suite:
    doc = {
        "name": "p",
        "models": [{"name": "m", "builder": "digits_cnn"}],
        "settings": [{"runtime": "litert"}],
        "progressive": {
            "steps": [{"prune_unstructured": {"sparsity": 0.5}}, "tflite_int8_dynamic"],
            "target": {"max_size_bytes": 1000},
        },
    }
    doc.update(extra)
    return Suite.model_validate(doc)


def test_stages_export_where_needed_and_measure_each_step() -> None:
    names = [(v.name, [s.name for s in v.recipe]) for v in stages(_suite())]
    assert names == [
        ("stage0-original", ["export_tflite"]),
        ("stage1-prune_unstructured", ["prune_unstructured", "export_tflite"]),
        # The int8 step needs an exported model: the export goes in before it.
        (
            "stage2-tflite_int8_dynamic",
            ["prune_unstructured", "export_tflite", "tflite_int8_dynamic"],
        ),
    ]
    # The stages are the suite's variants (what `variants` builds, what jobs name).
    assert [v.name for v in _suite().all_variants()] == [n for n, _ in names]


def test_a_model_file_starts_as_it_is() -> None:
    suite = Suite.model_validate(
        {
            "name": "p",
            "models": [{"name": "m", "file": "m.tflite"}],
            "settings": [{"runtime": "litert"}],
            "progressive": {"steps": ["tflite_int8_dynamic"], "target": {"max_size_bytes": 9}},
        }
    )
    assert [[s.name for s in v.recipe] for v in stages(suite)] == [
        ["identity"],
        ["tflite_int8_dynamic"],
    ]


def test_bad_sections_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one of max_size_bytes"):
        TargetSpec()
    with pytest.raises(ValueError, match="progressive.model 'nope'"):
        _suite(
            progressive={"model": "nope", "steps": ["export_onnx"], "target": {"min_accuracy": 0.9}}
        )
    with pytest.raises(ValueError, match="at least one variant"):
        _suite(progressive=None)


def test_gaps_say_which_constraint_and_by_how_much() -> None:
    target = TargetSpec(max_size_bytes=60 * 1024, min_accuracy=0.97, max_latency_s=1e-3)
    fig = StageFigures(
        "pi", size_bytes=150 * 1024, latency_s=5e-4, peak_ram_bytes=None, accuracy=0.96
    )
    assert gaps(target, [fig]) == [
        "size on pi 150.0 KiB, needs <= 60.0 KiB: 90.0 KiB over",
        "accuracy on pi 96.00%, needs >= 97.00%: 1.00% short",
    ]
    ok = StageFigures(
        "pi", size_bytes=50 * 1024, latency_s=5e-4, peak_ram_bytes=None, accuracy=0.98
    )
    assert gaps(target, [ok]) == []
    unmeasured = StageFigures("pi", 50 * 1024, None, None, 0.98)
    assert gaps(target, [unmeasured]) == ["latency on pi: not measured"]


def _stages_run(eb: Runner) -> list[str]:
    db = eb.env["EDGEBENCH_DB"].removeprefix("sqlite:///")  # type: ignore[attr-defined]
    with sqlite3.connect(db) as conn:
        return [v for (v,) in conn.execute("SELECT variant FROM jobs ORDER BY id")]


def test_a_size_target_two_steps_away_is_reached_and_the_run_stops(
    eb: Runner, tmp_path: Path
) -> None:
    suite = tmp_path / "p.yaml"
    suite.write_text(SUITE.format(target="{max_size_bytes: 60000, min_accuracy: 0.9}"))
    eb("device", "add", "local", "--transport", "local")
    proc = eb("run", str(suite), "--no-report")
    # Progress (each stage's verdict) on stderr; the path taken on stdout.
    assert "progressive: target met at stage2-tflite_int8_dynamic" in proc.stderr
    # Every stage up to the one that met it is a job of the run; the next is not built.
    assert _stages_run(eb) == [
        "stage0-original",
        "stage1-prune_unstructured",
        "stage2-tflite_int8_dynamic",
    ]
    assert "size on local 153.6 KiB, needs <= 58.6 KiB" in proc.stderr
    path = proc.stdout.split("progressive path", 1)[1].splitlines()[1:4]
    assert [line.split()[0] for line in path] == _stages_run(eb)
    run = json.loads(eb("runs", "list", "--json").stdout)[0]
    assert run["status"] == "finished"


def test_an_impossible_target_says_what_was_never_met_and_exits_1(
    eb: Runner, tmp_path: Path
) -> None:
    suite = tmp_path / "p.yaml"
    suite.write_text(SUITE.format(target="{max_size_bytes: 1000}"))
    eb("device", "add", "local", "--transport", "local")
    proc = eb("run", str(suite), "--no-report", check=False)
    assert proc.returncode == 1
    assert len(_stages_run(eb)) == 4  # every stage tried
    (line,) = [ln for ln in proc.stderr.splitlines() if "never met" in ln]
    assert "size on local" in line and "needs <= 1.0 KiB" in line and "over" in line
