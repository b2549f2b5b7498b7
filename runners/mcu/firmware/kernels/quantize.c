/* QUANTIZE (float32 -> int8, int8 -> int8) and DEQUANTIZE (int8 -> float32):
 * TFLM's reference_ops::AffineQuantize, Requantize and Dequantize. The only
 * float code among these kernels, as in TFLM; no libm. */
#include "eb_kernels_misc.h"

#include "misc_fixedpoint.h"

/* roundf() without libm: half away from zero. For |v| < 2^23 the truncation t
 * and v - t are exact in float, so the comparison with 0.5 decides exactly as
 * roundf does; larger floats are integers already (and saturate below). */
static inline int32_t round_half_away_f(float v) {
    const int32_t t = (int32_t)v; /* truncates toward zero */
    const float frac = v - (float)t;
    if (frac >= 0.5f) return t + 1;
    if (frac <= -0.5f) return t - 1;
    return t;
}

void eb_quantize_f32_s8(const float *in, int8_t *out, uint32_t n, float scale,
                        int32_t zero_point) {
    for (uint32_t i = 0; i < n; ++i) {
        /* TFLM: TfLiteRound(val / static_cast<float>(scale)), a float division. */
        const float v = in[i] / scale;
        int32_t q;
        if (v >= 4194304.0f) {        /* 2^22: saturates whatever the zero point */
            q = 127;
        } else if (v <= -4194304.0f) {
            q = -128;
        } else if (v != v) {          /* NaN: x86's cvt gives INT32_MIN, i.e. -128 */
            q = -128;
        } else {
            q = ebm_clamp(round_half_away_f(v) + zero_point, -128, 127);
        }
        out[i] = (int8_t)q;
    }
}

void eb_requantize_s8(const int8_t *in, int8_t *out, uint32_t n, int32_t input_zp,
                      int32_t multiplier, int32_t shift, int32_t output_zp) {
    for (uint32_t i = 0; i < n; ++i) {
        const int32_t v =
            eb_multiply_by_quantized_multiplier((int32_t)in[i] - input_zp, multiplier, shift) +
            output_zp;
        out[i] = (int8_t)ebm_clamp(v, -128, 127);
    }
}

void eb_dequantize_s8_f32(const int8_t *in, float *out, uint32_t n, float scale,
                          int32_t zero_point) {
    /* TFLM computes static_cast<float>(double(scale) * (x - zero_point)). The
     * double product of a float and a 9-bit integer is exact, so rounding it to
     * float equals the (correctly rounded) float product. */
    for (uint32_t i = 0; i < n; ++i) out[i] = scale * (float)((int32_t)in[i] - zero_point);
}
