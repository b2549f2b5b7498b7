/* Board port for QEMU's Arm MPS2 machines: mps2-an386 (Cortex-M4F) and
 * mps2-an500 (Cortex-M7). See eb_board.h for the contract.
 *
 * What QEMU 7.2 models (hw/arm/mps2.c, hw/char/cmsdk-apb-uart.c):
 *  - 4 MiB SSRAM at 0x00000000 (the image, our "flash") and 4 MiB at 0x20000000;
 *  - UART0, a CMSDK APB UART, at 0x40004000 on both images, wired to -serial;
 *    its RX holds one byte and QEMU applies back-pressure while it is full, so a
 *    polled driver loses nothing however slowly it reads;
 *  - SysTick clocked from the 25 MHz system clock when CLKSOURCE = 1.
 *
 * The counter. Under `-icount shift=S,sleep=off` each executed instruction
 * advances QEMU's virtual clock by exactly 2^S ns, and SysTick counts that clock
 * at 25 MHz (one tick per 40 ns). Measured with a subs/bne loop of known length:
 * at S = 0 a tick is exactly 40 instructions (counts come in steps of 40, the
 * best resolution S = 0 allows). devices/qemu.py therefore runs QEMU with
 * S = EB_ICOUNT_SHIFT = 7 (128 ns per instruction, 3.2 ticks per instruction),
 * where eb_counter_now() recovers the exact instruction count whatever the
 * (fixed, unknown) phase of the tick grid: see the arithmetic there. At S = 6
 * no one formula is exact for every phase (measured: rounding up was off by one
 * at some phases, rounding to nearest right, on one image), hence 7. Measured:
 * a loop of n iterations reads back 2n + constant, identical over 24000 runs
 * across 10 SysTick wraps (and the same at S = 8), i.e. a
 * resolution of one instruction. A SysTick wrap runs a handler of exactly
 * SYSTICK_HANDLER_INSTRUCTIONS instructions, subtracted again, so a wrap inside
 * a measured run does not show. The count is reported as "instructions" at the
 * board clock (counter_hz = clock_hz), i.e. a latency estimate that assumes one
 * instruction per cycle; the host labels it emulated.
 *
 * Timeouts (eb_uart_read_byte) are in the same board time, so they are
 * deterministic too: 50 ms is 1.25 M instructions at 25 MHz. */
#include <stdint.h>

#include "eb_board.h"

#ifndef EB_BOARD_NAME
#define EB_BOARD_NAME "mps2"
#endif
#ifndef EB_CLOCK_HZ
#define EB_CLOCK_HZ 25000000u
#endif
#ifndef EB_BAUD
#define EB_BAUD 115200u
#endif
/* Must match the -icount shift devices/qemu.py starts QEMU with (build.py passes
 * it from there). */
#ifndef EB_ICOUNT_SHIFT
#define EB_ICOUNT_SHIFT 7
#endif

#define REG32(addr) (*(volatile uint32_t *)(addr))

/* CMSDK APB UART0 */
#define UART0_BASE 0x40004000u
#define UART_DATA REG32(UART0_BASE + 0x000)
#define UART_STATE REG32(UART0_BASE + 0x004)
#define UART_CTRL REG32(UART0_BASE + 0x008)
#define UART_BAUDDIV REG32(UART0_BASE + 0x010)
#define UART_STATE_TXFULL (1u << 0)
#define UART_STATE_RXFULL (1u << 1)
#define UART_CTRL_TX_EN (1u << 0)
#define UART_CTRL_RX_EN (1u << 1)

/* SysTick and the system control block */
#define SYST_CSR REG32(0xE000E010u)
#define SYST_RVR REG32(0xE000E014u)
#define SYST_CVR REG32(0xE000E018u)
#define SCB_CPACR REG32(0xE000ED88u)
#define SCB_SHPR3 REG32(0xE000ED20u)
#define SYST_ENABLE (1u << 0)
#define SYST_TICKINT (1u << 1)
#define SYST_CLKSOURCE_CPU (1u << 2)
#define SYST_RELOAD 0x00FFFFFFu /* 24 bits: a wrap every 16.7 M ticks */

/* System clock that SysTick counts (QEMU's SYSCLK_FRQ) and ns per tick. */
#define SYSCLK_HZ 25000000u
#define NS_PER_TICK (1000000000u / SYSCLK_HZ)

extern uint32_t __stack_top, __data_start, __data_end, __data_load, __bss_start, __bss_end;
extern int main(void);

/* SysTick wraps so far; written only by eb_systick_handler (assembly). */
volatile uint32_t eb_mps2_systick_wraps;
#define SYSTICK_HANDLER_INSTRUCTIONS 5u
/* The tick count eb_board_init() started from: readings are converted relative
 * to it (see eb_counter_now()). */
static uint64_t ticks_at_init;

void eb_reset_handler(void);
static void default_handler(void);
static uint64_t ticks_now(uint32_t *wraps_out);
static void hardfault_handler(void);
void eb_systick_handler(void);

/* Only the core exceptions: the firmware polls the UART, so no device IRQ is
 * ever enabled. Placed first in flash by the linker script (.vectors). */
