/* eb_hal.h for the ST NUCLEO-F746ZG (STM32F746ZG), register level, no ST HAL.
 *
 * UNTESTED ON HARDWARE: this lab has no such board; the tests only check that it
 * compiles and links for cortex-m7 (tests/test_mcu_firmware.py). Register
 * addresses and bits are those of ST's RM0385 (STM32F75xxx/74xxx reference
 * manual); check them against it before trusting a first run.
 *
 * Clock: 216 MHz from the PLL fed by HSE in bypass mode (the ST-LINK's 8 MHz
 * MCO), with over-drive on and 7 flash wait states, as ST's own examples do.
 * If HSE never comes up the board stays on the 16 MHz HSI and says so through
 * eb_hal_clock_hz(), so counts still convert to the right time.
 * The ART accelerator, prefetch and the core's I-cache are on; the D-cache is
 * left off (no cache maintenance code here), which costs speed on data-heavy
 * kernels: note it beside results from this board.
 *
 * UART: USART3 on PD8 (TX) / PD9 (RX), AF7: the ST-LINK's virtual COM port. */
#include <stdint.h>

#include "eb_hal.h"

#define REG32(addr) (*(volatile uint32_t *)(addr))

#define RCC_BASE 0x40023800u
#define RCC_CR REG32(RCC_BASE + 0x00)
#define RCC_PLLCFGR REG32(RCC_BASE + 0x04)
#define RCC_CFGR REG32(RCC_BASE + 0x08)
#define RCC_AHB1ENR REG32(RCC_BASE + 0x30)
#define RCC_APB1ENR REG32(RCC_BASE + 0x40)
#define RCC_DCKCFGR2 REG32(RCC_BASE + 0x90)

#define PWR_BASE 0x40007000u
#define PWR_CR1 REG32(PWR_BASE + 0x00)
#define PWR_CSR1 REG32(PWR_BASE + 0x04)

#define FLASH_ACR REG32(0x40023C00u)

#define GPIOD_BASE 0x40020C00u
#define GPIOD_MODER REG32(GPIOD_BASE + 0x00)
#define GPIOD_OSPEEDR REG32(GPIOD_BASE + 0x08)
#define GPIOD_PUPDR REG32(GPIOD_BASE + 0x0C)
#define GPIOD_AFRH REG32(GPIOD_BASE + 0x24)

#define USART3_BASE 0x40004800u
#define USART3_CR1 REG32(USART3_BASE + 0x00)
#define USART3_BRR REG32(USART3_BASE + 0x0C)
#define USART3_ISR REG32(USART3_BASE + 0x1C)
#define USART3_ICR REG32(USART3_BASE + 0x20)
#define USART3_RDR REG32(USART3_BASE + 0x24)
#define USART3_TDR REG32(USART3_BASE + 0x28)

#define SCB_ICIALLU REG32(0xE000EF50u)
#define SCB_CCR REG32(0xE000ED14u)

#define HSI_HZ 16000000u
#define SYSCLK_PLL_HZ 216000000u

static uint32_t core_hz = HSI_HZ;
static uint32_t apb1_hz = HSI_HZ;

/* Waits for (reg & mask) == want, at most `spins` polls; 1 when it got there. */
static int wait_bits(volatile uint32_t *reg, uint32_t mask, uint32_t want, uint32_t spins) {
    while (spins--) {
        if ((*reg & mask) == want) return 1;
    }
    return 0;
}

