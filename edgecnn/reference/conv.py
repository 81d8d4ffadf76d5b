"""2-D convolution (NHWC, OHWI filters, groups, dilation), forward and backward.

The fast path is Numba loops (see the note above _stream_taps). The naive path is plain loops
written as textbook convolutions of the upstream gradient; tests hold the two
together.
"""

from typing import NamedTuple

import numpy as np
from numba import get_num_threads, njit, prange

from edgecnn.errors import ShapeError
from edgecnn.reference.padding import as_pair, normalize_pad


class Conv2dCache(NamedTuple):
    x: np.ndarray
    w: np.ndarray
    has_bias: bool
    stride: tuple
    pad: tuple
    dilation: tuple
    groups: int


def _check_conv(x, w, b, groups):
    if x.ndim != 4 or w.ndim != 4:
        raise ShapeError(f"conv2d wants x (N,H,W,Cin) and w (O,KH,KW,Cin/groups), got {x.shape} and {w.shape}")
    c_in, c_out = x.shape[3], w.shape[0]
    if groups < 1 or c_in % groups or c_out % groups:
        raise ShapeError(f"conv2d: groups={groups} must divide Cin={c_in} and O={c_out}")
    if w.shape[3] != c_in // groups:
        raise ShapeError(f"conv2d: w {w.shape} has {w.shape[3]} input channels, x has {c_in}/{groups} per group")
    if b is not None and b.shape != (c_out,):
        raise ShapeError(f"conv2d: bias shape {b.shape} != ({c_out},)")


def _out_hw(in_hw, k_hw, stride, pad, dilation):
    top, bottom, left, right = pad
    out_h = (in_hw[0] + top + bottom - (k_hw[0] - 1) * dilation[0] - 1) // stride[0] + 1
    out_w = (in_hw[1] + left + right - (k_hw[1] - 1) * dilation[1] - 1) // stride[1] + 1
    if out_h < 1 or out_w < 1:
        raise ShapeError(f"conv2d: kernel {k_hw} does not fit input {in_hw} with pad {pad}, dilation {dilation}")
    return out_h, out_w


# ----------------------------------------------------------------------------- fast path
#
# Stride-1 convolutions (all of LeNet) run on "wide planar" images: each image is
# copied to a zero-padded channel-major buffer xp[c, iy*Wp + ix], and the output is
# computed for every column 0..Wp-1 of each output row, not just 0..OW-1. Then the
# tap (ky, kx, c) reads xp at one constant offset c*Hp*Wp + ky*dh*Wp + kx*dw from the
# output index p = oy*Wp + ox, so each tap is one long contiguous multiply-add with a
# scalar weight: the loop LLVM vectorizes best. The extra columns ox >= OW cost
# (Wp - OW)/Wp of the work and are dropped; reads that wrap into the next row only
# reach those columns. Backward, dy's extra columns are zeros, so they add nothing.
# Strides > 1 take the direct loops further down.
# Traps: Numba disables LLVM's SLP vectorizer, so hand-unrolled register blocks stay
# scalar; only long runtime-length loops vectorize. And everything stays on Numba's
# threads: BLAS calls between Numba parallel regions made the two spinning thread
# pools fight over the 2 cores (3x slower).

_FAST = {"reassoc", "contract"}  # lets LLVM vectorize sums and fuse FMAs; NaN/inf stay honest


@njit(cache=True, inline="always")
def _chunk(t, n_threads, n_img):
    """Images [n0, n1) of thread t: one static chunk per thread, so scratch is allocated once."""
    return t * n_img // n_threads, (t + 1) * n_img // n_threads


@njit(cache=True, inline="always", fastmath=_FAST)
def _stream_taps(out, src, offs, shift, wts, length):
    # out[p] += sum_t wts[t] * src[shift + offs[t] + p] for p < length; 4 taps per pass over out
    n_taps = offs.shape[0]
    t = 0
    while t + 4 <= n_taps:
        w0, w1, w2, w3 = wts[t], wts[t + 1], wts[t + 2], wts[t + 3]
        a0, a1, a2, a3 = shift + offs[t], shift + offs[t + 1], shift + offs[t + 2], shift + offs[t + 3]
        s0, s1 = src[a0 : a0 + length], src[a1 : a1 + length]
        s2, s3 = src[a2 : a2 + length], src[a3 : a3 + length]
        for p in range(length):
            out[p] += w0 * s0[p] + w1 * s1[p] + w2 * s2[p] + w3 * s3[p]
        t += 4
    while t < n_taps:
        w0, a0 = wts[t], shift + offs[t]
        s0 = src[a0 : a0 + length]
        for p in range(length):
            out[p] += w0 * s0[p]
        t += 1


