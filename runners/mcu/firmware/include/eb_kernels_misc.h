/* The int8 kernels other than CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED:
 * ADD, MUL, MAX_POOL_2D, AVERAGE_POOL_2D, MEAN, SOFTMAX, PAD/PADV2, RESHAPE,
 * TRANSPOSE, CONCATENATION, QUANTIZE, DEQUANTIZE.
 *
 * Semantics: TFLite Micro's reference kernels, bit for bit (TFLM is built
 * without TFLITE_SINGLE_ROUNDING, so requantization is gemmlowp's double
 * rounding; see eb_fixedpoint.h). tests/test_mcu_kernels.py checks every
 * function here against the TFLM interpreter on single-op int8 models.
 *
 * For runners/mcu/compiler.py: every integer parameter is computed at compile
 * time by a function in runners/mcu/quant.py, named at each kernel below; its
 * frozen dataclass has one field per parameter, with the same name. Pass the
 * tensors' float32 scales (as read from the .tflite) and zero points.
 * Conventions:
 * - Tensors are dense, row-major (TFLite's layout), int8 unless said.
 * - A shape is an int32_t array of `rank` dims, rank <= EB_MAX_RANK (6).
 * - A `shift` > 0 is a left shift, < 0 a right shift (TFLite's convention).
 * - Outputs never alias inputs, except RESHAPE (in == out: nothing to do) and
 *   ADD/MUL with equal shapes (out may be in1 or in2, see eb_add_s8).
 * - No kernel allocates, needs scratch, or uses libm.
 * - float parameters (QUANTIZE, DEQUANTIZE) must be emitted exactly: a C99 hex
 *   float literal (Python's float.hex() + "f") or "%.9g" + "f". Do not build the
 *   firmware with -ffast-math (QUANTIZE relies on IEEE float division).
 */
#ifndef EB_KERNELS_MISC_H
#define EB_KERNELS_MISC_H

#include <stdint.h>

/* ------------------------------------------------------------------ ADD, MUL */

/* ADD (int8). Shapes: all three of one rank <= 6; left-pad the operands'
 * shapes with 1s to the output rank (quant.broadcast_shapes does). Either
 * operand may broadcast along any dim of size 1 (numpy rules, as TFLM's
 * BroadcastAdd6DSlow); equal shapes take a flat loop, which reads element i
 * of both inputs before it writes element i, so `out` may then be `in1` or
 * `in2` (the compiler plans ADD/MUL over an input that dies there).
 * Parameters: quant.add_params(in1_scale, in1_zp, in2_scale, in2_zp,
 *   out_scale, out_zp, AddOptions.fusedActivationFunction) -> AddParams
 *   (TFLM CalculateOpDataAdd: left_shift = 20; input/output multipliers from
 *   QuantizeMultiplierSmallerThanOneExp, shifts <= 0; act_min/max from
 *   CalculateActivationRangeQuantized). The AddParams fields are, in order,
 *   the arguments after `rank`. */
void eb_add_s8(const int8_t *in1, const int32_t *shape1,
               const int8_t *in2, const int32_t *shape2,
               int8_t *out, const int32_t *out_shape, int32_t rank,
               int32_t input1_offset, int32_t input1_multiplier, int32_t input1_shift,
               int32_t input2_offset, int32_t input2_multiplier, int32_t input2_shift,
               int32_t left_shift, int32_t output_multiplier, int32_t output_shift,
               int32_t output_offset, int32_t act_min, int32_t act_max);

/* MUL (int8). Shapes, and `out` over an input, as eb_add_s8.
 * Parameters: quant.mul_params(in1_scale, in1_zp, in2_scale, in2_zp,
 *   out_scale, out_zp, MulOptions.fusedActivationFunction) -> MulParams
 *   (TFLM CalculateOpDataMul: QuantizeMultiplier(s1 * s2 / s_out)); its
 *   fields are, in order, the arguments after `rank`. */
void eb_mul_s8(const int8_t *in1, const int32_t *shape1,
               const int8_t *in2, const int32_t *shape2,
               int8_t *out, const int32_t *out_shape, int32_t rank,
               int32_t input1_offset, int32_t input2_offset,
               int32_t output_multiplier, int32_t output_shift, int32_t output_offset,
               int32_t act_min, int32_t act_max);

/* ------------------------------------------------------------------ pooling */

/* MAX_POOL_2D / AVERAGE_POOL_2D (int8, NHWC; input and output share
 * quantization, which TFLM requires). The window at output (y, x) starts at
 * input (y * stride_h - pad_h, x * stride_w - pad_w) and is clipped to the
 * input: padding contributes nothing, and the average divides by the number of
 * in-bounds elements, rounding half away from zero (TFLM's integer average).
 * Parameters: quant.pool_params(Pool2DOptions.padding, strideH, strideW,
 *   filterHeight, filterWidth, in_h, in_w, fusedActivationFunction, in_scale,
 *   in_zp, out_scale, out_zp) -> PoolParams(out_h, out_w, pad_h, pad_w,
 *   act_min, act_max). */
void eb_max_pool_s8(const int8_t *in, int8_t *out, int32_t batches,
                    int32_t in_h, int32_t in_w, int32_t channels,
                    int32_t out_h, int32_t out_w,
                    int32_t filter_h, int32_t filter_w, int32_t stride_h, int32_t stride_w,
                    int32_t pad_h, int32_t pad_w, int32_t act_min, int32_t act_max);

void eb_avg_pool_s8(const int8_t *in, int8_t *out, int32_t batches,
                    int32_t in_h, int32_t in_w, int32_t channels,
                    int32_t out_h, int32_t out_w,
                    int32_t filter_h, int32_t filter_w, int32_t stride_h, int32_t stride_w,
                    int32_t pad_h, int32_t pad_w, int32_t act_min, int32_t act_max);

