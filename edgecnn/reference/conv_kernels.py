"""Numba kernels behind conv.py: "wide planar" for stride 1, direct loops for the rest.

Wide planar: each image is copied to a zero-padded channel-major buffer
xp[c*Hp*Wp + iy*Wp + ix], and every output row is computed for all Wp columns,
not just the OW real ones. Then tap (ky, kx, c) reads xp at the constant offset
c*Hp*Wp + ky*dh*Wp + kx*dw from output index p = oy*Wp + ox, so a tap is one long
contiguous multiply-add with a scalar weight, the loop shape LLVM vectorizes best.
The Wp - OW extra columns per row are dropped; reads that wrap into the next row
only reach those columns. Backward, dy's extra columns are zero, so they add nothing.
Row lengths are rounded up to a multiple of 8 (buffers carry zero slack), which
keeps the vector loops free of scalar tails.

Traps found by measuring (2-core Xeon, LeNet-5 at batch 64):
- The tap loops (taps.py) are the only shape Numba vectorizes well.
- Calling BLAS between Numba parallel regions made two spinning thread pools fight over
  the 2 cores (3x slower). The stride-1 kernels therefore run per chunk of images on
  workers.py's threads, the same ones as the GEMM convs and BatchNorm (one pool, which
  spins briefly between calls: an OpenMP region per call slept and woke its vCPU ~50
  times per resnet8 step). The direct kernels below still use Numba's threads.
- get_num_threads() inside a kernel makes it uncacheable, so callers pass n_threads.
"""

import numpy as np
from numba import njit, prange

from edgecnn.reference.taps import FAST, dot_taps, dot_taps2, same_group, stream_taps, stream_taps2

VECTOR = 8  # row lengths are padded to a multiple of this


# ----------------------------------------------------------------------------- layout moves

@njit(cache=True, inline="always")
def _to_wide_planar(x, n, top, left, plane, wp, xp):
    # image n of x (N,H,W,C) -> xp[c*plane + (iy+top)*Wp + ix+left]; the padding keeps its zeros
    _, h, w, c_in = x.shape
    for iy in range(h):
        for c in range(c_in):
            row = xp[c * plane + (iy + top) * wp + left:]
            for ix in range(w):
                row[ix] = x[n, iy, ix, c]


@njit(cache=True, inline="always")
def _dy_to_rows(dy, n, wp, row_len, lead, dyz):
    # image n of dy (N,OH,OW,O) -> dyz[o*row_len + lead + oy*Wp + ox]; the rest keeps its zeros
    _, oh, ow, c_out = dy.shape
    for oy in range(oh):
        for o in range(c_out):
            row = dyz[o * row_len + lead + oy * wp:]
            for ox in range(ow):
                row[ox] = dy[n, oy, ox, o]


# ----------------------------------------------------------------------------- stride-1 kernels

