/* A tiny text formatter: integers, floats and strings into a bounded buffer.
 * newlib-nano's printf would cost several kilobytes of flash (and float printf
 * more), so the runtime never calls it. */
#include "eb_runtime.h"

void eb_text_init(eb_text *t, char *buf, uint32_t cap) {
    t->p = buf;
    t->len = 0;
    t->cap = cap;
}

uint32_t eb_strlen(const char *s) {
    uint32_t n = 0;
    while (s[n]) n++;
    return n;
}

void eb_text_char(eb_text *t, char c) {
    if (t->len < t->cap) t->p[t->len++] = c;
}

void eb_text_str(eb_text *t, const char *s) {
    if (!s) return;
    while (*s) eb_text_char(t, *s++);
}

void eb_text_u64(eb_text *t, uint64_t v) {
    char digits[20];
    int n = 0;
    /* 32-bit divisions when they suffice: a 64-bit one is a libgcc call. */
    while (v > 0xFFFFFFFFu) {
        digits[n++] = (char)('0' + (uint32_t)(v % 10u));
        v /= 10u;
    }
    uint32_t w = (uint32_t)v;
    do {
        digits[n++] = (char)('0' + w % 10u);
        w /= 10u;
    } while (w);
    while (n) eb_text_char(t, digits[--n]);
}

void eb_text_i64(eb_text *t, int64_t v) {
    if (v < 0) {
        eb_text_char(t, '-');
        eb_text_u64(t, (uint64_t)0 - (uint64_t)v);
    } else {
        eb_text_u64(t, (uint64_t)v);
    }
}

typedef union {
    float f;
    uint32_t u;
} f32_bits;

/* Exact binary-to-decimal for the value range quantization scales live in:
 * the float is m * 2^e with a 24-bit m, so the integer part and the fraction
 * are exact in 64-bit arithmetic, and 9 significant digits (truncated) read back
 * as the same float32. */
void eb_text_f32(eb_text *t, float v) {
    f32_bits b = {.f = v};
    const uint32_t exp = (b.u >> 23) & 0xFFu;
    uint64_t m = b.u & 0x7FFFFFu;
    if (exp == 0xFFu) {
        eb_text_str(t, m ? "nan" : ((b.u >> 31) ? "-inf" : "inf"));
        return;
    }
    if (b.u >> 31) eb_text_char(t, '-');
    if (exp == 0 && m == 0) {
        eb_text_char(t, '0');
        return;
    }
    int e2;
    if (exp == 0) {
        e2 = -149; /* subnormal */
    } else {
        m |= 1u << 23;
        e2 = (int)exp - 150;
    }
    if (e2 >= 0) {
        if (e2 > 39) { /* beyond 2^63: not a scale, print an approximation */
            eb_text_str(t, "3.4e38");
            return;
        }
        eb_text_u64(t, m << e2);
        return;
    }
    int s = -e2;
    if (s > 60) { /* keep R * 10 inside 64 bits; loses digits only below ~1e-10 */
        m >>= (s - 60);
        s = 60;
    }
    const uint64_t int_part = m >> s;
    uint64_t rem = m & ((1ull << s) - 1u);
    eb_text_u64(t, int_part);
    if (!rem) return;
    eb_text_char(t, '.');
    int significant = 0;
    if (int_part) {
        for (uint64_t x = int_part; x; x /= 10u) significant++;
    }
    for (int i = 0; rem && significant < 9 && i < 60; i++) {
        rem *= 10u;
        const uint32_t d = (uint32_t)(rem >> s);
        rem &= (1ull << s) - 1u;
        eb_text_char(t, (char)('0' + d));
        if (d || significant) significant++;
    }
}

void eb_text_fixed3(eb_text *t, float v) {
    f32_bits b = {.f = v};
    if (((b.u >> 23) & 0xFFu) == 0xFFu) {
        eb_text_f32(t, v); /* nan / inf */
        return;
    }
    const float scaled = v * 1000.0f;
    /* int32 conversions are one FPU instruction; int64 ones would pull in
     * libgcc's double-precision code. Beyond +-2e6 the 3 decimals do not matter. */
    if (scaled > 2.0e9f || scaled < -2.0e9f) {
        eb_text_f32(t, v);
        return;
    }
    const int32_t q = (int32_t)(scaled + (scaled >= 0.0f ? 0.5f : -0.5f));
    const uint32_t a = q < 0 ? 0u - (uint32_t)q : (uint32_t)q;
    if (q < 0) eb_text_char(t, '-');
    eb_text_u64(t, a / 1000u);
    eb_text_char(t, '.');
    const uint32_t frac = a % 1000u;
    eb_text_char(t, (char)('0' + frac / 100u));
    eb_text_char(t, (char)('0' + frac / 10u % 10u));
    eb_text_char(t, (char)('0' + frac % 10u));
}
