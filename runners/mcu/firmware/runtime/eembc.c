/* The EEMBC / MLPerf Tiny text mode (runners/mcu/PROTOCOL.md): `%`-terminated
 * ASCII commands, `\r\n`-terminated reply lines, every reply ending in `m-ready`,
 * so that MLPerf Tiny's runner (and edgebench's EembcClient) can drive this
 * firmware as it drives the reference firmware. */
#include "eb_board.h"
#include "eb_model.h"
#include "eb_runtime.h"

/* MLPerf Tiny's runner keeps commands under 80 characters; a little more room
 * costs nothing and accepts longer `db` chunks. */
#define LINE_MAX 256u

static char line[LINE_MAX];
static uint32_t line_len;
static uint8_t line_overflow;

static uint32_t load_expected; /* bytes announced by `db load N` */
static uint32_t load_received;

static char out_buf[LINE_MAX + 64];

static void send(const eb_text *t) { eb_uart_write((const uint8_t *)t->p, t->len); }

/* One reply line: prefix + optional text + "\r\n". */
static void send_line(const char *a, const char *b) {
    eb_text t;
    eb_text_init(&t, out_buf, sizeof out_buf);
    eb_text_str(&t, a);
    eb_text_str(&t, b);
    eb_text_str(&t, "\r\n");
    send(&t);
}

static void ready(void) { send_line("m-ready", 0); }

void eb_eembc_reset_line(void) {
    line_len = 0;
    line_overflow = 0;
}

void eb_eembc_boot_banner(void) {
    send_line("m-timestamp-mode-performance", 0);
    send_line("m-init-done", 0);
    ready();
}

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

/* Next whitespace-separated word of s from *pos; its length (0 at the end). */
static uint32_t next_word(const char *s, uint32_t n, uint32_t *pos, const char **word) {
    while (*pos < n && is_space(s[*pos])) (*pos)++;
    *word = s + *pos;
    uint32_t len = 0;
    while (*pos < n && !is_space(s[*pos])) {
        (*pos)++;
        len++;
    }
    return len;
}

static int word_is(const char *w, uint32_t len, const char *lit) {
    const uint32_t n = eb_strlen(lit);
    if (n != len) return 0;
    for (uint32_t i = 0; i < n; i++)
        if (w[i] != lit[i]) return 0;
    return 1;
}

/* A decimal number; -1 when the word is not one. */
static int64_t parse_uint(const char *w, uint32_t len) {
    if (len == 0 || len > 9) return -1;
    int64_t v = 0;
    for (uint32_t i = 0; i < len; i++) {
        if (w[i] < '0' || w[i] > '9') return -1;
        v = v * 10 + (w[i] - '0');
    }
    return v;
}

static int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static void error_line(const char *what) {
    eb_text t;
    eb_text_init(&t, out_buf, sizeof out_buf);
    eb_text_str(&t, "e-[");
    eb_text_str(&t, what);
    eb_text_str(&t, "]\r\n");
    send(&t);
}

static void cmd_db(const char *s, uint32_t n, uint32_t pos) {
    const char *w;
    uint32_t wl = next_word(s, n, &pos, &w);
    const uint32_t capacity = eb_model.n_inputs ? eb_model.inputs[0].bytes : 0;
    if (word_is(w, wl, "load")) {
        wl = next_word(s, n, &pos, &w);
        const int64_t want = parse_uint(w, wl);
        if (want < 0 || (uint64_t)want > capacity) {
            error_line("db load: N must be 0..the first input's bytes");
            return;
        }
        load_expected = (uint32_t)want;
        load_received = 0;
        eb_text t;
        eb_text_init(&t, out_buf, sizeof out_buf);
        eb_text_str(&t, "m-[Expecting ");
        eb_text_u64(&t, load_expected);
        eb_text_str(&t, " bytes]\r\n");
        send(&t);
        return;
    }
    /* `db HHHH...`: hex bytes appended to the first input. */
    if (load_received >= load_expected || !capacity) {
        error_line("db: no load in progress (send db load N first)");
        return;
    }
    if (wl % 2u) {
        error_line("db: odd number of hex digits");
        return;
    }
    uint8_t *dst = eb_model.inputs[0].data;
    for (uint32_t i = 0; i + 1 < wl && load_received < load_expected; i += 2) {
        const int hi = hex_value(w[i]), lo = hex_value(w[i + 1]);
        if (hi < 0 || lo < 0) {
            error_line("db: not a hex digit");
            return;
        }
        dst[load_received++] = (uint8_t)((hi << 4) | lo);
    }
    if (load_received == load_expected) send_line("m-load-done", 0);
}

