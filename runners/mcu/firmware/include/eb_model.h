/* The contract between a compiled model (C emitted by runners/mcu/compiler.py)
 * and the runner firmware (runtime/main.c). One model per firmware image.
 *
 * The compiler emits model.c (weights as const arrays, so they land in flash;
 * one static arena in .bss planned from tensor lifetimes; one kernel call per
 * operator) and defines `eb_model` below. Graph inputs stay intact across
 * eb_model_invoke(), so one upload can be inferred N times. */
#ifndef EB_MODEL_H
#define EB_MODEL_H

#include <stdint.h>

enum eb_dtype { EB_INT8 = 0, EB_UINT8 = 1, EB_INT16 = 2, EB_INT32 = 3, EB_FLOAT32 = 4 };

#define EB_MAX_RANK 6

typedef struct {
    uint8_t *data;          /* in the arena */
    uint32_t bytes;
    uint8_t dtype;          /* enum eb_dtype */
    uint8_t rank;
    int32_t shape[EB_MAX_RANK];
    float scale;            /* quantization of an int8/int16 tensor; 0 if none */
    int32_t zero_point;
} eb_io;

typedef struct {
    const char *name;        /* model name given to the compiler */
    const char *sha256_hex;  /* sha256 of the .tflite it was compiled from */
    uint32_t arena_bytes;    /* the planned arena (activations + scratch) */
    uint32_t weights_bytes;  /* constant data emitted (weights, biases, LUTs) */
    uint64_t macs;           /* multiply-accumulates per inference (conv, fc) */
    uint32_t n_ops;
    const char *const *op_names;  /* n_ops builtin names, e.g. "CONV_2D" */
    uint8_t n_inputs, n_outputs;
    const eb_io *inputs;
    const eb_io *outputs;
} eb_model_info;

extern const eb_model_info eb_model;

/* Called with i = 0..n_ops-1 just before operator i runs, and once more with
 * i = n_ops when the last one has finished (per-operator counts). May be NULL. */
typedef void (*eb_op_hook)(uint32_t op_index, void *ctx);

/* Run the graph on the current inputs; 0 on success. */
int eb_model_invoke(eb_op_hook hook, void *ctx);

#endif
