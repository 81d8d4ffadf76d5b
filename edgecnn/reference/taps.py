"""Vectorizable multiply-add loops shared by the conv and dense kernels.

Each "tap" is a scalar weight times a contiguous run of a flat source buffer at a
fixed offset; outputs are contiguous rows. That is the one loop shape Numba's LLVM
reliably vectorizes (Numba turns off the SLP vectorizer, so hand-unrolled register
blocks stay scalar). Sums of 8 products are written as balanced trees, since a chain
of 8 dependent FMAs stalled the loop, and the *2 variants feed two outputs from each
source load: a pass then costs 8 loads for 16 multiply-adds. Measured on LeNet-5's
layers these run at 35-50 GMAC/s per core in float32.

Trap: Numba's on-disk cache checks only each kernel's own source file, and a cached
kernel carries the compiled code of these loops. After editing this file, delete
edgecnn/reference/__pycache__/*.nbi and *.nbc, or conv/dense keep the old loops.
"""

from numba import njit

# Not inline="always": each loop compiles once per dtype and is shared by every kernel,
# which halved compile time; a call per pass over a row costs nothing measurable.

FAST = {"reassoc", "contract"}  # lets LLVM vectorize sums and fuse FMAs; NaN/inf stay honest


@njit(cache=True, inline="always")
def same_group(o, og):
    """Can outputs o and o+1 share a pass (same group, so same input channels)?"""
    return (o + 1) % og != 0


# ----------------------------------------------------------------------------- tap loops

@njit(cache=True, fastmath=FAST)
def stream_taps(out, src, offs, shift, wts, length):
    # out[p] += sum_t wts[t] * src[shift + offs[t] + p] for p < length; 8, then 1, taps per pass
    n_taps = offs.shape[0]
    t = 0
    while t + 8 <= n_taps:
        w0, w1, w2, w3 = wts[t], wts[t + 1], wts[t + 2], wts[t + 3]
        w4, w5, w6, w7 = wts[t + 4], wts[t + 5], wts[t + 6], wts[t + 7]
        s0, s1 = src[shift + offs[t]:], src[shift + offs[t + 1]:]
        s2, s3 = src[shift + offs[t + 2]:], src[shift + offs[t + 3]:]
        s4, s5 = src[shift + offs[t + 4]:], src[shift + offs[t + 5]:]
        s6, s7 = src[shift + offs[t + 6]:], src[shift + offs[t + 7]:]
        for p in range(length):
            out[p] += (((w0 * s0[p] + w1 * s1[p]) + (w2 * s2[p] + w3 * s3[p]))
                       + ((w4 * s4[p] + w5 * s5[p]) + (w6 * s6[p] + w7 * s7[p])))
        t += 8
    while t < n_taps:
        w0, s0 = wts[t], src[shift + offs[t]:]
        for p in range(length):
            out[p] += w0 * s0[p]
        t += 1


