/* ADD and MUL, int8: TFLM's reference_integer_ops AddFunc and
 * MulElementwise/BroadcastMul6DSlow, same integer steps in the same order.
 * Broadcasting follows numpy rules over up to 6 dims (TFLM's
 * BroadcastBinaryOpSimple); the element function does not depend on the visit
 * order, so equal shapes take a flat loop. That loop reads in1[i] and in2[i]
 * before writing out[i], so out may be either input (no restrict here: the
 * compiler plans such aliases). */
#include "eb_kernels_misc.h"

#include "eb_model.h"
#include "misc_fixedpoint.h"

typedef struct {
    int32_t in1_offset, in1_multiplier, in1_shift;
    int32_t in2_offset, in2_multiplier, in2_shift;
    int32_t left_shift, out_multiplier, out_shift, out_offset;
    int32_t act_min, act_max;
} add_args;

typedef struct {
    int32_t in1_offset, in2_offset, out_multiplier, out_shift, out_offset;
    int32_t act_min, act_max;
} mul_args;

/* AddFunc: both inputs to the common scale with 20 bits of headroom, sum, then
 * to the output scale. (x + offset) is in [-255, 255], so the << 20 fits. */
static inline int8_t add_one(int8_t x, int8_t y, const add_args *a) {
    const int32_t v1 = (a->in1_offset + x) * (1 << a->left_shift);
    const int32_t v2 = (a->in2_offset + y) * (1 << a->left_shift);
    const int32_t s1 = ebm_mul_smaller_than_one_exp(v1, a->in1_multiplier, a->in1_shift);
    const int32_t s2 = ebm_mul_smaller_than_one_exp(v2, a->in2_multiplier, a->in2_shift);
    const int32_t raw =
        ebm_mul_smaller_than_one_exp(s1 + s2, a->out_multiplier, a->out_shift) + a->out_offset;
    return (int8_t)ebm_clamp(raw, a->act_min, a->act_max);
}

static inline int8_t mul_one(int8_t x, int8_t y, const mul_args *a) {
    const int32_t prod = (a->in1_offset + x) * (a->in2_offset + y);
    const int32_t raw =
        eb_multiply_by_quantized_multiplier(prod, a->out_multiplier, a->out_shift) + a->out_offset;
    return (int8_t)ebm_clamp(raw, a->act_min, a->act_max);
}

/* Shapes left-padded to 6 dims; an operand's stride is 0 along a dim it
 * broadcasts. Returns 1 when no dim broadcasts (the flat case). */
static int broadcast_strides(const int32_t *shape1, const int32_t *shape2,
                             const int32_t *out_shape, int32_t rank, int32_t dims[EB_MAX_RANK],
                             int32_t st1[EB_MAX_RANK], int32_t st2[EB_MAX_RANK]) {
    int32_t s1 = 1, s2 = 1;
    int flat = 1;
    for (int32_t d = EB_MAX_RANK - 1; d >= 0; --d) {
        const int32_t k = d - (EB_MAX_RANK - rank); /* index into the given shapes */
        const int32_t n1 = k >= 0 ? shape1[k] : 1;
        const int32_t n2 = k >= 0 ? shape2[k] : 1;
        dims[d] = k >= 0 ? out_shape[k] : 1;
        st1[d] = n1 == 1 ? 0 : s1;
        st2[d] = n2 == 1 ? 0 : s2;
        if (n1 != dims[d] || n2 != dims[d]) flat = 0;
        s1 *= n1;
        s2 *= n2;
    }
    return flat;
}

/* One loop nest for both ops: OP(x, y, args). */
#define EB_BROADCAST_LOOP(OP, ARGS)                                                          \
    do {                                                                                      \
        int32_t dims[EB_MAX_RANK], st1[EB_MAX_RANK], st2[EB_MAX_RANK];                        \
        if (broadcast_strides(shape1, shape2, out_shape, rank, dims, st1, st2)) {             \
            int32_t n = 1;                                                                    \
            for (int32_t d = 0; d < EB_MAX_RANK; ++d) n *= dims[d];                           \
            for (int32_t i = 0; i < n; ++i) out[i] = OP(in1[i], in2[i], ARGS);                \
            break;                                                                            \
        }                                                                                     \
        int32_t o = 0;                                                                        \
        for (int32_t i0 = 0; i0 < dims[0]; ++i0)                                              \
        for (int32_t i1 = 0; i1 < dims[1]; ++i1)                                              \
        for (int32_t i2 = 0; i2 < dims[2]; ++i2)                                              \
        for (int32_t i3 = 0; i3 < dims[3]; ++i3)                                              \
        for (int32_t i4 = 0; i4 < dims[4]; ++i4) {                                            \
            const int32_t b1 = i0 * st1[0] + i1 * st1[1] + i2 * st1[2] + i3 * st1[3] +        \
                               i4 * st1[4];                                                   \
            const int32_t b2 = i0 * st2[0] + i1 * st2[1] + i2 * st2[2] + i3 * st2[3] +        \
                               i4 * st2[4];                                                   \
            for (int32_t i5 = 0; i5 < dims[5]; ++i5)                                          \
                out[o++] = OP(in1[b1 + i5 * st1[5]], in2[b2 + i5 * st2[5]], ARGS);            \
        }                                                                                     \
    } while (0)

void eb_add_s8(const int8_t *in1, const int32_t *shape1,
               const int8_t *in2, const int32_t *shape2,
               int8_t *out, const int32_t *out_shape, int32_t rank,
               int32_t input1_offset, int32_t input1_multiplier, int32_t input1_shift,
               int32_t input2_offset, int32_t input2_multiplier, int32_t input2_shift,
               int32_t left_shift, int32_t output_multiplier, int32_t output_shift,
               int32_t output_offset, int32_t act_min, int32_t act_max) {
    const add_args a = {input1_offset, input1_multiplier, input1_shift,
                        input2_offset, input2_multiplier, input2_shift,
                        left_shift, output_multiplier, output_shift, output_offset,
                        act_min, act_max};
    EB_BROADCAST_LOOP(add_one, &a);
}

void eb_mul_s8(const int8_t *in1, const int32_t *shape1,
               const int8_t *in2, const int32_t *shape2,
               int8_t *out, const int32_t *out_shape, int32_t rank,
               int32_t input1_offset, int32_t input2_offset,
               int32_t output_multiplier, int32_t output_shift, int32_t output_offset,
               int32_t act_min, int32_t act_max) {
    const mul_args a = {input1_offset, input2_offset, output_multiplier, output_shift,
                        output_offset, act_min, act_max};
    EB_BROADCAST_LOOP(mul_one, &a);
}