static void send_results(void) {
    eb_text t;
    eb_text_init(&t, out_buf, sizeof out_buf);
    eb_text_str(&t, "m-results-[");
    send(&t);
    if (eb_model.n_outputs) {
        const eb_io *io = &eb_model.outputs[0];
        const uint32_t count = io->bytes / eb_dtype_size(io->dtype);
        for (uint32_t i = 0; i < count; i++) {
            eb_text_init(&t, out_buf, sizeof out_buf);
            if (i) eb_text_char(&t, ',');
            eb_text_fixed3(&t, eb_rt_output_value(io, i));
            send(&t);
        }
    }
    send_line("]", 0);
}

/* Microseconds of board time, from counter counts. */
static uint64_t counts_to_us(uint64_t c) {
    const uint32_t hz = eb_counter_hz();
    return (c / hz) * 1000000u + ((c % hz) * 1000000u) / hz;
}

static void lap(uint64_t counts) {
    eb_text t;
    eb_text_init(&t, out_buf, sizeof out_buf);
    eb_text_str(&t, "m-lap-us-");
    eb_text_u64(&t, counts_to_us(counts));
    eb_text_str(&t, "\r\n");
    send(&t);
}

static void cmd_infer(const char *s, uint32_t n, uint32_t pos) {
    const char *w;
    uint32_t wl = next_word(s, n, &pos, &w);
    const int64_t runs = wl ? parse_uint(w, wl) : 1;
    wl = next_word(s, n, &pos, &w);
    const int64_t warmup = wl ? parse_uint(w, wl) : 0;
    if (runs < 1 || warmup < 0) {
        error_line("infer: usage infer N [W], N >= 1");
        return;
    }
    eb_text t;
    eb_text_init(&t, out_buf, sizeof out_buf);
    eb_text_str(&t, "m-warmup-start-");
    eb_text_u64(&t, (uint64_t)warmup);
    eb_text_str(&t, "\r\n");
    send(&t);
    for (int64_t i = 0; i < warmup; i++) {
        eb_rt_stats.invocations++;
        if (eb_model_invoke(0, 0)) {
            error_line("infer: eb_model_invoke failed");
            return;
        }
    }
    send_line("m-warmup-done", 0);
    eb_text_init(&t, out_buf, sizeof out_buf);
    eb_text_str(&t, "m-infer-start-");
    eb_text_u64(&t, (uint64_t)runs);
    eb_text_str(&t, "\r\n");
    send(&t);
    /* As MLPerf Tiny's firmware does: one timestamp before the N inferences and
     * one after; the host divides the difference by N. Both are printed after
     * the runs, so the UART's time is not inside the window. */
    const uint64_t t0 = eb_counter_now();
    eb_rt_stats.infer_requests++;
    for (int64_t i = 0; i < runs; i++) {
        eb_rt_stats.invocations++;
        if (eb_model_invoke(0, 0)) {
            error_line("infer: eb_model_invoke failed");
            return;
        }
    }
    const uint64_t t1 = eb_counter_now();
    lap(t0);
    lap(t1);
    send_line("m-infer-done", 0);
    send_results();
}

static void execute(void) {
    const char *s = line;
    const uint32_t n = line_len;
    uint32_t pos = 0;
    const char *w;
    const uint32_t wl = next_word(s, n, &pos, &w);
    if (wl == 0) {
        /* an empty command: just say we are here */
    } else if (word_is(w, wl, "name")) {
        /* MLPerf Tiny's EE_MSG_NAME: "m-name-<role>-[<vendor>]"; its runner finds the
         * device under test by the role "dut". */
        send_line("m-name-dut-[edgebench]", 0);
    } else if (word_is(w, wl, "timestamp")) {
        lap(eb_counter_now());
    } else if (word_is(w, wl, "profile")) {
        send_line("m-profile-[edgebench runner firmware " EB_ENGINE_VERSION "]", 0);
        eb_text t;
        eb_text_init(&t, out_buf, sizeof out_buf);
        eb_text_str(&t, "m-model-[");
        eb_text_str(&t, eb_model.name);
        eb_text_str(&t, "]\r\n");
        send(&t);
    } else if (word_is(w, wl, "db")) {
        cmd_db(s, n, pos);
    } else if (word_is(w, wl, "infer")) {
        cmd_infer(s, n, pos);
    } else if (word_is(w, wl, "results")) {
        send_results();
    } else {
        eb_text t;
        eb_text_init(&t, out_buf, sizeof out_buf);
        eb_text_str(&t, "e-[Unknown command: ");
        for (uint32_t i = 0; i < wl && i < 32; i++) eb_text_char(&t, w[i]);
        eb_text_str(&t, "]\r\n");
        send(&t);
    }
    ready();
}

void eb_eembc_byte(uint8_t c) {
    if (c == '%') {
        if (line_overflow) {
            error_line("command too long");
            ready();
        } else {
            execute();
        }
        eb_eembc_reset_line();
        return;
    }
    if (c == '\r' || c == '\n') return;
    if (c < 0x20 || c > 0x7E) { /* not text: noise (or a damaged frame); forget the line */
        eb_eembc_reset_line();
        return;
    }
    if (line_len < LINE_MAX) line[line_len++] = (char)c;
    else line_overflow = 1;
}
