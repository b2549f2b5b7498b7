"""The MCU model-to-C compiler: arena planner, supported-op checks, and the
emitted C compiled for the host, bit-exact against the TFLite Micro interpreter
on MLPerf Tiny-shaped int8 models (tests/mcu_models.py).

The host build compiles every kernel twice: plain C (what a Cortex-M0/M3 runs)
and with EB_EMULATE_DSP, the Armv7E-M SIMD loop structure with the DSP
instructions written in C (what a Cortex-M4/M7 runs).
"""

from __future__ import annotations

import ctypes
import itertools
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from runners.mcu.compiler import (
    ALIAS_OPS,
    INCLUDE_DIR,
    KERNELS_DIR,
    SUPPORTED_OPS,
    CompiledModel,
    UnsupportedModelError,
    check_supported,
    compile_model,
    kernel_sources,
)
from runners.mcu.planner import (
    BufferUse,
    overlapping_pairs,
    peak_live_bytes,
    plan_arena,
    tensor_lifetimes,
)
from runners.mcu.tflite_reader import read_tflite
from tests import mcu_models

MODELS = ("ds_cnn", "resnet8", "mobilenet_v1_025", "fc_autoencoder", "digits_cnn")
TFLM_ARENA = 4 << 20  # generous: the used part is what gets measured


# --------------------------------------------------------------------------- planner


def _random_uses(rng: np.random.Generator, n: int, n_ops: int) -> list[BufferUse]:
    uses = []
    for i in range(n):
        first = int(rng.integers(-1, n_ops))
        last = int(rng.integers(first, n_ops + 1))
        uses.append(BufferUse(i, int(rng.integers(0, 5000)), first, last))
    return uses


def test_planner_never_overlaps_live_buffers() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        uses = _random_uses(rng, int(rng.integers(1, 30)), 12)
        plan = plan_arena(uses)
        assert overlapping_pairs(uses, plan) == []
        assert all(off % 16 == 0 for off in plan.offsets.values())
        assert plan.arena_bytes >= peak_live_bytes(uses)


def test_planner_reaches_the_optimum_of_small_cases() -> None:
    # A chain a -> b -> c -> d: only neighbours live together; the optimum is
    # the largest neighbouring pair.
    chain = [
        BufferUse("a", 1000, 0, 1),
        BufferUse("b", 3000, 1, 2),
        BufferUse("c", 500, 2, 3),
        BufferUse("d", 2500, 3, 4),
    ]
    assert plan_arena(chain).arena_bytes == 3008 + 1008
    # A residual block: the skip input lives across three convs. Largest-first
    # alone fragments this (the short-lived 18496 goes to offset 0 and the skip
    # no longer fits below); the planner must still find the lower bound.
    residual = [
        BufferUse("in", 3072, -1, 9),
        BufferUse("x0", 16384, 1, 4),
        BufferUse("x1", 16384, 2, 3),
        BufferUse("x2", 16384, 3, 4),
        BufferUse("skip", 16384, 4, 8),
        BufferUse("pad", 18496, 5, 6),
        BufferUse("y", 8192, 6, 7),
        BufferUse("z", 8192, 7, 9),
        BufferUse("s", 8192, 8, 9),
    ]
    plan = plan_arena(residual)
    assert overlapping_pairs(residual, plan) == []
    assert plan.arena_bytes == peak_live_bytes(residual)


def test_planner_brute_force_optimum_on_tiny_cases() -> None:
    # Exhaustive search over every placement on the 16-byte grid for 4 buffers.
    rng = np.random.default_rng(1)
    for _ in range(30):
        uses = [
            BufferUse(i, 16 * int(rng.integers(1, 5)), int(a), int(a + rng.integers(0, 3)))
            for i, a in enumerate(rng.integers(0, 3, size=4))
        ]
        total = sum(u.size for u in uses)
        best = total
        for offsets in itertools.product(range(0, total, 16), repeat=len(uses)):
            end = max(o + u.size for o, u in zip(offsets, uses, strict=True))
            if end >= best:
                continue
            ok = all(
                not a.lives_with(b) or oa + a.size <= ob or ob + b.size <= oa
                for (oa, a), (ob, b) in itertools.combinations(zip(offsets, uses, strict=True), 2)
            )
            if ok:
                best = end
        assert plan_arena(uses).arena_bytes == best


def test_lifetimes_keep_graph_inputs_and_merge_aliases() -> None:
    # op0: t0 -> t1 ; op1 RESHAPE t1 -> t2 (alias) ; op2: t2 -> t3 ; op3: t3 -> t4
    uses = tensor_lifetimes(
        4,
        [[0], [1], [2], [3]],
        [[1], [2], [3], [4]],
        {0: 64, 1: 32, 2: 32, 3: 48, 4: 8},
        graph_inputs=[0],
        graph_outputs=[4],
        aliases={2: (1, 0)},
    )
    by_key = {u.key: u for u in uses}
    assert set(by_key) == {0, 1, 3, 4}  # t2 is t1's bytes
    assert (by_key[0].first, by_key[0].last) == (-1, 4)  # input: the whole invocation
    assert (by_key[1].first, by_key[1].last) == (0, 2)  # alias group: write .. last read
    assert by_key[4].last == 4  # output: read after the last operator
    plan = plan_arena(uses)
    assert overlapping_pairs(uses, plan) == []