@njit(cache=True, inline="always", fastmath=_FAST)
def _dot_taps(acc, a, src, offs, shift, length):
    # acc[t] += sum_p a[p] * src[shift + offs[t] + p]; 4 taps per pass over a
    n_taps = offs.shape[0]
    t = 0
    while t + 4 <= n_taps:
        b0, b1, b2, b3 = shift + offs[t], shift + offs[t + 1], shift + offs[t + 2], shift + offs[t + 3]
        s0, s1 = src[b0 : b0 + length], src[b1 : b1 + length]
        s2, s3 = src[b2 : b2 + length], src[b3 : b3 + length]
        r0 = r1 = r2 = r3 = acc.dtype.type(0.0)
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
        b0 = shift + offs[t]
        s0 = src[b0 : b0 + length]
        r0 = acc.dtype.type(0.0)
        for p in range(length):
            r0 += a[p] * s0[p]
        acc[t] += r0
        t += 1


@njit(cache=True, inline="always")
def _to_wide_planar(x, n, top, left, wp, xp):
    # image n of x (N,H,W,C) -> xp[c*Hp*Wp + (iy+top)*Wp + ix+left]; the padding keeps its zeros
    _, h, w, c_in = x.shape
    plane = xp.shape[0] // c_in
    for iy in range(h):
        for ix in range(w):
            q = (iy + top) * wp + ix + left
            for c in range(c_in):
                xp[c * plane + q] = x[n, iy, ix, c]


