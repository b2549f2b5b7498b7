/* The runner firmware's main loop and measurement core.
 *
 * One UART carries two protocols (runners/mcu/PROTOCOL.md), told apart by the
 * first byte of a message: 0xA5 starts a binary frame (framed.c), anything else
 * is EEMBC / MLPerf Tiny text (eembc.c). Both end up in eb_rt_infer() here,
 * which times each inference alone with the board counter.
 *
 * No heap: every buffer is static, sized by the protocol's limits. */
#include "eb_board.h"
#include "eb_model.h"
#include "eb_runtime.h"

/* From the linker script (ports/<port>/link.ld.in). */
extern uint32_t __stack_limit, __stack_top;
extern uint8_t __eb_flash_start, __eb_flash_end, __eb_ram_start, __eb_ram_end;

#define STACK_PAINT 0xC5C5C5C5u

eb_stats eb_rt_stats;

/* Counter readings at each operator boundary of the run in progress
 * (index n_ops: after the last operator), and the last measured run's
 * per-operator counts. */
static uint64_t op_stamps[EB_MAX_OPS + 1];
static uint64_t op_counts[EB_MAX_OPS];

/* Fills the unused part of the stack with a pattern, so that the deepest use
 * can be found later (the high-water mark STACK reports). Called first thing,
 * from a frame of its own; the bytes just below its stack pointer are left
 * alone. */
__attribute__((noinline)) static void paint_stack(void) {
    uint32_t *sp;
    __asm volatile("mov %0, sp" : "=r"(sp));
    for (uint32_t *p = &__stack_limit; p < sp - 16; p++) *p = STACK_PAINT;
}

uint32_t eb_rt_stack_reserved(void) {
    return (uint32_t)((uint8_t *)&__stack_top - (uint8_t *)&__stack_limit);
}

uint32_t eb_rt_stack_used(void) {
    const uint32_t *p = &__stack_limit;
    while (p < &__stack_top && *p == STACK_PAINT) p++;
    return (uint32_t)((const uint8_t *)&__stack_top - (const uint8_t *)p);
}

static void op_hook(uint32_t op_index, void *ctx) {
    uint64_t *stamps = (uint64_t *)ctx;
    const uint64_t now = eb_counter_now();
    if (op_index <= EB_MAX_OPS) stamps[op_index] = now;
}

static uint64_t minus_floor0(uint64_t a, uint64_t b) { return a > b ? a - b : 0; }

/* What the measurement itself costs, measured once at boot and subtracted from
 * every count: two back-to-back counter reads, and one hook call. Under QEMU
 * -icount both are exact; on hardware they are the typical cost. */
static void calibrate_overheads(void) {
    uint64_t scratch[2];
    uint64_t best_pair = ~0ull, best_hook = ~0ull;
    for (int i = 0; i < 8; i++) {
        uint64_t a = eb_counter_now();
        uint64_t b = eb_counter_now();
        if (b - a < best_pair) best_pair = b - a;
        a = eb_counter_now();
        op_hook(0, scratch);
        b = eb_counter_now();
        if (b - a < best_hook) best_hook = b - a;
    }
    eb_rt_stats.counter_overhead = (uint32_t)best_pair;
    eb_rt_stats.hook_overhead = (uint32_t)minus_floor0(best_hook, best_pair);
}

int eb_rt_infer(uint32_t runs, uint32_t warmup, uint64_t *counts) {
    eb_rt_stats.infer_requests++;
    for (uint32_t i = 0; i < warmup; i++) {
        eb_rt_stats.invocations++;
        const int rc = eb_model_invoke(0, 0);
        if (rc) return rc;
    }
    const uint32_t n_ops = eb_model.n_ops;
    /* With the hook on, a run pays one hook call per operator boundary. */
    const uint64_t overhead =
        eb_rt_stats.counter_overhead + (uint64_t)(n_ops + 1u) * eb_rt_stats.hook_overhead;
    eb_rt_stats.layers_valid = 0;
    for (uint32_t r = 0; r < runs; r++) {
        eb_rt_stats.invocations++;
        const uint64_t start = eb_counter_now();
        const int rc = eb_model_invoke(op_hook, op_stamps);
        const uint64_t end = eb_counter_now();
        if (rc) return rc;
        counts[r] = minus_floor0(end - start, overhead);
    }
    const uint32_t kept = n_ops < EB_MAX_OPS ? n_ops : EB_MAX_OPS;
    for (uint32_t i = 0; i < kept; i++) {
        const uint64_t span = op_stamps[i + 1] - op_stamps[i];
        op_counts[i] = minus_floor0(span, eb_rt_stats.hook_overhead);
    }
    eb_rt_stats.layers_valid = runs > 0 && n_ops <= EB_MAX_OPS;
    return 0;
}

uint64_t eb_rt_layer(uint32_t i) {
    if (!eb_rt_stats.layers_valid || i >= eb_model.n_ops || i >= EB_MAX_OPS) return 0;
    return op_counts[i];
}

const char *eb_dtype_name(uint8_t dtype) {
    switch (dtype) {
        case EB_INT8: return "int8";
        case EB_UINT8: return "uint8";
        case EB_INT16: return "int16";
        case EB_INT32: return "int32";
        case EB_FLOAT32: return "float32";
        default: return "unknown";
    }
}

