"""The MCU firmware's int8 kernels other than conv/depthwise/FC, checked bit for bit
against TFLite Micro's reference kernels.

Each operator comes from a real converter pipeline (a torch module ->
litert_torch -> ai-edge-quantizer full int8, as ``suites/quantization.py``
builds models), asserted to contain the op under test. That op is cut out into
a one-op model; where a case needs other quantization, options or shapes than
the converter chose, the cut-out model is edited (scales, zero points, padding,
strides, axes, perm, paddings) so TFLM prepares the op from exactly the tensors
and options that ``runners/mcu/quant.py`` reads. TFLM runs the model; the C
kernel, compiled into a host shared library and called through ctypes with the
parameters from quant.py, runs on the same inputs; the outputs must be equal
byte for byte. Inputs include the full int8 range, extremes (saturation) and,
for ADD/MUL/QUANTIZE, every input combination. Tests that build models are
marked slow (the whole file takes about 20 s).
"""

from __future__ import annotations

import copy
import ctypes
import math
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import astuple, dataclass
from pathlib import Path

import numpy as np
import pytest

from runners.mcu import quant

torch = pytest.importorskip("torch")
litert_torch = pytest.importorskip("litert_torch")
pytest.importorskip("ai_edge_quantizer")
tflm_runtime = pytest.importorskip("tflite_micro.python.tflite_micro.runtime")
flatbuffers = pytest.importorskip("flatbuffers")
from ai_edge_litert import schema_py_generated as S  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
FIRMWARE = REPO / "runners" / "mcu" / "firmware"
KERNEL_SOURCES = ["elementwise.c", "pool.c", "reduce.c", "shape.c", "softmax.c", "quantize.c"]
OP_NAMES = {v: k for k, v in vars(S.BuiltinOperator).items() if not k.startswith("_")}
ARENA = 4 << 20
# The firmware's C dialect; -Werror keeps the kernels warning-free.
CFLAGS = ["-std=c99", "-O2", "-shared", "-fPIC", "-Wall", "-Wextra", "-Werror"]


# --- the C kernels as a host library -------------------------------------------


@pytest.fixture(scope="session")
def lib(tmp_path_factory: pytest.TempPathFactory) -> ctypes.CDLL:
    out = tmp_path_factory.mktemp("mcu-kernels") / "libebmisc.so"
    includes = [f"-I{FIRMWARE / 'include'}", f"-I{FIRMWARE / 'kernels'}"]
    sources = [str(FIRMWARE / "kernels" / s) for s in KERNEL_SOURCES]
    argv = ["gcc", *CFLAGS, *includes, *sources, "-o", str(out)]
    subprocess.run(argv, check=True, capture_output=True, text=True)
    return ctypes.CDLL(str(out))


def _ptr(a: np.ndarray) -> int:
    assert a.flags.c_contiguous
    return a.ctypes.data


def _i32(values: Sequence[int]) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(values, dtype=np.int32).reshape(-1))


def call(lib: ctypes.CDLL, name: str, *args: object) -> None:
    """Call a kernel: numpy arrays become pointers, ints int32 (uint32 for sizes
    the header declares so; all values here are small), floats C floats."""
    cargs: list[object] = []
    for a in args:
        if isinstance(a, np.ndarray):
            cargs.append(ctypes.c_void_p(_ptr(a)))
        elif isinstance(a, float):
            cargs.append(ctypes.c_float(a))
        elif isinstance(a, int):
            cargs.append(ctypes.c_int32(a))
        else:
            cargs.append(a)
    fn = getattr(lib, name)
    fn.restype = None
    fn(*cargs)


# --- models: build, cut out one op, edit, run in TFLM --------------------------


