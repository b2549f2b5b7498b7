"""Integer quantization parameters exactly as TFLite (Micro) prepares them, so the
compiled firmware's kernels are bit-exact with the reference interpreter.

Python floats are IEEE doubles, the same as the ``double`` TFLite computes these
in; ``math.frexp`` is C's ``frexp``. Tensor scales in a .tflite are float32; pass
them as read from the flatbuffer (a float32 value held in a Python float, which
is exactly TFLite's ``static_cast<double>(params.scale)``). Where TFLite computes
in ``float`` (activation ranges, the pooling scale check) we do the same with
numpy float32 scalars.

Rounding: TFLite Micro is built without ``TFLITE_SINGLE_ROUNDING``, so every
``MultiplyByQuantizedMultiplier`` is gemmlowp's double rounding
(``SaturatingRoundingDoublingHighMul`` then ``RoundingDivideByPOT``) and
``QuantizeMultiplier`` does not clamp the shift to 30. The firmware kernels
(``runners/mcu/firmware/kernels``) implement that scheme; the parameters below
are for it.

Each ``*_params`` function mirrors one TFLM ``Prepare`` (named in its docstring),
raises ``ValueError`` where TFLM's Prepare would fail (except that PAD and
TRANSPOSE accept rank 6 where TFLM stops at 5), and returns a frozen
dataclass whose fields are the integer arguments of the matching C function in
``runners/mcu/firmware/include/eb_kernels_misc.h``.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

INT8_MIN = -128
INT8_MAX = 127
MAX_RANK = 6  # EB_MAX_RANK in eb_model.h; TFLM's broadcast/transpose limit too


def round_half_away(x: float) -> int:
    """C's ``round()`` (TfLiteRound): halves go away from zero.

    Computed from the floor and the exact remainder ``|x| - floor(|x|)`` rather
    than ``floor(x + 0.5)``, which rounds 0.49999999999999994 up."""
    a = abs(x)
    f = math.floor(a)
    r = f + 1 if a - f >= 0.5 else f
    return int(r) if x >= 0 else -int(r)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite's ``QuantizeMultiplier`` (quantization_util.cc), as TFLM builds it
    (double rounding): ``real ~= multiplier * 2**(shift - 31)`` with a Q31
    ``multiplier`` in [2**30, 2**31) (in (-2**31, -2**30] for a negative
    ``real``; 0 for 0). ``shift`` > 0 is a left shift.

    Multipliers below about 2**-31 (``shift < -31``) flush to ``(0, 0)``. The
    shift is not clamped to 30: that clamp exists only in TFLite's
    single-rounding build, which TFLM does not use."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = round_half_away(q * (1 << 31))
    if q_fixed > (1 << 31):  # TFLITE_CHECK(q_fixed <= (1LL << 31)): cannot happen for finite input
        raise ValueError(f"quantize_multiplier({real!r}): fraction out of range")
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return q_fixed, shift


def quantize_multiplier_smaller_than_one_exp(real: float) -> tuple[int, int]:
    """TFLite's ``QuantizeMultiplierSmallerThanOneExp``: 0 < ``real`` < 1, and the
    returned shift is <= 0 (a right shift of ``-shift``)."""
    if not 0.0 < real < 1.0:
        raise ValueError(f"multiplier {real!r} must be in (0, 1)")
    multiplier, shift = quantize_multiplier(real)
    if shift > 0:
        raise ValueError(f"multiplier {real!r} quantized to a left shift {shift}")
    return multiplier, shift


def quantize_multiplier_greater_than_one(real: float) -> tuple[int, int]:
    """TFLite's ``QuantizeMultiplierGreaterThanOne``: ``real`` > 1, shift >= 0."""
    if not real > 1.0:
        raise ValueError(f"multiplier {real!r} must be > 1")
    multiplier, shift = quantize_multiplier(real)
    if shift < 0:
        raise ValueError(f"multiplier {real!r} quantized to a right shift {shift}")
    return multiplier, shift