uint32_t eb_dtype_size(uint8_t dtype) {
    switch (dtype) {
        case EB_INT8:
        case EB_UINT8: return 1;
        case EB_INT16: return 2;
        default: return 4;
    }
}

float eb_rt_output_value(const eb_io *io, uint32_t i) {
    const uint8_t *p = io->data + i * eb_dtype_size(io->dtype);
    int32_t q;
    switch (io->dtype) {
        case EB_FLOAT32: {
            float f;
            __builtin_memcpy(&f, p, 4);
            return f;
        }
        case EB_INT8: q = (int8_t)p[0]; break;
        case EB_UINT8: q = p[0]; break;
        case EB_INT16: q = (int16_t)(p[0] | (p[1] << 8)); break;
        default: q = (int32_t)(p[0] | (p[1] << 8) | (p[2] << 16) | ((uint32_t)p[3] << 24)); break;
    }
    if (io->scale == 0.0f) return (float)q;
    return (float)(q - io->zero_point) * io->scale;
}

static void kv_u64(eb_text *t, const char *key, uint64_t v) {
    eb_text_str(t, key);
    eb_text_char(t, '=');
    eb_text_u64(t, v);
    eb_text_char(t, '\n');
}

static void kv_str(eb_text *t, const char *key, const char *v) {
    eb_text_str(t, key);
    eb_text_char(t, '=');
    eb_text_str(t, v);
    eb_text_char(t, '\n');
}

/* `<bytes>,<dtype>,<scale>,<zero_point>,<d0>x<d1>...`; a line that would not fit
 * the reply is left out whole rather than cut. */
static void kv_io(eb_text *t, const char *prefix, uint32_t index, const eb_io *io) {
    const uint32_t mark = t->len;
    eb_text_str(t, prefix);
    eb_text_u64(t, index);
    eb_text_char(t, '=');
    eb_text_u64(t, io->bytes);
    eb_text_char(t, ',');
    eb_text_str(t, eb_dtype_name(io->dtype));
    eb_text_char(t, ',');
    eb_text_f32(t, io->scale);
    eb_text_char(t, ',');
    eb_text_i64(t, io->zero_point);
    eb_text_char(t, ',');
    for (uint32_t d = 0; d < io->rank && d < EB_MAX_RANK; d++) {
        if (d) eb_text_char(t, 'x');
        eb_text_i64(t, io->shape[d]);
    }
    eb_text_char(t, '\n');
    if (t->len >= t->cap) t->len = mark;
}

void eb_rt_hello(eb_text *t) {
    kv_u64(t, "protocol", 1);
    kv_str(t, "engine", "edgebench");
    kv_str(t, "engine_version", EB_ENGINE_VERSION);
    kv_str(t, "board", eb_board_name());
    kv_u64(t, "clock_hz", eb_clock_hz());
    kv_str(t, "counter", eb_counter_kind());
    kv_u64(t, "counter_hz", eb_counter_hz());
    kv_str(t, "model", eb_model.name);
    kv_str(t, "model_sha256", eb_model.sha256_hex);
    kv_u64(t, "arena_bytes", eb_model.arena_bytes);
    kv_u64(t, "weights_bytes", eb_model.weights_bytes);
    kv_u64(t, "macs", eb_model.macs);
    kv_u64(t, "ops", eb_model.n_ops);
    kv_u64(t, "inputs", eb_model.n_inputs);
    kv_u64(t, "outputs", eb_model.n_outputs);
    kv_u64(t, "stack_bytes", eb_rt_stack_reserved());
    kv_u64(t, "flash_used", (uint32_t)(&__eb_flash_end - &__eb_flash_start));
    kv_u64(t, "ram_used", (uint32_t)(&__eb_ram_end - &__eb_ram_start));
    /* edgebench's own keys (the host keeps unknown keys aside). */
    kv_u64(t, "max_runs", EB_MAX_RUNS);
    kv_u64(t, "max_layer_ops", EB_MAX_OPS);
    kv_u64(t, "counter_overhead", eb_rt_stats.counter_overhead);
    kv_u64(t, "hook_overhead", eb_rt_stats.hook_overhead);
    kv_u64(t, "infer_requests", eb_rt_stats.infer_requests);
    kv_u64(t, "invocations", eb_rt_stats.invocations);
    /* The per-tensor lines last: with many tensors they are what is left out. */
    for (uint32_t i = 0; i < eb_model.n_inputs; i++) kv_io(t, "input", i, &eb_model.inputs[i]);
    for (uint32_t i = 0; i < eb_model.n_outputs; i++) kv_io(t, "output", i, &eb_model.outputs[i]);
}

int main(void) {
    paint_stack();
    eb_board_init();
    calibrate_overheads();
    eb_eembc_boot_banner();
    for (;;) {
        /* Idle wait: a long timeout, then simply wait again. */
        const int c = eb_uart_read_byte(1000000u);
        if (c < 0) continue;
        if (c == 0xA5) {
            eb_eembc_reset_line(); /* a frame ends any half-typed text command */
            eb_framed_run((uint8_t)c);
        } else {
            eb_eembc_byte((uint8_t)c);
        }
    }
}
