/* DEPTHWISE_CONV_2D, int8 with per-channel requantization.
 *
 * Follows TFLite Micro's reference_integer_ops::DepthwiseConvPerChannel: NHWC
 * input, filter [1][fh][fw][out_c] with out_c = in_c * depth_multiplier and
 * output channel oc = ic * depth_multiplier + m; stride, dilation, top/left
 * padding; acc = bias + sum(w * (x + input_offset)) over the taps inside the
 * image (outside ones are skipped), MultiplyByQuantizedMultiplier per channel,
 * + output_offset, clamp.
 *
 * The taps inside the image are found once per output pixel (a range of fy and
 * of fx), not tested per tap. With depth multiplier 1 and the DSP extension,
 * four channels are done at once: one 32-bit load of input and of filter, the
 * input offset added by SXTAB16, then SMLABB/SMLATT into four accumulators.
 *
 * In place (p->in_place): the compiler may plan the output over the input, both
 * starting at the same address, when the input dies here, stride_h is 1 and an
 * output row is no longer than an input row. Output rows then go to a ring of
 * pad_h + 1 rows in the scratch and are copied to their place once no later
 * output reads the input rows they cover (output row k covers input rows <= k;
 * output rows >= j read input rows >= j - pad_h). The reads, and so the inner
 * loops, are exactly those of a separate output.
 */
#include <string.h>

#include "eb_fixedpoint.h"
#include "eb_kernels.h"

/* [begin, end) of the filter taps k (0 <= k < taps) with 0 <= origin + k*dilation < size. */
static void tap_range(int32_t origin, int32_t dilation, int32_t taps, int32_t size,
                      int32_t *begin, int32_t *end) {
    int32_t first = 0;
    if (origin < 0) {
        first = (-origin + dilation - 1) / dilation;
    }
    int32_t last = taps;  /* exclusive */
    if (origin + (taps - 1) * dilation >= size) {
        last = size - origin <= 0 ? 0 : (size - origin + dilation - 1) / dilation;
    }
    *begin = first;
    *end = last < first ? first : last;
}

uint32_t eb_depthwise_conv_s8_scratch_bytes(const eb_dwconv_params *p) {
    return p->in_place ? (uint32_t)((p->pad_h + 1) * p->out_w * p->out_c) : 0u;
}

