/* Bare-metal test harness for edgecnn C models on a Cortex-M (QEMU mps2-an386, semihosting).
   harness_models.h (written by the test) includes each model's header and lists the models:
       #define EC_MAX_INPUT 490
       #define EC_MAX_OUTPUT 12
       static const ec_model ec_models[] = {{"in0.bin", "out0.bin", kws_invoke, KWS_INPUT_SIZE, KWS_OUTPUT_SIZE, 0}};
   For every model, records (one input each) are read from its input file until it ends (into the model's own
   buffer, kws_input_buffer() in place of the 0, for a file exported with its input in its arena: the use
   docs/mcu.md describes, which needs no copy); each output is
   written to its output file, and one line per inference goes to the console:
       run <model> <record> ticks <timer ticks> stack <bytes of stack the inference used>
   APB timer 0 runs on the 25 MHz peripheral clock; under `qemu -icount shift=0` every instruction takes 1 ns of
   virtual time, so ticks * (1e9 / clock Hz) instructions ran (40 per tick at mps2's 25 MHz). */
#include <stddef.h>
#include <stdint.h>

#include "semihost.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize ("no-tree-loop-distribute-patterns") /* no memset/strlen calls: there is no libc */
#endif

typedef struct {
    const char *input_file, *output_file;
    int (*invoke)(const int8_t *input, int8_t *output);
    size_t input_size, output_size;
    int8_t *(*input_buffer)(void); /* a model exported with its input in its arena: the record goes there */
} ec_model;

#include "harness_models.h"

/* CMSDK APB timer 0 of the MPS2 boards: a 32-bit down-counter on the 25 MHz peripheral clock, no interrupts
   (a 32-bit count of 40-instruction ticks lasts 171 G instructions). */
#define EC_TIMER_CTRL (*(volatile uint32_t *)0x40000000u)
#define EC_TIMER_VALUE (*(volatile uint32_t *)0x40000004u)
#define EC_TIMER_RELOAD (*(volatile uint32_t *)0x40000008u)
#define EC_STACK_PAINT 0xA5A5A5A5u

extern uint32_t __stack_limit;

static int8_t ec_input[EC_MAX_INPUT];
static int8_t ec_output[EC_MAX_OUTPUT];

static uint32_t ec_ticks(void)
{
    return 0xFFFFFFFFu - EC_TIMER_VALUE; /* counts up from the start */
}

static void ec_print_number(uint64_t v)
{
    char text[24];
    int i = 23;
    text[i] = 0;
    do {
        text[--i] = (char)('0' + (int)(v % 10u));
        v /= 10u;
    } while (v);
    ec_semihost_print(text + i);
}

/* Paints the free stack below the current stack pointer (less a margin for this call's own frame) and
   returns that pointer; ec_stack_used() then finds the deepest word the inference wrote. */
static uint32_t *ec_paint_stack(void)
{
    uintptr_t sp;
    uint32_t *p;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    for (p = &__stack_limit; (uintptr_t)p < sp - 64u; ++p) *(volatile uint32_t *)p = EC_STACK_PAINT;
    return (uint32_t *)sp;
}

static size_t ec_stack_used(const uint32_t *top)
{
    const uint32_t *p = &__stack_limit;
    while (p < top && *(volatile const uint32_t *)p == EC_STACK_PAINT) ++p;
    return (size_t)((const char *)top - (const char *)p);
}

/* 2 * iterations instructions (subs, bne): the console line "calibration <instructions> ticks <ticks>"
   lets the test read the instructions per timer tick instead of assuming them. */
static void ec_calibrate(void)
{
    const uint32_t iterations = 1000000u;
    uint32_t start, stop;
    register uint32_t n __asm__("r0") = iterations;
    start = ec_ticks();
    __asm__ volatile("1: subs %0, %0, #1\n\tbne 1b" : "+r"(n) : : "cc");
    stop = ec_ticks();
    ec_semihost_print("calibration ");
    ec_print_number(2u * (uint64_t)iterations);
    ec_semihost_print(" ticks ");
    ec_print_number((uint32_t)(stop - start));
    ec_semihost_print("\n");
}

int main(void)
{
    size_t m;
    EC_TIMER_RELOAD = 0xFFFFFFFFu;
    EC_TIMER_VALUE = 0xFFFFFFFFu;
    EC_TIMER_CTRL = 1u; /* enable */
    ec_calibrate();
    for (m = 0; m < sizeof ec_models / sizeof ec_models[0]; ++m) {
        const ec_model *model = &ec_models[m];
        const int in = ec_semihost_open(model->input_file, 1), out = ec_semihost_open(model->output_file, 5);
        uint64_t record = 0;
        if (in < 0 || out < 0) {
            ec_semihost_print("harness: cannot open a model's input or output file\n");
            return 2;
        }
        for (;; ++record) {
            uint32_t start, stop;
            uint32_t *top;
            size_t stack;
            int status;
            int8_t *const input = model->input_buffer ? model->input_buffer() : ec_input;
            const size_t got = ec_semihost_read(in, input, model->input_size);
            if (got == 0) break;
            if (got != model->input_size) {
                ec_semihost_print("harness: a partial input record\n");
                return 2;
            }
            top = ec_paint_stack();
            start = ec_ticks();
            status = model->invoke(input, ec_output);
            stop = ec_ticks();
            stack = ec_stack_used(top);
            if (status != 0) {
                ec_semihost_print("harness: inference failed\n");
                return 1;
            }
            if (ec_semihost_write(out, ec_output, model->output_size) != model->output_size) return 2;
            ec_semihost_print("run ");
            ec_print_number(m);
            ec_semihost_print(" ");
            ec_print_number(record);
            ec_semihost_print(" ticks ");
            ec_print_number((uint32_t)(stop - start));
            ec_semihost_print(" stack ");
            ec_print_number(stack);
            ec_semihost_print("\n");
        }
        ec_semihost_close(in);
        ec_semihost_close(out);
    }
    return 0;
}
