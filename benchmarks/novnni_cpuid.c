/* LD_PRELOAD library of benchmarks/novnni_vm.py: the process sees a CPUID without the features
 * listed in $EDGECNN_CPUID_MASK ("leaf.subleaf.reg.bit,...", reg 0..3 = eax ebx ecx edx).
 *
 * Why: where KVM cannot boot a stock kernel (this project's machines run PVM, a paravirtual KVM),
 * CPUID faulting (arch_prctl ARCH_SET_CPUID, Intel's "cpuid_fault") does for user space what
 * `qemu -cpu host,-avx512vnni` does: every CPUID the process executes traps, and this library's
 * SIGSEGV handler answers it with the masked bits. LLVM's host-CPU detection (so Numba and edgecnn's
 * kernel choice), XNNPACK's cpuinfo and numpy then all see a CPU without those features; nothing
 * else changes (same cores, same memory). The setting is per thread, inherited by threads and
 * forks, and set again by this constructor after each exec (LD_PRELOAD is inherited).
 *
 * Programs that install their own SIGSEGV handler (Python's faulthandler, pytest) keep working:
 * sigaction() is interposed, their handler is stored and called for every other SIGSEGV.
 * $EDGECNN_CPUID_REPORT=1 prints how many CPUIDs were answered, at exit (a hot-path CPUID would
 * distort timings: there should be a few hundred, all at start-up). */
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <cpuid.h>
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#define MAX_MASKS 32
static struct { unsigned leaf, subleaf, reg, bit; } masks[MAX_MASKS];
static int n_masks;
static struct sigaction user_segv; /* what the program asked for SIGSEGV (SIG_DFL at first) */
static unsigned long answered;
static int (*real_sigaction)(int, const struct sigaction *, struct sigaction *);

static void chain(int sig, siginfo_t *info, void *context) {
    if (user_segv.sa_flags & SA_SIGINFO) {
        user_segv.sa_sigaction(sig, info, context);
    } else if (user_segv.sa_handler != SIG_IGN && user_segv.sa_handler != SIG_DFL) {
        user_segv.sa_handler(sig);
    } else { /* default: die of this signal, as without this library */
        struct sigaction dfl = {.sa_handler = SIG_DFL};
        real_sigaction(sig, &dfl, NULL);
        raise(sig);
    }
}

static void on_segv(int sig, siginfo_t *info, void *context) {
    greg_t *r = ((ucontext_t *)context)->uc_mcontext.gregs;
    const unsigned char *ip = (const unsigned char *)r[REG_RIP];
    /* CPUID faulting raises #GP, reported as SI_KERNEL: RIP is then mapped and executable. */
    if (info->si_code != SI_KERNEL || ip[0] != 0x0f || ip[1] != 0xa2) {
        chain(sig, info, context);
        return;
    }
    unsigned leaf = (unsigned)r[REG_RAX], subleaf = (unsigned)r[REG_RCX], v[4];
    syscall(SYS_arch_prctl, ARCH_SET_CPUID, 1);
    __cpuid_count(leaf, subleaf, v[0], v[1], v[2], v[3]);
    syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0);
    for (int i = 0; i < n_masks; i++)
        if (masks[i].leaf == leaf && masks[i].subleaf == subleaf) v[masks[i].reg] &= ~(1u << masks[i].bit);
    r[REG_RAX] = v[0], r[REG_RBX] = v[1], r[REG_RCX] = v[2], r[REG_RDX] = v[3];
    r[REG_RIP] += 2;
    __atomic_add_fetch(&answered, 1, __ATOMIC_RELAXED);
}

int sigaction(int sig, const struct sigaction *act, struct sigaction *old) {
    if (sig != SIGSEGV || !n_masks) return real_sigaction(sig, act, old);
    if (old) *old = user_segv;
    if (act) user_segv = *act;
    return 0;
}

static void report(void) {
    if (getenv("EDGECNN_CPUID_REPORT"))
        fprintf(stderr, "novnni_cpuid: pid %d answered %lu CPUIDs\n", (int)getpid(), answered);
}

__attribute__((constructor)) static void start(void) {
    real_sigaction = dlsym(RTLD_NEXT, "sigaction");
    const char *spec = getenv("EDGECNN_CPUID_MASK");
    for (const char *s = spec; s && *s && n_masks < MAX_MASKS; s = strchr(s, ',') ? strchr(s, ',') + 1 : "") {
        if (sscanf(s, "%u.%u.%u.%u", &masks[n_masks].leaf, &masks[n_masks].subleaf, &masks[n_masks].reg,
                   &masks[n_masks].bit) == 4 && masks[n_masks].reg < 4 && masks[n_masks].bit < 32)
            n_masks++;
    }
    if (!n_masks) return;
    struct sigaction ours = {.sa_sigaction = on_segv, .sa_flags = SA_SIGINFO | SA_ONSTACK};
    real_sigaction(SIGSEGV, &ours, NULL);
    if (syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0) != 0) {
        fprintf(stderr, "novnni_cpuid: this CPU or kernel has no CPUID faulting (arch_prctl ARCH_SET_CPUID)\n");
        _exit(125);
    }
    atexit(report);
}
