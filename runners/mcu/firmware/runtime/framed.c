/* edgebench's framed binary protocol (runners/mcu/PROTOCOL.md):
 *
 *   A5 5A | len u16 | seq u8 | type u8 | payload[len] | crc32 u32 (len..payload)
 *
 * Robustness: the parser keeps the bytes of the frame in progress in one buffer;
 * when the frame turns out bad (sync, length over 1024, CRC) it resynchronises
 * by scanning those same bytes for the next A5 5A, so a frame that followed a
 * damaged one is not lost with it. A partial frame is dropped after 50 ms
 * without a byte. The reply to the last executed request is kept (it is the
 * transmit buffer): a retry of that request (same seq, type and CRC) gets it
 * again and is not executed twice. */
#include "eb_board.h"
#include "eb_model.h"
#include "eb_runtime.h"

#define SYNC0 0xA5u
#define SYNC1 0x5Au
#define HEADER 6u /* sync, len, seq, type */
#define TRAILER 4u
#define FRAME_BYTES (HEADER + EB_FRAME_MAX + TRAILER)
#define INTER_BYTE_TIMEOUT_US 50000u

enum {
    T_HELLO = 0x01,
    T_INPUT = 0x02,
    T_INFER = 0x03,
    T_OUTPUT = 0x04,
    T_LAYERS = 0x05,
    T_STACK = 0x06,
    T_REPLY = 0x80,
    T_ERROR = 0xFF,
};

static uint8_t rx[FRAME_BYTES];
static uint32_t rx_len;
static uint8_t tx[FRAME_BYTES]; /* also the cached reply to the last request */
static uint32_t tx_len;
static struct {
    uint8_t valid, seq, type;
    uint32_t crc;
} last;

/* CRC-32 (IEEE 802.3, the zlib one), a nibble at a time: a 64-byte table. */
static const uint32_t crc_nibble[16] = {
    0x00000000u, 0x1DB71064u, 0x3B6E20C8u, 0x26D930ACu, 0x76DC4190u, 0x6B6B51F4u,
    0x4DB26158u, 0x5005713Cu, 0xEDB88320u, 0xF00F9344u, 0xD6D6A3E8u, 0xCB61B38Cu,
    0x9B64C2B0u, 0x86D3D2D4u, 0xA00AE278u, 0xBDBDF21Cu,
};

static uint32_t crc32(const uint8_t *p, uint32_t n) {
    uint32_t c = 0xFFFFFFFFu;
    while (n--) {
        c ^= *p++;
        c = (c >> 4) ^ crc_nibble[c & 15u];
        c = (c >> 4) ^ crc_nibble[c & 15u];
    }
    return ~c;
}

