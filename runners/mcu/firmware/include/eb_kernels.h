/* The heavy int8 kernels: CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED.
 *
 * Semantics are TFLite Micro's reference integer kernels (reference_integer_ops
 * ConvPerChannel, DepthwiseConvPerChannel, FullyConnectedPerChannel): int8
 * NHWC activations, int8 symmetric weights (zero point 0), int32 bias,
 * per-channel requantization with MultiplyByQuantizedMultiplier, output offset,
 * activation clamp. Everything that can be computed before run time is computed
 * by runners/mcu/compiler.py and passed in:
 *
 * - multiplier[c], shift[c]: QuantizeMultiplier(in_scale * w_scale[c] / out_scale)
 *   for every output channel (a per-tensor weight scale is repeated);
 * - act_min/act_max: CalculateActivationRangeQuantized of the fused activation;
 * - bias (CONV_2D, FULLY_CONNECTED): the model's bias plus
 *   input_offset * sum(weights of the channel). Folding the input offset into
 *   the bias takes it out of the inner loop; it is exact because every input
 *   the reference skips (a padded position) is fed to the dot product as the
 *   input zero point, i.e. as (x + input_offset) == 0 (see conv.c).
 *   DEPTHWISE_CONV_2D takes the model's bias as it is and adds input_offset in
 *   its loop (its padded taps are skipped, as in the reference).
 *
 * All pointers to arrays of int32 must be 4-byte aligned; int8 data need not be.
 * The kernels never allocate; CONV_2D and DEPTHWISE_CONV_2D may need a scratch
 * buffer in the arena (eb_conv_s8_scratch_bytes, eb_depthwise_conv_s8_scratch_bytes,
 * which runners/mcu/compiler.py mirrors). With in_place set, the output is
 * planned over the input (same start address) and the kernel orders its writes
 * so that no input byte is overwritten while it may still be read; the
 * conditions the compiler checks are in conv.c and depthwise_conv.c.
 */
#ifndef EB_KERNELS_H
#define EB_KERNELS_H

#include <stdint.h>

typedef struct {
    int32_t batches;
    int32_t in_h, in_w, in_c;
    int32_t out_h, out_w, out_c;
    int32_t filter_h, filter_w, filter_in_c; /* filter_in_c < in_c: grouped conv */
    int32_t stride_h, stride_w;
    int32_t dilation_h, dilation_w;
    int32_t pad_h, pad_w;       /* top/left padding (TFLite's ComputePaddingHeightWidth) */
    int32_t input_offset;       /* -input zero point */
    int32_t output_offset;      /* output zero point */
    int32_t act_min, act_max;
    int32_t in_place;           /* 1: output planned over the input (see conv.c) */
    int32_t input_planar;       /* 1: input is [batches][in_c][in_h][in_w] (a fused TRANSPOSE) */
} eb_conv_params;

typedef struct {
    int32_t batches;
    int32_t in_h, in_w, in_c;
    int32_t out_h, out_w, out_c; /* out_c = in_c * depth_multiplier */
    int32_t filter_h, filter_w;
    int32_t depth_multiplier;
    int32_t stride_h, stride_w;
    int32_t dilation_h, dilation_w;
    int32_t pad_h, pad_w;
    int32_t input_offset;
    int32_t output_offset;
    int32_t act_min, act_max;
    int32_t in_place;            /* 1: output planned over the input (see depthwise_conv.c) */
} eb_dwconv_params;

typedef struct {
    int32_t batches;      /* input elements / accum_depth */
    int32_t accum_depth;  /* filter's last dimension */
    int32_t out_c;        /* filter's first dimension */
    int32_t output_offset;
    int32_t act_min, act_max;
} eb_fc_params;

/* filter [out_c][filter_h][filter_w][filter_in_c]; bias folded as described above. */
void eb_conv_s8(const eb_conv_params *p, const int8_t *input, const int8_t *filter,
                const int32_t *bias, const int32_t *multiplier, const int32_t *shift,
                int8_t *output, int8_t *scratch);

/* Bytes of scratch eb_conv_s8 needs (0: none; scratch may then be NULL). */
uint32_t eb_conv_s8_scratch_bytes(const eb_conv_params *p);

/* filter [1][filter_h][filter_w][out_c]; bias may be NULL. */
void eb_depthwise_conv_s8(const eb_dwconv_params *p, const int8_t *input, const int8_t *filter,
                          const int32_t *bias, const int32_t *multiplier, const int32_t *shift,
                          int8_t *output, int8_t *scratch);

/* Bytes of scratch eb_depthwise_conv_s8 needs (0 unless in place; scratch may then be NULL). */
uint32_t eb_depthwise_conv_s8_scratch_bytes(const eb_dwconv_params *p);

/* filter [out_c][accum_depth]; bias folded as described above (never NULL). */
void eb_fully_connected_s8(const eb_fc_params *p, const int8_t *input, const int8_t *filter,
                           const int32_t *bias, const int32_t *multiplier, const int32_t *shift,
                           int8_t *output);

#endif
