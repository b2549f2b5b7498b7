/* CONV_2D, int8 with per-channel requantization.
 *
 * Follows TFLite Micro's reference_integer_ops::ConvPerChannel: NHWC input,
 * filter [out_c][fh][fw][filter_in_c] (grouped when filter_in_c < in_c), stride,
 * dilation, top/left padding; per output: acc = bias + sum(w * (x + input_offset))
 * over the taps inside the image, then MultiplyByQuantizedMultiplier with the
 * channel's multiplier/shift, + output_offset, clamp to [act_min, act_max].
 *
 * How it is computed (same integers, different order): two output pixels at a
 * time, each as a column of fh*fw*filter_in_c int8 inputs. A 1x1 filter's
 * column is the input pixel itself; otherwise the column is gathered into the
 * scratch buffer (im2col), with every tap outside the image set to the input
 * zero point (an input_planar input, a graph input in torch's channels-first
 * layout whose TRANSPOSE the compiler fused, is gathered one channel plane at a
 * time; only non-pointwise filters take it). The compiler folds
 * input_offset * sum(w) into the bias, so the inner loop is a plain int8 dot
 * product; a padded tap then contributes
 * w * zp + w * input_offset = 0, exactly what skipping it contributes.
 *
 * In place (p->in_place): the compiler may plan the output over the input,
 * both starting at the same address, when the input dies at this conv (it is
 * not a graph input: one upload is inferred many times). Two cases:
 * - 1x1, stride 1, ungrouped (out_c > in_c: the input at the end of the
 *   output instead): the scratch is 2 * in_c bytes, and the two input pixels
 *   of each step are copied there before their outputs are written. Pixels are
 *   visited in order, so every write lands on input bytes already read.
 * - any other ungrouped filter with stride_h 1 and an output row no longer
 *   than an input row (out_w * out_c <= in_w * in_c): output rows go to a ring
 *   in the scratch (after the two im2col columns) and are copied to their
 *   place once no later output reads the input rows they cover. Output row k
 *   covers only input rows <= k, and output rows >= j read input rows
 *   >= j - pad_h, so row k is final before row j = k + pad_h + 1 starts; the
 *   ring holds pad_h + 1 rows, one more when a pixel pair spans two rows (odd
 *   out_w). The reads are the ones a separate output would see: no input byte
 *   is overwritten while it can still be read.
 */
#include <string.h>

#include "eb_dot.h"
#include "eb_fixedpoint.h"
#include "eb_kernels.h"

static int32_t conv_column_bytes(const eb_conv_params *p) {
    return p->filter_h * p->filter_w * p->filter_in_c;
}

static int conv_is_pointwise(const eb_conv_params *p) {
    /* A 1x1 filter never pads (SAME and VALID both give zero padding). */
    return p->filter_h == 1 && p->filter_w == 1 && p->pad_h == 0 && p->pad_w == 0;
}

/* Output rows the in-place ring holds (see above). */
static int32_t conv_ring_rows(const eb_conv_params *p) {
    return p->pad_h + 1 + (p->out_w & 1);
}

uint32_t eb_conv_s8_scratch_bytes(const eb_conv_params *p) {
    if (conv_is_pointwise(p)) {
        return p->in_place ? (uint32_t)(2 * p->in_c) : 0u;
    }
    const int32_t ring = p->in_place ? conv_ring_rows(p) * p->out_w * p->out_c : 0;
    return (uint32_t)(2 * conv_column_bytes(p) + ring);
}

/* Where output rows are written: in their place, or (in place, see above)
 * through a ring of rows that are copied to their place when it is safe. */
typedef struct {
    int8_t *output;     /* the batch's output */
    int8_t *ring;       /* NULL: write each row in its place directly */
    int32_t ring_rows;
    int32_t row_bytes;  /* out_w * out_c */
    int32_t lag;        /* pad_h: output row k is final before row k + lag + 1 */
    int32_t committed;  /* rows [0, committed) are in their place */
} conv_out_rows;

static int8_t *conv_out_row(const conv_out_rows *o, int32_t y) {
    if (o->ring == NULL) {
        return o->output + y * o->row_bytes;
    }
    return o->ring + (y % o->ring_rows) * o->row_bytes;
}

/* Copy the ring's rows before `end` to their place (no-op without a ring). */
static void conv_commit_rows(conv_out_rows *o, int32_t end) {
    if (o->ring == NULL) {
        return;
    }
    for (; o->committed < end; ++o->committed) {
        memcpy(o->output + o->committed * o->row_bytes, conv_out_row(o, o->committed),
               (size_t)o->row_bytes);
    }
}

/* The column of output pixel (out_y, out_x) of group `group`: a pointer into the
 * input for 1x1 filters, else gathered into `column`. */