static void clock_216mhz(void) {
    RCC_APB1ENR |= 1u << 28;                    /* PWREN */
    PWR_CR1 = (PWR_CR1 & ~(3u << 14)) | (3u << 14); /* VOS = scale 1 */

    RCC_CR |= (1u << 18) | (1u << 16); /* HSEBYP, HSEON */
    if (!wait_bits(&RCC_CR, 1u << 17, 1u << 17, 1000000u)) {
        RCC_CR &= ~((1u << 16) | (1u << 18));
        return; /* no HSE: stay on HSI */
    }
    /* PLL: 8 MHz / M 4 * N 216 / P 2 = 216 MHz; Q 9 gives 48 MHz for USB. */
    RCC_PLLCFGR = (4u << 0) | (216u << 6) | (0u << 16) | (1u << 22) | (9u << 24);
    RCC_CR |= 1u << 24; /* PLLON */
    if (!wait_bits(&RCC_CR, 1u << 25, 1u << 25, 1000000u)) return;

    PWR_CR1 |= 1u << 16; /* ODEN: over-drive, needed above 180 MHz */
    if (!wait_bits(&PWR_CSR1, 1u << 16, 1u << 16, 1000000u)) return;
    PWR_CR1 |= 1u << 17; /* ODSWEN */
    if (!wait_bits(&PWR_CSR1, 1u << 17, 1u << 17, 1000000u)) return;

    /* 7 wait states at 216 MHz / 2.7-3.6 V; ART and prefetch on. */
    FLASH_ACR = (FLASH_ACR & ~0xFu) | 7u | (1u << 8) | (1u << 9);
    if (!wait_bits(&FLASH_ACR, 0xFu, 7u, 1000u)) return;

    /* AHB /1, APB1 /4 (54 MHz, its limit), APB2 /2 (108 MHz), then SYSCLK = PLL. */
    RCC_CFGR = (RCC_CFGR & ~((0xFu << 4) | (7u << 10) | (7u << 13) | 3u)) | (5u << 10) |
               (4u << 13) | 2u;
    if (!wait_bits(&RCC_CFGR, 3u << 2, 2u << 2, 1000000u)) return;
    core_hz = SYSCLK_PLL_HZ;
    apb1_hz = SYSCLK_PLL_HZ / 4u;
}

static void icache_on(void) {
    __asm volatile("dsb\n\tisb" ::: "memory");
    SCB_ICIALLU = 0;
    __asm volatile("dsb\n\tisb" ::: "memory");
    SCB_CCR |= 1u << 17; /* IC */
    __asm volatile("dsb\n\tisb" ::: "memory");
}

void eb_hal_init(uint32_t baud) {
    clock_216mhz();
    icache_on();

    RCC_AHB1ENR |= 1u << 3;  /* GPIODEN */
    RCC_APB1ENR |= 1u << 18; /* USART3EN */
    (void)RCC_APB1ENR;       /* a read back: the clock is on before the first access */
    RCC_DCKCFGR2 &= ~(3u << 4); /* USART3 clocked from PCLK1 */

    /* PD8, PD9: alternate function 7, high speed, pull-up on RX. */
    GPIOD_MODER = (GPIOD_MODER & ~((3u << 16) | (3u << 18))) | (2u << 16) | (2u << 18);
    GPIOD_OSPEEDR |= (3u << 16) | (3u << 18);
    GPIOD_PUPDR = (GPIOD_PUPDR & ~(3u << 18)) | (1u << 18);
    GPIOD_AFRH = (GPIOD_AFRH & ~0xFFu) | (7u << 0) | (7u << 4);

    USART3_CR1 = 0;
    USART3_BRR = (apb1_hz + baud / 2u) / baud; /* oversampling by 16 */
    USART3_CR1 = (1u << 3) | (1u << 2) | (1u << 0); /* TE, RE, UE */
}

void eb_hal_uart_putc(uint8_t c) {
    while (!(USART3_ISR & (1u << 7))) { /* TXE */
    }
    USART3_TDR = c;
}

int eb_hal_uart_getc_nonblock(void) {
    const uint32_t isr = USART3_ISR;
    if (isr & (1u << 3)) USART3_ICR = 1u << 3; /* ORE: clear, or RX stops */
    if (isr & (1u << 5)) return (int)(USART3_RDR & 0xFFu); /* RXNE */
    return -1;
}

uint32_t eb_hal_clock_hz(void) { return core_hz; }
