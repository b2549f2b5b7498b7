/* Generic Cortex-M board port (eb_board.h) for real boards. The board-specific
 * part (clocks, UART) is behind the four hooks of eb_hal.h.
 *
 * The counter: the DWT cycle counter (CYCCNT) where the core has one (M3, M4,
 * M7, M33, M55), extended to 64 bits; SysTick's 24-bit down-counter, clocked
 * from the core clock and extended by its wrap interrupt, on cores without one
 * (M0/M0+, or a DWT built without CYCCNT), reported as "ticks". */
#include <stdint.h>

#include "eb_board.h"
#include "eb_hal.h"

#ifndef EB_BOARD_NAME
#define EB_BOARD_NAME "cortexm"
#endif
#ifndef EB_BAUD
#define EB_BAUD 115200u
#endif

#define REG32(addr) (*(volatile uint32_t *)(addr))

#define SYST_CSR REG32(0xE000E010u)
#define SYST_RVR REG32(0xE000E014u)
#define SYST_CVR REG32(0xE000E018u)
#define SYST_ENABLE (1u << 0)
#define SYST_TICKINT (1u << 1)
#define SYST_CLKSOURCE_CPU (1u << 2)
#define SYST_RELOAD 0x00FFFFFFu

#define SCB_CPACR REG32(0xE000ED88u)
#define DEMCR REG32(0xE000EDFCu)
#define DEMCR_TRCENA (1u << 24)
#define DWT_CTRL REG32(0xE0001000u)
#define DWT_CYCCNT REG32(0xE0001004u)
#define DWT_LAR REG32(0xE0001FB0u) /* Cortex-M7: the DWT is locked after reset */
#define DWT_CTRL_NOCYCCNT (1u << 25)
#define DWT_CTRL_CYCCNTENA (1u << 0)

extern uint32_t __stack_top, __data_start, __data_end, __data_load, __bss_start, __bss_end;
extern int main(void);

void eb_reset_handler(void);
void eb_systick_handler(void);
static void default_handler(void);
static void fault_handler(void);

/* The core exceptions only (no device interrupt is used). */
__attribute__((section(".vectors"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void))(&__stack_top),
    eb_reset_handler,
    default_handler, /* NMI */
    fault_handler,   /* HardFault */
    fault_handler,   /* MemManage */
    fault_handler,   /* BusFault */
    fault_handler,   /* UsageFault */
    0, 0, 0, 0,
    default_handler, /* SVCall */
    default_handler, /* DebugMon */
    0,
    default_handler, /* PendSV */
    eb_systick_handler,
};

__attribute__((noinline)) static void init_memory(void) {
    uint32_t *src = &__data_load;
    for (uint32_t *dst = &__data_start; dst < &__data_end;) *dst++ = *src++;
    for (uint32_t *dst = &__bss_start; dst < &__bss_end;) *dst++ = 0;
}

void eb_reset_handler(void) {
#if defined(__ARM_FP) || defined(__ARM_FEATURE_MVE)
    /* CP10/CP11 full access before the first floating-point instruction. */
    SCB_CPACR |= (0xFu << 20);
    __asm volatile("dsb\n\tisb" ::: "memory");
#endif
    init_memory();
    (void)main();
    for (;;) {
    }
}

static void default_handler(void) {
    for (;;) {
    }
}

static void fault_handler(void) {
    static const char msg[] = "\r\ne-[hard fault]\r\n";
    eb_uart_write((const uint8_t *)msg, sizeof msg - 1);
    for (;;) {
    }
}

/* ---- counter ---- */

static uint8_t use_dwt;
static volatile uint32_t cyc_last, cyc_high; /* DWT: last CYCCNT seen, wraps */
static volatile uint32_t systick_wraps;      /* SysTick fallback */

static uint32_t irq_save(void) {
    uint32_t primask;
    __asm volatile("mrs %0, primask\n\tcpsid i" : "=r"(primask)::"memory");
    return primask;
}

static void irq_restore(uint32_t primask) {
    __asm volatile("msr primask, %0" ::"r"(primask) : "memory");
}

/* CYCCNT read and widened; the SysTick interrupt calls it often enough (every
 * 2^24 cycles) that no 2^32 wrap is missed between two calls. */
static uint64_t dwt_now(void) {
    const uint32_t primask = irq_save();
    const uint32_t c = DWT_CYCCNT;
    if (c < cyc_last) cyc_high++;
    cyc_last = c;
    const uint64_t v = ((uint64_t)cyc_high << 32) | c;
    irq_restore(primask);
    return v;
}

void eb_systick_handler(void) {
    if (use_dwt) (void)dwt_now();
    else systick_wraps++;
}

static uint64_t systick_now(void) {
    uint32_t wraps, value;
    do {
        wraps = systick_wraps;
        value = SYST_CVR;
    } while (wraps != systick_wraps);
    /* Reads 0 just after a counted wrap, then counts down from the reload. */
    return ((uint64_t)wraps << 24) + ((SYST_RELOAD + 1u - value) & SYST_RELOAD);
}

static int dwt_try_enable(void) {
#if defined(__ARM_ARCH_6M__) || defined(__ARM_ARCH_8M_BASE__)
    return 0; /* M0/M0+/M23: no cycle counter */
#else
    DEMCR |= DEMCR_TRCENA;
    DWT_LAR = 0xC5ACCE55u;
    if (DWT_CTRL & DWT_CTRL_NOCYCCNT) return 0;
    DWT_CYCCNT = 0;
    DWT_CTRL |= DWT_CTRL_CYCCNTENA;
    /* A counter that does not move is as good as none. */
    const uint32_t a = DWT_CYCCNT;
    for (volatile int i = 0; i < 16; i++) {
    }
    return DWT_CYCCNT != a;
#endif
}

void eb_board_init(void) {
    eb_hal_init(EB_BAUD);
    use_dwt = (uint8_t)dwt_try_enable();
    SYST_RVR = SYST_RELOAD;
    SYST_CVR = 0;
    SYST_CSR = SYST_ENABLE | SYST_TICKINT | SYST_CLKSOURCE_CPU;
}

uint64_t eb_counter_now(void) { return use_dwt ? dwt_now() : systick_now(); }
const char *eb_counter_kind(void) { return use_dwt ? "cycles" : "ticks"; }
uint32_t eb_counter_hz(void) { return eb_hal_clock_hz(); }
uint32_t eb_clock_hz(void) { return eb_hal_clock_hz(); }
const char *eb_board_name(void) { return EB_BOARD_NAME; }

/* ---- UART ---- */

void eb_uart_write(const uint8_t *data, uint32_t n) {
    for (uint32_t i = 0; i < n; i++) eb_hal_uart_putc(data[i]);
}

int eb_uart_read_byte(uint32_t timeout_us) {
    int c = eb_hal_uart_getc_nonblock();
    if (c >= 0) return c;
    const uint64_t start = eb_counter_now();
    const uint64_t limit = (uint64_t)timeout_us * (eb_counter_hz() / 1000000u);
    for (;;) {
        c = eb_hal_uart_getc_nonblock();
        if (c >= 0) return c;
        if (eb_counter_now() - start >= limit) return -1;
    }
}
