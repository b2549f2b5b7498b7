/* SOFTMAX, int8 -> int8 (output scale 1/256, zero point -128): TFLM's
 * reference_ops::Softmax<int8_t, int8_t>, integer only.
 *
 * Per row: the difference to the row max, if >= diff_min, is scaled by
 * beta * input_scale into Q5.26 (5 integer bits: differences down to -32);
 * exp() of it in Q0.31 is gemmlowp's exp_on_negative_values; the exps are
 * summed in Q12.19; 1/sum is gemmlowp's one_over_one_plus_x_for_x_in_0_1 on the
 * sum normalised into [1, 2) (TFLite's GetReciprocal); each output is
 * exp * (1/sum) shifted to 8 bits. The fixed-point steps below are gemmlowp's
 * for int32 raw values, in the same order (so the same roundings). Values in
 * comments are what the raw integers represent. */
#include "eb_kernels_misc.h"

#include "misc_fixedpoint.h"

#define Q0_ONE INT32_MAX          /* FixedPoint<int32, 0>::One() */
#define Q2_ONE (INT32_C(1) << 29) /* FixedPoint<int32, 2>::One() */

static inline int32_t mul(int32_t a, int32_t b) { return eb_sat_rounding_doubling_high_mul(a, b); }

/* gemmlowp exp_on_interval_between_negative_one_quarter_and_0_excl, Q0.31:
 * a Taylor expansion around -1/8. */
static int32_t exp_on_interval_between_negative_one_quarter_and_0_excl(int32_t a) {
    const int32_t constant_term = 1895147668;    /* exp(-1/8) */
    const int32_t constant_1_over_3 = 715827883; /* 1/3 */
    const int32_t x = a + (INT32_C(1) << 28);     /* a + 1/8 */
    const int32_t x2 = mul(x, x);
    const int32_t x3 = mul(x2, x);
    const int32_t x4 = mul(x2, x2);
    const int32_t x4_over_4 = eb_rounding_divide_by_pot(x4, 2);
    const int32_t x4_over_24_plus_x3_over_6_plus_x2_over_2 =
        eb_rounding_divide_by_pot(mul(x4_over_4 + x3, constant_1_over_3) + x2, 1);
    return constant_term + mul(constant_term, x + x4_over_24_plus_x3_over_6_plus_x2_over_2);
}

/* gemmlowp exp_on_negative_values for a Q5.26 input a <= 0; result Q0.31. */
static int32_t exp_on_negative_values_q5(int32_t a) {
    enum { kFractionalBits = 26 };
    const int32_t one_quarter = INT32_C(1) << (kFractionalBits - 2);
    const int32_t a_mod_quarter_minus_one_quarter = (a & (one_quarter - 1)) - one_quarter;
    /* Rescale<0> from Q5.26 to Q0.31: a saturating shift left by 5. */
    int32_t result = exp_on_interval_between_negative_one_quarter_and_0_excl(
        ebm_sat_shift_left(a_mod_quarter_minus_one_quarter, 5));
    const int32_t remainder = a_mod_quarter_minus_one_quarter - a;
    /* The barrel shifter: multiply by exp(-2^k) for each bit k of the remainder. */
    static const int32_t multipliers[7] = {
        1672461947, /* exp(-1/4) */
        1302514674, /* exp(-1/2) */
        790015084,  /* exp(-1) */
        290630308,  /* exp(-2) */
        39332535,   /* exp(-4) */
        720401,     /* exp(-8) */
        242,        /* exp(-16) */
    };
    for (int32_t k = 0; k < 7; ++k) {
        if (remainder & (INT32_C(1) << (kFractionalBits - 2 + k))) result = mul(result, multipliers[k]);
    }
    /* 5 integer bits: gemmlowp's clamp below -32 does not apply. */
    return a == 0 ? Q0_ONE : result;
}

/* gemmlowp RoundingHalfSum for int32. */
static inline int32_t rounding_half_sum(int32_t a, int32_t b) {
    const int64_t sum = (int64_t)a + (int64_t)b;
    const int64_t sign = sum >= 0 ? 1 : -1;
    return (int32_t)((sum + sign) / 2);
}

