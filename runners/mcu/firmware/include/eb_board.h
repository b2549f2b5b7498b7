/* What a board port provides to the runner firmware (ports/<port>/).
 * Ports: mps2 (QEMU mps2-an386/an500: CMSDK UART, SysTick under -icount),
 * cortexm (a generic Cortex-M: DWT cycle counter with SysTick fallback, UART
 * through the vendor-HAL hooks in ports/cortexm/eb_hal.h). */
#ifndef EB_BOARD_H
#define EB_BOARD_H

#include <stdint.h>

void eb_board_init(void);                    /* clocks, UART at EB_BAUD, counter */
void eb_uart_write(const uint8_t *data, uint32_t n);
int eb_uart_read_byte(uint32_t timeout_us);  /* 0..255, or -1 after timeout_us */

uint64_t eb_counter_now(void);               /* monotonic, never wraps in practice */
/* What one count of eb_counter_now() is: "cycles", "instructions" or "ticks"
 * (SysTick ticks at eb_counter_hz()). */
const char *eb_counter_kind(void);
uint32_t eb_counter_hz(void);                /* counts per second of board time */
uint32_t eb_clock_hz(void);                  /* core clock */
const char *eb_board_name(void);

#endif