class Fn(torch.nn.Module):
    def __init__(self, fn: Callable[..., torch.Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return self.fn(*xs)


@dataclass(frozen=True)
class Spec:
    fn: Callable[..., torch.Tensor]
    shapes: tuple[tuple[int, ...], ...]
    ranges: tuple[tuple[float, float], ...]  # calibration range per input
    quantize_only: str | None = (
        None  # an op name: keep float I/O (QUANTIZE/DEQUANTIZE at the edges)
    )


SPECS: dict[str, Spec] = {
    "add_bcast": Spec(
        lambda x, y: torch.relu(x + y), ((1, 4, 6, 8), (1, 1, 1, 8)), ((-2, 2), (-1, 3))
    ),
    "add_flat": Spec(lambda x, y: x + y, ((1, 65536), (1, 65536)), ((-2, 2), (-1, 3))),
    "mul_bcast": Spec(lambda x, y: x * y, ((1, 4, 6, 8), (1, 4, 1, 1)), ((-2, 2), (-1, 3))),
    "mul_flat": Spec(lambda x, y: x * y, ((1, 65536), (1, 65536)), ((-2, 2), (-1, 3))),
    # padding=1 that matches SAME: the converter sets SAME padding
    "maxpool": Spec(
        lambda x: torch.nn.functional.max_pool2d(x, 3, 2, padding=1), ((1, 8, 9, 11),), ((-2, 2),)
    ),
    # padding=1 that does not: the converter pads explicitly (PADV2 with -inf) + VALID pool
    "maxpool_padv2": Spec(
        lambda x: torch.nn.functional.max_pool2d(x, 3, 2, padding=1), ((1, 4, 6, 8),), ((-2, 2),)
    ),
    "avgpool": Spec(
        lambda x: torch.nn.functional.avg_pool2d(x, 2, 2), ((1, 8, 9, 11),), ((-2, 2),)
    ),
    "mean": Spec(lambda x: x.mean(dim=(2, 3), keepdim=True), ((2, 5, 6, 7),), ((-2, 2),)),
    "softmax": Spec(lambda x: torch.softmax(x, -1), ((4, 10),), ((-6, 6),)),
    "pad": Spec(lambda x: torch.nn.functional.pad(x, (1, 2, 0, 1)), ((1, 3, 4, 5),), ((-1, 2),)),
    "transpose": Spec(lambda x: x.permute(0, 2, 1, 3), ((2, 3, 4, 5),), ((-2, 2),)),
    "concat": Spec(
        lambda x, y: torch.cat([x, y * 2], 1), ((1, 2, 3, 4), (1, 3, 3, 4)), ((-2, 2), (-1, 1))
    ),
    "reshape": Spec(lambda x: torch.flatten(x, 1) + 0.0, ((2, 3, 4, 5),), ((-2, 2),)),
    "quant_io": Spec(lambda x: x * 3.0, ((1, 4096),), ((-3, 3),), quantize_only="MUL"),
}


def op_name(m: S.ModelT, op: S.OperatorT) -> str:
    code = m.operatorCodes[op.opcodeIndex]
    return OP_NAMES[max(code.builtinCode, code.deprecatedBuiltinCode)]


class Models:
    """Session cache of quantized models, built on first use."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.cache: dict[str, S.ModelT] = {}

    def get(self, key: str) -> S.ModelT:
        if key not in self.cache:
            self.cache[key] = self._build(key, SPECS[key])
        return self.cache[key]

    def _build(self, key: str, spec: Spec) -> S.ModelT:
        from ai_edge_litert.interpreter import Interpreter
        from ai_edge_quantizer import quantizer, recipe

        float_path = self.root / f"{key}_f32.tflite"
        int8_path = self.root / f"{key}_int8.tflite"
        examples = tuple(torch.zeros(s) for s in spec.shapes)
        litert_torch.convert(Fn(spec.fn).eval(), examples).export(str(float_path))
        ((signature, io),) = Interpreter(model_path=str(float_path)).get_signature_list().items()
        rng = np.random.default_rng(1)
        calib = [
            {
                name: rng.uniform(lo, hi, shape).astype(np.float32)
                for name, shape, (lo, hi) in zip(
                    io["inputs"], spec.shapes, spec.ranges, strict=True
                )
            }
            for _ in range(8)
        ]
        for sample in calib[:2]:  # make sure the extremes are seen
            for name, (lo, hi) in zip(io["inputs"], spec.ranges, strict=True):
                sample[name].flat[:2] = (lo, hi)
        rec = recipe.static_wi8_ai8()
        if spec.quantize_only is not None:
            rec[0]["operation"] = spec.quantize_only
        qt = quantizer.Quantizer(str(float_path))
        qt.load_quantization_recipe(rec)
        results = qt.quantize(qt.calibrate({signature: calib}), enable_progress_report=False)
        results.export_model(str(int8_path), overwrite=True)
        buf = int8_path.read_bytes()
        return S.ModelT.InitFromObj(S.Model.GetRootAsModel(buf, 0))


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    return Models(tmp_path_factory.mktemp("mcu-kernel-models"))


class OneOp:
    """One operator of a model, cut out into a model of its own (its non-constant
    inputs become the graph inputs), with helpers to edit it."""

    def __init__(self, model: S.ModelT, name: str, nth: int = 0) -> None:
        names = [op_name(model, op) for op in model.subgraphs[0].operators]
        assert names.count(name) > nth, f"the converter produced {names}, no {name} #{nth}"
        self.m = copy.deepcopy(model)
        sg = self.m.subgraphs[0]
        self.op = [op for op in sg.operators if op_name(self.m, op) == name][nth]
        sg.operators = [self.op]
        sg.inputs = np.array(
            [i for i in self.op.inputs if i >= 0 and not self.is_const(i)], np.int32
        )
        sg.outputs = np.array(list(self.op.outputs), np.int32)
        self.m.signatureDefs = []

    @property
    def options(self) -> object:  # the generated *OptionsT of this op
        return self.op.builtinOptions

    def tensor(self, i: int) -> S.TensorT:
        return self.m.subgraphs[0].tensors[i]

    def is_const(self, i: int) -> bool:
        t = self.tensor(i)
        data = self.m.buffers[t.buffer].data if t.buffer > 0 else None
        return data is not None and len(data) > 0

    def inp(self, k: int) -> int:
        return int(self.op.inputs[k])

    def out(self, k: int = 0) -> int:
        return int(self.op.outputs[k])

    def shape(self, i: int) -> tuple[int, ...]:
        return tuple(int(d) for d in self.tensor(i).shape)

    def qparams(self, i: int) -> tuple[float, int]:
        q = self.tensor(i).quantization
        return float(q.scale[0]), int(q.zeroPoint[0])

    def const(self, i: int, dtype: type) -> np.ndarray:
        t = self.tensor(i)
        raw = np.asarray(self.m.buffers[t.buffer].data, np.uint8).tobytes()
        return np.frombuffer(raw, dtype).reshape(self.shape(i))

    def set_quant(self, i: int, scale: float, zero_point: int) -> None:
        q = self.tensor(i).quantization
        q.scale = np.array([scale], np.float32)
        q.zeroPoint = np.array([zero_point], np.int64)

    def set_shape(self, i: int, shape: Sequence[int]) -> None:
        t = self.tensor(i)
        t.shape = np.array(shape, np.int32)
        t.shapeSignature = None

    def set_const(self, i: int, data: np.ndarray) -> None:
        self.m.buffers[self.tensor(i).buffer].data = np.frombuffer(
            np.ascontiguousarray(data).tobytes(), np.uint8
        )
        self.set_shape(i, data.shape)

    def run_tflm(self, *inputs: np.ndarray) -> np.ndarray:
        builder = flatbuffers.Builder(1024)
        builder.Finish(self.m.Pack(builder), file_identifier=b"TFL3")
        interp = tflm_runtime.Interpreter.from_bytes(bytes(builder.Output()), arena_size=ARENA)
        for k, x in enumerate(inputs):
            interp.set_input(x, k)
        interp.invoke()
        return np.array(interp.get_output(0))


def random_int8(rng: np.random.Generator, shape: Sequence[int]) -> np.ndarray:
    return rng.integers(-128, 128, size=tuple(shape), dtype=np.int8)


def int8_cases(
    rng: np.random.Generator, shape: Sequence[int], n_random: int = 3
) -> list[np.ndarray]:
    """Random full-range inputs plus the extremes (saturation) and a constant
    tensor (rounding ties in averages, equal rows in softmax)."""
    cases = [random_int8(rng, shape) for _ in range(n_random)]
    cases.append(rng.choice(np.array([-128, 127], np.int8), size=tuple(shape)))
    cases.append(np.full(tuple(shape), int(rng.integers(-128, 128)), np.int8))
    return cases


def random_quant(rng: np.random.Generator, lo: float = 1e-3, hi: float = 0.5) -> tuple[float, int]:
    scale = float(np.float32(math.exp(rng.uniform(math.log(lo), math.log(hi)))))
    return scale, int(rng.integers(-128, 128))


def assert_same(ours: np.ndarray, tflm: np.ndarray) -> None:
    """Equal bit patterns (so -0.0 != 0.0 for DEQUANTIZE), with the first difference."""
    assert ours.dtype == tflm.dtype and ours.shape == tflm.shape
    bits = f"u{ours.itemsize}"
    a, b = ours.reshape(-1).view(bits), tflm.reshape(-1).view(bits)
    bad = np.flatnonzero(a != b)
    if bad.size:
        i = bad[0]
        flat_ours, flat_tflm = ours.reshape(-1), tflm.reshape(-1)
        raise AssertionError(
            f"{bad.size} of {ours.size} differ; first at {i}: "
            f"ours {flat_ours[i]}, TFLM {flat_tflm[i]}"
        )


# --- quantize_multiplier and friends -------------------------------------------


def test_round_half_away() -> None:
    for x, want in [
        (0.5, 1),
        (-0.5, -1),
        (1.5, 2),
        (-2.5, -3),
        (0.49999999999999994, 0),
        (2.4999, 2),
        (0.0, 0),
    ]:
        assert quant.round_half_away(x) == want, x


@pytest.mark.parametrize(
    ("real", "expected"),
    [
        (0.0, (0, 0)),
        (0.5, (1 << 30, 0)),
        (1.0, (1 << 30, 1)),
        (0.75, (3 << 29, 0)),
        (-0.5, (-(1 << 30), 0)),
        # q * 2^31 rounds up to 2^31: halve it and bump the shift
        (1.0 - 2.0**-33, (1 << 30, 1)),
        (1.0 - 2.0**-31, ((1 << 31) - 1, 0)),
        # a tie in q * 2^31 rounds away from zero
        (0.5 + 2.0**-32, ((1 << 30) + 1, 0)),
        (0.5 + 3 * 2.0**-33, ((1 << 30) + 1, 0)),
        (0.5 + 2.0**-33, (1 << 30, 0)),
        # below ~2^-32 flush to zero; 2^-32 itself is the smallest kept
        (2.0**-32, (1 << 30, -31)),
        (2.0**-33, (0, 0)),
        # no clamp of large shifts: TFLM is a double-rounding build
        (2.0**40, (1 << 30, 41)),
    ],
)
def test_quantize_multiplier(real: float, expected: tuple[int, int]) -> None:
    assert quant.quantize_multiplier(real) == expected


def test_quantize_multiplier_reconstructs() -> None:
    rng = np.random.default_rng(0)
    for real in np.exp(rng.uniform(-20, 10, 500)):
        m, s = quant.quantize_multiplier(float(real))
        assert (1 << 30) <= m < (1 << 31)
        assert abs(m * 2.0 ** (s - 31) - real) <= real * 2.0**-31


def test_multiplier_range_checks() -> None:
    with pytest.raises(ValueError):
        quant.quantize_multiplier_smaller_than_one_exp(1.0)
    with pytest.raises(ValueError):
        quant.quantize_multiplier_greater_than_one(1.0)
    assert quant.quantize_multiplier_greater_than_one(3.0) == (3 << 29, 2)


def test_activation_range() -> None:
    assert quant.activation_range(0, 0.1, 3) == quant.ActivationRange(-128, 127)
    assert quant.activation_range(1, 0.1, -5) == quant.ActivationRange(-5, 127)
    # 6 / 0.05 = 120 -> 120 + (-10) = 110; RELU6 clips both sides
    assert quant.activation_range(3, 0.05, -10) == quant.ActivationRange(-10, 110)
    assert quant.activation_range(3, 0.01, 100) == quant.ActivationRange(100, 127)
    with pytest.raises(ValueError, match="not supported"):
        quant.activation_range(4, 0.1, 0)


# --- ADD / MUL -------------------------------------------------------------------


def _binary(
    lib: ctypes.CDLL, kind: str, op: OneOp, x: np.ndarray, y: np.ndarray, activation: int
) -> np.ndarray:
    (s1, z1), (s2, z2), (so, zo) = (
        op.qparams(op.inp(0)),
        op.qparams(op.inp(1)),
        op.qparams(op.out()),
    )
    a, b, o = quant.broadcast_shapes(x.shape, y.shape)
    assert o == op.shape(op.out())
    out = np.zeros(o, np.int8)
    common = (x, _i32(a), y, _i32(b), out, _i32(o), len(o))
    # AddParams / MulParams fields are in the C functions' argument order.
    if kind == "ADD":
        p = quant.add_params(s1, z1, s2, z2, so, zo, activation)
        call(lib, "eb_add_s8", *common, *astuple(p))
    else:
        q = quant.mul_params(s1, z1, s2, z2, so, zo, activation)
        call(lib, "eb_mul_s8", *common, *astuple(q))
    return out


@pytest.mark.parametrize("kind", ["ADD", "MUL"])
@pytest.mark.slow
def test_binary_exhaustive(lib: ctypes.CDLL, models: Models, kind: str) -> None:
    """Every (x, y) int8 pair, under the converter's quantization and random ones,
    with each fused activation."""
    base = models.get("add_flat" if kind == "ADD" else "mul_flat")
    grid_x, grid_y = np.meshgrid(np.arange(-128, 128), np.arange(-128, 128), indexing="ij")
    x = grid_x.astype(np.int8).reshape(1, -1)
    y = grid_y.astype(np.int8).reshape(1, -1)
    rng = np.random.default_rng(7)
    for trial in range(6):
        op = OneOp(base, kind)
        if trial > 0:
            for i in (op.inp(0), op.inp(1), op.out()):
                op.set_quant(i, *random_quant(rng, 1e-3, 0.2 if kind == "ADD" else 1.0))
        activation = (0, 1, 3)[trial % 3]
        op.options.fusedActivationFunction = activation
        assert_same(_binary(lib, kind, op, x, y, activation), op.run_tflm(x, y))


BROADCASTS = [
    ((1, 4, 6, 8), (1, 1, 1, 8)),
    ((1, 1, 1, 8), (1, 4, 6, 8)),
    ((1, 4, 1, 8), (1, 1, 6, 1)),
    ((2, 3, 1, 5), (3, 4, 1)),
    ((7,), (3, 1)),
    ((2, 1, 3, 1, 4), (1, 5, 1, 2, 1)),
    ((2, 1, 3, 1, 4, 1), (1, 2, 1, 3, 1, 2)),
]


@pytest.mark.parametrize("kind", ["ADD", "MUL"])
@pytest.mark.parametrize(("shape1", "shape2"), BROADCASTS)
@pytest.mark.slow
def test_binary_broadcast(
    lib: ctypes.CDLL, models: Models, kind: str, shape1: tuple[int, ...], shape2: tuple[int, ...]
) -> None:
    base = models.get("add_bcast" if kind == "ADD" else "mul_bcast")
    op = OneOp(base, kind)
    out_shape = np.broadcast_shapes(shape1, shape2)
    op.set_shape(op.inp(0), shape1)
    op.set_shape(op.inp(1), shape2)
    op.set_shape(op.out(), out_shape)
    activation = int(op.options.fusedActivationFunction)
    assert kind == "MUL" or activation == 1  # the converter fused the RELU
    rng = np.random.default_rng(len(shape1) * 10 + len(shape2))
    for x, y in zip(int8_cases(rng, shape1), int8_cases(rng, shape2), strict=True):
        assert_same(_binary(lib, kind, op, x, y, activation), op.run_tflm(x, y))


# --- pooling -----------------------------------------------------------------------


def _tf_out_size(padding: int, size: int, filt: int, stride: int) -> int:
    # TensorFlow's documented output size (independent of quant.py's C-style one)
    return math.ceil(size / stride) if padding == 0 else math.ceil((size - filt + 1) / stride)


POOL_CASES = [
    # padding (0 SAME, 1 VALID), filter (h, w), stride (h, w), activation
    (0, (3, 3), (2, 2), 0),  # the converter's max_pool2d(3, 2, padding=1) on 9 x 11
    (1, (3, 3), (2, 2), 0),
    (1, (2, 2), (2, 2), 0),  # the converter's avg_pool2d(2, 2)
    (0, (2, 2), (2, 2), 1),
    (0, (3, 2), (1, 2), 3),
    (1, (2, 3), (2, 1), 3),
    (0, (4, 4), (3, 3), 1),
    (1, (1, 1), (1, 1), 0),
    (0, (5, 7), (1, 1), 0),  # windows larger than the padding on each side
]


@pytest.mark.parametrize("kind", ["MAX_POOL_2D", "AVERAGE_POOL_2D"])
@pytest.mark.parametrize(("padding", "filt", "stride", "activation"), POOL_CASES)
@pytest.mark.slow
def test_pool(
    lib: ctypes.CDLL,
    models: Models,
    kind: str,
    padding: int,
    filt: tuple[int, int],
    stride: tuple[int, int],
    activation: int,
) -> None:
    op = OneOp(models.get("maxpool" if kind == "MAX_POOL_2D" else "avgpool"), kind)
    o = op.options
    if padding == 0 and filt == (3, 3) and kind == "MAX_POOL_2D":
        assert (o.padding, o.filterHeight, o.strideH) == (0, 3, 2)
    if padding == 1 and filt == (2, 2) and kind == "AVERAGE_POOL_2D":
        assert (o.padding, o.filterHeight, o.strideH) == (1, 2, 2)
    o.padding, (o.filterHeight, o.filterWidth), (o.strideH, o.strideW) = padding, filt, stride
    o.fusedActivationFunction = activation
    n, h, w, c = op.shape(op.inp(0))
    out_h, out_w = (
        _tf_out_size(padding, s, f, st) for s, f, st in zip((h, w), filt, stride, strict=True)
    )
    op.set_shape(op.out(), (n, out_h, out_w, c))
    (si, zi), (so, zo) = op.qparams(op.inp(0)), op.qparams(op.out())
    p = quant.pool_params(
        padding, stride[0], stride[1], filt[0], filt[1], h, w, activation, si, zi, so, zo
    )
    assert (p.out_h, p.out_w) == (out_h, out_w)
    fn = "eb_max_pool_s8" if kind == "MAX_POOL_2D" else "eb_avg_pool_s8"
    rng = np.random.default_rng(sum(filt) * 7 + sum(stride))
    for x in int8_cases(rng, (n, h, w, c)):
        out = np.zeros((n, out_h, out_w, c), np.int8)
        call(
            lib,
            fn,
            x,
            out,
            n,
            h,
            w,
            c,
            out_h,
            out_w,
            filt[0],
            filt[1],
            stride[0],
            stride[1],
            p.pad_h,
            p.pad_w,
            p.act_min,
            p.act_max,
        )
        assert_same(out, op.run_tflm(x))


def test_pool_rejects_requantization() -> None:
    with pytest.raises(ValueError, match="same input and output quantization"):
        quant.pool_params(0, 1, 1, 2, 2, 4, 4, 0, 0.1, 0, 0.2, 0)


# --- MEAN --------------------------------------------------------------------------

MEAN_CASES = [
    # input shape, axes, keep_dims, requantize (change the output quantization)
    ((2, 5, 6, 7), (2, 3), True, False),  # the converter's own case (torch's layout, unchanged)
    (
        (2, 5, 6, 7),
        (1, 2),
        True,
        True,
    ),  # TFLM's float special case (4D, axes 1 and 2); int8 is generic
    ((2, 5, 6, 7), (1, 2), False, True),
    ((2, 5, 6, 7), (-1,), False, True),
    ((2, 5, 6, 7), (0, 3), True, True),
    ((2, 5, 6, 7), (0, 1, 2, 3), False, True),
    ((3, 64, 9), (1,), True, True),  # N = 64: a power of two
    ((1, 1000), (1,), False, True),  # large N
    ((4, 3, 2, 5, 3), (1, 3, -1), True, True),
    ((2, 3, 1, 2, 2, 3), (5, 0, 5), False, True),  # duplicate axis, 6D
]


@pytest.mark.parametrize(("shape", "axes", "keep_dims", "requantize"), MEAN_CASES)
@pytest.mark.slow
def test_mean(
    lib: ctypes.CDLL,
    models: Models,
    shape: tuple[int, ...],
    axes: tuple[int, ...],
    keep_dims: bool,
    requantize: bool,
) -> None:
    op = OneOp(models.get("mean"), "MEAN")
    if (shape, axes, keep_dims, requantize) == MEAN_CASES[0]:
        assert op.shape(op.inp(0)) == shape and op.options.keepDims
        assert tuple(op.const(op.inp(1), np.int32).tolist()) == axes
    rng = np.random.default_rng(len(shape) * 100 + len(axes))
    op.set_shape(op.inp(0), shape)
    op.set_const(op.inp(1), np.array(axes, np.int32))
    unique_axes = tuple(sorted({a % len(shape) for a in axes}))
    out_shape = np.zeros(shape).mean(axis=unique_axes, keepdims=keep_dims).shape
    op.set_shape(op.out(), out_shape)
    op.options.keepDims = keep_dims
    if requantize:
        op.set_quant(op.inp(0), *random_quant(rng, 1e-3, 0.1))
        op.set_quant(op.out(), *random_quant(rng, 1e-3, 0.1))
    (si, zi), (so, zo) = op.qparams(op.inp(0)), op.qparams(op.out())
    p = quant.mean_params(shape, axes, si, zi, so, zo)
    assert quant.mean_output_shape(shape, axes, keep_dims) == out_shape
    for x in int8_cases(rng, shape):
        out = np.zeros(out_shape, np.int8)
        call(
            lib,
            "eb_mean_s8",
            x,
            _i32(shape),
            len(shape),
            _i32(p.axes),
            len(p.axes),
            out,
            p.num_elements,
            p.input_zp,
            p.multiplier,
            p.shift,
            p.output_zp,
        )
        assert_same(out, op.run_tflm(x))


# --- SOFTMAX -----------------------------------------------------------------------

SOFTMAX_CASES = [
    # shape, beta, input scale (None: the converter's)
    ((4, 10), 1.0, None),
    ((4, 10), 1.0, 0.5),  # large scale: multiplier capped, diff_min small
    ((3, 37), 1.0, 0.01),
    ((2, 3, 17), 0.5, 0.1),
    ((1, 256), 2.0, 0.03),
    ((5, 1), 1.0, 0.2),  # one class: output 127
    # many classes, small scale: the sum of exps grows (TFLM aborts from a sum of 512 on)
    ((2, 400), 1.0, 0.002),
    ((6, 8), 1.0, 1.0 / 16),
]


@pytest.mark.parametrize(("shape", "beta", "in_scale"), SOFTMAX_CASES)
@pytest.mark.slow
def test_softmax(
    lib: ctypes.CDLL, models: Models, shape: tuple[int, ...], beta: float, in_scale: float | None
) -> None:
    op = OneOp(models.get("softmax"), "SOFTMAX")
    assert op.options.beta == 1.0 and op.qparams(op.out()) == (1.0 / 256, -128)
    op.set_shape(op.inp(0), shape)
    op.set_shape(op.out(), shape)
    op.options.beta = beta
    rng = np.random.default_rng(shape[-1])
    if in_scale is not None:
        op.set_quant(op.inp(0), float(np.float32(in_scale)), int(rng.integers(-128, 128)))
    (si, _), (so, zo) = op.qparams(op.inp(0)), op.qparams(op.out())
    p = quant.softmax_params(beta, si, so, zo)
    depth = shape[-1]
    outer = int(np.prod(shape[:-1]))
    cases = int8_cases(rng, shape)
    near_max = np.clip(random_int8(rng, shape).astype(np.int16) // 16 + 100, -128, 127).astype(
        np.int8
    )
    cases.append(near_max)  # many values close to the row max
    for x in cases:
        out = np.zeros(shape, np.int8)
        call(
            lib,
            "eb_softmax_s8",
            x,
            out,
            outer,
            depth,
            p.input_multiplier,
            p.input_left_shift,
            p.diff_min,
        )
        assert_same(out, op.run_tflm(x))


def test_softmax_params_match_tflite_shape() -> None:
    # beta * scale * 2^26 = 2^26 / 16 -> multiplier 2^30, shift 23; radius 31 * 2^26 / 2^23 = 248
    assert quant.softmax_params(1.0, 1.0 / 16) == quant.SoftmaxParams(1 << 30, 23, -248)
    with pytest.raises(ValueError, match="1/256"):
        quant.softmax_params(1.0, 0.1, 1.0 / 128, -128)


# --- PAD / PADV2 -------------------------------------------------------------------

PAD_CASES = [
    # input shape, paddings
    (
        (1, 3, 4, 5),
        ((0, 0), (0, 0), (0, 1), (1, 2)),
    ),  # the converter's (NHWC of torch's (1, 2, 0, 1))
    ((1, 3, 4, 5), ((0, 0), (2, 1), (3, 0), (0, 0))),  # image style
    ((2, 3, 4, 5), ((1, 0), (0, 2), (1, 1), (0, 3))),
    ((7,), ((3, 2),)),
    ((2, 3, 2, 2, 3), ((1, 1), (0, 1), (2, 0), (0, 0), (1, 2))),
]


@pytest.mark.parametrize(("shape", "paddings"), PAD_CASES)
@pytest.mark.slow
def test_pad(
    lib: ctypes.CDLL, models: Models, shape: tuple[int, ...], paddings: tuple[tuple[int, int], ...]
) -> None:
    op = OneOp(models.get("pad"), "PAD")
    if (shape, paddings) == PAD_CASES[0]:
        assert op.const(op.inp(1), np.int32).tolist() == [list(p) for p in paddings]
    op.set_shape(op.inp(0), shape)
    op.set_const(op.inp(1), np.array(paddings, np.int32).reshape(len(shape), 2))
    out_shape = tuple(d + a + b for d, (a, b) in zip(shape, paddings, strict=True))
    op.set_shape(op.out(), out_shape)
    _, zo = op.qparams(op.out())
    p = quant.pad_params(shape, paddings, zo)
    rng = np.random.default_rng(len(shape))
    for x in int8_cases(rng, shape, n_random=2):
        out = np.zeros(out_shape, np.int8)
        call(
            lib,
            "eb_pad_s8",
            x,
            _i32(shape),
            len(shape),
            _i32(p.before),
            _i32(p.after),
            p.pad_value,
            out,
        )
        assert_same(out, op.run_tflm(x))


@pytest.mark.slow
def test_padv2(lib: ctypes.CDLL, models: Models) -> None:
    """PADV2 (what the converter puts before a padded max pool), whose fill is its
    constant_values tensor (the quantized -inf, i.e. -128) rather than the zero point."""
    op = OneOp(models.get("maxpool_padv2"), "PADV2")
    shape = op.shape(op.inp(0))
    paddings = op.const(op.inp(1), np.int32)
    fill = int(op.const(op.inp(2), np.int8).reshape(-1)[0])
    p = quant.pad_params(shape, paddings.tolist(), op.qparams(op.out())[1], fill)
    assert p.pad_value == fill
    rng = np.random.default_rng(5)
    for x in int8_cases(rng, shape, n_random=2):
        out = np.zeros(op.shape(op.out()), np.int8)
        call(
            lib,
            "eb_pad_s8",
            x,
            _i32(shape),
            len(shape),
            _i32(p.before),
            _i32(p.after),
            p.pad_value,
            out,
        )
        assert_same(out, op.run_tflm(x))


# --- RESHAPE, TRANSPOSE, CONCATENATION ---------------------------------------------


@pytest.mark.slow
def test_reshape(lib: ctypes.CDLL, models: Models) -> None:
    op = OneOp(models.get("reshape"), "RESHAPE")
    rng = np.random.default_rng(3)
    x = random_int8(rng, op.shape(op.inp(0)))
    out = np.zeros(op.shape(op.out()), np.int8)
    call(lib, "eb_reshape", x, out, ctypes.c_uint32(x.size))
    assert_same(out, op.run_tflm(x))
    same = x.copy()
    call(lib, "eb_reshape", same, same, ctypes.c_uint32(x.size))  # aliased: nothing to do
    assert np.array_equal(same, x)


TRANSPOSE_CASES = [
    ((2, 3, 4, 5), (0, 2, 1, 3)),  # the converter's
    ((2, 3, 4, 5), (3, 0, 2, 1)),
    ((6, 7), (1, 0)),
    ((9,), (0,)),
    ((2, 3, 4), (2, 0, 1)),
    ((2, 3, 2, 4, 3), (4, 2, 0, 3, 1)),
    ((2, 3, 2, 1, 3, 2), (5, 3, 1, 4, 0, 2)),  # 6D: beyond TFLM (1D-5D), checked against numpy
]


@pytest.mark.parametrize(("shape", "perm"), TRANSPOSE_CASES)
@pytest.mark.slow
def test_transpose(
    lib: ctypes.CDLL, models: Models, shape: tuple[int, ...], perm: tuple[int, ...]
) -> None:
    op = OneOp(models.get("transpose"), "TRANSPOSE")
    if (shape, perm) == TRANSPOSE_CASES[0]:
        assert tuple(op.const(op.inp(1), np.int32).tolist()) == perm
    p = quant.transpose_params(shape, perm)
    op.set_shape(op.inp(0), shape)
    op.set_const(op.inp(1), np.array(perm, np.int32))
    op.set_shape(op.out(), p.output_shape)
    x = random_int8(np.random.default_rng(len(shape)), shape)
    out = np.zeros(p.output_shape, np.int8)
    call(lib, "eb_transpose_s8", x, _i32(shape), len(shape), _i32(p.perm), out)
    assert np.array_equal(out, np.transpose(x, perm))
    if len(shape) <= 5:
        assert_same(out, op.run_tflm(x))


CONCAT_CASES = [
    # input shapes, axis
    (
        ((1, 2, 3, 4), (1, 3, 3, 4)),
        1,
    ),  # the converter's (NCHW axis 1 stays axis 1: no layout change)
    (((1, 2, 3, 4), (1, 2, 3, 5)), 3),
    (((1, 2, 3, 4), (1, 2, 3, 4)), -4),
    (((2, 5), (2, 1)), -1),
    (((2, 3, 1, 2, 2), (2, 3, 4, 2, 2)), 2),
]


@pytest.mark.parametrize(("shapes", "axis"), CONCAT_CASES)
@pytest.mark.slow
def test_concatenation(
    lib: ctypes.CDLL, models: Models, shapes: tuple[tuple[int, ...], ...], axis: int
) -> None:
    op = OneOp(models.get("concat"), "CONCATENATION")
    if (shapes, axis) == CONCAT_CASES[0]:
        assert op.options.axis == axis and op.shape(op.inp(0)) == shapes[0]
    # The quantizer gave both inputs the output's quantization (a QUANTIZE in front of one).
    assert op.qparams(op.inp(0)) == op.qparams(op.inp(1)) == op.qparams(op.out())
    for k, s in enumerate(shapes):
        op.set_shape(op.inp(k), s)
    out_shape = np.concatenate([np.zeros(s) for s in shapes], axis=axis).shape
    op.set_shape(op.out(), out_shape)
    op.options.axis = axis
    q = op.qparams(op.out())
    p = quant.concat_params(axis, shapes, [q, q], q, op.options.fusedActivationFunction)
    rng = np.random.default_rng(len(shapes[0]))
    xs = [random_int8(rng, s) for s in shapes]
    ptrs = (ctypes.c_void_p * len(xs))(*[_ptr(x) for x in xs])
    out = np.zeros(out_shape, np.int8)
    call(lib, "eb_concat_s8", ptrs, _i32(p.axis_sizes), len(xs), p.outer, p.inner, out)
    assert_same(out, op.run_tflm(*xs))


def test_concat_rejects_mixed_quantization() -> None:
    with pytest.raises(ValueError, match="output's quantization"):
        quant.concat_params(0, [(1, 2), (1, 2)], [(0.1, 0), (0.2, 0)], (0.1, 0))


# --- QUANTIZE / DEQUANTIZE ---------------------------------------------------------


@pytest.mark.slow
def test_requantize_exhaustive(lib: ctypes.CDLL, models: Models) -> None:
    """int8 -> int8 QUANTIZE (the quantizer's, in front of a CONCATENATION input),
    for all 256 inputs under its quantization and random ones (ratios above and
    below 1, so left and right shifts)."""
    base = models.get("concat")
    x = np.arange(-128, 128, dtype=np.int8).reshape(1, 4, 8, 8)
    rng = np.random.default_rng(11)
    for trial in range(8):
        op = OneOp(base, "QUANTIZE")
        op.set_shape(op.inp(0), x.shape)
        op.set_shape(op.out(), x.shape)
        if trial > 0:
            op.set_quant(op.inp(0), *random_quant(rng, 1e-3, 1.0))
            op.set_quant(op.out(), *random_quant(rng, 1e-3, 1.0))
        (si, zi), (so, zo) = op.qparams(op.inp(0)), op.qparams(op.out())
        p = quant.requantize_params(si, zi, so, zo)
        out = np.zeros(x.shape, np.int8)
        call(
            lib,
            "eb_requantize_s8",
            x,
            out,
            ctypes.c_uint32(x.size),
            p.input_zp,
            p.multiplier,
            p.shift,
            p.output_zp,
        )
        assert_same(out, op.run_tflm(x))


@pytest.mark.slow
def test_quantize_float(lib: ctypes.CDLL, models: Models) -> None:
    """float32 -> int8 QUANTIZE at a float-I/O model's input, including exact
    ties (k + 0.5) * scale, values that saturate, and signed zeros."""
    base = models.get("quant_io")
    rng = np.random.default_rng(13)
    for trial in range(4):
        op = OneOp(base, "QUANTIZE")
        assert op.tensor(op.inp(0)).type == S.TensorType.FLOAT32
        if trial > 0:
            op.set_quant(op.out(), *random_quant(rng, 1e-3, 1.0))
        scale, zp = op.qparams(op.out())
        n = op.shape(op.inp(0))[-1]
        s32 = np.float32(scale)
        k = rng.integers(-300, 300, n).astype(np.float32)
        x = np.concatenate(
            [
                rng.uniform(-200 * scale, 200 * scale, n // 4),
                (k[: n // 4] + np.float32(0.5)) * s32,  # ties (after the float division, mostly)
                k[: n // 4] * s32,
                rng.uniform(-1e6, 1e6, n // 4 - 4) * scale,
                [0.0, -0.0, 1e-30, -1e-30],
            ]
        ).astype(np.float32)
        x = x.reshape(op.shape(op.inp(0)))
        p = quant.quantize_params(scale, zp)
        out = np.zeros(x.shape, np.int8)
        call(lib, "eb_quantize_f32_s8", x, out, ctypes.c_uint32(x.size), p.scale, p.zero_point)
        assert_same(out, op.run_tflm(x))


@pytest.mark.slow
def test_dequantize(lib: ctypes.CDLL, models: Models) -> None:
    """int8 -> float32 DEQUANTIZE at a float-I/O model's output, all 256 inputs,
    compared bit for bit."""
    base = models.get("quant_io")
    rng = np.random.default_rng(17)
    x = np.tile(np.arange(-128, 128, dtype=np.int8), 16).reshape(1, 4096)
    for trial in range(4):
        op = OneOp(base, "DEQUANTIZE")
        assert op.tensor(op.out()).type == S.TensorType.FLOAT32
        if trial > 0:
            op.set_quant(op.inp(0), *random_quant(rng, 1e-4, 10.0))
        scale, zp = op.qparams(op.inp(0))
        p = quant.dequantize_params(scale, zp)
        out = np.zeros(x.shape, np.float32)
        call(lib, "eb_dequantize_s8_f32", x, out, ctypes.c_uint32(x.size), p.scale, p.zero_point)
        assert_same(out, op.run_tflm(x))