static const int8_t *conv_column(const eb_conv_params *p, const int8_t *batch_input,
                                 int32_t out_y, int32_t out_x, int32_t group, int8_t *column) {
    const int32_t in_y0 = out_y * p->stride_h - p->pad_h;
    const int32_t in_x0 = out_x * p->stride_w - p->pad_w;
    const int32_t channel0 = group * p->filter_in_c;
    if (conv_is_pointwise(p)) {
        const int8_t *pixel = batch_input + (in_y0 * p->in_w + in_x0) * p->in_c + channel0;
        if (!p->in_place) {
            return pixel;
        }
        memcpy(column, pixel, (size_t)p->filter_in_c);  /* in place: save before writing */
        return column;
    }
    const int8_t pad_value = (int8_t)(-p->input_offset);  /* the input zero point */
    int8_t *dst = column;
    for (int32_t fy = 0; fy < p->filter_h; ++fy) {
        const int32_t in_y = in_y0 + fy * p->dilation_h;
        for (int32_t fx = 0; fx < p->filter_w; ++fx) {
            const int32_t in_x = in_x0 + fx * p->dilation_w;
            if (in_y >= 0 && in_y < p->in_h && in_x >= 0 && in_x < p->in_w) {
                if (p->input_planar) {
                    const int32_t plane = p->in_h * p->in_w;
                    const int8_t *src = batch_input + channel0 * plane + in_y * p->in_w + in_x;
                    for (int32_t c = 0; c < p->filter_in_c; ++c) {
                        dst[c] = src[c * plane];
                    }
                } else {
                    memcpy(dst, batch_input + (in_y * p->in_w + in_x) * p->in_c + channel0,
                           (size_t)p->filter_in_c);
                }
            } else {
                memset(dst, pad_value, (size_t)p->filter_in_c);
            }
            dst += p->filter_in_c;
        }
    }
    return column;
}

/* The pixels of one output pair or single, as the loop in eb_conv_s8 sees them. */
static int8_t *conv_out_pixel(const eb_conv_params *p, conv_out_rows *o, int8_t *batch_output,
                              int32_t pix) {
    if (o->ring == NULL) {
        return batch_output + pix * p->out_c;
    }
    return conv_out_row(o, pix / p->out_w) + (pix % p->out_w) * p->out_c;
}

void eb_conv_s8(const eb_conv_params *p, const int8_t *input, const int8_t *filter,
                const int32_t *bias, const int32_t *multiplier, const int32_t *shift,
                int8_t *output, int8_t *scratch) {
    const int32_t depth = conv_column_bytes(p);
    const int32_t groups = p->in_c / p->filter_in_c;
    const int32_t out_c_per_group = p->out_c / groups;
    const int32_t pixels = p->out_h * p->out_w;
    const int pointwise = conv_is_pointwise(p);
    /* A pointwise conv's columns are 1 pixel: in place they are in_c bytes each. */
    int8_t *column0 = scratch;
    int8_t *column1 = scratch == NULL ? NULL : scratch + depth;
    int8_t *ring = p->in_place && !pointwise ? scratch + 2 * depth : NULL;

    for (int32_t b = 0; b < p->batches; ++b) {
        const int8_t *batch_input = input + b * p->in_h * p->in_w * p->in_c;
        int8_t *batch_output = output + b * pixels * p->out_c;
        conv_out_rows rows = {batch_output, ring, conv_ring_rows(p), p->out_w * p->out_c,
                              p->pad_h, 0};
        for (int32_t g = 0; g < groups; ++g) {
            const int32_t oc_begin = g * out_c_per_group;
            const int32_t oc_end = oc_begin + out_c_per_group;
            int32_t pix = 0;
            for (; pix + 2 <= pixels; pix += 2) {
                conv_commit_rows(&rows, pix / p->out_w - rows.lag);
                const int8_t *col_a =
                    conv_column(p, batch_input, pix / p->out_w, pix % p->out_w, g, column0);
                const int8_t *col_b = conv_column(p, batch_input, (pix + 1) / p->out_w,
                                                  (pix + 1) % p->out_w, g, column1);
                int8_t *out_a = conv_out_pixel(p, &rows, batch_output, pix);
                int8_t *out_b = conv_out_pixel(p, &rows, batch_output, pix + 1);
                const int8_t *w = filter + oc_begin * depth;
                for (int32_t oc = oc_begin; oc < oc_end; ++oc, w += depth) {
                    int32_t acc_a = bias[oc];
                    int32_t acc_b = bias[oc];
                    eb_dot2_s8(w, col_a, col_b, depth, &acc_a, &acc_b);
                    out_a[oc] = eb_requant_to_s8(acc_a, multiplier[oc], shift[oc],
                                                 p->output_offset, p->act_min, p->act_max);
                    out_b[oc] = eb_requant_to_s8(acc_b, multiplier[oc], shift[oc],
                                                 p->output_offset, p->act_min, p->act_max);
                }
            }
            if (pix < pixels) {
                conv_commit_rows(&rows, pix / p->out_w - rows.lag);
                const int8_t *col =
                    conv_column(p, batch_input, pix / p->out_w, pix % p->out_w, g, column0);
                int8_t *out = conv_out_pixel(p, &rows, batch_output, pix);
                const int8_t *w = filter + oc_begin * depth;
                for (int32_t oc = oc_begin; oc < oc_end; ++oc, w += depth) {
                    const int32_t acc = eb_dot_s8(w, col, depth, bias[oc]);
                    out[oc] = eb_requant_to_s8(acc, multiplier[oc], shift[oc], p->output_offset,
                                               p->act_min, p->act_max);
                }
            }
        }
        conv_commit_rows(&rows, p->out_h);
    }
}
