/* Internal interface between the runtime's files (main.c, framed.c, eembc.c,
 * format.c). Not part of the model or board contracts (include/). */
#ifndef EB_RUNTIME_H
#define EB_RUNTIME_H

#include <stdint.h>

#include "eb_model.h"

#define EB_ENGINE_VERSION "0.1.0"

/* Operators whose per-operator counts are kept (LAYERS); a bigger graph is still
 * measured as a whole. The compiler may raise it with -DEB_MAX_OPS=N. */
#ifndef EB_MAX_OPS
#define EB_MAX_OPS 256
#endif

#define EB_MAX_RUNS 64       /* measured runs per INFER request */
#define EB_FRAME_MAX 1024    /* framed payload limit */

/* --- text building without printf (newlib-nano's printf costs kilobytes) --- */
typedef struct {
    char *p;
    uint32_t len, cap; /* appends past cap are dropped, never written */
} eb_text;

void eb_text_init(eb_text *t, char *buf, uint32_t cap);
void eb_text_str(eb_text *t, const char *s);
void eb_text_char(eb_text *t, char c);
void eb_text_u64(eb_text *t, uint64_t v);
void eb_text_i64(eb_text *t, int64_t v);
void eb_text_f32(eb_text *t, float v);     /* up to 9 significant digits, exact-ish */
void eb_text_fixed3(eb_text *t, float v);  /* 3 decimals, rounded */
uint32_t eb_strlen(const char *s);

/* --- measurement (main.c) --- */
typedef struct {
    uint32_t infer_requests; /* INFER commands executed (framed and EEMBC) */
    uint32_t invocations;    /* eb_model_invoke() calls, warm-ups included */
    uint32_t counter_overhead; /* counts of two back-to-back counter reads */
    uint32_t hook_overhead;    /* counts one per-op hook call adds */
    uint32_t layers_valid;     /* per-op counts of the last measured run exist */
} eb_stats;

extern eb_stats eb_rt_stats;

/* W warm-ups, then N measured runs, counts[i] per run (overheads removed).
 * 0 on success, else the first non-zero eb_model_invoke() result. */
int eb_rt_infer(uint32_t runs, uint32_t warmup, uint64_t *counts);
/* Counts of operator i in the last measured run (0 when unknown). */
uint64_t eb_rt_layer(uint32_t i);
uint32_t eb_rt_stack_reserved(void);
uint32_t eb_rt_stack_used(void);
/* The HELLO text (PROTOCOL.md's keys, then edgebench's own). */
void eb_rt_hello(eb_text *t);
const char *eb_dtype_name(uint8_t dtype);
/* Element i of an output as a float (dequantized for integer types). */
float eb_rt_output_value(const eb_io *io, uint32_t i);
uint32_t eb_dtype_size(uint8_t dtype);

/* --- protocols --- */
/* Called by main.c with a first byte 0xA5; returns when the frame (and any
 * frames right behind it) has been handled or dropped. */
void eb_framed_run(uint8_t first);
/* One byte of the EEMBC text mode. */
void eb_eembc_byte(uint8_t c);
void eb_eembc_reset_line(void);
void eb_eembc_boot_banner(void);

#endif