def test_planner_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="power of two"):
        plan_arena([], alignment=12)
    with pytest.raises(ValueError, match="unique"):
        plan_arena([BufferUse("a", 1, 0, 0), BufferUse("a", 1, 1, 1)])
    with pytest.raises(ValueError, match="before first"):
        BufferUse("a", 1, 3, 2)


# --------------------------------------------------------------------------- models


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return mcu_models.cache_dir(tmp_path_factory.mktemp("mcu-models"))


_built: dict[str, Path] = {}


def _model(name: str, directory: Path, **kwargs: object) -> Path:
    key = f"{name}{sorted(kwargs.items())}"
    if key not in _built:
        _built[key] = mcu_models.build(name, directory, **kwargs)  # type: ignore[arg-type]
    return _built[key]


def test_unsupported_operator_is_one_line_naming_the_node(model_dir: Path) -> None:
    path = _model("tanh_net", model_dir)
    graph = read_tflite(path)
    tanh = [op.index for op in graph.operators if op.builtin == "TANH"]
    assert tanh, "the converter no longer emits TANH; pick another unsupported op"
    expected = (
        f"{path.name}: unsupported: "
        + ", ".join(f"node {i} TANH" for i in tanh)
        + f" (supported: {', '.join(SUPPORTED_OPS)})"
    )
    with pytest.raises(UnsupportedModelError) as info:
        compile_model(path, model_dir / "out-tanh", name="tanh")
    assert str(info.value) == expected
    assert isinstance(info.value, ValueError)


def test_float_model_lists_every_float_node(model_dir: Path) -> None:
    path = _model("digits_cnn", model_dir, float_model=True)
    graph = read_tflite(path)
    with pytest.raises(UnsupportedModelError) as info:
        check_supported(graph, path.name)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path.name}: unsupported: node ")
    conv = next(op.index for op in graph.operators if op.builtin == "CONV_2D")
    assert f"node {conv} CONV_2D with float32 input, output, weights and bias," in message
    # Every computing operator is listed, once, in order; RESHAPE-like ones move
    # bytes of any type and are not.
    listed = [int(n) for n in re.findall(r"node (\d+) ", message)]
    assert listed == [op.index for op in graph.operators if op.builtin not in ALIAS_OPS]
    assert len(listed) < len(graph.operators)  # the float graph has a RESHAPE


# --------------------------------------------------------------------------- host build

HARNESS_C = r"""
#include <string.h>
#include "eb_model.h"
int eb_host_set_input(unsigned i, const unsigned char *data, unsigned n) {
    if (i >= eb_model.n_inputs || n != eb_model.inputs[i].bytes) return -1;
    memcpy(eb_model.inputs[i].data, data, n);
    return 0;
}
int eb_host_get_output(unsigned i, unsigned char *data, unsigned n) {
    if (i >= eb_model.n_outputs || n != eb_model.outputs[i].bytes) return -1;
    memcpy(data, eb_model.outputs[i].data, n);
    return 0;
}
static unsigned hook_calls, hook_in_order = 1;
static void hook(uint32_t i, void *ctx) {
    (void)ctx;
    if (i != hook_calls) hook_in_order = 0;
    hook_calls++;
}
int eb_host_invoke(void) { hook_calls = 0; hook_in_order = 1; return eb_model_invoke(hook, 0); }
unsigned eb_host_hook_calls(void) { return hook_in_order ? hook_calls : 0; }
unsigned eb_host_arena_bytes(void) { return eb_model.arena_bytes; }
unsigned long long eb_host_macs(void) { return eb_model.macs; }
unsigned eb_host_n_ops(void) { return eb_model.n_ops; }
"""


@dataclass
class HostModel:
    compiled: CompiledModel
    tflite: Path
    lib: ctypes.CDLL

    def run(self, x: np.ndarray) -> np.ndarray:
        io = self.compiled.inputs[0]
        data = np.ascontiguousarray(x).tobytes()
        assert self.lib.eb_host_set_input(0, data, len(data)) == 0
        assert self.lib.eb_host_invoke() == 0
        out = self.compiled.outputs[0]
        buf = ctypes.create_string_buffer(out.bytes)
        assert self.lib.eb_host_get_output(0, buf, out.bytes) == 0
        assert io.bytes == len(data)
        return np.frombuffer(buf.raw, dtype=_NUMPY[out.dtype]).reshape(out.shape)


_NUMPY = {"INT8": np.int8, "FLOAT32": np.float32}


def _gcc() -> str:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("no host gcc")
    return gcc


