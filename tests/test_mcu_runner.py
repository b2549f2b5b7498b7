"""The `mcu` runner on real QEMU: the MLPerf Tiny-shaped networks (keyword spotting
DS-CNN, ResNet-8, MobileNetV1 0.25, the FC autoencoder) compiled, built into the
runner firmware, booted on an emulated Cortex-M4 (and M7) and run through
edgebench's runner and transport, bit-exact with the TFLite Micro reference
interpreter; the EEMBC (MLPerf Tiny) protocol mode; `edgebench emulate mcu`.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from devices.serial_line import SerialLine
from devices.transport import DeviceConfig, make_transport, sha256_file
from runners.base import EvalSet, Job, MeasureRules, ModelFile
from runners.mcu.eembc import EembcClient
from runners.mcu.runner import McuRunner, build_image
from tests import mcu_models
from tests.conftest import EDGEBENCH

MISSING = [t for t in ("qemu-system-arm", "arm-none-eabi-gcc") if not shutil.which(t)]
if MISSING:
    reason = f"{', '.join(MISSING)} not installed (make test installs them)"
    if os.environ.get("CI") == "true":
        raise RuntimeError(f"CI=true: {reason}")
    pytest.skip(reason, allow_module_level=True)

pytestmark = pytest.mark.slow
RULES = MeasureRules(
    warmup_runs=1,
    warmup_min_s=0.0,
    min_runs=3,
    min_duration_s=0.0,
    repetitions=2,
    max_runs=100,
    timeout_s=120.0,
)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return mcu_models.cache_dir(tmp_path_factory.mktemp("mcu-models"))


def _file(path: Path) -> ModelFile:
    return ModelFile(path, sha256_file(path), "tflite", path.stat().st_size)


def _runner(home: Path, name: str, **options: Any) -> McuRunner:
    config = DeviceConfig(name=name, transport="qemu", options=options)
    return McuRunner(make_transport(config, home))


def _tflm_outputs(path: Path, xs: np.ndarray) -> np.ndarray:
    """TFLite Micro's first output for each sample, dequantized as the runner does."""
    from tflite_micro.python.tflite_micro import runtime

    interp = runtime.Interpreter.from_file(str(path), arena_size=600_000)
    q = interp.get_output_details(0)["quantization_parameters"]
    scale, zero = np.float32(q["scales"][0]), np.float32(q["zero_points"][0])
    out = []
    for x in xs:
        interp.set_input(x[None], 0)
        interp.invoke()
        out.append((interp.get_output(0).astype(np.float32) - zero) * scale)
    return np.concatenate(out)


def _random_inputs(path: Path, n: int) -> np.ndarray:
    from tflite_micro.python.tflite_micro import runtime

    shape = runtime.Interpreter.from_file(str(path), arena_size=600_000).get_input_details(0)[
        "shape"
    ]
    rng = np.random.default_rng(5)
    xs = rng.integers(-128, 127, size=(n - 2, *shape[1:]), endpoint=True).astype(np.int8)
    extremes = np.stack([np.full(shape[1:], -128, np.int8), np.full(shape[1:], 127, np.int8)])
    return np.concatenate([xs, extremes])


@pytest.mark.parametrize(
    ("name", "board"),
    [
        ("ds_cnn", "mps2-an386"),
        ("ds_cnn", "mps2-an500"),
        ("resnet8", "mps2-an386"),
        ("mobilenet_v1_025", "mps2-an386"),
        ("fc_autoencoder", "mps2-an386"),
    ],
)
def test_bit_exact_with_tflite_micro_on_the_emulated_board(
    name: str, board: str, model_dir: Path, tmp_path: Path
) -> None:
    path = mcu_models.build(name, model_dir)
    xs = _random_inputs(path, 4)
    runner = _runner(tmp_path, f"qemu-{board}", board=board)
    try:
        got = runner.infer(_file(path), {"runtime": "mcu"}, xs)
    finally:
        runner.close()
        runner.transport.close()
    np.testing.assert_array_equal(got, _tflm_outputs(path, xs))


def _job(path: Path, evaluation: Any = None) -> Job:
    return Job(
        id=1,
        key="k",
        model=_file(path),
        setting={"runtime": "mcu", "threads": None, "optimize": "O2", "dsp": True},
        measure=RULES,
        evaluation=evaluation,
    )


def test_measurement_counts_instructions_per_layer(model_dir: Path, tmp_path: Path) -> None:
    path = mcu_models.build("ds_cnn", model_dir)
    runner = _runner(tmp_path, "m4", board="mps2-an386")
    try:
        first = runner.measure(_job(path))
        again = runner.measure(_job(path))
    finally:
        runner.close()
        runner.transport.close()
    assert first.emulated and first.estimated == ["latency"]
    counts = [c for w in first.details["counts"] for c in w]
    assert len(set(counts)) == 1  # deterministic under -icount: every run the same
    assert first.details["counts"] == again.details["counts"]
    total = first.executed_instructions
    assert total == counts[0]
    per_layer = sum(row.instructions for row in first.layers)
    # The hooks' own cost is calibrated out; what is left between layers is the loop.
    assert abs(per_layer - total) < 0.01 * total
    assert {row.op for row in first.layers} >= {"CONV_2D", "DEPTHWISE_CONV_2D", "SOFTMAX"}
    macs = first.details["macs"]
    assert 1.0 < total / macs < 6.0  # instructions per MAC, recorded in benchmarks/RESULTS.md
    stack = {f.name: f.value for f in first.figures}["stack_used"]
    assert 0 < stack < runner.target.board.stack_bytes