void eb_depthwise_conv_s8(const eb_dwconv_params *p, const int8_t *input, const int8_t *filter,
                          const int32_t *bias, const int32_t *multiplier, const int32_t *shift,
                          int8_t *output, int8_t *scratch) {
    const int32_t in_c = p->in_c;
    const int32_t out_c = p->out_c;
    const int32_t mult = p->depth_multiplier;
    const int32_t offset = p->input_offset;
#if EB_SIMD32
    const int32_t row_bytes = p->in_w * in_c;
    const int32_t in_tap_step = p->dilation_w * in_c;      /* next fx */
    const int32_t in_row_step = p->dilation_h * row_bytes; /* next fy */
    const int32_t w_row_step = p->filter_w * out_c;
#endif
    const int32_t out_row_bytes = p->out_w * out_c;
    const int32_t ring_rows = p->pad_h + 1;
    int8_t *ring = p->in_place ? scratch : NULL;
    for (int32_t b = 0; b < p->batches; ++b) {
        const int8_t *batch_input = input + b * p->in_h * p->in_w * in_c;
        int8_t *batch_output = output + b * p->out_h * out_row_bytes;
        int32_t committed = 0; /* in place: output rows [0, committed) are in their place */
        for (int32_t oy = 0; oy < p->out_h; ++oy) {
            int8_t *out_row = batch_output + oy * out_row_bytes;
            if (ring != NULL) {
                for (; committed < oy - p->pad_h; ++committed) {
                    memcpy(batch_output + committed * out_row_bytes,
                           ring + (committed % ring_rows) * out_row_bytes, (size_t)out_row_bytes);
                }
                out_row = ring + (oy % ring_rows) * out_row_bytes;
            }
            const int32_t in_y0 = oy * p->stride_h - p->pad_h;
            int32_t fy_begin, fy_end;
            tap_range(in_y0, p->dilation_h, p->filter_h, p->in_h, &fy_begin, &fy_end);
            for (int32_t ox = 0; ox < p->out_w; ++ox) {
                const int32_t in_x0 = ox * p->stride_w - p->pad_w;
                int32_t fx_begin, fx_end;
                tap_range(in_x0, p->dilation_w, p->filter_w, p->in_w, &fx_begin, &fx_end);
                int8_t *out = out_row + ox * out_c;
                int32_t oc = 0;
#if EB_SIMD32
                if (mult == 1) {
                    const uint32_t offset2 =
                        ((uint32_t)(uint16_t)offset << 16) | (uint32_t)(uint16_t)offset;
                    for (; oc + 4 <= out_c; oc += 4) {
                        int32_t acc0 = 0, acc1 = 0, acc2 = 0, acc3 = 0;
                        if (bias != NULL) {
                            acc0 = bias[oc];
                            acc1 = bias[oc + 1];
                            acc2 = bias[oc + 2];
                            acc3 = bias[oc + 3];
                        }
                        const int8_t *in_tap0 =
                            batch_input + (in_y0 + fy_begin * p->dilation_h) * row_bytes +
                            (in_x0 + fx_begin * p->dilation_w) * in_c + oc;
                        const int8_t *w_tap0 =
                            filter + (fy_begin * p->filter_w + fx_begin) * out_c + oc;
                        for (int32_t fy = fy_begin; fy < fy_end; ++fy) {
                            const int8_t *in_tap = in_tap0;
                            const int8_t *w_tap = w_tap0;
                            for (int32_t fx = fx_begin; fx < fx_end; ++fx) {
                                const uint32_t x = eb_read_u32(in_tap);
                                const uint32_t w = eb_read_u32(w_tap);
                                in_tap += in_tap_step;
                                w_tap += out_c;
                                const uint32_t x_even = eb_sxtab16(offset2, x);
                                const uint32_t x_odd = eb_sxtab16_ror8(offset2, x);
                                const uint32_t w_even = eb_sxtb16(w);
                                const uint32_t w_odd = eb_sxtb16_ror8(w);
                                acc0 = eb_smlabb(x_even, w_even, acc0);
                                acc2 = eb_smlatt(x_even, w_even, acc2);
                                acc1 = eb_smlabb(x_odd, w_odd, acc1);
                                acc3 = eb_smlatt(x_odd, w_odd, acc3);
                            }
                            in_tap0 += in_row_step;
                            w_tap0 += w_row_step;
                        }
                        out[oc] = eb_requant_to_s8(acc0, multiplier[oc], shift[oc],
                                                   p->output_offset, p->act_min, p->act_max);
                        out[oc + 1] = eb_requant_to_s8(acc1, multiplier[oc + 1], shift[oc + 1],
                                                       p->output_offset, p->act_min, p->act_max);
                        out[oc + 2] = eb_requant_to_s8(acc2, multiplier[oc + 2], shift[oc + 2],
                                                       p->output_offset, p->act_min, p->act_max);
                        out[oc + 3] = eb_requant_to_s8(acc3, multiplier[oc + 3], shift[oc + 3],
                                                       p->output_offset, p->act_min, p->act_max);
                    }
                }
#endif
                for (; oc < out_c; ++oc) {
                    const int32_t ic = oc / mult;
                    int32_t acc = bias != NULL ? bias[oc] : 0;
                    for (int32_t fy = fy_begin; fy < fy_end; ++fy) {
                        const int32_t in_y = in_y0 + fy * p->dilation_h;
                        const int8_t *in_row = batch_input + in_y * p->in_w * in_c + ic;
                        const int8_t *w_row = filter + fy * p->filter_w * out_c + oc;
                        for (int32_t fx = fx_begin; fx < fx_end; ++fx) {
                            const int32_t in_x = in_x0 + fx * p->dilation_w;
                            acc += (int32_t)w_row[fx * out_c] *
                                   ((int32_t)in_row[in_x * in_c] + offset);
                        }
                    }
                    out[oc] = eb_requant_to_s8(acc, multiplier[oc], shift[oc], p->output_offset,
                                               p->act_min, p->act_max);
                }
            }
        }
        for (; ring != NULL && committed < p->out_h; ++committed) {
            memcpy(batch_output + committed * out_row_bytes,
                   ring + (committed % ring_rows) * out_row_bytes, (size_t)out_row_bytes);
        }
    }
}