def _host_build(compiled: CompiledModel, out_dir: Path, defines: list[str]) -> Path:
    harness = out_dir / "harness.c"
    harness.write_text(HARNESS_C)
    lib = out_dir / "model.so"
    cmd = [
        _gcc(),
        "-std=c99",
        "-O2",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-shared",
        "-fPIC",
        *defines,
        "-I",
        str(INCLUDE_DIR),
        "-I",
        str(KERNELS_DIR),
        str(compiled.model_c),
        str(harness),
        *map(str, kernel_sources()),
        "-o",
        str(lib),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-4000:]
    return lib


_hosts: dict[tuple[str, str], HostModel] = {}


def _host_model(name: str, variant: str, model_dir: Path, build_root: Path) -> HostModel:
    key = (name, variant)
    if key not in _hosts:
        base, _, option = name.partition("+")
        tflite = _model(base, model_dir)
        if option == "float_io":
            tflite = mcu_models.with_float_io(tflite, tflite.with_name(tflite.stem + "-fio.tflite"))
        out_dir = build_root / f"{name}-{variant}"
        compiled = compile_model(
            tflite, out_dir, name=base, in_place="all" if option == "in_place" else "auto"
        )
        defines = ["-DEB_EMULATE_DSP"] if variant == "dsp" else []
        lib = ctypes.CDLL(str(_host_build(compiled, out_dir, defines)))
        lib.eb_host_macs.restype = ctypes.c_ulonglong
        _hosts[key] = HostModel(compiled, tflite, lib)
    return _hosts[key]


@pytest.fixture(scope="session")
def build_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mcu-host")


def _tflm(path: Path):  # noqa: ANN202 - tflite_micro has no type stubs
    from tflite_micro.python.tflite_micro import runtime

    return runtime.Interpreter.from_file(str(path), arena_size=TFLM_ARENA)


def _inputs(host: HostModel, count: int) -> list[np.ndarray]:
    io = host.compiled.inputs[0]
    rng = np.random.default_rng(1234)
    if io.dtype == "FLOAT32":
        return [rng.standard_normal(io.shape).astype(np.float32) * 2 for _ in range(count)]
    xs = [rng.integers(-128, 128, io.shape).astype(np.int8) for _ in range(count)]
    return xs + [np.full(io.shape, -128, np.int8), np.full(io.shape, 127, np.int8)]


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["c", "dsp"])
# +float_io: QUANTIZE/DEQUANTIZE at a float32 boundary; +in_place: every conv,
# depthwise conv, ADD and MUL that may overwrite its input does (not only where
# it pays); in_place_cnn has the in-place shapes the MLPerf models lack.
@pytest.mark.parametrize(
    "name",
    [
        *MODELS,
        "ds_cnn+float_io",
        "ds_cnn+in_place",
        "resnet8+in_place",
        "mobilenet_v1_025+in_place",
        "in_place_cnn",
        "in_place_cnn+in_place",
    ],
)
def test_bit_exact_with_tflite_micro(
    name: str, variant: str, model_dir: Path, build_root: Path
) -> None:
    host = _host_model(name, variant, model_dir, build_root)
    interp = _tflm(host.tflite)
    n_ops = len(host.compiled.ops)
    for i, x in enumerate(_inputs(host, 4)):
        interp.set_input(x, 0)
        interp.invoke()
        expected = interp.get_output(0)
        ours = host.run(x)
        assert ours.dtype == expected.dtype and ours.shape == expected.shape
        mismatched = int(np.count_nonzero(ours.view(np.uint8) != expected.view(np.uint8)))
        assert mismatched == 0, f"{name}/{variant} input {i}: {mismatched} bytes differ"
        assert host.lib.eb_host_hook_calls() == n_ops + 1  # hook(0..n-1) in order, then n
    # The same upload inferred again gives the same bytes (inputs stay intact).
    assert np.array_equal(host.run(x), host.run(x))
    assert host.lib.eb_host_n_ops() == n_ops
    assert host.lib.eb_host_arena_bytes() == host.compiled.arena_bytes
    assert host.lib.eb_host_macs() == host.compiled.macs == sum(m for _, _, m in host.compiled.ops)


# Our arena (activations and kernel scratch, the graph input kept whole) is at
# least this much smaller than TFLM's for every model.
ARENA_SAVING_TARGET = 0.25


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_arena_is_a_quarter_smaller_than_tflite_micro(
    name: str, model_dir: Path, build_root: Path, record_property: pytest.RecordProperty
) -> None:
    host = _host_model(name, "c", model_dir, build_root)
    ours = host.compiled.arena_bytes
    tflm = mcu_models.tflm_arena_used_bytes(host.tflite)
    record_property("arena_bytes", ours)
    record_property("tflm_arena_bytes", tflm)
    print(
        f"{name}: arena {ours} bytes, TFLM {tflm} bytes ({1 - ours / tflm:.0%} smaller), "
        f"weights {host.compiled.weights_bytes}, MACs {host.compiled.macs}"
    )
    assert ours <= (1 - ARENA_SAVING_TARGET) * tflm