@njit(cache=True, nogil=True, fastmath=FAST)
def _stream_rows(out, src, offs, w_rows, per_group, group_stride, length):
    """out[r] += the taps w_rows[r] streamed over src for every row r (row r's group starts at
    (r // per_group) * group_stride in src); two rows of one group per pass over src.

    The forward's output channels over the input plane, and the backward's input channels
    (dx) over dy's rows: the same loop."""
    n = out.shape[0]
    r = 0
    while r < n:
        shift = (r // per_group) * group_stride
        if r + 1 < n and same_group(r, per_group):
            stream_taps2(out[r], out[r + 1], src, offs, shift, w_rows[r], w_rows[r + 1], length)
            r += 2
        else:
            stream_taps(out[r], src, offs, shift, w_rows[r], length)
            r += 1


@njit(cache=True, nogil=True, fastmath=FAST)
def conv_fwd_wide(x, w_flat, b, x_offs, groups, top, left, hp, wp, out_len, xp_len, n0, n1, y):
    """Images [n0, n1) of x (N,H,W,C), w_flat (O, KH*KW*Cg), b (O,), x_offs (KH*KW*Cg,) -> y (N,OH,OW,O).

    One call per chunk of images, on workers.py's threads (each image's result is the same
    whatever the chunks)."""
    _, _, _, c_in = x.shape
    _, oh, ow, c_out = y.shape
    og, cg = c_out // groups, c_in // groups
    plane = hp * wp
    xp = np.zeros(xp_len, dtype=x.dtype)
    yw = np.empty((c_out, out_len), dtype=x.dtype)
    for n in range(n0, n1):
        _to_wide_planar(x, n, top, left, plane, wp, xp)
        for o in range(c_out):
            yw[o, :] = b[o]
        _stream_rows(yw, xp, x_offs, w_flat, og, cg * plane, out_len)
        for oy in range(oh):
            y_row = y[n, oy]
            for o in range(c_out):
                src = yw[o, oy * wp:]
                for ox in range(ow):
                    y_row[ox, o] = src[ox]
    return y


@njit(cache=True, nogil=True, fastmath=FAST)
def conv_bwd_wide(x, dy, x_offs, w_cols, dy_offs, groups, top, left, hp, wp, out_len, xp_len,
                  lead, row_len, plane_len, need_dx, p0, p1, n_parts, dw_parts, db_parts, dx):
    """Gradients of conv_fwd_wide for the image parts [p0, p1) of n_parts fixed parts.

    x (N,H,W,C), dy (N,OH,OW,O) -> adds part p's weight and bias gradients to dw_parts[p]
    (O, KH*KW*Cg) and db_parts[p] (O,) (the caller sums the parts in order, so the result
    does not depend on how parts are grouped into calls); and, if
    need_dx, dx (N,H,W,C) as the gather form of the transposed conv:
    dxp[c, q] = sum over (o, ky, kx) of w * dyz[o, lead + q - (ky*dh*Wp + kx*dw)],
    where each dyz row holds dy's wide rows after `lead` zeros, so no index goes negative.
    w_cols (C, Og*KH*KW) and dy_offs (Og*KH*KW,) list those taps per input channel.
    """
    _, h, w, c_in = x.shape
    _, oh, ow, c_out = dy.shape
    og, cg = c_out // groups, c_in // groups
    plane = hp * wp
    xp = np.zeros(xp_len, dtype=x.dtype)
    dyz = np.zeros(c_out * row_len, dtype=x.dtype)
    dxp = np.empty((c_in, plane_len), dtype=x.dtype)
    n_img = x.shape[0]
    for p in range(p0, p1):
        n0, n1 = p * n_img // n_parts, (p + 1) * n_img // n_parts
        dw_part, db_part = dw_parts[p], db_parts[p]
        for n in range(n0, n1):
            _to_wide_planar(x, n, top, left, plane, wp, xp)
            _dy_to_rows(dy, n, wp, row_len, lead, dyz)
            o = 0
            while o < c_out:
                shift = (o // og) * cg * plane
                dy_a = dyz[o * row_len + lead:]
                db_part[o] += dy_a[:out_len].sum()
                if o + 1 < c_out and same_group(o, og):
                    dy_b = dyz[(o + 1) * row_len + lead:]
                    db_part[o + 1] += dy_b[:out_len].sum()
                    dot_taps2(dw_part[o], dw_part[o + 1], dy_a, dy_b, xp, x_offs, shift, out_len)
                    o += 2
                else:
                    dot_taps(dw_part[o], dy_a, xp, x_offs, shift, out_len)
                    o += 1
            if not need_dx:
                continue
            dxp[:, :] = 0.0
            _stream_rows(dxp, dyz, dy_offs, w_cols, cg, og * row_len, plane_len)
            for iy in range(h):
                dx_row = dx[n, iy]
                for c in range(c_in):
                    src = dxp[c, (iy + top) * wp + left:]
                    for ix in range(w):
                        dx_row[ix, c] = src[ix]


# ----------------------------------------------------------------------------- any stride

@njit(cache=True, parallel=True, fastmath=FAST)
def conv_fwd_direct(x, w, b, groups, sh, sw, dh, dw, top, left, y):
    """x (N,H,W,C), w (O,KH,KW,C/G), b (O,) -> y (N,OH,OW,O); any stride, dilation, groups."""
    n_img, h, wd, _ = x.shape
    c_out, kh, kw, cg = w.shape
    _, oh, ow, _ = y.shape
    og = c_out // groups
    for n in prange(n_img):
        for oy in range(oh):
            for ox in range(ow):
                for o in range(c_out):
                    c0 = (o // og) * cg
                    acc = b[o]
                    for ky in range(kh):
                        iy = oy * sh - top + ky * dh
                        if iy < 0 or iy >= h:
                            continue
                        for kx in range(kw):
                            ix = ox * sw - left + kx * dw
                            if ix < 0 or ix >= wd:
                                continue
                            for c in range(cg):
                                acc += x[n, iy, ix, c0 + c] * w[o, ky, kx, c]
                    y[n, oy, ox, o] = acc
    return y


@njit(cache=True, parallel=True, fastmath=FAST)
def conv_bwd_w_direct(x, dy, groups, sh, sw, dh, dw, top, left, dwt):
    """x (N,H,W,C), dy (N,OH,OW,O) -> dwt (O,KH,KW,C/G); parallel over O, so no two threads share a row."""
    n_img, h, wd, _ = x.shape
    c_out, kh, kw, cg = dwt.shape
    _, oh, ow, _ = dy.shape
    og = c_out // groups
    for o in prange(c_out):
        c0 = (o // og) * cg
        dwt[o] = 0.0
        for n in range(n_img):
            for oy in range(oh):
                for ox in range(ow):
                    g = dy[n, oy, ox, o]
                    for ky in range(kh):
                        iy = oy * sh - top + ky * dh
                        if iy < 0 or iy >= h:
                            continue
                        for kx in range(kw):
                            ix = ox * sw - left + kx * dw
                            if ix < 0 or ix >= wd:
                                continue
                            for c in range(cg):
                                dwt[o, ky, kx, c] += g * x[n, iy, ix, c0 + c]
    return dwt


@njit(cache=True, parallel=True, fastmath=FAST)
def conv_bwd_x_direct(dy, w, groups, sh, sw, dh, dw, top, left, dx):
    """dy (N,OH,OW,O), w (O,KH,KW,C/G) -> dx (N,H,W,C), scattered per image (one thread per image)."""
    n_img, h, wd, _ = dx.shape
    c_out, kh, kw, cg = w.shape
    _, oh, ow, _ = dy.shape
    og = c_out // groups
    for n in prange(n_img):
        dx[n] = 0.0
        for oy in range(oh):
            for ox in range(ow):
                for o in range(c_out):
                    c0 = (o // og) * cg
                    g = dy[n, oy, ox, o]
                    for ky in range(kh):
                        iy = oy * sh - top + ky * dh
                        if iy < 0 or iy >= h:
                            continue
                        for kx in range(kw):
                            ix = ox * sw - left + kx * dw
                            if ix < 0 or ix >= wd:
                                continue
                            for c in range(cg):
                                dx[n, iy, ix, c0 + c] += g * w[o, ky, kx, c]
    return dx