@njit(cache=True, parallel=True, fastmath=_FAST)
def _conv_fwd_wide(x, w_flat, b, x_offs, groups, top, left, hp, wp, n_threads, y):
    # x (N,H,W,C), w_flat (O, KH*KW*Cg), b (O,), x_offs (KH*KW*Cg,) -> y (N,OH,OW,O)
    n_img, _, _, c_in = x.shape
    _, oh, ow, c_out = y.shape
    slack = x_offs.max() - (c_in // groups - 1) * hp * wp if x_offs.shape[0] else 0
    out_len = oh * wp
    og, cg = c_out // groups, c_in // groups
    for t in prange(n_threads):
        xp = np.zeros(c_in * hp * wp + slack, dtype=x.dtype)
        yw = np.empty(out_len, dtype=x.dtype)
        n0, n1 = _chunk(t, n_threads, n_img)
        for n in range(n0, n1):
            _to_wide_planar(x, n, top, left, wp, xp[: c_in * hp * wp])
            for o in range(c_out):
                yw[:] = b[o]
                _stream_taps(yw, xp, x_offs, (o // og) * cg * hp * wp, w_flat[o], out_len)
                for oy in range(oh):
                    for ox in range(ow):
                        y[n, oy, ox, o] = yw[oy * wp + ox]
    return y


@njit(cache=True, parallel=True, fastmath=_FAST)
def _conv_bwd_w_wide(x, dy, x_offs, groups, top, left, hp, wp, n_threads):
    # x (N,H,W,C), dy (N,OH,OW,O) -> per-thread partial sums dw (T, O, KH*KW*Cg), db (T, O)
    n_img, _, _, c_in = x.shape
    _, oh, ow, c_out = dy.shape
    slack = x_offs.max() - (c_in // groups - 1) * hp * wp if x_offs.shape[0] else 0
    out_len = oh * wp
    og, cg = c_out // groups, c_in // groups
    dw_part = np.zeros((n_threads, c_out, x_offs.shape[0]), dtype=x.dtype)
    db_part = np.zeros((n_threads, c_out), dtype=x.dtype)
    for t in prange(n_threads):
        xp = np.zeros(c_in * hp * wp + slack, dtype=x.dtype)
        dyw = np.zeros((c_out, out_len), dtype=x.dtype)  # columns ox >= OW stay zero
        n0, n1 = _chunk(t, n_threads, n_img)
        for n in range(n0, n1):
            _to_wide_planar(x, n, top, left, wp, xp[: c_in * hp * wp])
            for oy in range(oh):
                for ox in range(ow):
                    for o in range(c_out):
                        dyw[o, oy * wp + ox] = dy[n, oy, ox, o]
            for o in range(c_out):
                db_part[t, o] += dyw[o].sum()
                _dot_taps(dw_part[t, o], dyw[o], xp, x_offs, (o // og) * cg * hp * wp, out_len)
    return dw_part, db_part


@njit(cache=True, parallel=True, fastmath=_FAST)
def _conv_bwd_x_wide(dy, w_cols, dy_offs, groups, top, left, hp, wp, lead, n_threads, dx):
    # dy (N,OH,OW,O), w_cols (C, Og*KH*KW), dy_offs (Og*KH*KW,) -> dx (N,H,W,C)
    # Gather form of the transposed conv: dxp[c, q] = sum w * dyz[o, lead + q - (ky*dh*Wp + kx*dw)],
    # where dyz holds dy's wide rows after `lead` zeros, so every index stays >= 0.
    n_img, h, w, c_in = dx.shape
    _, oh, ow, c_out = dy.shape
    og, cg = c_out // groups, c_in // groups
    plane = hp * wp
    row = lead + plane
    for t in prange(n_threads):
        dyz = np.zeros(c_out * row, dtype=dx.dtype)
        dxp = np.empty(plane, dtype=dx.dtype)
        n0, n1 = _chunk(t, n_threads, n_img)
        for n in range(n0, n1):
            for oy in range(oh):
                for ox in range(ow):
                    for o in range(c_out):
                        dyz[o * row + lead + oy * wp + ox] = dy[n, oy, ox, o]
            for c in range(c_in):
                dxp[:] = 0.0
                _stream_taps(dxp, dyz, dy_offs, (c // cg) * og * row, w_cols[c], plane)
                for iy in range(h):
                    for ix in range(w):
                        dx[n, iy, ix, c] = dxp[(iy + top) * wp + ix + left]
    return dx


@njit(cache=True, parallel=True, fastmath=_FAST)
def _conv_fwd_direct(x, w, b, groups, sh, sw, dh, dw, top, left, y):
    # x (N,H,W,C), w (O,KH,KW,C/G), b (O,) -> y (N,OH,OW,O); any stride, dilation, groups
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


@njit(cache=True, parallel=True, fastmath=_FAST)
def _conv_bwd_w_direct(x, dy, groups, sh, sw, dh, dw, top, left, dwt):
    # x (N,H,W,C), dy (N,OH,OW,O) -> dwt (O,KH,KW,C/G); parallel over O, so no two threads share a row
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


@njit(cache=True, parallel=True, fastmath=_FAST)
def _conv_bwd_x_direct(dy, w, groups, sh, sw, dh, dw, top, left, dx):
    # dy (N,OH,OW,O), w (O,KH,KW,C/G) -> dx (N,H,W,C), scattered per image (one thread per image)
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


def _threads(n_img):
    # get_num_threads() inside a kernel would stop Numba from caching it (a ctypes global)
    return max(1, min(get_num_threads(), n_img))


def _wide_geometry(x_shape, w_shape, pad, dilation):
    """(hp, wp, x_offs): padded plane size and each tap's offset into the wide planar image."""
    _, h, wd, _ = x_shape
    _, kh, kw, cg = w_shape
    top, bottom, left, right = pad
    hp, wp = h + top + bottom, wd + left + right
    ky, kx, c = np.meshgrid(np.arange(kh), np.arange(kw), np.arange(cg), indexing="ij")
    x_offs = (c * hp * wp + ky * dilation[0] * wp + kx * dilation[1]).ravel().astype(np.int64)
    return hp, wp, x_offs


def conv2d_forward(x, w, b, stride=(1, 1), pad=(0, 0, 0, 0), dilation=(1, 1), groups=1):
    """y = conv(x, w) + b.

    x (N,H,W,Cin), w (O,KH,KW,Cin/G), b (O,) or None -> y (N,OH,OW,O), in x's dtype.
    Output channel o reads input group o // (O/G). pad is (top, bottom, left, right)
    as from padding.resolve_padding (an int or (ph, pw) also work).
    """
    x = np.ascontiguousarray(x)
    w = np.ascontiguousarray(w, dtype=x.dtype)
    b = None if b is None else np.ascontiguousarray(b, dtype=x.dtype)
    _check_conv(x, w, b, groups)
    n_img, h, wd, _ = x.shape
    c_out, kh, kw, _ = w.shape
    top, _, left, _ = pad = normalize_pad(pad)
    stride, dilation = as_pair(stride, "stride"), as_pair(dilation, "dilation")
    oh, ow = _out_hw((h, wd), (kh, kw), stride, pad, dilation)
    y = np.empty((n_img, oh, ow, c_out), dtype=x.dtype)
    bias = b if b is not None else np.zeros(c_out, dtype=x.dtype)
    if stride == (1, 1):
        hp, wp, x_offs = _wide_geometry(x.shape, w.shape, pad, dilation)
        _conv_fwd_wide(x, w.reshape(c_out, -1), bias, x_offs, groups, top, left, hp, wp, _threads(n_img), y)
    else:
        _conv_fwd_direct(x, w, bias, groups, *stride, *dilation, top, left, y)
    return y, Conv2dCache(x, w, b is not None, stride, pad, dilation, groups)


def conv2d_backward(dy, cache, need_dx=True):
    """(dx, dw, db) from dy (N,OH,OW,O); db is None if the forward had no bias.

    need_dx=False skips dx (returns None): the first layer's input needs no gradient.
    """
    x, w, has_bias, stride, pad, dilation, groups = cache
    n_img, h, wd, c_in = x.shape
    c_out, kh, kw, cg = w.shape
    og = c_out // groups
    top, _, left, _ = pad
    dy = np.ascontiguousarray(dy, dtype=x.dtype)
    oh, ow = _out_hw((h, wd), (kh, kw), stride, pad, dilation)
    if dy.shape != (n_img, oh, ow, c_out):
        raise ShapeError(f"conv2d_backward: dy {dy.shape} != forward output {(n_img, oh, ow, c_out)}")
    dx = np.empty_like(x) if need_dx else None
    if stride == (1, 1):
        n_threads = _threads(n_img)
        hp, wp, x_offs = _wide_geometry(x.shape, w.shape, pad, dilation)
        dw_part, db_part = _conv_bwd_w_wide(x, dy, x_offs, groups, top, left, hp, wp, n_threads)
        dw = dw_part.sum(axis=0).reshape(w.shape)
        db = db_part.sum(axis=0) if has_bias else None
        if need_dx:
            # taps (o, ky, kx) of input channel c: w_cols[c] lists w[g*Og + o, ky, kx, c % Cg]
            w_cols = w.reshape(groups, og, kh, kw, cg).transpose(0, 4, 1, 2, 3).reshape(c_in, og * kh * kw)
            lead = (kh - 1) * dilation[0] * wp + (kw - 1) * dilation[1]
            o, ky, kx = np.meshgrid(np.arange(og), np.arange(kh), np.arange(kw), indexing="ij")
            dy_offs = (o * (lead + hp * wp) + lead - ky * dilation[0] * wp - kx * dilation[1]).ravel()
            _conv_bwd_x_wide(dy, np.ascontiguousarray(w_cols), dy_offs.astype(np.int64), groups,
                             top, left, hp, wp, lead, n_threads, dx)
    else:
        dw = _conv_bwd_w_direct(x, dy, groups, *stride, *dilation, top, left, np.empty_like(w))
        db = dy.reshape(-1, c_out).sum(axis=0) if has_bias else None
        if need_dx:
            _conv_bwd_x_direct(dy, w, groups, *stride, *dilation, top, left, dx)
    return dx, dw, db


# ----------------------------------------------------------------------------- naive reference

def _correlate_naive(xp, w, stride, dilation, groups):
    """Valid cross-correlation of an already padded xp (N,Hp,Wp,C) with w (O,KH,KW,C/G)."""
    n_img, hp, wp, c_in = xp.shape
    c_out, kh, kw, cg = w.shape
    og = c_out // groups
    oh = (hp - (kh - 1) * dilation[0] - 1) // stride[0] + 1
    ow = (wp - (kw - 1) * dilation[1] - 1) // stride[1] + 1
    y = np.zeros((n_img, oh, ow, c_out), dtype=xp.dtype)
    for out_y in range(oh):
        for out_x in range(ow):
            for filter_y in range(kh):
                for filter_x in range(kw):
                    in_y = out_y * stride[0] + filter_y * dilation[0]
                    in_x = out_x * stride[1] + filter_x * dilation[1]
                    for g in range(groups):
                        outs, ins = slice(g * og, (g + 1) * og), slice(g * cg, (g + 1) * cg)
                        y[:, out_y, out_x, outs] += xp[:, in_y, in_x, ins] @ w[outs, filter_y, filter_x, :].T
    return y


def _pad_naive(x, pad):
    top, bottom, left, right = pad
    return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))


def conv2d_forward_naive(x, w, b, stride=(1, 1), pad=(0, 0, 0, 0), dilation=(1, 1), groups=1):
    """Direct convolution by loops; same contract as conv2d_forward."""
    x = np.asarray(x)
    w = np.asarray(w, dtype=x.dtype)
    _check_conv(x, w, b, groups)
    pad = normalize_pad(pad)
    stride, dilation = as_pair(stride, "stride"), as_pair(dilation, "dilation")
    y = _correlate_naive(_pad_naive(x, pad), w, stride, dilation, groups)
    if b is not None:
        y += np.asarray(b, dtype=x.dtype)
    return y, (x, w, b is not None, stride, pad, dilation, groups)


def conv2d_backward_naive(dy, cache):
    """Gradients as convolutions of dy: dW = x ⋆ dy, dX = transposed conv of dy with the flipped kernel."""
    x, w, has_bias, stride, pad, dilation, groups = cache
    n_img, h, wd, c_in = x.shape
    c_out, kh, kw, cg = w.shape
    og = c_out // groups
    _, oh, ow, _ = dy.shape
    xp = _pad_naive(x, pad)
    db = dy.sum(axis=(0, 1, 2)) if has_bias else None

    # dW[o, ky, kx, c] = sum over (n, oy, ox) of xp[n, oy*s + ky*d, ox*s + kx*d, c] * dy[n, oy, ox, o]:
    # a correlation of xp with dy where dy is the "kernel" (dilated by the stride).
    dw = np.zeros_like(w)
    for filter_y in range(kh):
        for filter_x in range(kw):
            for out_y in range(oh):
                for out_x in range(ow):
                    in_y = filter_y * dilation[0] + out_y * stride[0]
                    in_x = filter_x * dilation[1] + out_x * stride[1]
                    for g in range(groups):
                        outs, ins = slice(g * og, (g + 1) * og), slice(g * cg, (g + 1) * cg)
                        dw[outs, filter_y, filter_x, :] += dy[:, out_y, out_x, outs].T @ xp[:, in_y, in_x, ins]

    # dX: insert (stride-1) zeros between dy pixels, pad by the dilated kernel extent - 1, and
    # correlate with the kernel rotated 180 degrees (input/output channels swapped per group).
    eff_h, eff_w = (kh - 1) * dilation[0] + 1, (kw - 1) * dilation[1] + 1
    dy_up = np.zeros((n_img, (oh - 1) * stride[0] + 1, (ow - 1) * stride[1] + 1, c_out), dtype=dy.dtype)
    dy_up[:, :: stride[0], :: stride[1], :] = dy
    dy_up = _pad_naive(dy_up, (eff_h - 1, eff_h - 1, eff_w - 1, eff_w - 1))
    w_flip = w[:, ::-1, ::-1, :].reshape(groups, og, kh, kw, cg).transpose(0, 4, 2, 3, 1)
    w_flip = w_flip.reshape(groups * cg, kh, kw, og)               # (Cin, KH, KW, O/G)
    dxp_covered = _correlate_naive(dy_up, w_flip, (1, 1), dilation, groups)
    # Rows/cols of xp past the last window (when (Hp - eff) % s != 0) get no gradient.
    dxp = np.zeros_like(xp)
    dxp[:, : dxp_covered.shape[1], : dxp_covered.shape[2], :] = dxp_covered
    top, _, left, _ = pad
    dx = dxp[:, top : top + h, left : left + wd, :]
    return np.ascontiguousarray(dx), dw, db