/* gemmlowp one_over_one_plus_x_for_x_in_0_1: Q0.31 in and out, Newton-Raphson
 * on the Q2.29 estimate x of 1/((1 + a)/2). */
static int32_t one_over_one_plus_x_for_x_in_0_1(int32_t a) {
    const int32_t half_denominator = rounding_half_sum(a, Q0_ONE);
    const int32_t constant_48_over_17 = 1515870810;      /* Q2.29 */
    const int32_t constant_neg_32_over_17 = -1010580540; /* Q2.29 */
    int32_t x = constant_48_over_17 + mul(half_denominator, constant_neg_32_over_17);
    for (int i = 0; i < 3; ++i) {
        const int32_t half_denominator_times_x = mul(half_denominator, x);
        const int32_t one_minus_half_denominator_times_x = Q2_ONE - half_denominator_times_x;
        /* Q2 * Q2 = Q4, Rescale<2>: a saturating shift left by 2. */
        x = x + ebm_sat_shift_left(mul(x, one_minus_half_denominator_times_x), 2);
    }
    /* ExactMulByPot<-1> (Q2 -> Q1, raw unchanged), then Rescale<0>: shift left by 1. */
    return ebm_sat_shift_left(x, 1);
}

static inline int32_t count_leading_zeros(uint32_t x) {
#if defined(__GNUC__)
    return x ? __builtin_clz(x) : 32;
#else
    int32_t n = 0;
    if (!x) return 32;
    while (!(x & 0x80000000u)) {
        x <<= 1;
        ++n;
    }
    return n;
#endif
}

/* TFLite GetReciprocal for a Q12.19 sum: 1/sum as Q0.31 of sum / 2^num_bits_over_unit. */
static int32_t get_reciprocal_q12(int32_t x, int32_t *num_bits_over_unit) {
    const int32_t headroom_plus_one = count_leading_zeros((uint32_t)x);
    *num_bits_over_unit = 12 - headroom_plus_one;
    const int32_t shifted_sum_minus_one =
        (int32_t)(((uint32_t)x << headroom_plus_one) - (UINT32_C(1) << 31));
    return one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one);
}

void eb_softmax_s8(const int8_t *in, int8_t *out, int32_t outer, int32_t depth,
                   int32_t input_multiplier, int32_t input_left_shift, int32_t diff_min) {
    for (int32_t i = 0; i < outer; ++i, in += depth, out += depth) {
        int32_t max_in_row = -128;
        for (int32_t c = 0; c < depth; ++c) max_in_row = in[c] > max_in_row ? in[c] : max_in_row;

        int32_t sum_of_exps = 0; /* Q12.19 */
        for (int32_t c = 0; c < depth; ++c) {
            const int32_t input_diff = (int32_t)in[c] - max_in_row;
            if (input_diff >= diff_min) {
                const int32_t scaled_diff =
                    ebm_mul_greater_than_one(input_diff, input_multiplier, input_left_shift);
                /* Rescale<12> from Q0.31: a rounding shift right by 12. */
                sum_of_exps += eb_rounding_divide_by_pot(exp_on_negative_values_q5(scaled_diff), 12);
            }
        }

        int32_t num_bits_over_unit;
        const int32_t shifted_scale = get_reciprocal_q12(sum_of_exps, &num_bits_over_unit);
        /* To 8 output bits. TFLM aborts (TFLITE_CHECK) when the sum of exps
         * reaches 512 and this exceeds 31; clamp instead of shifting by >= 32.
         * A depth <= 511 can never get there (each exp is <= 1). */
        int32_t exponent = num_bits_over_unit + 31 - 8;
        exponent = exponent > 31 ? 31 : exponent;

        for (int32_t c = 0; c < depth; ++c) {
            const int32_t input_diff = (int32_t)in[c] - max_in_row;
            if (input_diff >= diff_min) {
                const int32_t scaled_diff =
                    ebm_mul_greater_than_one(input_diff, input_multiplier, input_left_shift);
                const int32_t exp_in_0 = exp_on_negative_values_q5(scaled_diff);
                const int32_t unsat =
                    eb_rounding_divide_by_pot(mul(shifted_scale, exp_in_0), exponent);
                out[c] = (int8_t)ebm_clamp(unsat - 128, -128, 127);
            } else {
                out[c] = -128;
            }
        }
    }
}
