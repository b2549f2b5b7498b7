"""Microcontrollers end to end, as a user runs them: an emulated Cortex-M4 (real QEMU
running the real runner firmware, built with the real Arm toolchain) registered with
`edgebench device add --transport qemu`, the bundled MCU suite run on it, the CI gate
of `edgebench compare --fail-on-regression`, `edgebench infer` bit-exact with the
TFLite Micro reference interpreter, and the fit check against a smaller part.
"""

from __future__ import annotations

import json
import os
import shutil
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import REPO, Runner, make_runner

TOOLS = ("qemu-system-arm", "arm-none-eabi-gcc")
MISSING = [t for t in TOOLS if not shutil.which(t)]
if MISSING:
    reason = f"{', '.join(MISSING)} not installed (make test installs them)"
    if os.environ.get("CI") == "true":
        raise RuntimeError(f"CI=true: {reason}")  # a missing peer fails CI, never skips it
    pytest.skip(reason, allow_module_level=True)

pytestmark = pytest.mark.slow


def _suite(path: Path, model_builder: str = "digits_cnn", name: str = "mcu-test") -> Path:
    """The bundled MCU suite's shape, shorter windows; ``model_builder`` swaps the network
    behind the model name `net` (a pull request that changes the model)."""
    path.write_text(
        textwrap.dedent(
            f"""\
            name: {name}
            models:
              - name: net
                builder: {model_builder}
                params: {{seed: 0, epochs: 15}}
            baseline: int8-tflite
            variants:
              - name: int8-tflite
                recipe: [export_tflite, tflite_int8_full]
              - name: fp32-tflite
                recipe: [export_tflite]
            settings:
              - runtime: mcu
            measure: {{warmup_runs: 1, warmup_min_s: 0.0, min_runs: 5, min_duration_s: 0.0,
                       repetitions: 2}}
            accuracy: {{dataset: digits, split: test}}
            """
        )
    )
    return path


def _jobs(edgebench: Runner, run_id: str, tmp: Path) -> list[dict[str, Any]]:
    out = tmp / f"{run_id}.csv"
    edgebench("export", run_id, "--format", "csv", "-o", str(out))
    import csv

    with open(out, newline="") as f:
        return list(csv.DictReader(f))


def _run_id(edgebench: Runner) -> str:
    return json.loads(edgebench("runs", "list", "--json").stdout)[0]["id"]