class Activation(enum.IntEnum):
    """The schema's ``ActivationFunctionType`` values an int8 kernel can fuse."""

    NONE = 0
    RELU = 1
    RELU_N1_TO_1 = 2
    RELU6 = 3


def _quantize_float32(scale: float, zero_point: int, value: float) -> int:
    """TFLite's ``Quantize`` helper in kernel_util.cc: ``zero_point +
    (int32)roundf(value / scale)`` with the division in float32."""
    tmp = round_half_away(float(np.float32(value) / np.float32(scale)))
    # TFLite's check compares the rounded float with float(INT32_MIN/MAX) = -2^31, 2^31
    if not -(2**31) <= tmp <= 2**31:
        raise ValueError(f"activation bound {value} / scale {scale} overflows int32")
    return zero_point + tmp


@dataclass(frozen=True)
class ActivationRange:
    act_min: int
    act_max: int


def activation_range(
    activation: int, scale: float, zero_point: int, qmin: int = INT8_MIN, qmax: int = INT8_MAX
) -> ActivationRange:
    """TFLite's ``CalculateActivationRangeQuantized``: the clamp a fused
    activation becomes on the output tensor's integer grid (``activation`` is the
    schema's ``fusedActivationFunction``).

    TFLite silently treats any other activation (TANH, SIGN_BIT) as NONE; here
    that is an error, since the float graph meant something else."""
    try:
        act = Activation(activation)
    except ValueError:
        raise ValueError(f"fused activation {activation} is not supported for int8") from None
    if act is Activation.RELU:
        return ActivationRange(max(qmin, _quantize_float32(scale, zero_point, 0.0)), qmax)
    if act is Activation.RELU6:
        return ActivationRange(
            max(qmin, _quantize_float32(scale, zero_point, 0.0)),
            min(qmax, _quantize_float32(scale, zero_point, 6.0)),
        )
    if act is Activation.RELU_N1_TO_1:
        return ActivationRange(
            max(qmin, _quantize_float32(scale, zero_point, -1.0)),
            min(qmax, _quantize_float32(scale, zero_point, 1.0)),
        )
    return ActivationRange(qmin, qmax)


# --- ADD / MUL -----------------------------------------------------------------

ADD_LEFT_SHIFT_INT8 = 20  # TFLite's headroom for int8 ADD (15 for int16)


@dataclass(frozen=True)
class AddParams:
    """Arguments of ``eb_add_s8`` (TFLM ``CalculateOpDataAdd``, int8 branch)."""

    input1_offset: int  # -input1 zero point
    input1_multiplier: int
    input1_shift: int  # <= 0
    input2_offset: int
    input2_multiplier: int
    input2_shift: int
    left_shift: int  # 20
    output_multiplier: int
    output_shift: int  # <= 0
    output_offset: int  # +output zero point
    act_min: int
    act_max: int


def add_params(
    in1_scale: float,
    in1_zp: int,
    in2_scale: float,
    in2_zp: int,
    out_scale: float,
    out_zp: int,
    activation: int,
) -> AddParams:
    """TFLM ``CalculateOpDataAdd`` for int8: both inputs are brought to a common
    scale of twice the larger input scale, with 20 bits of headroom
    (``left_shift``), summed, then rescaled to the output."""
    twice_max_input_scale = 2 * max(in1_scale, in2_scale)
    real_in1 = in1_scale / twice_max_input_scale
    real_in2 = in2_scale / twice_max_input_scale
    real_out = twice_max_input_scale / ((1 << ADD_LEFT_SHIFT_INT8) * out_scale)
    m1, s1 = quantize_multiplier_smaller_than_one_exp(real_in1)
    m2, s2 = quantize_multiplier_smaller_than_one_exp(real_in2)
    mo, so = quantize_multiplier_smaller_than_one_exp(real_out)
    rng = activation_range(activation, out_scale, out_zp)
    return AddParams(
        -in1_zp,
        m1,
        s1,
        -in2_zp,
        m2,
        s2,
        ADD_LEFT_SHIFT_INT8,
        mo,
        so,
        out_zp,
        rng.act_min,
        rng.act_max,
    )