/* ------------------------------------------------------------------ MEAN */

/* MEAN (int8) over `num_axes` resolved axes (non-negative, unique) of an input
 * of rank <= 6. keep_dims does not change the output's memory layout (the kept
 * dims in order), so it is not an argument. out = clamp(MBQM(sum - input_zp *
 * num_elements, multiplier, shift) + output_zp, -128, 127); no fused activation.
 * Parameters: quant.mean_params(input_shape, axis tensor data, in_scale, in_zp,
 *   out_scale, out_zp) -> MeanParams(axes, num_elements, input_zp, multiplier,
 *   shift, output_zp): QuantizeMultiplier(in_scale / out_scale) with 1/N
 *   folded in as TFLM's QuantizedMeanOrSum does. */
void eb_mean_s8(const int8_t *in, const int32_t *in_shape, int32_t rank,
                const int32_t *axes, int32_t num_axes, int8_t *out,
                int32_t num_elements, int32_t input_zp,
                int32_t multiplier, int32_t shift, int32_t output_zp);

/* ------------------------------------------------------------------ SOFTMAX */

/* SOFTMAX (int8 in, int8 out with scale 1/256 and zero point -128) over the
 * last dim: `outer` rows of `depth` values. Integer only: TFLM's
 * reference_ops::Softmax with gemmlowp's exp_on_negative_values (Q5.26 input)
 * and one_over_one_plus_x_for_x_in_0_1 (the reciprocal of the Q12.19 sum).
 * TFLM aborts the op when a row's sum of exps reaches 512 (possible only for
 * depth >= 512 with a small beta * input_scale); this kernel then saturates
 * the shift instead, so it is not bit-exact there.
 * Parameters: quant.softmax_params(SoftmaxOptions.beta, in_scale, out_scale,
 *   out_zp) -> SoftmaxParams(input_multiplier, input_left_shift, diff_min). */
void eb_softmax_s8(const int8_t *in, int8_t *out, int32_t outer, int32_t depth,
                   int32_t input_multiplier, int32_t input_left_shift, int32_t diff_min);

/* ------------------------------------------------------------------ data movement */

/* PAD / PADV2 (int8), rank <= 5 in TFLM (any rank <= 6 here): out has shape
 * in_shape[d] + before[d] + after[d]; padded elements are pad_value.
 * Parameters: quant.pad_params(input_shape, paddings tensor data [rank][2],
 *   out_zp, PADV2 constant_values data or None) -> PadParams(before, after,
 *   pad_value). */
void eb_pad_s8(const int8_t *in, const int32_t *in_shape, int32_t rank,
               const int32_t *before, const int32_t *after, int32_t pad_value,
               int8_t *out);

/* RESHAPE (any type, also SQUEEZE/EXPAND_DIMS): a copy of `bytes`, or nothing
 * when the planner aliased input and output (in == out), as TFLM does. */
void eb_reshape(const void *in, void *out, uint32_t bytes);

/* TRANSPOSE (int8), rank <= 6: out dim d is input dim perm[d].
 * Parameters: quant.transpose_params(input_shape, perm tensor data) ->
 *   TransposeParams(perm, output_shape). */
void eb_transpose_s8(const int8_t *in, const int32_t *in_shape, int32_t rank,
                     const int32_t *perm, int8_t *out);

/* CONCATENATION (int8) of num_inputs tensors along an axis: viewed as
 * [outer, axis_sizes[i] * inner] blocks, copied row by row. No requantization:
 * TFLM requires every input to carry the output's quantization (the quantizer
 * puts a QUANTIZE in front of an input that differs) and no fused activation.
 * Parameters: quant.concat_params(axis, input shapes, input (scale, zp)s,
 *   output (scale, zp), fusedActivationFunction) -> ConcatParams(outer, inner,
 *   axis_sizes). */
void eb_concat_s8(const int8_t *const *inputs, const int32_t *axis_sizes, int32_t num_inputs,
                  int32_t outer, int32_t inner, int8_t *out);

/* ------------------------------------------------------------------ QUANTIZE, DEQUANTIZE */

/* QUANTIZE float32 -> int8: out = clamp(roundf(x / scale) + zero_point), the
 * division in float32 and round half away from zero, as TFLM's AffineQuantize.
 * (|x / scale| >= 2^31 and NaN are undefined behaviour in TFLM's cast; here they
 * saturate, NaN to -128 as on x86 hosts.)
 * Parameters: quant.quantize_params(out_scale, out_zp) -> QuantizeParams. */
void eb_quantize_f32_s8(const float *in, int8_t *out, uint32_t n, float scale,
                        int32_t zero_point);

/* QUANTIZE int8 -> int8 (requantize): out = clamp(MBQM(x - input_zp,
 * multiplier, shift) + output_zp), TFLM's reference_ops::Requantize.
 * Parameters: quant.requantize_params(in_scale, in_zp, out_scale, out_zp) ->
 *   RequantizeParams(input_zp, multiplier, shift, output_zp). */
void eb_requantize_s8(const int8_t *in, int8_t *out, uint32_t n, int32_t input_zp,
                      int32_t multiplier, int32_t shift, int32_t output_zp);

/* DEQUANTIZE int8 -> float32: out = (float)(scale * (x - zero_point)). TFLM
 * multiplies in double; the product of a float and an integer of <= 9 bits is
 * exact in double, so one float multiply rounds to the same float.
 * Parameters: quant.dequantize_params(in_scale, in_zp) -> DequantizeParams. */
void eb_dequantize_s8_f32(const int8_t *in, float *out, uint32_t n, float scale,
                          int32_t zero_point);

#endif
