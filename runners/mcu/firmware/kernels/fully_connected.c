/* FULLY_CONNECTED, int8 with per-channel (or per-tensor, repeated) requantization.
 *
 * Follows TFLite Micro's reference_integer_ops::FullyConnected(PerChannel):
 * input viewed as [batches][accum_depth], filter [out_c][accum_depth] with zero
 * point 0; acc = bias + sum(w * (x + input_offset)), MultiplyByQuantizedMultiplier,
 * + output_offset, clamp. keep_num_dims only changes the output's shape, not
 * its bytes, so it is the compiler's business, not the kernel's.
 *
 * The compiler folds input_offset * sum(w) into the bias (exact: no input is
 * ever skipped), leaving an int8 dot product; two output channels share each
 * load of the input.
 */
#include "eb_dot.h"
#include "eb_fixedpoint.h"
#include "eb_kernels.h"

void eb_fully_connected_s8(const eb_fc_params *p, const int8_t *input, const int8_t *filter,
                           const int32_t *bias, const int32_t *multiplier, const int32_t *shift,
                           int8_t *output) {
    const int32_t depth = p->accum_depth;
    for (int32_t b = 0; b < p->batches; ++b) {
        const int8_t *x = input + b * depth;
        int8_t *out = output + b * p->out_c;
        int32_t oc = 0;
        for (; oc + 2 <= p->out_c; oc += 2) {
            const int8_t *w0 = filter + oc * depth;
            int32_t acc0 = bias[oc];
            int32_t acc1 = bias[oc + 1];
            eb_dot2_s8(x, w0, w0 + depth, depth, &acc0, &acc1);
            out[oc] = eb_requant_to_s8(acc0, multiplier[oc], shift[oc], p->output_offset,
                                       p->act_min, p->act_max);
            out[oc + 1] = eb_requant_to_s8(acc1, multiplier[oc + 1], shift[oc + 1],
                                           p->output_offset, p->act_min, p->act_max);
        }
        if (oc < p->out_c) {
            const int32_t acc = eb_dot_s8(x, filter + oc * depth, depth, bias[oc]);
            out[oc] = eb_requant_to_s8(acc, multiplier[oc], shift[oc], p->output_offset,
                                       p->act_min, p->act_max);
        }
    }
}
