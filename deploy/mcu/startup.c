/* Minimal Cortex-M startup for edgecnn's bare-metal builds (no libc): vector table, .data copy, .bss zero,
   then main(). Faults end the program through semihosting. */
#include <stdint.h>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize ("no-tree-loop-distribute-patterns") /* the loops below must not become memcpy/memset */
#endif

extern uint32_t __data_start, __data_end, __data_load, __bss_start, __bss_end, __stack_top;
extern int main(void);
void Reset_Handler(void);
void ec_fault_handler(void);
void ec_semihost_exit(int code);

typedef void (*ec_vector)(void);

__attribute__((section(".vectors"), used)) static const ec_vector ec_vectors[16] = {
    (ec_vector)(uintptr_t)&__stack_top, Reset_Handler,
    ec_fault_handler, ec_fault_handler, ec_fault_handler, ec_fault_handler, ec_fault_handler, /* NMI..Usage */
    0, 0, 0, 0,
    ec_fault_handler, ec_fault_handler, 0, ec_fault_handler, /* SVC, DebugMon, reserved, PendSV */
    ec_fault_handler, /* SysTick: not used */
};

void ec_fault_handler(void)
{
    ec_semihost_exit(3);
}

void Reset_Handler(void)
{
    uint32_t *src = &__data_load, *dst = &__data_start;
    while (dst < &__data_end) *dst++ = *src++;
    for (dst = &__bss_start; dst < &__bss_end; ++dst) *dst = 0;
    ec_semihost_exit(main());
}