@njit(cache=True, fastmath=FAST)
def stream_taps2(out_a, out_b, src, offs, shift, wts_a, wts_b, length):
    # stream_taps for two outputs that read the same taps: each source load feeds two FMAs
    n_taps = offs.shape[0]
    t = 0
    while t + 8 <= n_taps:
        a0, a1, a2, a3 = wts_a[t], wts_a[t + 1], wts_a[t + 2], wts_a[t + 3]
        a4, a5, a6, a7 = wts_a[t + 4], wts_a[t + 5], wts_a[t + 6], wts_a[t + 7]
        b0, b1, b2, b3 = wts_b[t], wts_b[t + 1], wts_b[t + 2], wts_b[t + 3]
        b4, b5, b6, b7 = wts_b[t + 4], wts_b[t + 5], wts_b[t + 6], wts_b[t + 7]
        s0, s1 = src[shift + offs[t]:], src[shift + offs[t + 1]:]
        s2, s3 = src[shift + offs[t + 2]:], src[shift + offs[t + 3]:]
        s4, s5 = src[shift + offs[t + 4]:], src[shift + offs[t + 5]:]
        s6, s7 = src[shift + offs[t + 6]:], src[shift + offs[t + 7]:]
        for p in range(length):
            v0, v1, v2, v3 = s0[p], s1[p], s2[p], s3[p]
            v4, v5, v6, v7 = s4[p], s5[p], s6[p], s7[p]
            out_a[p] += ((a0 * v0 + a1 * v1) + (a2 * v2 + a3 * v3)) + ((a4 * v4 + a5 * v5) + (a6 * v6 + a7 * v7))
            out_b[p] += ((b0 * v0 + b1 * v1) + (b2 * v2 + b3 * v3)) + ((b4 * v4 + b5 * v5) + (b6 * v6 + b7 * v7))
        t += 8
    while t < n_taps:
        a0, b0, s0 = wts_a[t], wts_b[t], src[shift + offs[t]:]
        for p in range(length):
            v0 = s0[p]
            out_a[p] += a0 * v0
            out_b[p] += b0 * v0
        t += 1


@njit(cache=True, fastmath=FAST)
def dot_taps2(acc_a, acc_b, a, b, src, offs, shift, length):
    # acc_a[t] += sum_p a[p] * src[shift + offs[t] + p], and the same for b; 4 taps per pass
    n_taps = offs.shape[0]
    zero = acc_a.dtype.type(0.0)
    t = 0
    while t + 4 <= n_taps:
        s0, s1 = src[shift + offs[t]:], src[shift + offs[t + 1]:]
        s2, s3 = src[shift + offs[t + 2]:], src[shift + offs[t + 3]:]
        ra0 = ra1 = ra2 = ra3 = rb0 = rb1 = rb2 = rb3 = zero
        for p in range(length):
            av, bv = a[p], b[p]
            v0, v1, v2, v3 = s0[p], s1[p], s2[p], s3[p]
            ra0 += av * v0
            ra1 += av * v1
            ra2 += av * v2
            ra3 += av * v3
            rb0 += bv * v0
            rb1 += bv * v1
            rb2 += bv * v2
            rb3 += bv * v3
        acc_a[t] += ra0
        acc_a[t + 1] += ra1
        acc_a[t + 2] += ra2
        acc_a[t + 3] += ra3
        acc_b[t] += rb0
        acc_b[t + 1] += rb1
        acc_b[t + 2] += rb2
        acc_b[t + 3] += rb3
        t += 4
    while t < n_taps:
        s0 = src[shift + offs[t]:]
        ra0 = rb0 = zero
        for p in range(length):
            ra0 += a[p] * s0[p]
            rb0 += b[p] * s0[p]
        acc_a[t] += ra0
        acc_b[t] += rb0
        t += 1


@njit(cache=True, fastmath=FAST)
def dot_taps(acc, a, src, offs, shift, length):
    # acc[t] += sum_p a[p] * src[shift + offs[t] + p]; 4 taps per pass
    n_taps = offs.shape[0]
    zero = acc.dtype.type(0.0)
    t = 0
    while t + 4 <= n_taps:
        s0, s1 = src[shift + offs[t]:], src[shift + offs[t + 1]:]
        s2, s3 = src[shift + offs[t + 2]:], src[shift + offs[t + 3]:]
        r0 = r1 = r2 = r3 = zero
        for p in range(length):
            r0 += a[p] * s0[p]
            r1 += a[p] * s1[p]
            r2 += a[p] * s2[p]
            r3 += a[p] * s3[p]
        acc[t] += r0
        acc[t + 1] += r1
        acc[t + 2] += r2
        acc[t + 3] += r3
        t += 4
    while t < n_taps:
        s0 = src[shift + offs[t]:]
        r0 = zero
        for p in range(length):
            r0 += a[p] * s0[p]
        acc[t] += r0
        t += 1


