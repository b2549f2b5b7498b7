/* MAX_POOL_2D and AVERAGE_POOL_2D, int8 NHWC: TFLM's reference_integer_ops
 * MaxPool / AveragePool. The window is clipped to the input, so padded
 * positions are never read and the average divides by the in-bounds count. */
#include "eb_kernels_misc.h"

#include "misc_fixedpoint.h"

/* The clipped window [start, end) of filter taps for one output coordinate. */
static inline void window(int32_t out_pos, int32_t stride, int32_t pad, int32_t filter,
                          int32_t in_size, int32_t *origin, int32_t *start, int32_t *end) {
    *origin = out_pos * stride - pad;
    *start = *origin < 0 ? -*origin : 0;
    *end = in_size - *origin < filter ? in_size - *origin : filter;
}

void eb_max_pool_s8(const int8_t *in, int8_t *out, int32_t batches,
                    int32_t in_h, int32_t in_w, int32_t channels,
                    int32_t out_h, int32_t out_w,
                    int32_t filter_h, int32_t filter_w, int32_t stride_h, int32_t stride_w,
                    int32_t pad_h, int32_t pad_w, int32_t act_min, int32_t act_max) {
    for (int32_t b = 0; b < batches; ++b) {
        const int8_t *img = in + b * in_h * in_w * channels;
        for (int32_t oy = 0; oy < out_h; ++oy) {
            int32_t y0, fy0, fy1;
            window(oy, stride_h, pad_h, filter_h, in_h, &y0, &fy0, &fy1);
            for (int32_t ox = 0; ox < out_w; ++ox) {
                int32_t x0, fx0, fx1;
                window(ox, stride_w, pad_w, filter_w, in_w, &x0, &fx0, &fx1);
                for (int32_t c = 0; c < channels; ++c) {
                    int32_t m = -128; /* an empty window gives -128, as TFLM's */
                    for (int32_t fy = fy0; fy < fy1; ++fy) {
                        const int8_t *row = img + ((y0 + fy) * in_w + x0 + fx0) * channels + c;
                        for (int32_t fx = 0; fx < fx1 - fx0; ++fx) {
                            const int32_t v = row[fx * channels];
                            m = v > m ? v : m;
                        }
                    }
                    *out++ = (int8_t)ebm_clamp(m, act_min, act_max);
                }
            }
        }
    }
}

void eb_avg_pool_s8(const int8_t *in, int8_t *out, int32_t batches,
                    int32_t in_h, int32_t in_w, int32_t channels,
                    int32_t out_h, int32_t out_w,
                    int32_t filter_h, int32_t filter_w, int32_t stride_h, int32_t stride_w,
                    int32_t pad_h, int32_t pad_w, int32_t act_min, int32_t act_max) {
    for (int32_t b = 0; b < batches; ++b) {
        const int8_t *img = in + b * in_h * in_w * channels;
        for (int32_t oy = 0; oy < out_h; ++oy) {
            int32_t y0, fy0, fy1;
            window(oy, stride_h, pad_h, filter_h, in_h, &y0, &fy0, &fy1);
            for (int32_t ox = 0; ox < out_w; ++ox) {
                int32_t x0, fx0, fx1;
                window(ox, stride_w, pad_w, filter_w, in_w, &x0, &fx0, &fx1);
                const int32_t count = (fy1 - fy0) * (fx1 - fx0);
                for (int32_t c = 0; c < channels; ++c) {
                    int32_t acc = 0;
                    for (int32_t fy = fy0; fy < fy1; ++fy) {
                        const int8_t *row = img + ((y0 + fy) * in_w + x0 + fx0) * channels + c;
                        for (int32_t fx = 0; fx < fx1 - fx0; ++fx) acc += row[fx * channels];
                    }
                    /* TFLM rounds half away from zero with C's truncating
                     * division. quant.pool_params never yields an empty window
                     * (TFLM fails the op then); guard the division anyway. */
                    if (count > 0) {
                        acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
                    }
                    *out++ = (int8_t)ebm_clamp(acc, act_min, act_max);
                }
            }
        }
    }
}
