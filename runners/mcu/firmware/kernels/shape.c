/* Data movement, int8: PAD/PADV2, RESHAPE, TRANSPOSE, CONCATENATION. No
 * arithmetic, so bit-exactness is only about which element goes where. */
#include <string.h>

#include "eb_kernels_misc.h"

#include "eb_model.h"

/* Shapes left-padded with 1s to EB_MAX_RANK dims, so one loop nest serves all ranks. */
static void extend6(const int32_t *shape, int32_t rank, int32_t fill, int32_t out[EB_MAX_RANK]) {
    for (int32_t d = 0; d < EB_MAX_RANK; ++d) {
        const int32_t k = d - (EB_MAX_RANK - rank);
        out[d] = k >= 0 ? shape[k] : fill;
    }
}

void eb_pad_s8(const int8_t *in, const int32_t *in_shape, int32_t rank,
               const int32_t *before, const int32_t *after, int32_t pad_value,
               int8_t *out) {
    int32_t dims[EB_MAX_RANK], lo[EB_MAX_RANK], hi[EB_MAX_RANK], od[EB_MAX_RANK];
    extend6(in_shape, rank, 1, dims);
    extend6(before, rank, 0, lo);
    extend6(after, rank, 0, hi);
    for (int32_t d = 0; d < EB_MAX_RANK; ++d) od[d] = lo[d] + dims[d] + hi[d];
    int32_t out_total = 1;
    for (int32_t d = 0; d < EB_MAX_RANK; ++d) out_total *= od[d];
    /* Fill, then copy the input's innermost rows into place: the padding is
     * pad_value wherever the input is not. */
    memset(out, (int)(int8_t)pad_value, (size_t)out_total);
    const int32_t row = dims[5];
    int32_t i = 0;
    for (int32_t i0 = 0; i0 < dims[0]; ++i0)
    for (int32_t i1 = 0; i1 < dims[1]; ++i1)
    for (int32_t i2 = 0; i2 < dims[2]; ++i2)
    for (int32_t i3 = 0; i3 < dims[3]; ++i3)
    for (int32_t i4 = 0; i4 < dims[4]; ++i4) {
        const int32_t o =
            ((((((i0 + lo[0]) * od[1] + i1 + lo[1]) * od[2] + i2 + lo[2]) * od[3] + i3 + lo[3]) *
                  od[4] + i4 + lo[4]) * od[5]) + lo[5];
        memcpy(out + o, in + i, (size_t)row);
        i += row;
    }
}

void eb_reshape(const void *in, void *out, uint32_t bytes) {
    if (in != out) memcpy(out, in, bytes); /* TFLM: nothing to do when aliased */
}

void eb_transpose_s8(const int8_t *in, const int32_t *in_shape, int32_t rank,
                     const int32_t *perm, int8_t *out) {
    /* Output dims and, for each, the stride of the input dim it walks. */
    int32_t in_stride[EB_MAX_RANK], od[EB_MAX_RANK], st[EB_MAX_RANK];
    int32_t s = 1;
    for (int32_t d = rank - 1; d >= 0; --d) {
        in_stride[d] = s;
        s *= in_shape[d];
    }
    for (int32_t d = 0; d < EB_MAX_RANK; ++d) {
        const int32_t k = d - (EB_MAX_RANK - rank);
        od[d] = k >= 0 ? in_shape[perm[k]] : 1;
        st[d] = k >= 0 ? in_stride[perm[k]] : 0;
    }
    for (int32_t i0 = 0; i0 < od[0]; ++i0)
    for (int32_t i1 = 0; i1 < od[1]; ++i1)
    for (int32_t i2 = 0; i2 < od[2]; ++i2)
    for (int32_t i3 = 0; i3 < od[3]; ++i3)
    for (int32_t i4 = 0; i4 < od[4]; ++i4) {
        const int8_t *p = in + i0 * st[0] + i1 * st[1] + i2 * st[2] + i3 * st[3] + i4 * st[4];
        for (int32_t i5 = 0; i5 < od[5]; ++i5) *out++ = p[i5 * st[5]];
    }
}

void eb_concat_s8(const int8_t *const *inputs, const int32_t *axis_sizes, int32_t num_inputs,
                  int32_t outer, int32_t inner, int8_t *out) {
    for (int32_t o = 0; o < outer; ++o) {
        for (int32_t k = 0; k < num_inputs; ++k) {
            const int32_t chunk = axis_sizes[k] * inner;
            memcpy(out, inputs[k] + o * chunk, (size_t)chunk);
            out += chunk;
        }
    }
}
