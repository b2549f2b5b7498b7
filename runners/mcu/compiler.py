"""The model-to-C compiler: a full-integer int8 .tflite becomes one C file that
implements ``runners/mcu/firmware/include/eb_model.h`` and is bit-exact with the
TFLite Micro reference interpreter.

What the emitted ``model.c`` holds:
- every constant (weights, folded biases, per-channel multipliers and shifts,
  shapes) as a ``static const`` array, so it stays in flash;
- one ``static uint8_t`` arena, 16-byte aligned, laid out by
  :mod:`runners.mcu.planner` from tensor lifetimes (graph inputs stay intact
  across invocations, RESHAPE-like ops alias their input, PADs and the NCHW
  input TRANSPOSE fold into the conv that reads them, convs, depthwise convs,
  ADDs and MULs may write over an input that dies there (_choose_in_place),
  kernel scratch is a short-lived buffer of its own);
- ``eb_model`` (the model's description) and ``eb_model_invoke``, one kernel call
  per operator, with the hook called before each and once at the end.

Every quantization parameter is computed here, in Python, the way TFLite Micro's
Prepare computes it (``runners/mcu/quant.py``); the C kernels only do integer
arithmetic.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np

from runners.mcu import quant
from runners.mcu.planner import (
    DEFAULT_ALIGNMENT,
    BufferUse,
    plan_arena,
    resolve_aliases,
    tensor_lifetimes,
)
from runners.mcu.tflite_reader import Graph, Operator, Tensor, read_tflite

FIRMWARE_DIR = Path(__file__).parent / "firmware"
INCLUDE_DIR = FIRMWARE_DIR / "include"
KERNELS_DIR = FIRMWARE_DIR / "kernels"

# Operators whose output is the input's bytes under another shape: no kernel runs.
ALIAS_OPS = ("RESHAPE", "SQUEEZE", "EXPAND_DIMS")
SUPPORTED_OPS = (
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "FULLY_CONNECTED",
    "ADD",
    "MUL",
    "MAX_POOL_2D",
    "AVERAGE_POOL_2D",
    "MEAN",
    "PAD",
    "PADV2",
    *ALIAS_OPS,
    "TRANSPOSE",
    "CONCATENATION",
    "SOFTMAX",
    "QUANTIZE",
    "DEQUANTIZE",
)

_EB_DTYPES = {
    "INT8": "EB_INT8",
    "UINT8": "EB_UINT8",
    "INT16": "EB_INT16",
    "INT32": "EB_INT32",
    "FLOAT32": "EB_FLOAT32",
}
_C_TYPES = {
    "INT8": "int8_t",
    "UINT8": "uint8_t",
    "INT16": "int16_t",
    "INT32": "int32_t",
    "FLOAT32": "float",
}
MAX_RANK = 6  # EB_MAX_RANK
InPlace = Literal["auto", "all", "off"]


class UnsupportedModelError(ValueError):
    """The model uses operators or tensor types the MCU compiler cannot emit.
    The message is one line naming every offending node."""


class CompileError(ValueError):
    """A supported operator with parameters the compiler cannot honour exactly."""


def kernel_sources() -> list[Path]:
    """The C files a firmware build compiles next to ``model.c``."""
    return sorted(KERNELS_DIR.glob("*.c"))


class OpInfo(NamedTuple):
    index: int
    builtin: str
    macs: int


@dataclass(frozen=True)
class TensorIO:
    index: int  # tensor index in the .tflite
    name: str
    shape: tuple[int, ...]
    dtype: str  # "INT8", "FLOAT32", ...
    scale: float  # 0.0 if not quantized
    zero_point: int
    bytes: int
    arena_offset: int


@dataclass(frozen=True)
class CompiledModel:
    name: str
    source: Path
    sha256: str  # of the .tflite
    model_c: Path
    arena_bytes: int
    weights_bytes: int  # constant data emitted: weights, biases, multipliers, shapes
    macs: int  # conv, depthwise conv and fully-connected multiply-accumulates per inference
    ops: tuple[OpInfo, ...]
    inputs: tuple[TensorIO, ...]
    outputs: tuple[TensorIO, ...]


# --------------------------------------------------------------------------- support


def _dtype_name(dtype: str) -> str:
    return dtype.lower()


def _and_list(words: Sequence[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def _op_problems(graph: Graph, op: Operator) -> list[str]:
    """What keeps ``op`` from being compiled, as phrases ("with float32 input and
    output"); ``[""]`` for an operator that is not supported at all."""
    if op.builtin not in SUPPORTED_OPS:
        return [""]
    t = graph.tensor
    ins = [t(i) for i in op.inputs]
    outs = [t(i) for i in op.outputs]
    wrong_types: list[tuple[str, str]] = []  # (role, dtype)
    other: list[str] = []
    for tensor in [x for x in ins + outs if x is not None and not x.is_constant]:
        if any(d < 0 for d in tensor.shape):
            other.append(f"with dynamic shape {list(tensor.shape)}")
            break
    if op.builtin in ALIAS_OPS:
        return other
    in_dtype = ins[0].dtype if ins and ins[0] is not None else "none"
    out_dtype = outs[0].dtype if outs else "none"
    allowed_in, allowed_out = ("INT8",), ("INT8",)
    if op.builtin == "QUANTIZE":
        allowed_in = ("FLOAT32", "INT8")
    elif op.builtin == "DEQUANTIZE":
        allowed_out = ("FLOAT32",)
    if in_dtype not in allowed_in:
        wrong_types.append(("input", in_dtype))
    if out_dtype not in allowed_out:
        wrong_types.append(("output", out_dtype))
    if op.builtin in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
        weights = ins[1] if len(ins) > 1 else None
        bias = ins[2] if len(ins) > 2 else None
        if weights is None:
            other.append("without weights")
        elif weights.dtype != "INT8":
            wrong_types.append(("weights", weights.dtype))
        elif not weights.is_constant:
            other.append("with non-constant weights")
        elif weights.quantization is None or any(z != 0 for z in weights.quantization.zero_points):
            other.append("with asymmetric weights")
        if bias is not None and bias.dtype != "INT32":
            wrong_types.append(("bias", bias.dtype))
        elif bias is not None and not bias.is_constant:
            other.append("with non-constant bias")
        if op.builtin == "FULLY_CONNECTED" and op.options is not None and op.options.weightsFormat:
            other.append("with shuffled weights")
    by_dtype: dict[str, list[str]] = {}
    for role, dtype in wrong_types:
        by_dtype.setdefault(dtype, []).append(role)
    if by_dtype:
        groups = [f"{_dtype_name(d)} {_and_list(roles)}" for d, roles in by_dtype.items()]
        other.insert(0, "with " + " and ".join(groups))
    return other


def check_supported(graph: Graph, source: str = "model.tflite") -> None:
    """Raise :class:`UnsupportedModelError` listing every node the compiler cannot
    emit (one line), e.g. ``model.tflite: unsupported: node 3 LSTM, node 7 CONV_2D
    with float32 input (supported: CONV_2D, ...)``."""
    found: list[str] = []
    for op in graph.operators:
        problems = _op_problems(graph, op)
        if problems:
            detail = " and ".join(p for p in problems if p)
            found.append(f"node {op.index} {op.builtin}" + (f" {detail}" if detail else ""))
    for kind, indices in (("input", graph.inputs), ("output", graph.outputs)):
        for i in indices:
            tensor = graph.tensors[i]
            if tensor.dtype not in ("INT8", "FLOAT32"):
                found.append(f"graph {kind} {tensor.name or i} of type {_dtype_name(tensor.dtype)}")
            elif len(tensor.shape) > MAX_RANK:
                found.append(f"graph {kind} {tensor.name or i} of rank {len(tensor.shape)}")
    if found:
        raise UnsupportedModelError(
            f"{source}: unsupported: {', '.join(found)} (supported: {', '.join(SUPPORTED_OPS)})"
        )


# --------------------------------------------------------------------------- C text


def _c_float(value: float) -> str:
    """A float32 value as an exact C99 hex literal."""
    v = float(np.float32(value))
    if v == 0.0:
        return "0.0f"
    return f"{v.hex()}f"


def _c_array_body(values: np.ndarray, per_line: int = 24) -> str:
    flat = [str(int(v)) for v in np.asarray(values).ravel()]
    if not flat:
        return "0"  # C forbids empty initialisers; the array is never read
    lines = [", ".join(flat[i : i + per_line]) for i in range(0, len(flat), per_line)]
    return ",\n    ".join(lines)


def _c_string(text: str) -> str:
    if not re.fullmatch(r"[ -~]*", text):
        raise CompileError(f"name {text!r} must be printable ASCII")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _wrap_int32(value: int) -> int:
    """Two's-complement int32 of ``value``: the kernels accumulate in int32, and
    the reference's sums are the same modulo 2**32."""
    return (int(value) + (1 << 31)) % (1 << 32) - (1 << 31)


def _same_or_valid_padding(
    padding: int, in_size: int, filter_size: int, stride: int, dilation: int
) -> tuple[int, int]:
    """TFLite's ComputePaddingHeightWidth for one dimension: (output size, top/left pad)."""
    effective = (filter_size - 1) * dilation + 1
    if padding == quant.Padding.SAME:
        out = (in_size + stride - 1) // stride
    else:
        out = (in_size + stride - effective) // stride
    total = (out - 1) * stride + effective - in_size
    return out, max(total, 0) // 2


# --------------------------------------------------------------------------- emitter


@dataclass
class _Emitter:
    graph: Graph
    sched: _Schedule
    offsets: dict[int, int] = field(default_factory=dict)  # tensor -> arena offset
    scratch_offsets: dict[int, int] = field(default_factory=dict)  # op -> arena offset
    decls: list[str] = field(default_factory=list)
    const_bytes: int = 0
    const_names: dict[int, str] = field(default_factory=dict)

    def array(self, name: str, ctype: str, values: Any, *, counted: bool = True) -> str:
        data = np.asarray(values)
        n = max(int(data.size), 1)
        align = " __attribute__((aligned(4)))" if ctype != "int8_t" else ""
        self.decls.append(
            f"static const {ctype} {name}[{n}]{align} = {{\n    {_c_array_body(data)}\n}};"
        )
        if counted:
            self.const_bytes += int(data.size) * np.dtype(_NP_OF_C[ctype]).itemsize
        return name

    def struct(self, ctype: str, name: str, fields: dict[str, int]) -> str:
        body = ", ".join(f".{k} = {int(v)}" for k, v in fields.items())
        self.decls.append(f"static const {ctype} {name} = {{{body}}};")
        return f"&{name}"

    def ptr(self, index: int, ctype: str = "int8_t", *, const: bool = True) -> str:
        """A C expression for tensor ``index``'s data: its const array or its place
        in the arena."""
        tensor = self.graph.tensors[index]
        qualifier = "const " if const else ""
        if tensor.is_constant:
            if index not in self.const_names:
                assert tensor.data is not None
                self.const_names[index] = self.array(
                    f"k_t{index}", _C_TYPES[tensor.dtype], tensor.data
                )
            return f"({qualifier}{ctype} *){self.const_names[index]}"
        return f"({qualifier}{ctype} *)(eb_arena + {self.offsets[index]})"

    def out(self, index: int, ctype: str = "int8_t") -> str:
        return self.ptr(index, ctype, const=False)

    def shape(self, name: str, dims: Sequence[int]) -> str:
        return self.array(
            name, "int32_t", np.asarray(list(dims) or [1], dtype=np.int32), counted=True
        )


_NP_OF_C = {"int8_t": "i1", "uint8_t": "u1", "int16_t": "i2", "int32_t": "i4", "float": "f4"}


@dataclass(frozen=True)
class _Lowered:
    """One operator as C: the call (empty for an alias), its MACs and scratch."""

    call: str
    macs: int = 0


def _per_channel_multipliers(
    input_scale: float, weights: Tensor, output_scale: float, channels: int
) -> tuple[np.ndarray, np.ndarray]:
    """TFLM PopulateConvolutionQuantizationParams: QuantizeMultiplier of
    in_scale * w_scale[c] / out_scale in double, per output channel (a
    per-tensor weight scale is used for every channel)."""
    assert weights.quantization is not None
    scales = weights.quantization.scales
    if len(scales) not in (1, channels):
        raise CompileError(f"{len(scales)} weight scales for {channels} output channels")
    mult = np.zeros(channels, dtype=np.int32)
    shift = np.zeros(channels, dtype=np.int32)
    for c in range(channels):
        w_scale = scales[c] if len(scales) > 1 else scales[0]
        m, s = quant.quantize_multiplier(input_scale * w_scale / output_scale)
        mult[c], shift[c] = m, s
    return mult, shift


def _folded_bias(bias: Tensor | None, weights_2d: np.ndarray, input_offset: int) -> np.ndarray:
    """bias + input_offset * sum(weights of each output channel), as int32 (see
    eb_kernels.h for why this is exact)."""
    sums = weights_2d.astype(np.int64).sum(axis=1)
    base = np.zeros(len(sums), dtype=np.int64)
    if bias is not None:
        assert bias.data is not None
        base = bias.data.astype(np.int64).reshape(-1)
    return np.array([_wrap_int32(v) for v in base + input_offset * sums], dtype=np.int32)


def _activation(op: Operator, output: Tensor) -> quant.ActivationRange:
    act = op.options.fusedActivationFunction if op.options is not None else 0
    return quant.activation_range(act, output.scale, output.zero_point)


@dataclass(frozen=True)
class _ConvGeometry:
    source: int  # the tensor the kernel reads (a fused PAD's input)
    n: int
    in_h: int
    in_w: int
    in_c: int
    fh: int
    fw: int
    stride: tuple[int, int]
    dilation: tuple[int, int]
    pad_h: int  # top padding, a fused PAD's included
    pad_w: int

    @property
    def pointwise(self) -> bool:
        return self.fh == 1 and self.fw == 1 and self.pad_h == 0 and self.pad_w == 0


def _conv_geometry(graph: Graph, sched: _Schedule, op: Operator) -> _ConvGeometry:
    """Input, filter window and padding of a CONV_2D / DEPTHWISE_CONV_2D as the
    kernel sees them, checked against the output shape."""
    o = op.options
    stride, dilation = (o.strideH, o.strideW), (o.dilationHFactor, o.dilationWFactor)
    padded = graph.tensors[op.inputs[0]]  # what the .tflite's conv reads
    source, extra_h, extra_w = sched.conv_input(op)
    if op.index in sched.planar:  # a fused TRANSPOSE: the source is channels-first
        n, in_c, in_h, in_w = graph.tensors[source].shape
    else:
        n, in_h, in_w, in_c = graph.tensors[source].shape
    weights = graph.tensors[op.inputs[1]]
    fh, fw = weights.shape[1], weights.shape[2]
    out = graph.tensors[op.outputs[0]]
    oh, pad_h = _same_or_valid_padding(o.padding, padded.shape[1], fh, stride[0], dilation[0])
    ow, pad_w = _same_or_valid_padding(o.padding, padded.shape[2], fw, stride[1], dilation[1])
    if (oh, ow) != tuple(out.shape[1:3]) or out.shape[0] != n:
        raise CompileError(
            f"node {op.index}: output {out.shape} is not the {oh}x{ow} "
            f"its padding gives for input {padded.shape}"
        )
    return _ConvGeometry(
        source, n, in_h, in_w, in_c, fh, fw, stride, dilation, pad_h + extra_h, pad_w + extra_w
    )


def _runs_as_conv(graph: Graph, op: Operator) -> bool:
    """CONV_2D, and DEPTHWISE_CONV_2D with one input channel: every output channel
    then sees the same input taps, which is a plain conv with [out_c][fh][fw][1]
    filters (the conv kernel's dot products beat a depth-multiplier loop)."""
    if op.builtin == "CONV_2D":
        return True
    return op.builtin == "DEPTHWISE_CONV_2D" and graph.tensors[op.inputs[0]].shape[3] == 1


def _scratch_bytes(graph: Graph, sched: _Schedule, op: Operator) -> int:
    """Scratch an operator needs from the arena (mirrors eb_conv_s8_scratch_bytes
    and eb_depthwise_conv_s8_scratch_bytes)."""
    if op.builtin not in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        return 0
    in_place = op.index in sched.in_place
    geo = _conv_geometry(graph, sched, op)
    _, _, out_w, out_c = graph.tensors[op.outputs[0]].shape
    if not _runs_as_conv(graph, op):
        return (geo.pad_h + 1) * out_w * out_c if in_place else 0
    fic = graph.tensors[op.inputs[1]].shape[3] if op.builtin == "CONV_2D" else 1
    if geo.pointwise:
        return 2 * geo.in_c if in_place else 0
    # The output-row ring of an in-place conv (conv.c): one more row when a
    # pixel pair can span two rows (odd out_w).
    ring = (geo.pad_h + 1 + out_w % 2) * out_w * out_c if in_place else 0
    return 2 * geo.fh * geo.fw * fic + ring


def _lower_conv_like(em: _Emitter, op: Operator, filter_ohwi: np.ndarray) -> _Lowered:
    """A conv (see _runs_as_conv) with filter [out_c][fh][fw][filter_in_c]."""
    g = em.graph
    geo = _conv_geometry(g, em.sched, op)
    inp, out = g.tensors[geo.source], g.tensors[op.outputs[0]]
    weights = g.tensors[op.inputs[1]]
    bias = g.tensor(op.inputs[2]) if len(op.inputs) > 2 else None
    _, out_h, out_w, out_c = out.shape
    oc, fh, fw, fic = filter_ohwi.shape
    if oc != out_c or geo.in_c % fic or out_c % (geo.in_c // fic):
        raise CompileError(f"node {op.index}: filter {filter_ohwi.shape} does not fit {inp.shape}")
    mult, shift = _per_channel_multipliers(inp.scale, weights, out.scale, out_c)
    input_offset = -inp.zero_point
    bias_folded = _folded_bias(bias, filter_ohwi.reshape(out_c, -1), input_offset)
    rng = _activation(op, out)
    tag = f"op{op.index}"
    params = em.struct(
        "eb_conv_params",
        f"{tag}_params",
        {
            "batches": geo.n,
            "in_h": geo.in_h,
            "in_w": geo.in_w,
            "in_c": geo.in_c,
            "out_h": out_h,
            "out_w": out_w,
            "out_c": out_c,
            "filter_h": fh,
            "filter_w": fw,
            "filter_in_c": fic,
            "stride_h": geo.stride[0],
            "stride_w": geo.stride[1],
            "dilation_h": geo.dilation[0],
            "dilation_w": geo.dilation[1],
            "pad_h": geo.pad_h,
            "pad_w": geo.pad_w,
            "input_offset": input_offset,
            "output_offset": out.zero_point,
            "act_min": rng.act_min,
            "act_max": rng.act_max,
            "in_place": op.index in em.sched.in_place,
            "input_planar": op.index in em.sched.planar,
        },
    )
    w = em.array(f"{tag}_filter", "int8_t", filter_ohwi)
    b = em.array(f"{tag}_bias", "int32_t", bias_folded)
    m = em.array(f"{tag}_mult", "int32_t", mult)
    s = em.array(f"{tag}_shift", "int32_t", shift)
    scratch = em.scratch_offsets.get(op.index)
    scratch_ptr = "NULL" if scratch is None else f"(int8_t *)(eb_arena + {scratch})"
    call = (
        f"eb_conv_s8({params}, {em.ptr(geo.source)}, {w}, {b}, {m}, {s}, "
        f"{em.out(op.outputs[0])}, {scratch_ptr});"
    )
    return _Lowered(call, geo.n * out_h * out_w * out_c * fh * fw * fic)


def _lower_conv(em: _Emitter, op: Operator) -> _Lowered:
    weights = em.graph.tensors[op.inputs[1]]
    assert weights.data is not None
    return _lower_conv_like(em, op, weights.data)


def _lower_depthwise(em: _Emitter, op: Operator) -> _Lowered:
    g = em.graph
    weights = g.tensors[op.inputs[1]]
    assert weights.data is not None
    if _runs_as_conv(g, op):
        return _lower_conv_like(em, op, np.ascontiguousarray(weights.data.transpose(3, 1, 2, 0)))
    geo = _conv_geometry(g, em.sched, op)
    inp, out = g.tensors[geo.source], g.tensors[op.outputs[0]]
    bias = g.tensor(op.inputs[2]) if len(op.inputs) > 2 else None
    _, out_h, out_w, out_c = out.shape
    if weights.shape[3] != out_c or out_c % geo.in_c:
        raise CompileError(f"node {op.index}: depthwise filter {weights.shape} for {out.shape}")
    mult, shift = _per_channel_multipliers(inp.scale, weights, out.scale, out_c)
    rng = _activation(op, out)
    tag = f"op{op.index}"
    params = em.struct(
        "eb_dwconv_params",
        f"{tag}_params",
        {
            "batches": geo.n,
            "in_h": geo.in_h,
            "in_w": geo.in_w,
            "in_c": geo.in_c,
            "out_h": out_h,
            "out_w": out_w,
            "out_c": out_c,
            "filter_h": geo.fh,
            "filter_w": geo.fw,
            "depth_multiplier": out_c // geo.in_c,
            "stride_h": geo.stride[0],
            "stride_w": geo.stride[1],
            "dilation_h": geo.dilation[0],
            "dilation_w": geo.dilation[1],
            "pad_h": geo.pad_h,
            "pad_w": geo.pad_w,
            "input_offset": -inp.zero_point,
            "output_offset": out.zero_point,
            "act_min": rng.act_min,
            "act_max": rng.act_max,
            "in_place": op.index in em.sched.in_place,
        },
    )
    w = em.array(f"{tag}_filter", "int8_t", weights.data)
    b = "NULL"
    if bias is not None:
        assert bias.data is not None
        b = em.array(f"{tag}_bias", "int32_t", bias.data.reshape(-1))
    m = em.array(f"{tag}_mult", "int32_t", mult)
    s = em.array(f"{tag}_shift", "int32_t", shift)
    scratch = em.scratch_offsets.get(op.index)
    scratch_ptr = "NULL" if scratch is None else f"(int8_t *)(eb_arena + {scratch})"
    call = (
        f"eb_depthwise_conv_s8({params}, {em.ptr(geo.source)}, {w}, {b}, {m}, {s}, "
        f"{em.out(op.outputs[0])}, {scratch_ptr});"
    )
    return _Lowered(call, geo.n * out_h * out_w * out_c * geo.fh * geo.fw)


def _lower_fully_connected(em: _Emitter, op: Operator) -> _Lowered:
    g = em.graph
    inp, out = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    weights = g.tensors[op.inputs[1]]
    bias = g.tensor(op.inputs[2]) if len(op.inputs) > 2 else None
    assert weights.data is not None
    out_c, depth = weights.shape
    if inp.elements % depth or out.elements != inp.elements // depth * out_c:
        raise CompileError(f"node {op.index}: FC {inp.shape} x {weights.shape} -> {out.shape}")
    batches = inp.elements // depth
    mult, shift = _per_channel_multipliers(inp.scale, weights, out.scale, out_c)
    bias_folded = _folded_bias(bias, weights.data, -inp.zero_point)
    rng = _activation(op, out)
    tag = f"op{op.index}"
    params = em.struct(
        "eb_fc_params",
        f"{tag}_params",
        {
            "batches": batches,
            "accum_depth": depth,
            "out_c": out_c,
            "output_offset": out.zero_point,
            "act_min": rng.act_min,
            "act_max": rng.act_max,
        },
    )
    w = em.array(f"{tag}_filter", "int8_t", weights.data)
    b = em.array(f"{tag}_bias", "int32_t", bias_folded)
    m = em.array(f"{tag}_mult", "int32_t", mult)
    s = em.array(f"{tag}_shift", "int32_t", shift)
    call = (
        f"eb_fully_connected_s8({params}, {em.ptr(op.inputs[0])}, {w}, {b}, {m}, {s}, "
        f"{em.out(op.outputs[0])});"
    )
    return _Lowered(call, batches * out_c * depth)


def _lower_alias(em: _Emitter, op: Operator) -> _Lowered:
    inp, out = em.graph.tensors[op.inputs[0]], em.graph.tensors[op.outputs[0]]
    if inp.is_constant:
        return _Lowered(
            f"eb_reshape({em.ptr(op.inputs[0], 'void')}, "
            f"{em.out(op.outputs[0], 'void')}, {out.nbytes}u);"
        )
    return _Lowered("")  # planned in place: output bytes are the input bytes


def _binary_args(em: _Emitter, op: Operator) -> tuple[str, int]:
    g = em.graph
    a, b = g.tensors[op.inputs[0]], g.tensors[op.inputs[1]]
    out = g.tensors[op.outputs[0]]
    sa, sb, so = quant.broadcast_shapes(a.shape, b.shape)
    if tuple(so) != tuple(out.shape) and math.prod(so) != out.elements:
        raise CompileError(f"node {op.index}: {a.shape} and {b.shape} do not give {out.shape}")
    tag = f"op{op.index}"
    args = (
        f"{em.ptr(op.inputs[0])}, {em.shape(f'{tag}_shape1', sa)}, "
        f"{em.ptr(op.inputs[1])}, {em.shape(f'{tag}_shape2', sb)}, "
        f"{em.out(op.outputs[0])}, {em.shape(f'{tag}_shape_out', so)}, {len(so)}"
    )
    return args, len(so)


def _fields(params: Any, names: Sequence[str]) -> str:
    return ", ".join(str(int(getattr(params, n))) for n in names)


def _lower_add(em: _Emitter, op: Operator) -> _Lowered:
    g = em.graph
    a, b, out = g.tensors[op.inputs[0]], g.tensors[op.inputs[1]], g.tensors[op.outputs[0]]
    act = op.options.fusedActivationFunction if op.options is not None else 0
    p = quant.add_params(
        a.scale, a.zero_point, b.scale, b.zero_point, out.scale, out.zero_point, act
    )
    args, _ = _binary_args(em, op)
    names = (
        "input1_offset",
        "input1_multiplier",
        "input1_shift",
        "input2_offset",
        "input2_multiplier",
        "input2_shift",
        "left_shift",
        "output_multiplier",
        "output_shift",
        "output_offset",
        "act_min",
        "act_max",
    )
    return _Lowered(f"eb_add_s8({args}, {_fields(p, names)});")


def _lower_mul(em: _Emitter, op: Operator) -> _Lowered:
    g = em.graph
    a, b, out = g.tensors[op.inputs[0]], g.tensors[op.inputs[1]], g.tensors[op.outputs[0]]
    act = op.options.fusedActivationFunction if op.options is not None else 0
    p = quant.mul_params(
        a.scale, a.zero_point, b.scale, b.zero_point, out.scale, out.zero_point, act
    )
    args, _ = _binary_args(em, op)
    names = (
        "input1_offset",
        "input2_offset",
        "output_multiplier",
        "output_shift",
        "output_offset",
        "act_min",
        "act_max",
    )
    return _Lowered(f"eb_mul_s8({args}, {_fields(p, names)});")


def _lower_pool(em: _Emitter, op: Operator) -> _Lowered:
    g = em.graph
    inp, out = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    o = op.options
    n, in_h, in_w, c = inp.shape
    p = quant.pool_params(
        o.padding,
        o.strideH,
        o.strideW,
        o.filterHeight,
        o.filterWidth,
        in_h,
        in_w,
        o.fusedActivationFunction,
        inp.scale,
        inp.zero_point,
        out.scale,
        out.zero_point,
    )
    if (p.out_h, p.out_w) != tuple(out.shape[1:3]):
        raise CompileError(f"node {op.index}: pool output {out.shape} is not {p.out_h}x{p.out_w}")
    fn = "eb_max_pool_s8" if op.builtin == "MAX_POOL_2D" else "eb_avg_pool_s8"
    return _Lowered(
        f"{fn}({em.ptr(op.inputs[0])}, {em.out(op.outputs[0])}, {n}, {in_h}, {in_w}, {c}, "
        f"{p.out_h}, {p.out_w}, {o.filterHeight}, {o.filterWidth}, {o.strideH}, {o.strideW}, "
        f"{p.pad_h}, {p.pad_w}, {p.act_min}, {p.act_max});"
    )


def _const_data(em: _Emitter, op: Operator, position: int) -> np.ndarray:
    tensor = em.graph.tensor(op.inputs[position]) if len(op.inputs) > position else None
    if tensor is None or tensor.data is None:
        raise CompileError(f"node {op.index} {op.builtin}: operand {position} must be constant")
    return tensor.data


def _lower_mean(em: _Emitter, op: Operator) -> _Lowered:
    g = em.graph
    inp, out = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    axes = [int(a) for a in _const_data(em, op, 1).reshape(-1)]
    p = quant.mean_params(inp.shape, axes, inp.scale, inp.zero_point, out.scale, out.zero_point)
    tag = f"op{op.index}"
    shape = em.shape(f"{tag}_shape", inp.shape)
    axes_c = em.shape(f"{tag}_axes", p.axes)
    return _Lowered(
        f"eb_mean_s8({em.ptr(op.inputs[0])}, {shape}, {len(inp.shape)}, {axes_c}, "
        f"{len(p.axes)}, {em.out(op.outputs[0])}, "
        f"{_fields(p, ('num_elements', 'input_zp', 'multiplier', 'shift', 'output_zp'))});"
    )


def _lower_softmax(em: _Emitter, op: Operator) -> _Lowered:
    g = em.graph
    inp, out = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    beta = op.options.beta if op.options is not None else 1.0
    p = quant.softmax_params(beta, inp.scale, out.scale, out.zero_point)
    depth = inp.shape[-1] if inp.shape else 1
    return _Lowered(
        f"eb_softmax_s8({em.ptr(op.inputs[0])}, {em.out(op.outputs[0])}, "
        f"{inp.elements // depth}, {depth}, "
        f"{_fields(p, ('input_multiplier', 'input_left_shift', 'diff_min'))});"
    )


def _lower_pad(em: _Emitter, op: Operator) -> _Lowered:
    if op.index in em.sched.fused_pads:
        return _Lowered("")  # done by the conv that reads it
    g = em.graph
    inp, out = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    paddings = _const_data(em, op, 1).reshape(len(inp.shape), 2).tolist()
    constant = None
    if op.builtin == "PADV2" and len(op.inputs) > 2 and op.inputs[2] >= 0:
        constant = int(_const_data(em, op, 2).reshape(-1)[0])
    p = quant.pad_params(inp.shape, paddings, out.zero_point, constant)
    tag = f"op{op.index}"
    return _Lowered(
        f"eb_pad_s8({em.ptr(op.inputs[0])}, {em.shape(f'{tag}_shape', inp.shape)}, "
        f"{len(inp.shape)}, {em.shape(f'{tag}_before', p.before)}, "
        f"{em.shape(f'{tag}_after', p.after)}, {p.pad_value}, {em.out(op.outputs[0])});"
    )


def _lower_transpose(em: _Emitter, op: Operator) -> _Lowered:
    if op.index in em.sched.fused_transposes:
        return _Lowered("")  # the conv that reads it gathers channels-first
    g = em.graph
    inp, out = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    perm = [int(a) for a in _const_data(em, op, 1).reshape(-1)]
    p = quant.transpose_params(inp.shape, perm)
    if tuple(p.output_shape) != tuple(out.shape):
        raise CompileError(f"node {op.index}: transpose gives {p.output_shape}, not {out.shape}")
    tag = f"op{op.index}"
    return _Lowered(
        f"eb_transpose_s8({em.ptr(op.inputs[0])}, {em.shape(f'{tag}_shape', inp.shape)}, "
        f"{len(inp.shape)}, {em.shape(f'{tag}_perm', p.perm)}, {em.out(op.outputs[0])});"
    )


def _lower_concat(em: _Emitter, op: Operator) -> _Lowered:
    g = em.graph
    ins = [g.tensors[i] for i in op.inputs]
    out = g.tensors[op.outputs[0]]
    o = op.options
    p = quant.concat_params(
        o.axis,
        [t.shape for t in ins],
        [(t.scale, t.zero_point) for t in ins],
        (out.scale, out.zero_point),
        o.fusedActivationFunction,
    )
    tag = f"op{op.index}"
    pointers = ", ".join(em.ptr(i) for i in op.inputs)
    em.decls.append(f"static const int8_t *const {tag}_inputs[{len(ins)}] = {{{pointers}}};")
    sizes = em.shape(f"{tag}_sizes", p.axis_sizes)
    return _Lowered(
        f"eb_concat_s8({tag}_inputs, {sizes}, {len(ins)}, {p.outer}, {p.inner}, "
        f"{em.out(op.outputs[0])});"
    )


def _lower_quantize(em: _Emitter, op: Operator) -> _Lowered:
    g = em.graph
    inp, out = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    if inp.dtype == "FLOAT32":
        p = quant.quantize_params(out.scale, out.zero_point)
        return _Lowered(
            f"eb_quantize_f32_s8({em.ptr(op.inputs[0], 'float')}, {em.out(op.outputs[0])}, "
            f"{out.elements}u, {_c_float(p.scale)}, {p.zero_point});"
        )
    r = quant.requantize_params(inp.scale, inp.zero_point, out.scale, out.zero_point)
    return _Lowered(
        f"eb_requantize_s8({em.ptr(op.inputs[0])}, {em.out(op.outputs[0])}, {out.elements}u, "
        f"{_fields(r, ('input_zp', 'multiplier', 'shift', 'output_zp'))});"
    )


def _lower_dequantize(em: _Emitter, op: Operator) -> _Lowered:
    g = em.graph
    inp = g.tensors[op.inputs[0]]
    p = quant.dequantize_params(inp.scale, inp.zero_point)
    return _Lowered(
        f"eb_dequantize_s8_f32({em.ptr(op.inputs[0])}, {em.out(op.outputs[0], 'float')}, "
        f"{inp.elements}u, {_c_float(p.scale)}, {p.zero_point});"
    )


_LOWERINGS: dict[str, Callable[[_Emitter, Operator], _Lowered]] = {
    "CONV_2D": _lower_conv,
    "DEPTHWISE_CONV_2D": _lower_depthwise,
    "FULLY_CONNECTED": _lower_fully_connected,
    **{name: _lower_alias for name in ALIAS_OPS},
    "ADD": _lower_add,
    "MUL": _lower_mul,
    "MAX_POOL_2D": _lower_pool,
    "AVERAGE_POOL_2D": _lower_pool,
    "MEAN": _lower_mean,
    "SOFTMAX": _lower_softmax,
    "PAD": _lower_pad,
    "PADV2": _lower_pad,
    "TRANSPOSE": _lower_transpose,
    "CONCATENATION": _lower_concat,
    "QUANTIZE": _lower_quantize,
    "DEQUANTIZE": _lower_dequantize,
}
assert set(_LOWERINGS) == set(SUPPORTED_OPS)


# --------------------------------------------------------------------------- planning


@dataclass
class _Schedule:
    """Rewrites decided before planning; the .tflite's operators stay as they are
    (each still gets its hook call), only what runs and where bytes live changes.

    - ``fused_pads``: PAD ops folded into the CONV_2D/DEPTHWISE_CONV_2D that is
      their only reader (padding with the input zero point contributes exactly
      what a conv's own padding does: nothing); that conv reads the PAD's input
      with the PAD's before-amounts added to its own top/left padding.
    - ``fused_transposes``: NCHW -> NHWC TRANSPOSEs (what a torch export puts
      after its channels-first graph input) folded into the conv that is their
      only reader (through a fused PAD or not); that conv, in ``planar``,
      gathers its im2col columns from the channels-first tensor, so the NHWC
      copy never exists.
    - ``in_place``: convs, depthwise convs, ADDs and MULs whose output is
      planned over their input (see conv.c, depthwise_conv.c, elementwise.c).
    - ``aliases``: tensor -> (tensor it lives in, byte offset).
    """

    # op -> (tensor it reads, extra top padding, extra left padding)
    conv_source: dict[int, tuple[int, int, int]] = field(default_factory=dict)
    fused_pads: set[int] = field(default_factory=set)
    fused_transposes: set[int] = field(default_factory=set)
    planar: set[int] = field(default_factory=set)
    in_place: set[int] = field(default_factory=set)
    aliases: dict[int, tuple[int, int]] = field(default_factory=dict)

    def conv_input(self, op: Operator) -> tuple[int, int, int]:
        return self.conv_source.get(op.index, (op.inputs[0], 0, 0))

    def op_inputs(self, op: Operator) -> tuple[int, ...]:
        if op.index in self.fused_pads or op.index in self.fused_transposes:
            return ()
        if op.index in self.conv_source:
            return (self.conv_source[op.index][0], *op.inputs[1:])
        return op.inputs

    def op_outputs(self, op: Operator) -> tuple[int, ...]:
        if op.index in self.fused_pads or op.index in self.fused_transposes:
            return ()
        return op.outputs

    def with_in_place(self) -> _Schedule:
        """A copy to plan in-place choices on (the fusions are shared)."""
        return _Schedule(
            self.conv_source,
            self.fused_pads,
            self.fused_transposes,
            self.planar,
            set(),
            dict(self.aliases),
        )


def _readers(graph: Graph) -> dict[int, list[int]]:
    readers: dict[int, list[int]] = {}
    for op in graph.operators:
        for i in op.inputs:
            if i >= 0:
                readers.setdefault(i, []).append(op.index)
    return readers


def _fuse_pads(graph: Graph, sched: _Schedule) -> None:
    readers = _readers(graph)
    for op in graph.operators:
        if op.builtin not in ("PAD", "PADV2") or graph.tensors[op.inputs[0]].is_constant:
            continue
        src, dst = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
        users = readers.get(dst.index, [])
        if len(src.shape) != 4 or dst.index in graph.outputs or len(users) != 1:
            continue
        conv = graph.operators[users[0]]
        if conv.builtin not in ("CONV_2D", "DEPTHWISE_CONV_2D") or conv.inputs[0] != dst.index:
            continue
        paddings = graph.tensors[op.inputs[1]].data
        if paddings is None:
            continue
        pads = paddings.reshape(4, 2)
        value = dst.zero_point
        if op.builtin == "PADV2" and len(op.inputs) > 2 and op.inputs[2] >= 0:
            constant = graph.tensors[op.inputs[2]].data
            value = None if constant is None else int(constant.reshape(-1)[0])
        if pads[0].any() or pads[3].any() or value != dst.zero_point or (pads < 0).any():
            continue
        sched.fused_pads.add(op.index)
        sched.conv_source[conv.index] = (src.index, int(pads[1][0]), int(pads[2][0]))


_NCHW_TO_NHWC = (0, 2, 3, 1)


def _fuse_transposes(graph: Graph, sched: _Schedule) -> None:
    """Fold NCHW -> NHWC TRANSPOSEs into the non-pointwise conv that reads them
    (after _fuse_pads, so a TRANSPOSE -> PAD -> conv chain folds whole)."""
    readers = _readers(graph)
    for op in graph.operators:
        if op.builtin != "TRANSPOSE" or graph.tensors[op.inputs[0]].is_constant:
            continue
        perm = graph.tensors[op.inputs[1]].data
        src, dst = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
        if perm is None or tuple(int(a) for a in perm.reshape(-1)) != _NCHW_TO_NHWC:
            continue
        if dst.index in graph.outputs or src.dtype != "INT8":
            continue
        users = readers.get(dst.index, [])
        if len(users) != 1:
            continue
        conv = graph.operators[users[0]]
        if users[0] in sched.fused_pads:  # TRANSPOSE -> PAD -> conv
            pad_input = graph.operators[users[0]].inputs[0]
            conv = next(
                c
                for c in graph.operators
                if sched.conv_source.get(c.index, (-1, 0, 0))[0] == pad_input
            )
        if conv.builtin not in ("CONV_2D", "DEPTHWISE_CONV_2D") or not _runs_as_conv(graph, conv):
            continue
        source, extra_h, extra_w = sched.conv_input(conv)
        weights = graph.tensors[conv.inputs[1]]
        if source != dst.index or weights.shape[1:3] == (1, 1):
            continue  # a pointwise conv reads pixels in place, not through im2col
        sched.fused_transposes.add(op.index)
        sched.planar.add(conv.index)
        sched.conv_source[conv.index] = (src.index, extra_h, extra_w)


def _plan_sizes(graph: Graph, sched: _Schedule) -> dict[int, int]:
    sizes: dict[int, int] = {}
    for op in graph.operators:
        for i in (*sched.op_inputs(op), *sched.op_outputs(op)):
            if i >= 0 and not graph.tensors[i].is_constant:
                sizes[i] = graph.tensors[i].nbytes
    for i in (*graph.inputs, *graph.outputs):
        sizes[i] = graph.tensors[i].nbytes
    return sizes


def _lifetimes(graph: Graph, sched: _Schedule, sizes: dict[int, int]) -> list[BufferUse]:
    ops = graph.operators
    return tensor_lifetimes(
        len(ops),
        [sched.op_inputs(op) for op in ops],
        [sched.op_outputs(op) for op in ops],
        sizes,
        graph.inputs,
        graph.outputs,
        sched.aliases,
    )


def _overwritable_inputs(graph: Graph, op: Operator, sched: _Schedule) -> list[int]:
    """The inputs ``op``'s kernel can write its output over (same start address,
    or the input at the output's end for a widening 1x1 conv), by the kernels'
    own conditions; whether the bytes are free to overwrite is checked apart."""
    out = graph.tensors[op.outputs[0]]
    if op.builtin in ("ADD", "MUL"):
        # Equal shapes: the flat loop (elementwise.c); not where one broadcasts.
        return [
            i
            for i in op.inputs[:2]
            if graph.tensors[i].shape == out.shape
            and all(graph.tensors[j].elements == out.elements for j in op.inputs[:2])
        ]
    if op.builtin not in ("CONV_2D", "DEPTHWISE_CONV_2D") or op.index in sched.planar:
        return []
    geo = _conv_geometry(graph, sched, op)
    weights = graph.tensors[op.inputs[1]]
    _, _, out_w, out_c = out.shape
    if _runs_as_conv(graph, op):
        fic = weights.shape[3] if op.builtin == "CONV_2D" else 1
        if fic != geo.in_c:
            return []  # grouped: each group re-reads the whole input
        if geo.pointwise:
            ok = geo.stride == (1, 1) and op.index not in sched.conv_source
            return [geo.source] if ok else []
    # Row ring (conv.c, depthwise_conv.c): an output row no longer than an input
    # row, one output row per input row, and an output no larger than the input.
    source = graph.tensors[geo.source]
    rows_fit = out_w * out_c <= geo.in_w * geo.in_c and out.nbytes <= source.nbytes
    return [geo.source] if geo.stride[0] == 1 and rows_fit else []


def _in_place_alias(
    graph: Graph, sched: _Schedule, sizes: dict[int, int], op: Operator
) -> tuple[int, tuple[int, int]] | None:
    """The alias entry that plans ``op``'s output over an input it may overwrite,
    given the aliases chosen so far; None if there is none."""
    io = set(graph.inputs) | set(graph.outputs)
    dst = graph.tensors[op.outputs[0]]
    if dst.index in io or dst.index in sched.aliases:
        return None
    placement = resolve_aliases(sched.aliases)
    last_use = {u.key: u.last for u in _lifetimes(graph, sched, sizes)}
    for index in _overwritable_inputs(graph, op, sched):
        src = graph.tensors[index]
        if src.is_constant or index not in sizes:
            continue
        root, offset = placement.get(index, (index, 0))
        if root in io or last_use[root] != op.index:
            continue  # a graph input or output, or read again later
        if dst.nbytes <= src.nbytes:  # the output starts where the input does
            return dst.index, (index, 0)
        # A widening 1x1 conv puts the input at the output's end: the input's
        # whole buffer moves there, so it must be exactly this input.
        members = [t for t in sizes if placement.get(t, (t, 0))[0] == root]
        if offset == 0 and all(
            placement.get(t, (t, 0))[1] + sizes[t] <= sizes[index] for t in members
        ):
            return root, (dst.index, dst.nbytes - src.nbytes)
    return None


def _apply_in_place(
    graph: Graph, base: _Schedule, sizes: dict[int, int], chosen: set[int]
) -> _Schedule:
    """``base`` with the ops in ``chosen`` planned in place, in graph order (an
    op's legality depends on the aliases before it); illegal ones are skipped."""
    sched = base.with_in_place()
    for op in graph.operators:
        if op.index not in chosen:
            continue
        alias = _in_place_alias(graph, sched, sizes, op)
        if alias is not None:
            sched.aliases[alias[0]] = alias[1]
            sched.in_place.add(op.index)
    return sched


def _choose_in_place(
    graph: Graph, base: _Schedule, sizes: dict[int, int], mode: InPlace, alignment: int
) -> _Schedule:
    """The in-place ops: every legal one ("all"), or ("auto") a small set that
    gives the smallest arena found.

    An in-place op merges its input and output into one buffer, which helps only
    where that op is the peak and can hurt elsewhere (the merged buffer is alive
    from the input's birth to the output's death); peaks usually need a chain of
    them (a depthwise then a pointwise conv). So: start from every legal one,
    drop whichever lowers the arena while any does, then drop, one at a time,
    those whose removal does not raise it (fewer copies, no cost in RAM)."""
    everything = _apply_in_place(graph, base, sizes, {op.index for op in graph.operators})
    if mode == "all":
        return everything

    def arena(chosen: set[int]) -> int:
        return _plan(graph, _apply_in_place(graph, base, sizes, chosen), sizes, alignment)[2]

    chosen = set(everything.in_place)
    best = arena(chosen)
    improved = True
    while improved:
        improved = False
        for op in sorted(chosen):
            trial = arena(chosen - {op})
            if trial < best:
                chosen, best, improved = chosen - {op}, trial, True
    for op in sorted(chosen):
        if arena(chosen - {op}) <= best:
            chosen = chosen - {op}
    return _apply_in_place(graph, base, sizes, chosen)


def _schedule(graph: Graph, in_place: InPlace, alignment: int) -> tuple[_Schedule, dict[int, int]]:
    sched = _Schedule()
    _fuse_pads(graph, sched)
    _fuse_transposes(graph, sched)
    sched.aliases = {
        op.outputs[0]: (op.inputs[0], 0)
        for op in graph.operators
        if op.builtin in ALIAS_OPS and not graph.tensors[op.inputs[0]].is_constant
    }
    sizes = _plan_sizes(graph, sched)
    if in_place != "off":
        sched = _choose_in_place(graph, sched, sizes, in_place, alignment)
    return sched, sizes


def _plan(
    graph: Graph, sched: _Schedule, sizes: dict[int, int], alignment: int
) -> tuple[dict[int, int], dict[int, int], int]:
    """Arena offsets of the activation tensors and of the scratch buffers."""
    uses = _lifetimes(graph, sched, sizes)
    scratch = {op.index: _scratch_bytes(graph, sched, op) for op in graph.operators}
    uses += [BufferUse(("scratch", i), n, i, i) for i, n in scratch.items() if n]
    plan = plan_arena(uses, alignment)
    placement = resolve_aliases(sched.aliases)
    tensor_offsets = {}
    for t in sizes:
        root, offset = placement.get(t, (t, 0))
        tensor_offsets[t] = plan.offsets[root] + offset
    scratch_offsets = {i: plan.offsets[("scratch", i)] for i, n in scratch.items() if n}
    return tensor_offsets, scratch_offsets, plan.arena_bytes


# --------------------------------------------------------------------------- compile


def _io(graph: Graph, index: int, offsets: dict[int, int]) -> TensorIO:
    t = graph.tensors[index]
    return TensorIO(
        index, t.name, t.shape, t.dtype, t.scale, t.zero_point, t.nbytes, offsets[index]
    )


def _c_io(io: TensorIO) -> str:
    dims = list(io.shape) + [0] * (MAX_RANK - len(io.shape))
    return (
        f"{{eb_arena + {io.arena_offset}, {io.bytes}u, {_EB_DTYPES[io.dtype]}, {len(io.shape)}, "
        f"{{{', '.join(str(d) for d in dims)}}}, {_c_float(io.scale)}, {io.zero_point}}}"
    )


def compile_model(
    tflite_path: Path,
    out_dir: Path,
    *,
    name: str,
    alignment: int = DEFAULT_ALIGNMENT,
    in_place: InPlace = "auto",
) -> CompiledModel:
    """Compile ``tflite_path`` to ``out_dir/model.c`` (see the module docstring).

    ``in_place``: "auto" plans convs, depthwise convs, ADDs and MULs over their
    own input where that makes the arena smaller (see _choose_in_place), "all"
    wherever it is legal (tests use it to exercise those paths), "off" never.
    """
    tflite_path = Path(tflite_path)
    graph = read_tflite(tflite_path)
    check_supported(graph, tflite_path.name)
    sha256 = hashlib.sha256(tflite_path.read_bytes()).hexdigest()
    sched, sizes = _schedule(graph, in_place, alignment)
    offsets, scratch_offsets, arena_bytes = _plan(graph, sched, sizes, alignment)
    em = _Emitter(graph, sched, offsets, scratch_offsets)

    calls: list[str] = []
    infos: list[OpInfo] = []
    for op in graph.operators:
        lowered = _LOWERINGS[op.builtin](em, op)
        calls.append(f"    if (hook) hook({op.index}u, ctx);  /* {op.builtin} */")
        if lowered.call:
            calls.append(f"    {lowered.call}")
        infos.append(OpInfo(op.index, op.builtin, lowered.macs))
    n_ops = len(graph.operators)
    inputs = tuple(_io(graph, i, offsets) for i in graph.inputs)
    outputs = tuple(_io(graph, i, offsets) for i in graph.outputs)
    macs = sum(info.macs for info in infos)

    op_names = ", ".join(_c_string(op.builtin) for op in graph.operators) or "0"
    text = "\n".join(
        [
            f"/* Generated by runners/mcu/compiler.py from {tflite_path.name} ({name}); "
            "do not edit.",
            f" * sha256 {sha256}",
            f" * {n_ops} operators, {macs} MACs, arena {arena_bytes} bytes,"
            f" constants {em.const_bytes} bytes. */",
            "#include <stddef.h>",
            "#include <stdint.h>",
            "",
            '#include "eb_kernels.h"',
            '#include "eb_kernels_misc.h"',
            '#include "eb_model.h"',
            "",
            f"static uint8_t eb_arena[{max(arena_bytes, alignment)}] "
            f"__attribute__((aligned({alignment})));",
            "",
            *em.decls,
            "",
            f"static const char *const eb_op_names[{max(n_ops, 1)}] = {{{op_names}}};",
            f"static const eb_io eb_inputs[{max(len(inputs), 1)}] = "
            f"{{{', '.join(_c_io(io) for io in inputs)}}};",
            f"static const eb_io eb_outputs[{max(len(outputs), 1)}] = "
            f"{{{', '.join(_c_io(io) for io in outputs)}}};",
            "",
            "const eb_model_info eb_model = {",
            f"    .name = {_c_string(name)},",
            f'    .sha256_hex = "{sha256}",',
            f"    .arena_bytes = {arena_bytes}u,",
            f"    .weights_bytes = {em.const_bytes}u,",
            f"    .macs = {macs}ull,",
            f"    .n_ops = {n_ops}u,",
            "    .op_names = eb_op_names,",
            f"    .n_inputs = {len(inputs)}, .n_outputs = {len(outputs)},",
            "    .inputs = eb_inputs,",
            "    .outputs = eb_outputs,",
            "};",
            "",
            "int eb_model_invoke(eb_op_hook hook, void *ctx) {",
            *calls,
            f"    if (hook) hook({n_ops}u, ctx);",
            "    return 0;",
            "}",
            "",
        ]
    )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model_c = out_dir / "model.c"
    model_c.write_text(text)
    return CompiledModel(
        name=name,
        source=tflite_path,
        sha256=sha256,
        model_c=model_c,
        arena_bytes=arena_bytes,
        weights_bytes=em.const_bytes,
        macs=macs,
        ops=tuple(infos),
        inputs=inputs,
        outputs=outputs,
    )
