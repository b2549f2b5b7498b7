/* Integer requantization and 32-bit SIMD helpers shared by the int8 kernels.
 *
 * The requantization helpers have exactly the semantics of TFLite's reference
 * (tensorflow/lite/kernels/internal/common.h, gemmlowp fixedpoint, built without
 * TFLITE_SINGLE_ROUNDING, as TFLite Micro's reference kernels are):
 *   SaturatingRoundingDoublingHighMul, RoundingDivideByPOT and
 *   MultiplyByQuantizedMultiplier(x, multiplier, shift), shift > 0 = left shift.
 * They are what makes the compiled model bit-exact with the interpreter.
 *
 * The SIMD helpers are the Armv7E-M DSP instructions (SXTB16, SXTAB16, SMLAD,
 * SMLABB, SMLATT). With __ARM_FEATURE_DSP they compile to the instructions;
 * with EB_EMULATE_DSP (host tests) they are C with the same results, so the
 * host can check the very loop structure the Cortex-M4/M7 runs. Without either,
 * EB_SIMD32 is 0 and the kernels use plain scalar loops (Cortex-M0/M3).
 */
#ifndef EB_FIXEDPOINT_H
#define EB_FIXEDPOINT_H

#include <stdint.h>
#include <string.h>

static inline int32_t eb_sat_rounding_doubling_high_mul(int32_t a, int32_t b) {
    if (a == b && a == INT32_MIN) {
        return INT32_MAX;  /* the only product that overflows */
    }
    /* The reference adds a sign-dependent nudge (2^30, or 1 - 2^30 when a*b < 0)
     * and divides by 2^31 truncating toward zero. For a negative sum that
     * truncation is a ceiling, and ceil((x + 1 - 2^30) / 2^31) equals
     * floor((x + 2^30) / 2^31), so one nudge and an arithmetic shift give the
     * same result for every a, b: one SMLAL-like sequence instead of a branch
     * and a 64-bit signed division. (Checked exhaustively on ties and on random
     * pairs in tests/test_mcu_compiler.py through the bit-exact models.) */
    return (int32_t)(((int64_t)a * (int64_t)b + ((int64_t)1 << 30)) >> 31);
}

static inline int32_t eb_rounding_divide_by_pot(int32_t x, int32_t exponent) {
    const int32_t mask = (int32_t)((1u << exponent) - 1u);  /* exponent in [0, 31] */
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

static inline int32_t eb_multiply_by_quantized_multiplier(int32_t x, int32_t multiplier,
                                                          int32_t shift) {
    const int32_t left_shift = shift > 0 ? shift : 0;
    const int32_t right_shift = shift > 0 ? 0 : -shift;
    /* Shift as unsigned: the reference's x * (1 << left_shift) wraps the same way
     * on every target we build for, without signed-overflow UB. */
    const int32_t shifted = (int32_t)((uint32_t)x << left_shift);
    return eb_rounding_divide_by_pot(eb_sat_rounding_doubling_high_mul(shifted, multiplier),
                                     right_shift);
}

/* acc (int32, bias already added) -> int8 with output offset and activation clamp. */
static inline int8_t eb_requant_to_s8(int32_t acc, int32_t multiplier, int32_t shift,
                                      int32_t output_offset, int32_t act_min,
                                      int32_t act_max) {
    int32_t v = eb_multiply_by_quantized_multiplier(acc, multiplier, shift) + output_offset;
    v = v < act_min ? act_min : v;
    v = v > act_max ? act_max : v;
    return (int8_t)v;
}

/* ------------------------------------------------------------------ 32-bit SIMD */
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && !defined(EB_NO_DSP)
#define EB_SIMD32 1
#include <arm_acle.h>

/* Bytes 0 and 2, sign-extended into the two halfwords. */
static inline uint32_t eb_sxtb16(uint32_t x) { return (uint32_t)__sxtb16((int8x4_t)x); }

/* Bytes 1 and 3, sign-extended (one instruction: SXTB16 with ROR #8). */
static inline uint32_t eb_sxtb16_ror8(uint32_t x) {
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}

/* Halfwords of a plus bytes 0 and 2 of x, sign-extended. */
static inline uint32_t eb_sxtab16(uint32_t a, uint32_t x) {
    return (uint32_t)__sxtab16((int16x2_t)a, (int8x4_t)x);
}

static inline uint32_t eb_sxtab16_ror8(uint32_t a, uint32_t x) {
    uint32_t r;
    __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(a), "r"(x));
    return r;
}

/* acc + lo(a)*lo(b) + hi(a)*hi(b), halfwords signed. */
static inline int32_t eb_smlad(uint32_t a, uint32_t b, int32_t acc) {
    return __smlad((int16x2_t)a, (int16x2_t)b, acc);
}

static inline int32_t eb_smlabb(uint32_t a, uint32_t b, int32_t acc) {
    return __smlabb((int32_t)a, (int32_t)b, acc);
}

static inline int32_t eb_smlatt(uint32_t a, uint32_t b, int32_t acc) {
    return __smlatt((int32_t)a, (int32_t)b, acc);
}

#elif defined(EB_EMULATE_DSP)
#define EB_SIMD32 1

static inline uint32_t eb_pack16(int32_t lo, int32_t hi) {
    return ((uint32_t)hi << 16) | ((uint32_t)lo & 0xFFFFu);
}
static inline int32_t eb_lo16(uint32_t x) { return (int16_t)(x & 0xFFFFu); }
static inline int32_t eb_hi16(uint32_t x) { return (int16_t)(x >> 16); }
static inline int32_t eb_byte(uint32_t x, int i) { return (int8_t)((x >> (8 * i)) & 0xFFu); }

static inline uint32_t eb_sxtb16(uint32_t x) { return eb_pack16(eb_byte(x, 0), eb_byte(x, 2)); }
static inline uint32_t eb_sxtb16_ror8(uint32_t x) {
    return eb_pack16(eb_byte(x, 1), eb_byte(x, 3));
}
static inline uint32_t eb_sxtab16(uint32_t a, uint32_t x) {
    return eb_pack16(eb_lo16(a) + eb_byte(x, 0), eb_hi16(a) + eb_byte(x, 2));
}
static inline uint32_t eb_sxtab16_ror8(uint32_t a, uint32_t x) {
    return eb_pack16(eb_lo16(a) + eb_byte(x, 1), eb_hi16(a) + eb_byte(x, 3));
}
static inline int32_t eb_smlad(uint32_t a, uint32_t b, int32_t acc) {
    return (int32_t)((uint32_t)acc + (uint32_t)(eb_lo16(a) * eb_lo16(b)) +
                     (uint32_t)(eb_hi16(a) * eb_hi16(b)));
}
static inline int32_t eb_smlabb(uint32_t a, uint32_t b, int32_t acc) {
    return (int32_t)((uint32_t)acc + (uint32_t)(eb_lo16(a) * eb_lo16(b)));
}
static inline int32_t eb_smlatt(uint32_t a, uint32_t b, int32_t acc) {
    return (int32_t)((uint32_t)acc + (uint32_t)(eb_hi16(a) * eb_hi16(b)));
}

#else
#define EB_SIMD32 0
#endif

#if EB_SIMD32
/* An unaligned 32-bit load: Armv7E-M LDR allows it, memcpy says so portably. */
static inline uint32_t eb_read_u32(const int8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
static inline void eb_write_u32(int8_t *p, uint32_t v) { memcpy(p, &v, 4); }
#endif

#endif
