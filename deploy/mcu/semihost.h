/* ARM semihosting (bkpt 0xAB on M profile), as QEMU implements it with -semihosting-config enable=on. */
#ifndef EC_SEMIHOST_H
#define EC_SEMIHOST_H
#include <stddef.h>
#include <stdint.h>

int ec_semihost_open(const char *path, int mode); /* mode 1 = "rb", 5 = "wb"; returns a handle or -1 */
size_t ec_semihost_read(int handle, void *buffer, size_t size);        /* bytes read */
size_t ec_semihost_write(int handle, const void *buffer, size_t size); /* bytes written */
void ec_semihost_close(int handle);
void ec_semihost_print(const char *text);
void ec_semihost_exit(int code); /* QEMU exits with `code` */
#endif
