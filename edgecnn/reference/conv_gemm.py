"""Ungrouped convolutions as im2col + BLAS GEMM, a few images at a time, on a small thread pool.

Forward:  y  (M, O) = cols (M, KH*KW*C) @ w_flat.T        M = the chunk's output pixels
Backward: dw (O, K) = sum over chunks of dy.T @ cols       (one GEMM per chunk, summed in chunk order)
          dx        = im2col(dy) @ flipped w  (stride 1), col2im(dy @ w_flat) (strided)

Each chunk's columns (~1-2 MB) are built, used and dropped while still in the core's
cache, so no batch-sized im2col buffer exists. The chunks are a fixed function of the
shapes, never of the thread count, and the weight gradient sums them in order: a run
repeats bit for bit on any number of threads.

Threads (workers.py): numpy's OpenBLAS runs single-threaded inside each worker, and the
workers claim chunks. Measured on 2 shared cores: OpenBLAS' own threads ran these skinny
GEMMs at 7-25 GMAC/s under load, one thread per chunk at 33-59 GMAC/s per core.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from edgecnn.reference.workers import run_chunks, scratch, sum_in_order

ROWS_PER_CHUNK = 2048  # output pixels per GEMM: the columns of one chunk stay in L2
MIN_CHUNKS = 4         # at least this many chunks (when the batch allows), so small maps still split


# ----------------------------------------------------------------------------- Numba layout moves

@njit(cache=True, nogil=True)
def im2col(x, n0, n1, kh, kw, sh, sw, dh, dw, top, left, oh, ow, cols):
    """Images [n0, n1) of x (N,H,W,C) -> cols ((n1-n0)*OH*OW, KH*KW*C); rows (n, oy, ox), columns
    (ky, kx, c) as in OHWI filters; taps outside the image are zeros (the padding).

    Flat indices throughout: a kernel row that lies inside the image (dilation 1) is one
    contiguous run of KW*C values, copied by one vectorized loop."""
    _, h, wd, c = x.shape
    k = kh * kw * c
    run = kw * c
    xf = x.reshape(-1)
    cf = cols.reshape(-1)
    r = 0
    for n in range(n0, n1):
        for oy in range(oh):
            for ox in range(ow):
                ix0 = ox * sw - left
                inside = dw == 1 and ix0 >= 0 and ix0 + kw <= wd
                for ky in range(kh):
                    dst = r * k + ky * run
                    iy = oy * sh - top + ky * dh
                    out = cf[dst:dst + run]  # views indexed from 0: LLVM sees no negative index
                    if iy < 0 or iy >= h:
                        out[:] = 0.0
                    elif inside:
                        src = xf[((n * h + iy) * wd + ix0) * c:]
                        for q in range(run):
                            out[q] = src[q]
                    else:
                        for kx in range(kw):
                            ix = ix0 + kx * dw
                            part = out[kx * c:]
                            if 0 <= ix < wd:
                                src = xf[((n * h + iy) * wd + ix) * c:]
                                for q in range(c):
                                    part[q] = src[q]
                            else:
                                for q in range(c):
                                    part[q] = 0.0
                r += 1


@njit(cache=True, nogil=True)
def col2im_add(dcols, n0, n1, kh, kw, sh, sw, dh, dw, top, left, oh, ow, dx):
    """The adjoint of im2col: dx[n0:n1] = 0, then each row of dcols added back onto its taps.

    Written out beside im2col, not as one kernel with a gather/scatter flag: that form
    measured 2-3.7x slower (the flag kept LLVM from vectorizing the runs)."""
    _, h, wd, c = dx.shape
    k = kh * kw * c
    run = kw * c
    xf = dx.reshape(-1)
    cf = dcols.reshape(-1)
    xf[n0 * h * wd * c:n1 * h * wd * c] = 0.0
    r = 0
    for n in range(n0, n1):
        for oy in range(oh):
            for ox in range(ow):
                ix0 = ox * sw - left
                inside = dw == 1 and ix0 >= 0 and ix0 + kw <= wd
                for ky in range(kh):
                    src = cf[r * k + ky * run:]
                    iy = oy * sh - top + ky * dh
                    if iy < 0 or iy >= h:
                        continue
                    if inside:
                        dst = xf[((n * h + iy) * wd + ix0) * c:]
                        for q in range(run):
                            dst[q] += src[q]
                    else:
                        for kx in range(kw):
                            ix = ix0 + kx * dw
                            if 0 <= ix < wd:
                                dst = xf[((n * h + iy) * wd + ix) * c:]
                                part = src[kx * c:]
                                for q in range(c):
                                    dst[q] += part[q]
                r += 1


def chunks(n_img, pixels):
    """Images per chunk and the number of chunks: a function of the shapes alone."""
    per = max(1, min(-(-ROWS_PER_CHUNK // pixels), -(-n_img // MIN_CHUNKS)))
    return per, -(-n_img // per)


# ----------------------------------------------------------------------------- forward / backward

def conv_gemm_forward(x, w, b, stride, pad, dilation, oh, ow):
    """x (N,H,W,C), w (O,KH,KW,C), b (O,) or None -> y (N,OH,OW,O); groups = 1."""
    n_img, _, _, c_in = x.shape
    c_out, kh, kw, _ = w.shape
    k = kh * kw * c_in
    (sh, sw), (dh, dw), (top, _, left, _) = stride, dilation, pad
    w_t = w.reshape(c_out, k).T
    y = np.empty((n_img, oh, ow, c_out), dtype=x.dtype)
    y_rows = y.reshape(-1, c_out)
    per, n_chunks = chunks(n_img, oh * ow)

    def task(c):
        n0, n1 = c * per, min(n_img, (c + 1) * per)
        cols = scratch("cols", ((n1 - n0) * oh * ow, k), x.dtype)
        im2col(x, n0, n1, kh, kw, sh, sw, dh, dw, top, left, oh, ow, cols)
        out = y_rows[n0 * oh * ow:n1 * oh * ow]
        np.matmul(cols, w_t, out=out)
        if b is not None:
            out += b

    run_chunks(task, n_chunks)
    return y


def conv_gemm_backward(x, w, dy, stride, pad, dilation, need_dx, need_db=False):
    """(dx or None, dw, db or None) of conv_gemm_forward from dy (N,OH,OW,O).

    Stride 1, dilation 1: dx is itself a conv (dy with the kernel flipped and its
    channel axes swapped, padded by KH-1-top, KW-1-left), so it runs as im2col + GEMM
    and writes dx once. Otherwise the rows of dy @ w_flat are scattered back (col2im),
    which measured 3x slower than im2col at stride 1, where every pixel takes 9 adds.
    """
    n_img, h, wd, c_in = x.shape
    c_out, kh, kw, _ = w.shape
    _, oh, ow, _ = dy.shape
    k = kh * kw * c_in
    (sh, sw), (dh, dw), (top, _, left, _) = stride, dilation, pad
    w_flat = w.reshape(c_out, k)
    dy_rows = dy.reshape(-1, c_out)
    per, n_chunks = chunks(n_img, max(oh * ow, h * wd))
    dw_parts = np.empty((n_chunks, c_out, k), dtype=x.dtype)
    db_parts = np.empty((n_chunks, c_out), dtype=x.dtype) if need_db else None
    dx = np.empty_like(x) if need_dx else None
    transposed = need_dx and stride == (1, 1) and dilation == (1, 1)
    if transposed:  # w_t[(ky, kx, o), c] = w[o, KH-1-ky, KW-1-kx, c]
        w_t = np.ascontiguousarray(w[:, ::-1, ::-1, :].transpose(1, 2, 0, 3)).reshape(kh * kw * c_out, c_in)
        dx_rows = dx.reshape(-1, c_in)

    def task(c):
        n0, n1 = c * per, min(n_img, (c + 1) * per)
        cols = scratch("cols", ((n1 - n0) * oh * ow, k), x.dtype)
        im2col(x, n0, n1, kh, kw, sh, sw, dh, dw, top, left, oh, ow, cols)
        dy_c = dy_rows[n0 * oh * ow:n1 * oh * ow]
        np.matmul(dy_c.T, cols, out=dw_parts[c])
        if need_db:
            np.sum(dy_c, axis=0, out=db_parts[c])
        if transposed:
            cols_t = scratch("cols_t", ((n1 - n0) * h * wd, kh * kw * c_out), x.dtype)
            im2col(dy, n0, n1, kh, kw, 1, 1, 1, 1, kh - 1 - top, kw - 1 - left, h, wd, cols_t)
            np.matmul(cols_t, w_t, out=dx_rows[n0 * h * wd:n1 * h * wd])
        elif need_dx:
            dcols = np.matmul(dy_c, w_flat, out=cols)  # cols is spent: reuse it
            col2im_add(dcols, n0, n1, kh, kw, sh, sw, dh, dw, top, left, oh, ow, dx)

    run_chunks(task, n_chunks)
    return dx, sum_in_order(dw_parts).reshape(w.shape), (sum_in_order(db_parts) if need_db else None)