static uint32_t get_u16(const uint8_t *p) { return (uint32_t)p[0] | ((uint32_t)p[1] << 8); }
static uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static void put_u16(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static void put_u32(uint8_t *p, uint32_t v) {
    put_u16(p, v);
    put_u16(p + 2, v >> 16);
}
static void put_u64(uint8_t *p, uint64_t v) {
    put_u32(p, (uint32_t)v);
    put_u32(p + 4, (uint32_t)(v >> 32));
}

/* Reply payload goes straight into tx[HEADER...]; finish() adds the rest. */
static uint8_t *const reply = tx + HEADER;

static void finish(uint8_t seq, uint8_t type, uint32_t len) {
    tx[0] = SYNC0;
    tx[1] = SYNC1;
    put_u16(tx + 2, len);
    tx[4] = seq;
    tx[5] = type;
    put_u32(tx + HEADER + len, crc32(tx + 2, 4u + len));
    tx_len = HEADER + len + TRAILER;
}

static uint32_t error_reply(const char *msg) {
    uint32_t n = 0;
    while (msg[n] && n < EB_FRAME_MAX) {
        reply[n] = (uint8_t)msg[n];
        n++;
    }
    return n;
}

/* Executes one request; returns the reply payload length, or sets *type to
 * T_ERROR with a message as the payload. */
static uint32_t execute(uint8_t req_type, const uint8_t *p, uint32_t len, uint8_t *type) {
    *type = (uint8_t)(req_type | T_REPLY);
    switch (req_type) {
        case T_HELLO: {
            eb_text t;
            eb_text_init(&t, (char *)reply, EB_FRAME_MAX);
            eb_rt_hello(&t);
            return t.len;
        }
        case T_INPUT: {
            if (len < 5) break;
            const uint32_t index = p[0], offset = get_u32(p + 1), n = len - 5;
            if (index >= eb_model.n_inputs) {
                *type = T_ERROR;
                return error_reply("INPUT: no such input");
            }
            const eb_io *io = &eb_model.inputs[index];
            if (offset > io->bytes || n > io->bytes - offset) {
                *type = T_ERROR;
                return error_reply("INPUT: offset + length beyond the input tensor");
            }
            for (uint32_t i = 0; i < n; i++) io->data[offset + i] = p[5 + i];
            return 0;
        }
        case T_INFER: {
            if (len != 4) break;
            const uint32_t runs = get_u16(p), warmup = get_u16(p + 2);
            if (runs < 1 || runs > EB_MAX_RUNS) {
                *type = T_ERROR;
                return error_reply("INFER: runs must be 1..64");
            }
            uint64_t counts[EB_MAX_RUNS];
            const int rc = eb_rt_infer(runs, warmup, counts);
            if (rc) {
                eb_text t;
                eb_text_init(&t, (char *)reply, EB_FRAME_MAX);
                eb_text_str(&t, "INFER: eb_model_invoke returned ");
                eb_text_i64(&t, rc);
                *type = T_ERROR;
                return t.len;
            }
            put_u16(reply, runs);
            for (uint32_t i = 0; i < runs; i++) put_u64(reply + 2 + 8 * i, counts[i]);
            return 2 + 8 * runs;
        }
        case T_OUTPUT: {
            if (len != 7) break;
            const uint32_t index = p[0], offset = get_u32(p + 1), n = get_u16(p + 5);
            if (index >= eb_model.n_outputs) {
                *type = T_ERROR;
                return error_reply("OUTPUT: no such output");
            }
            const eb_io *io = &eb_model.outputs[index];
            if (n > EB_FRAME_MAX || offset > io->bytes || n > io->bytes - offset) {
                *type = T_ERROR;
                return error_reply("OUTPUT: offset + length beyond the output tensor (or > 1024)");
            }
            for (uint32_t i = 0; i < n; i++) reply[i] = io->data[offset + i];
            return n;
        }
        case T_LAYERS: {
            if (len != 4) break;
            const uint32_t first = get_u16(p);
            uint32_t count = get_u16(p + 2);
            if (count > 120) {
                *type = T_ERROR;
                return error_reply("LAYERS: count must be <= 120");
            }
            if (!eb_rt_stats.layers_valid) {
                *type = T_ERROR;
                return error_reply("LAYERS: no per-operator counts (no INFER yet, or too many ops)");
            }
            const uint32_t n_ops = eb_model.n_ops;
            if (first >= n_ops) count = 0;
            else if (count > n_ops - first) count = n_ops - first;
            put_u16(reply, count);
            for (uint32_t i = 0; i < count; i++) put_u64(reply + 2 + 8 * i, eb_rt_layer(first + i));
            return 2 + 8 * count;
        }
        case T_STACK:
            if (len != 0) break;
            put_u32(reply, eb_rt_stack_reserved());
            put_u32(reply + 4, eb_rt_stack_used());
            return 8;
        default:
            *type = T_ERROR;
            return error_reply("unknown request type");
    }
    *type = T_ERROR;
    return error_reply("malformed request payload");
}

static void handle_frame(const uint8_t *f, uint32_t payload_len, uint32_t crc) {
    const uint8_t seq = f[4], type = f[5];
    if (!(last.valid && last.seq == seq && last.type == type && last.crc == crc)) {
        /* A new request: execute it. The cache is invalid while it runs, so a
         * reply that was never finished is never replayed. */
        last.valid = 0;
        uint8_t reply_type;
        const uint32_t n = execute(type, f + HEADER, payload_len, &reply_type);
        finish(seq, reply_type, n);
        last.seq = seq;
        last.type = type;
        last.crc = crc;
        last.valid = 1;
    }
    eb_uart_write(tx, tx_len);
}

/* Drops the first byte of rx (and everything up to the next sync byte). */
static void resync(void) {
    uint32_t i = 1;
    while (i < rx_len && rx[i] != SYNC0) i++;
    for (uint32_t j = i; j < rx_len; j++) rx[j - i] = rx[j];
    rx_len -= i;
}

static void consume(uint32_t n) {
    for (uint32_t j = n; j < rx_len; j++) rx[j - n] = rx[j];
    rx_len -= n;
}

/* Handles every complete frame at the front of rx, resynchronising past bad
 * bytes; stops when rx is empty or holds the start of a frame still arriving. */
static void drain(void) {
    while (rx_len) {
        if (rx[0] != SYNC0 || (rx_len >= 2 && rx[1] != SYNC1)) {
            resync();
            continue;
        }
        if (rx_len < 4) return;
        const uint32_t len = get_u16(rx + 2);
        if (len > EB_FRAME_MAX) {
            resync();
            continue;
        }
        const uint32_t total = HEADER + len + TRAILER;
        if (rx_len < total) return;
        const uint32_t crc = crc32(rx + 2, 4u + len);
        if (crc != get_u32(rx + HEADER + len)) {
            resync();
            continue;
        }
        handle_frame(rx, len, crc);
        consume(total);
    }
}

void eb_framed_run(uint8_t first) {
    rx[0] = first;
    rx_len = 1;
    while (rx_len) {
        const int c = eb_uart_read_byte(INTER_BYTE_TIMEOUT_US);
        if (c < 0) {
            rx_len = 0; /* a partial frame after 50 ms of silence: dropped */
            return;
        }
        rx[rx_len++] = (uint8_t)c;
        drain();
    }
}