__attribute__((section(".vectors"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void))(&__stack_top),
    eb_reset_handler,
    default_handler,   /* NMI */
    hardfault_handler, /* HardFault */
    hardfault_handler, /* MemManage */
    hardfault_handler, /* BusFault */
    hardfault_handler, /* UsageFault */
    0, 0, 0, 0,
    default_handler,   /* SVCall */
    default_handler,   /* DebugMon */
    0,
    default_handler,   /* PendSV */
    eb_systick_handler,
};

/* Kept out of line so that nothing in it runs before the FPU is on. */
__attribute__((noinline)) static void init_memory(void) {
    uint32_t *src = &__data_load;
    for (uint32_t *dst = &__data_start; dst < &__data_end;) *dst++ = *src++;
    for (uint32_t *dst = &__bss_start; dst < &__bss_end;) *dst++ = 0;
}

void eb_reset_handler(void) {
#if defined(__ARM_FP) || defined(__ARM_FEATURE_MVE)
    /* Full access to CP10/CP11 before any floating-point instruction: a
     * hard-float build faults on its first FP instruction otherwise. */
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

static void hardfault_handler(void) {
    static const char msg[] = "\r\ne-[hard fault]\r\n";
    eb_uart_write((const uint8_t *)msg, sizeof msg - 1);
    for (;;) {
    }
}

/* Exactly SYSTICK_HANDLER_INSTRUCTIONS instructions, in assembly so that the
 * compiler cannot change the count: eb_counter_now() subtracts them, so a wrap
 * that lands inside a measured run does not show up in its count. */
__attribute__((naked)) void eb_systick_handler(void) {
    __asm volatile(
        "ldr r0, =eb_mps2_systick_wraps\n\t"
        "ldr r1, [r0]\n\t"
        "adds r1, r1, #1\n\t"
        "str r1, [r0]\n\t"
        "bx lr\n\t"
        ".ltorg");
}

void eb_board_init(void) {
    UART_BAUDDIV = SYSCLK_HZ / EB_BAUD; /* QEMU ignores the rate but wants >= 16 */
    UART_CTRL = UART_CTRL_TX_EN | UART_CTRL_RX_EN;

    SCB_SHPR3 = (SCB_SHPR3 & 0x00FFFFFFu); /* SysTick at the highest priority */
    SYST_RVR = SYST_RELOAD;
    SYST_CVR = 0;
    SYST_CSR = SYST_ENABLE | SYST_TICKINT | SYST_CLKSOURCE_CPU;
    uint32_t wraps;
    ticks_at_init = ticks_now(&wraps);
}

void eb_uart_write(const uint8_t *data, uint32_t n) {
    for (uint32_t i = 0; i < n; i++) {
        while (UART_STATE & UART_STATE_TXFULL) {
        }
        UART_DATA = data[i];
    }
}

/* SysTick ticks since the counter was enabled, 64 bits. The wrap count is
 * re-read to catch a wrap between the two reads (the interrupt runs in between).
 * The count reads 0 just after a wrap has been counted, and 1..2^24-1 as it
 * counts down from the reload value, hence the modulo. */
static uint64_t ticks_now(uint32_t *wraps_out) {
    uint32_t wraps, value;
    do {
        wraps = eb_mps2_systick_wraps;
        value = SYST_CVR;
    } while (wraps != eb_mps2_systick_wraps);
    *wraps_out = wraps;
    return ((uint64_t)wraps << 24) + ((SYST_RELOAD + 1u - value) & SYST_RELOAD);
}

uint64_t eb_counter_now(void) {
    uint32_t wraps;
    const uint64_t ticks = ticks_now(&wraps) - ticks_at_init;
#if EB_ICOUNT_SHIFT >= 7
    /* n instructions after the reference reading have been seen as
     * t = floor((P n + r) / 40) ticks, P = 2^shift ns per instruction, for an
     * unknown but fixed phase r in [0, 40). Then 40 t + 64 lies in
     * (P n + r + 24, P n + r + 64], inside [P n, P n + P) for every r when P >= 128,
     * so the division below gives n exactly: a resolution of one instruction. */
    const uint64_t n = (ticks * NS_PER_TICK + 64u) >> EB_ICOUNT_SHIFT;
#else
    /* Several instructions per tick (shift 0: 40): the resolution is that. */
    const uint64_t n = (ticks * NS_PER_TICK) >> EB_ICOUNT_SHIFT;
#endif
    return n - (uint64_t)wraps * SYSTICK_HANDLER_INSTRUCTIONS;
}

int eb_uart_read_byte(uint32_t timeout_us) {
    if (UART_STATE & UART_STATE_RXFULL) return (int)(UART_DATA & 0xFFu);
    const uint64_t start = eb_counter_now();
    const uint64_t limit = (uint64_t)timeout_us * (EB_CLOCK_HZ / 1000000u);
    while (!(UART_STATE & UART_STATE_RXFULL)) {
        if (eb_counter_now() - start >= limit) return -1;
    }
    return (int)(UART_DATA & 0xFFu);
}

const char *eb_counter_kind(void) { return "instructions"; }
uint32_t eb_counter_hz(void) { return EB_CLOCK_HZ; }
uint32_t eb_clock_hz(void) { return EB_CLOCK_HZ; }
const char *eb_board_name(void) { return EB_BOARD_NAME; }