@pytest.fixture(scope="module")
def lab(shared_home: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One emulated board, the suite run twice (same model), then with a bigger model."""
    work = tmp_path_factory.mktemp("mcu-e2e")
    edgebench = make_runner(shared_home, work)
    edgebench("device", "add", "m4", "--transport", "qemu", "--board", "mps2-an386")
    check = edgebench("device", "check", "m4", "--json")
    small = _suite(work / "small.yaml", "digits_cnn_small")
    edgebench("run", str(small), "--device", "m4", "--no-report", timeout=1200)
    first = _run_id(edgebench)
    edgebench("run", str(small), "--device", "m4", "--no-report", timeout=1200)
    second = _run_id(edgebench)
    big = _suite(work / "big.yaml", "digits_cnn")
    edgebench("run", str(big), "--device", "m4", "--no-report", timeout=1200)
    bigger = _run_id(edgebench)
    return {
        "edgebench": edgebench,
        "work": work,
        "facts": json.loads(check.stdout)["facts"],
        "runs": (first, second, bigger),
    }


def _by_variant(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["variant"]: r for r in rows}


def test_device_check_describes_the_board(lab: dict[str, Any]) -> None:
    facts = lab["facts"]
    assert facts["board"] == "mps2-an386" and facts["arch"] == "cortex-m4"
    assert facts["emulated"] is True and facts["ram_limit_bytes"] == 4 * 1024 * 1024
    assert "arm-none-eabi-gcc" in facts["toolchain"] and "QEMU" in facts["emulator"]


def test_int8_variant_runs_as_firmware(lab: dict[str, Any]) -> None:
    rows = _by_variant(_jobs(lab["edgebench"], lab["runs"][0], lab["work"]))
    int8 = rows["int8-tflite"]
    assert int8["status"] == "done" and not int8["not_deployable"]
    assert int8["emulated"] == "True"
    instructions = int(int8["executed_instructions"])
    assert 10_000 < instructions < 50_000_000
    # The latency is instructions at the board's 25 MHz clock, labelled estimated.
    assert float(int8["latency_p50_s"]) == pytest.approx(instructions / 25e6, rel=1e-3)
    assert "latency_s" in int8["estimated"]
    assert 0 < float(int8["static_ram_bytes"]) < float(int8["ram_limit_bytes"])
    assert 0 < float(int8["flash_bytes"]) < float(int8["flash_limit_bytes"])
    assert 0 < float(int8["arena_bytes"]) < float(int8["static_ram_bytes"])
    # Accuracy on the device, over the whole test split, with the timed image.
    assert float(int8["accuracy"]) > 0.8 and int(int8["accuracy_n"]) > 300


def test_float_variant_is_not_deployable(lab: dict[str, Any]) -> None:
    fp32 = _by_variant(_jobs(lab["edgebench"], lab["runs"][0], lab["work"]))["fp32-tflite"]
    assert fp32["status"] == "done"
    assert "unsupported" in fp32["not_deployable"] and "float32" in fp32["not_deployable"]
    assert not fp32["latency_p50_s"] and not fp32["executed_instructions"]


def test_same_model_twice_counts_the_same_instructions(lab: dict[str, Any]) -> None:
    first, second, _ = lab["runs"]
    a = _by_variant(_jobs(lab["edgebench"], first, lab["work"]))["int8-tflite"]
    b = _by_variant(_jobs(lab["edgebench"], second, lab["work"]))["int8-tflite"]
    for key in ("executed_instructions", "static_ram_bytes", "flash_bytes", "latency_p50_s"):
        assert a[key] == b[key], key
    gate = lab["edgebench"]("compare", first, second, "--fail-on-regression")
    assert "0 regressions" in gate.stdout


def test_bigger_model_fails_the_gate(lab: dict[str, Any]) -> None:
    first, _, bigger = lab["runs"]
    gate = lab["edgebench"](
        "compare", first, bigger, "--fail-on-regression", "--format", "md", check=False
    )
    assert gate.returncode == 1, gate.stdout + gate.stderr
    assert "Instructions / inference" in gate.stdout and "regressed" in gate.stdout


def test_report_shows_board_limits_and_not_deployable(lab: dict[str, Any]) -> None:
    out = lab["work"] / "report"
    lab["edgebench"]("report", lab["runs"][0], "-o", str(out))
    page = next(out.glob("*.html")).read_text()
    assert "NOT DEPLOYABLE" in page and "/ 4.0 MiB" in page and "emulated" in page


def test_smaller_part_does_not_fit(lab: dict[str, Any]) -> None:
    edgebench = lab["edgebench"]
    edgebench(
        "device", "add", "m4-tiny", "--transport", "qemu", "--board", "mps2-an386",
        "--option", "ram_bytes=2048", "--option", "flash_bytes=16384",
    )  # fmt: skip
    suite = _suite(lab["work"] / "tiny.yaml", "digits_cnn_small", name="tiny")
    edgebench("run", str(suite), "--device", "m4-tiny", "--no-report", timeout=1200)
    int8 = _by_variant(_jobs(edgebench, _run_id(edgebench), lab["work"]))["int8-tflite"]
    assert int8["status"] == "done"
    assert int8["not_deployable"].startswith("does not fit: needs ")
    assert "RAM, has 2.0 KiB" in int8["not_deployable"]
    assert "flash, has 16.0 KiB" in int8["not_deployable"]


def test_infer_on_the_emulated_board_is_bit_exact_with_tflite_micro(
    lab: dict[str, Any],
) -> None:
    from tflite_micro.python.tflite_micro import runtime

    edgebench, work = lab["edgebench"], lab["work"]
    # The int8 variant the runs used, from the artifact cache (`variants --json`).
    variants = json.loads(edgebench("variants", str(work / "small.yaml"), "--json").stdout)
    model = Path(next(v for v in variants if v["variant"] == "int8-tflite")["path"])
    interp = runtime.Interpreter.from_file(str(model), arena_size=200_000)
    detail = interp.get_input_details(0)
    rng = np.random.default_rng(7)
    x = rng.integers(-128, 127, size=(6, *detail["shape"][1:]), endpoint=True).astype(np.int8)
    np.save(work / "x.npy", x)
    edgebench("infer", str(model), "--device", "m4", "--input", str(work / "x.npy"),
              "-o", str(work / "y.npy"))  # fmt: skip
    got = np.load(work / "y.npy")
    out = interp.get_output_details(0)
    scale, zero = out["quantization_parameters"]["scales"][0], out["quantization_parameters"][
        "zero_points"
    ][0]
    want = []
    for sample in x:
        interp.set_input(sample[None], 0)
        interp.invoke()
        y = interp.get_output(0)
        want.append((y.astype(np.float32) - np.float32(zero)) * np.float32(scale))
    np.testing.assert_array_equal(got, np.concatenate(want))


def test_example_workflow_uses_real_commands() -> None:
    """The CI example in examples/ names only commands and options that exist."""
    import yaml

    from harness.cli import app

    flow = yaml.safe_load((REPO / "examples" / "mcu-ci.yml").read_text())
    script = "\n".join(
        step.get("run", "") for job in flow["jobs"].values() for step in job["steps"]
    )
    import typer.main

    cli = typer.main.get_command(app)
    used = [line.split("edgebench ", 1)[1] for line in script.splitlines() if "edgebench " in line]
    assert any(u.startswith("compare") and "--fail-on-regression" in u for u in used)
    for usage in used:
        words = usage.split()
        group: Any = cli
        while hasattr(group, "commands") and words and words[0] in group.commands:
            group = group.commands[words.pop(0)]
        assert not hasattr(group, "commands"), f"no such command: edgebench {usage}"
        names = {
            o for p in group.params for o in [*p.opts, *getattr(p, "secondary_opts", [])]
        }
        for word in words:
            if word.startswith("--"):
                option = word.split("=")[0].rstrip(")")
                assert option in names, f"edgebench {usage}: {option} unknown"
