/* Dot products of int8 vectors for the conv and fully-connected kernels.
 *
 * Integer sums are exact whatever the order, so the SIMD path (two 16-bit
 * multiply-accumulates per SMLAD on Armv7E-M) gives the reference's int32
 * accumulator bit for bit; a plain loop handles the tail and cores without DSP.
 */
#ifndef EB_DOT_H
#define EB_DOT_H

#include <stdint.h>

#include "eb_fixedpoint.h"

/* *acc_a += sum(shared[k] * a[k]), *acc_b += sum(shared[k] * b[k]), k < n.
 * One operand shared by two dot products: each shared word is loaded and
 * sign-extended once for four multiply-accumulates. */
static inline void eb_dot2_s8(const int8_t *shared, const int8_t *a, const int8_t *b, int32_t n,
                              int32_t *acc_a, int32_t *acc_b) {
    int32_t sum_a = *acc_a;
    int32_t sum_b = *acc_b;
    int32_t k = 0;
#if EB_SIMD32
    for (; k + 8 <= n; k += 8) {
        uint32_t s = eb_read_u32(shared + k);
        uint32_t s_even = eb_sxtb16(s), s_odd = eb_sxtb16_ror8(s);
        uint32_t va = eb_read_u32(a + k);
        uint32_t vb = eb_read_u32(b + k);
        sum_a = eb_smlad(s_even, eb_sxtb16(va), sum_a);
        sum_a = eb_smlad(s_odd, eb_sxtb16_ror8(va), sum_a);
        sum_b = eb_smlad(s_even, eb_sxtb16(vb), sum_b);
        sum_b = eb_smlad(s_odd, eb_sxtb16_ror8(vb), sum_b);
        s = eb_read_u32(shared + k + 4);
        s_even = eb_sxtb16(s);
        s_odd = eb_sxtb16_ror8(s);
        va = eb_read_u32(a + k + 4);
        vb = eb_read_u32(b + k + 4);
        sum_a = eb_smlad(s_even, eb_sxtb16(va), sum_a);
        sum_a = eb_smlad(s_odd, eb_sxtb16_ror8(va), sum_a);
        sum_b = eb_smlad(s_even, eb_sxtb16(vb), sum_b);
        sum_b = eb_smlad(s_odd, eb_sxtb16_ror8(vb), sum_b);
    }
    for (; k + 4 <= n; k += 4) {
        const uint32_t s = eb_read_u32(shared + k);
        const uint32_t s_even = eb_sxtb16(s), s_odd = eb_sxtb16_ror8(s);
        const uint32_t va = eb_read_u32(a + k);
        const uint32_t vb = eb_read_u32(b + k);
        sum_a = eb_smlad(s_even, eb_sxtb16(va), sum_a);
        sum_a = eb_smlad(s_odd, eb_sxtb16_ror8(va), sum_a);
        sum_b = eb_smlad(s_even, eb_sxtb16(vb), sum_b);
        sum_b = eb_smlad(s_odd, eb_sxtb16_ror8(vb), sum_b);
    }
#endif
    for (; k < n; ++k) {
        sum_a += (int32_t)shared[k] * (int32_t)a[k];
        sum_b += (int32_t)shared[k] * (int32_t)b[k];
    }
    *acc_a = sum_a;
    *acc_b = sum_b;
}

/* acc + sum(a[k] * b[k]), k < n. */
static inline int32_t eb_dot_s8(const int8_t *a, const int8_t *b, int32_t n, int32_t acc) {
    int32_t k = 0;
#if EB_SIMD32
    for (; k + 4 <= n; k += 4) {
        const uint32_t va = eb_read_u32(a + k);
        const uint32_t vb = eb_read_u32(b + k);
        acc = eb_smlad(eb_sxtb16(va), eb_sxtb16(vb), acc);
        acc = eb_smlad(eb_sxtb16_ror8(va), eb_sxtb16_ror8(vb), acc);
    }
#endif
    for (; k < n; ++k) {
        acc += (int32_t)a[k] * (int32_t)b[k];
    }
    return acc;
}

#endif