def test_eembc_mode_drives_text_protocol_firmware(model_dir: Path, tmp_path: Path) -> None:
    """An EEMBC (MLPerf Tiny) protocol firmware is measured without edgebench building
    anything: here edgebench's own image, flashed as an opaque ELF."""
    path = mcu_models.build("fc_autoencoder", model_dir)
    board = make_transport(
        DeviceConfig(name="b", transport="qemu", options={"board": "mps2-an386"}), tmp_path
    ).board
    elf = build_image(_file(path), board, tmp_path / "mcu").firmware.elf
    xs = np.random.default_rng(3).standard_normal((5, 640)).astype(np.float32)
    labels = np.zeros(5, dtype=np.int64)
    framed = _runner(tmp_path, "framed", board="mps2-an386")
    eembc = _runner(
        tmp_path, "eembc", board="mps2-an386", protocol="eembc", firmware=str(elf)
    )
    try:
        a = framed.measure(_job(path, lambda: EvalSet(xs, labels)))
        b = eembc.measure(_job(path, lambda: EvalSet(xs, labels)))
    finally:
        for r in (framed, eembc):
            r.close()
            r.transport.close()
    assert b.note and "edgebench" in b.note and len(b.windows) == RULES.repetitions
    # Both modes time the same image: the lap stamps bracket N runs (plus loop overhead).
    assert b.windows[0][0] == pytest.approx(a.windows[0][0], rel=0.02)
    assert b.accuracy.count == a.accuracy.count == 5
    assert b.accuracy.correct == a.accuracy.correct


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_emulate_mcu_serves_the_uart_until_ctrl_c(model_dir: Path, tmp_path: Path) -> None:
    path = mcu_models.build("fc_autoencoder", model_dir)
    port = _free_port()
    env = {**os.environ, "EDGEBENCH_HOME": str(tmp_path / "home")}
    proc = subprocess.Popen(
        [EDGEBENCH, "emulate", "mcu", "--port", str(port), "--model", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        line = None
        while time.monotonic() < deadline and line is None:
            try:
                line = SerialLine(f"socket://127.0.0.1:{port}")
            except Exception:  # noqa: BLE001 - not listening yet
                assert proc.poll() is None, proc.communicate()
                time.sleep(0.2)
        assert line is not None, "emulate mcu never opened its UART port"
        client = EembcClient(line)
        assert client.name() == "edgebench"
        assert "fc_autoencoder" in (client.profile().model or "")
        line.close()
        # A second tool connects after the first left (as MLPerf Tiny's runner would).
        again = EembcClient(SerialLine(f"socket://127.0.0.1:{port}"))
        assert again.name() == "edgebench"
        again.line.close()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            # Never leave the emulator spinning behind a failed test (QEMU in its own
            # session takes a core until killed): the test fails, the machine is clean.
            from devices.qemu import QEMU
            from tests.sshd import descendants

            for pid in descendants(proc.pid):
                os.kill(pid, signal.SIGKILL)
            proc.kill()
            out, err = proc.communicate()
            subprocess.run(["pkill", "-9", "-f", f"{QEMU}.*{path.name}"], check=False)
            raise AssertionError(f"emulate mcu did not stop on SIGINT: {err[-1000:]}") from None
    assert proc.returncode in (0, 130), err
    assert f"socket://127.0.0.1:{port}" in out
    assert "Traceback" not in err


def test_energy_from_a_ppk2_in_the_boards_supply(model_dir: Path, tmp_path: Path) -> None:
    """power=ppk2: the runner records the meter (here the recorded PPK2 stream behind a
    pty, parsed by the real ppk2-api) during an extra INFER and integrates it over that
    request; the figure is measured, not estimated."""
    from tests.test_mcu_power import PPK2_DATA, FakePpk2

    fake = FakePpk2(
        (PPK2_DATA / "metadata.txt").read_bytes(),
        (PPK2_DATA / "capture_source_3v3.bin").read_bytes(),
    )
    path = mcu_models.build("ds_cnn", model_dir)
    runner = _runner(
        tmp_path, "m4-ppk2", board="mps2-an386", power="ppk2", meter_port=fake.path
    )
    try:
        m = runner.measure(_job(path))
    finally:
        runner.close()
        runner.transport.close()
        fake.close()
    assert m.power is not None and m.power.source == "ppk2" and not m.power.estimated
    assert m.power.sample_rate_hz == pytest.approx(100_000, rel=1e-3)
    # The recording loops 0.25 s of a board at 2 mA idle / 38.5 mA busy (64.4 mW mean).
    assert m.power.mean_power_w == pytest.approx(64.4e-3, rel=0.2)
    runs = int(m.power.note.split()[0])
    assert runs >= 1 and m.power.energy_per_inference_j > 0
    assert b"\x06" in fake.commands  # the stream was really started
