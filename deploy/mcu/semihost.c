/* ARM semihosting calls: r0 = operation, r1 = pointer to the argument block; result in r0. */
#include "semihost.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize ("no-tree-loop-distribute-patterns") /* no memset/strlen calls: there is no libc */
#endif

static int ec_semihost(int operation, const void *arguments)
{
    register int r0 __asm__("r0") = operation;
    register const void *r1 __asm__("r1") = arguments;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

static size_t ec_length(const char *text)
{
    size_t n = 0;
    while (text[n]) ++n;
    return n;
}

int ec_semihost_open(const char *path, int mode)
{
    const uintptr_t block[3] = {(uintptr_t)path, (uintptr_t)mode, ec_length(path)};
    return ec_semihost(0x01, block);
}

size_t ec_semihost_read(int handle, void *buffer, size_t size)
{
    const uintptr_t block[3] = {(uintptr_t)handle, (uintptr_t)buffer, size};
    return size - (size_t)ec_semihost(0x06, block); /* SYS_READ returns the bytes NOT read */
}

size_t ec_semihost_write(int handle, const void *buffer, size_t size)
{
    const uintptr_t block[3] = {(uintptr_t)handle, (uintptr_t)buffer, size};
    return size - (size_t)ec_semihost(0x05, block);
}

void ec_semihost_close(int handle)
{
    const uintptr_t block[1] = {(uintptr_t)handle};
    ec_semihost(0x02, block);
}

void ec_semihost_print(const char *text)
{
    ec_semihost(0x04, text); /* SYS_WRITE0 */
}

void ec_semihost_exit(int code)
{
    const uintptr_t block[2] = {0x20026u /* ADP_Stopped_ApplicationExit */, (uintptr_t)code};
    for (;;) ec_semihost(0x20, block); /* SYS_EXIT_EXTENDED: QEMU exits with `code` */
}
