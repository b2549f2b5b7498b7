/* What a real board provides to the generic Cortex-M port (ports/cortexm/):
 * four functions, in ports/cortexm/boards/<board>.c (the board profile's name
 * with '-' as '_'), written against the vendor's registers or its HAL.
 *
 * The port itself brings the vector table, the reset handler (FPU on, .data and
 * .bss set up), the counter (DWT cycle counter, or SysTick ticks where the core
 * has no DWT cycle counter, e.g. Cortex-M0+) and the UART timeouts. No interrupt
 * other than SysTick is ever enabled: the UART is polled. */
#ifndef EB_HAL_H
#define EB_HAL_H

#include <stdint.h>

/* Clocks (the core clock the profile names, where the board can), the UART's
 * pins, and the UART at `baud`, 8N1. Called once, before anything else. */
void eb_hal_init(uint32_t baud);

/* Send one byte; may wait until the transmitter has room. */
void eb_hal_uart_putc(uint8_t c);

/* A received byte 0..255, or -1 when none is waiting. Must not block. Should
 * clear a receiver overrun, so that reception continues after one. */
int eb_hal_uart_getc_nonblock(void);

/* The core clock the board runs at after eb_hal_init() (Hz). */
uint32_t eb_hal_clock_hz(void);

#endif
