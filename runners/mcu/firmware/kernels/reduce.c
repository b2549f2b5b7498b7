/* MEAN, int8: TFLM's reference_ops::QuantizedMeanOrSum (compute_sum = false).
 * TFLM accumulates every input into an int32 scratch per output; here each
 * output's reduced sub-box is summed directly, so no scratch is needed. Integer
 * sums do not depend on the order (both wrap the same way), and the 1/N
 * folding into the multiplier is done at compile time (quant.mean_params). */
#include "eb_kernels_misc.h"

#include "eb_model.h"
#include "misc_fixedpoint.h"

void eb_mean_s8(const int8_t *in, const int32_t *in_shape, int32_t rank,
                const int32_t *axes, int32_t num_axes, int8_t *out,
                int32_t num_elements, int32_t input_zp,
                int32_t multiplier, int32_t shift, int32_t output_zp) {
    int32_t kept_dims[EB_MAX_RANK], kept_strides[EB_MAX_RANK];
    int32_t red_dims[EB_MAX_RANK], red_strides[EB_MAX_RANK];
    int32_t n_kept = 0, n_red = 0, stride = 1;
    int32_t stride_of[EB_MAX_RANK];
    for (int32_t d = rank - 1; d >= 0; --d) {
        stride_of[d] = stride;
        stride *= in_shape[d];
    }
    for (int32_t d = 0; d < rank; ++d) {
        int reduced = 0;
        for (int32_t a = 0; a < num_axes; ++a) reduced |= axes[a] == d;
        if (reduced) {
            red_dims[n_red] = in_shape[d];
            red_strides[n_red++] = stride_of[d];
        } else {
            kept_dims[n_kept] = in_shape[d];
            kept_strides[n_kept++] = stride_of[d];
        }
    }
    int32_t kept_idx[EB_MAX_RANK] = {0};
    int32_t base = 0;
    for (;;) {
        /* Sum the reduced sub-box at `base` (odometer over the reduced dims). */
        int32_t red_idx[EB_MAX_RANK] = {0};
        int32_t off = base;
        uint32_t sum = 0; /* TFLM's int32 sum wraps; uint32 does so without UB */
        for (;;) {
            sum += (uint32_t)(int32_t)in[off];
            int32_t d = n_red - 1;
            for (; d >= 0; --d) {
                off += red_strides[d];
                if (++red_idx[d] < red_dims[d]) break;
                off -= red_strides[d] * red_dims[d];
                red_idx[d] = 0;
            }
            if (d < 0) break;
        }
        const int32_t shifted = (int32_t)(sum - (uint32_t)(input_zp * num_elements));
        const int32_t v =
            eb_multiply_by_quantized_multiplier(shifted, multiplier, shift) + output_zp;
        *out++ = (int8_t)ebm_clamp(v, -128, 127);
        /* Next output: odometer over the kept dims, in their order. */
        int32_t d = n_kept - 1;
        for (; d >= 0; --d) {
            base += kept_strides[d];
            if (++kept_idx[d] < kept_dims[d]) break;
            base -= kept_strides[d] * kept_dims[d];
            kept_idx[d] = 0;
        }
        if (d < 0) break;
    }
}
