/* A hand-written model implementing eb_model.h, so the runner firmware can be
 * tested without the model compiler: three operators, output = input + 1.
 *
 * Each operator also spins a busy loop of exactly 2 * (i + 1) * EB_TEST_SPIN
 * instructions (subs + bne, in assembly so the compiler cannot change it): the
 * tests check that counts grow by exactly that when EB_TEST_SPIN grows, and that
 * the per-operator counts follow the 1 : 2 : 3 ratio. */
#include <stdint.h>

#include "eb_model.h"

#ifndef EB_TEST_SPIN
#define EB_TEST_SPIN 1000
#endif

#define N_ELEMS 1500u /* more than one 1000-byte INPUT chunk / 1024-byte OUTPUT */

/* One arena, as the compiler plans it: input | scratch | output. */
static uint8_t eb_arena[3 * N_ELEMS] __attribute__((aligned(16)));

static const char *const op_names[3] = {"SPIN_COPY", "ADD", "SPIN_COPY"};

static const eb_io inputs[1] = {{
    .data = eb_arena,
    .bytes = N_ELEMS,
    .dtype = EB_INT8,
    .rank = 3,
    .shape = {1, 30, 50},
    .scale = 0.5f,
    .zero_point = -1,
}};

static const eb_io outputs[1] = {{
    .data = eb_arena + 2 * N_ELEMS,
    .bytes = N_ELEMS,
    .dtype = EB_INT8,
    .rank = 3,
    .shape = {1, 30, 50},
    .scale = 0.5f,
    .zero_point = -1,
}};

const eb_model_info eb_model = {
    .name = "test_model",
    .sha256_hex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    .arena_bytes = sizeof eb_arena,
    .weights_bytes = 0,
    .macs = 3u * N_ELEMS,
    .n_ops = 3,
    .op_names = op_names,
    .n_inputs = 1,
    .n_outputs = 1,
    .inputs = inputs,
    .outputs = outputs,
};

static void spin(uint32_t n) {
    if (!n) return;
    __asm volatile("1: subs %0, %0, #1\n\tbne 1b" : "+r"(n) : : "cc");
}

int eb_model_invoke(eb_op_hook hook, void *ctx) {
    const int8_t *in = (const int8_t *)eb_arena;
    int8_t *tmp = (int8_t *)(eb_arena + N_ELEMS);
    int8_t *out = (int8_t *)(eb_arena + 2 * N_ELEMS);

    if (hook) hook(0, ctx);
    spin(1u * EB_TEST_SPIN);
    for (uint32_t i = 0; i < N_ELEMS; i++) tmp[i] = in[i];

    if (hook) hook(1, ctx);
    spin(2u * EB_TEST_SPIN);
    for (uint32_t i = 0; i < N_ELEMS; i++) tmp[i] = (int8_t)(tmp[i] + 1);

    if (hook) hook(2, ctx);
    spin(3u * EB_TEST_SPIN);
    for (uint32_t i = 0; i < N_ELEMS; i++) out[i] = tmp[i];

    if (hook) hook(3, ctx);
    return 0;
}