@dataclass(frozen=True)
class MulParams:
    """Arguments of ``eb_mul_s8`` (TFLM ``CalculateOpDataMul``, int8 branch)."""

    input1_offset: int  # -input1 zero point
    input2_offset: int
    output_multiplier: int
    output_shift: int  # may be > 0 (left shift)
    output_offset: int  # +output zero point
    act_min: int
    act_max: int


def mul_params(
    in1_scale: float,
    in1_zp: int,
    in2_scale: float,
    in2_zp: int,
    out_scale: float,
    out_zp: int,
    activation: int,
) -> MulParams:
    """TFLM ``CalculateOpDataMul``: one multiplier for ``s1 * s2 / s_out``."""
    real = in1_scale * in2_scale / out_scale
    m, s = quantize_multiplier(real)
    rng = activation_range(activation, out_scale, out_zp)
    return MulParams(-in1_zp, -in2_zp, m, s, out_zp, rng.act_min, rng.act_max)


def broadcast_shapes(
    shape1: Sequence[int], shape2: Sequence[int]
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """Both operand shapes left-padded with 1s to a common rank, and the output
    shape (numpy rules, as TFLM's ``BroadcastBinaryOpSimple``), for
    ``eb_add_s8``/``eb_mul_s8``, which take three shapes of one rank <= 6."""
    rank = max(len(shape1), len(shape2), 1)
    if rank > MAX_RANK:
        raise ValueError(f"broadcast of rank {rank} > {MAX_RANK}")
    a = (1,) * (rank - len(shape1)) + tuple(int(d) for d in shape1)
    b = (1,) * (rank - len(shape2)) + tuple(int(d) for d in shape2)
    out = []
    for da, db in zip(a, b, strict=True):
        if da != db and da != 1 and db != 1:
            raise ValueError(f"shapes {tuple(shape1)} and {tuple(shape2)} do not broadcast")
        out.append(db if da == 1 else da)
    return a, b, tuple(out)


# --- pooling -------------------------------------------------------------------


class Padding(enum.IntEnum):
    """The schema's ``Padding`` values."""

    SAME = 0
    VALID = 1


@dataclass(frozen=True)
class PoolParams:
    """Arguments of ``eb_max_pool_s8`` / ``eb_avg_pool_s8`` beyond the shapes
    (TFLM ``CalculateOpDataPooling`` + ``PoolingPrepare``)."""

    out_h: int
    out_w: int
    pad_h: int  # top padding (TFLM's padding_values.height)
    pad_w: int  # left padding
    act_min: int
    act_max: int


def _out_size(padding: Padding, in_size: int, filter_size: int, stride: int) -> int:
    # tflite/kernels/padding.h ComputeOutSizeChecked (dilation 1)
    if in_size < 0 or filter_size <= 0 or stride <= 0:
        raise ValueError(f"bad window: input {in_size}, filter {filter_size}, stride {stride}")
    if padding is Padding.SAME:
        value = (in_size + stride - 1) // stride
    else:
        num = in_size + stride - filter_size
        value = num // stride if num >= 0 else -(-num // stride)  # C's truncating division
    if value <= 0:
        raise ValueError(f"window {filter_size}/{stride} leaves no output of input {in_size}")
    return value


def _padding(stride: int, in_size: int, filter_size: int, out_size: int) -> int:
    # tflite/kernels/padding.h ComputePaddingWithOffset: the smaller half goes first
    total = (out_size - 1) * stride + filter_size - in_size
    return max(total, 0) // 2


def pool_params(
    padding: int,
    stride_h: int,
    stride_w: int,
    filter_h: int,
    filter_w: int,
    in_h: int,
    in_w: int,
    activation: int,
    in_scale: float,
    in_zp: int,
    out_scale: float,
    out_zp: int,
) -> PoolParams:
    """TFLM pooling Prepare for int8 (MAX_POOL_2D and AVERAGE_POOL_2D): output size
    and top/left padding from ``Pool2DOptions``, the activation clamp, and
    TFLM's requirement that input and output share quantization."""
    pad = Padding(padding)
    out_h = _out_size(pad, in_h, filter_h, stride_h)
    out_w = _out_size(pad, in_w, filter_w, stride_w)
    if float(abs(np.float32(in_scale) - np.float32(out_scale))) > 1.0e-6 or in_zp != out_zp:
        raise ValueError("int8 pooling needs the same input and output quantization")
    rng = activation_range(activation, out_scale, out_zp)
    return PoolParams(
        out_h,
        out_w,
        _padding(stride_h, in_h, filter_h, out_h),
        _padding(stride_w, in_w, filter_w, out_w),
        rng.act_min,
        rng.act_max,
    )


# --- MEAN ----------------------------------------------------------------------


@dataclass(frozen=True)
class MeanParams:
    """Arguments of ``eb_mean_s8`` (TFLM ``PrepareMeanOrSumHelper`` plus the
    1/N folding of ``reference_ops::QuantizedMeanOrSum``)."""

    axes: tuple[int, ...]  # resolved: non-negative, unique, in the order given
    num_elements: int  # elements averaged per output (product of reduced dims)
    input_zp: int
    multiplier: int  # in_scale/out_scale with 1/num_elements folded in
    shift: int
    output_zp: int


def resolve_axes(rank: int, axes: Sequence[int]) -> tuple[int, ...]:
    """``reference_ops::ResolveAxis``: negative axes count from the end, duplicates
    are dropped, order is kept."""
    out: list[int] = []
    for a in axes:
        cur = int(a) + rank if a < 0 else int(a)
        if not 0 <= cur < rank:
            raise ValueError(f"axis {a} out of range for rank {rank}")
        if cur not in out:
            out.append(cur)
    return tuple(out)


def mean_params(
    input_shape: Sequence[int],
    axes: Sequence[int],
    in_scale: float,
    in_zp: int,
    out_scale: float,
    out_zp: int,
) -> MeanParams:
    """int8 MEAN as TFLM computes it: ``QuantizeMultiplier(in_scale/out_scale)``,
    then ``1/N`` folded into the multiplier exactly as ``QuantizedMeanOrSum``
    does (``shift = min(floor(log2 N), 32, 31 + shift)``, ``multiplier =
    (multiplier << shift) / N`` truncated), then applied to
    ``sum - in_zp * N``. keep_dims does not change the memory layout, so it is
    not a parameter."""
    shape = tuple(int(d) for d in input_shape)
    if len(shape) > MAX_RANK:
        raise ValueError(f"MEAN of rank {len(shape)} > {MAX_RANK}")
    resolved = resolve_axes(len(shape), axes)
    n = 1
    for a in resolved:
        n *= shape[a]
    if n == 0 or 0 in shape:
        raise ValueError(f"MEAN over an empty tensor {shape}")
    multiplier, shift = quantize_multiplier(in_scale / out_scale)
    fold = min(n.bit_length() - 1, 32, 31 + shift)
    multiplier = (multiplier << fold) // n  # both non-negative: C++'s truncation
    return MeanParams(resolved, n, in_zp, int(multiplier), shift - fold, out_zp)


def mean_output_shape(
    input_shape: Sequence[int], axes: Sequence[int], keep_dims: bool
) -> tuple[int, ...]:
    """The MEAN output shape (reduced axes become 1, or are dropped)."""
    resolved = resolve_axes(len(input_shape), axes)
    if keep_dims:
        return tuple(1 if i in resolved else int(d) for i, d in enumerate(input_shape))
    return tuple(int(d) for i, d in enumerate(input_shape) if i not in resolved)


# --- SOFTMAX -------------------------------------------------------------------

SOFTMAX_SCALED_DIFF_INTEGER_BITS = 5


@dataclass(frozen=True)
class SoftmaxParams:
    """Arguments of ``eb_softmax_s8`` (TFLM ``CalculateSoftmaxParams``, int8->int8)."""

    input_multiplier: int
    input_left_shift: int
    diff_min: int  # <= 0: differences from the row max below it give output -128


def softmax_params(
    beta: float, input_scale: float, output_scale: float = 1.0 / 256, output_zp: int = -128
) -> SoftmaxParams:
    """TFLM ``CalculateSoftmaxParams`` for int8 input and int8 output:
    ``PreprocessSoftmaxScaling(beta, input_scale, 5)`` (the input difference
    becomes a Q5.26 value, multiplier capped at 2**31 - 1) and
    ``diff_min = -CalculateInputRadius(5, input_left_shift, 31)``.

    TFLM requires the output to be scale 1/256, zero point -128 (float compare)."""
    if np.float32(output_scale) != np.float32(1.0) / np.float32(256) or output_zp != -128:
        raise ValueError(
            "int8 softmax output must be scale 1/256, zero point -128,"
            f" got {output_scale}, {output_zp}"
        )
    max_real_multiplier = (1 << 31) - 1.0  # double-rounding build
    real = min(
        beta * input_scale * (1 << (31 - SOFTMAX_SCALED_DIFF_INTEGER_BITS)), max_real_multiplier
    )
    multiplier, left_shift = quantize_multiplier_greater_than_one(real)
    bits = SOFTMAX_SCALED_DIFF_INTEGER_BITS
    max_input_rescaled = 1.0 * ((1 << bits) - 1) * (1 << (31 - bits)) / (1 << left_shift)
    diff_min = -math.floor(max_input_rescaled)
    return SoftmaxParams(multiplier, left_shift, diff_min)


# --- QUANTIZE / DEQUANTIZE -----------------------------------------------------


@dataclass(frozen=True)
class QuantizeParams:
    """Arguments of ``eb_quantize_f32_s8`` (float32 -> int8)."""

    scale: float  # the output tensor's float32 scale; emit it exactly (e.g. C99 hex float)
    zero_point: int


def quantize_params(out_scale: float, out_zp: int) -> QuantizeParams:
    """TFLM ``PrepareQuantizeReference``, float32 input: ``AffineQuantize`` with the
    output's scale and zero point."""
    if not out_scale > 0:
        raise ValueError(f"QUANTIZE output scale must be positive, got {out_scale}")
    return QuantizeParams(float(np.float32(out_scale)), out_zp)


@dataclass(frozen=True)
class RequantizeParams:
    """Arguments of ``eb_requantize_s8`` (int8 -> int8 QUANTIZE)."""

    input_zp: int
    multiplier: int
    shift: int
    output_zp: int


def requantize_params(
    in_scale: float, in_zp: int, out_scale: float, out_zp: int
) -> RequantizeParams:
    """TFLM ``PrepareQuantizeReference``, int8 -> int8: ``QuantizeMultiplier(in_scale
    / out_scale)`` for ``reference_ops::Requantize``."""
    m, s = quantize_multiplier(in_scale / out_scale)
    return RequantizeParams(in_zp, m, s, out_zp)


@dataclass(frozen=True)
class DequantizeParams:
    """Arguments of ``eb_dequantize_s8_f32`` (int8 -> float32)."""

    scale: float  # the input tensor's float32 scale; emit it exactly
    zero_point: int


def dequantize_params(in_scale: float, in_zp: int) -> DequantizeParams:
    """TFLM ``DequantizePrepare``: the input's scale and zero point."""
    return DequantizeParams(float(np.float32(in_scale)), in_zp)


# --- data movement: PAD, TRANSPOSE, CONCATENATION ------------------------------


@dataclass(frozen=True)
class PadParams:
    """Arguments of ``eb_pad_s8``."""

    before: tuple[int, ...]
    after: tuple[int, ...]
    pad_value: int


def pad_params(
    input_shape: Sequence[int],
    paddings: Sequence[Sequence[int]],
    out_zp: int,
    constant_value: int | None = None,
) -> PadParams:
    """TFLM ``PadPrepare``/``PadEval`` for int8 (PAD and PADV2): ``paddings`` is the
    constant [rank, 2] tensor; the fill is PADV2's ``constant_values`` scalar
    when present, else the output zero point."""
    rank = len(input_shape)
    if rank > MAX_RANK:  # TFLM: PadKernelMaxDimensionCount() == 5; the kernel does 6
        raise ValueError(f"PAD of rank {rank} > {MAX_RANK}")
    if len(paddings) != rank:
        raise ValueError(f"PAD paddings has {len(paddings)} rows for rank {rank}")
    before = tuple(int(p[0]) for p in paddings)
    after = tuple(int(p[1]) for p in paddings)
    if min(before + after, default=0) < 0:
        raise ValueError(f"negative PAD paddings {paddings}")
    value = out_zp if constant_value is None else int(constant_value)
    if not INT8_MIN <= value <= INT8_MAX:
        raise ValueError(f"PAD value {value} outside int8")
    return PadParams(before, after, value)


@dataclass(frozen=True)
class TransposeParams:
    """Arguments of ``eb_transpose_s8``."""

    perm: tuple[int, ...]
    output_shape: tuple[int, ...]


def transpose_params(input_shape: Sequence[int], perm: Sequence[int]) -> TransposeParams:
    """TFLM ``TransposePrepare``: ``perm`` must be a permutation of the input's
    axes. Rank <= 6 (TFLM stops at 5; the kernel does 6)."""
    rank = len(input_shape)
    p = tuple(int(a) for a in perm)
    if rank > MAX_RANK or sorted(p) != list(range(rank)):
        raise ValueError(f"bad TRANSPOSE perm {p} for rank {rank}")
    return TransposeParams(p, tuple(int(input_shape[a]) for a in p))


@dataclass(frozen=True)
class ConcatParams:
    """Arguments of ``eb_concat_s8``."""

    outer: int  # product of the output dims before the axis
    inner: int  # product of the output dims after the axis
    axis_sizes: tuple[int, ...]  # each input's size along the axis


def concat_params(
    axis: int,
    input_shapes: Sequence[Sequence[int]],
    input_quant: Sequence[tuple[float, int]],
    out_quant: tuple[float, int],
    activation: int = 0,
) -> ConcatParams:
    """TFLM ``CONCATENATION`` Prepare for int8: activation NONE and every input
    with exactly the output's scale and zero point. TFLM does not requantize
    (the converter/quantizer inserts a QUANTIZE in front of a mismatched input),
    so neither do we; a mismatch is an error, as in TFLM."""
    if activation != Activation.NONE:
        raise ValueError("int8 CONCATENATION supports no fused activation (TFLM)")
    if not input_shapes:
        raise ValueError("CONCATENATION without inputs")
    rank = len(input_shapes[0])
    ax = axis + rank if axis < 0 else axis
    if not 0 <= ax < rank:
        raise ValueError(f"CONCATENATION axis {axis} out of range for rank {rank}")
    for shape, (scale, zp) in zip(input_shapes, input_quant, strict=True):
        if len(shape) != rank or any(
            int(shape[d]) != int(input_shapes[0][d]) for d in range(rank) if d != ax
        ):
            raise ValueError(
                f"CONCATENATION input shapes {[tuple(s) for s in input_shapes]}"
                f" disagree off axis {ax}"
            )
        if scale != out_quant[0] or zp != out_quant[1]:
            raise ValueError("int8 CONCATENATION inputs must have the output's quantization (TFLM)")
    first = [int(d) for d in input_shapes[0]]
    return ConcatParams(
        math.prod(first[:ax]),
        math.prod(first[ax + 1 :]),
        tuple(int(s[ax]) for s in input_shapes),
    )
