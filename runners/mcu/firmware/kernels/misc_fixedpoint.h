/* Fixed-point helpers used only by the kernels of eb_kernels_misc.h, on top of
 * the shared ones in eb_fixedpoint.h (SaturatingRoundingDoublingHighMul,
 * RoundingDivideByPOT, MultiplyByQuantizedMultiplier). Named ebm_* so that they
 * cannot clash with the shared header. Semantics are TFLite's common.h and
 * gemmlowp's fixedpoint.h for int32 raw values, as TFLM uses them.
 */
#ifndef EB_MISC_FIXEDPOINT_H
#define EB_MISC_FIXEDPOINT_H

#include <stdint.h>

#include "eb_fixedpoint.h"

/* TFLite MultiplyByQuantizedMultiplierSmallerThanOneExp (double rounding):
 * shift <= 0. */
static inline int32_t ebm_mul_smaller_than_one_exp(int32_t x, int32_t multiplier,
                                                   int32_t shift) {
    return eb_rounding_divide_by_pot(eb_sat_rounding_doubling_high_mul(x, multiplier), -shift);
}

/* TFLite MultiplyByQuantizedMultiplierGreaterThanOne: shift >= 0. The caller
 * guarantees x << shift fits (softmax: x >= diff_min). */
static inline int32_t ebm_mul_greater_than_one(int32_t x, int32_t multiplier, int32_t shift) {
    return eb_sat_rounding_doubling_high_mul((int32_t)((uint32_t)x << shift), multiplier);
}

/* gemmlowp SaturatingRoundingMultiplyByPOT<exponent> for exponent > 0: a left
 * shift that saturates to INT32_MIN/INT32_MAX. */
static inline int32_t ebm_sat_shift_left(int32_t x, int32_t exponent) {
    const int32_t threshold = (int32_t)((1u << (31 - exponent)) - 1u);
    if (x > threshold) return INT32_MAX;
    if (x < -threshold) return INT32_MIN;
    return (int32_t)((uint32_t)x << exponent);
}

static inline int32_t ebm_clamp(int32_t v, int32_t lo, int32_t hi) {
    return v < lo ? lo : (v > hi ? hi : v);
}

#endif
