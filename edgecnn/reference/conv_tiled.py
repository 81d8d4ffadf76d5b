"""Ungrouped float32 convolutions on ftile.py's register tile, straight from NHWC (no im2col).

Forward, per image and output row:   y[oy, ox, :] = b + sum over taps t of xp[oy*sh, ox*sw][t] * w[t, :]
  (xp: the zero-padded image, HpxWpxC; taps t = (ky, kx, c) at offsets koff; rows = the row's pixels)
Weight gradient, per image:          dw[t, :] += sum over pixels p of xp[p][t] * dy[p, :]
  (rows = taps, k = output pixels at offsets poff; dy is B as it is)
Input gradient, stride 1:            dx = the conv of dy, zero-padded, with the kernel flipped and its
                                     channel axes swapped (the same tile, rows = dx's pixels)
Input gradient, otherwise:           dcols = dy @ w_flat by the tile, then col2im_add (conv_gemm.py)

Images are split into chunks for workers.py's threads; the weight gradient sums one partial
per fixed part, in order, so a run repeats bit for bit on any number of threads.
Channel counts (O, and C or KH*KW*C for dx) must be multiples of 16 (conv.py checks).
"""

import numpy as np
from numba import njit

from edgecnn.reference.conv_gemm import col2im_add
from edgecnn.reference.ftile import LANES, ftile_span


@njit(cache=True, nogil=True, inline="always")
def _pad_image(src, n, top, left, wp, dst):
    """Image n of src (N,H,W,C) into the zero-padded dst (Hp*Wp*C flat); the border keeps its zeros."""
    _, h, wd, c = src.shape
    flat = src.reshape(-1)
    run = wd * c
    for iy in range(h):
        out = dst[((iy + top) * wp + left) * c:]
        row = flat[(n * h + iy) * run:]
        for q in range(run):
            out[q] = row[q]


@njit(cache=True, nogil=True)
def conv_fwd_tiled(x, w_t, b, koff, roff, sh, top, left, hp, wp, n0, n1, y):
    """Images [n0, n1) of x (N,H,W,C) -> y (N,OH,OW,O); w_t (K*O,) flat (K = KH*KW*C taps, O
    fastest), koff (K,) tap offsets into the padded image, roff (OW,) each output column's offset."""
    _, _, _, c = x.shape
    _, oh, ow, o = y.shape
    xp = np.zeros(hp * wp * c, dtype=x.dtype)
    yf = y.reshape(-1)
    for n in range(n0, n1):
        _pad_image(x, n, top, left, wp, xp)
        base = n * oh * ow * o
        for q in range(oh * ow):
            yf[base + q * o:base + (q + 1) * o] = b
        for oy in range(oh):
            ftile_span(xp, oy * sh * wp * c, roff, 0, ow, koff, koff.shape[0], w_t, 0, o, yf, base + oy * ow * o,
                       o, o)  # fmt: skip


@njit(cache=True, nogil=True)
def conv_bwd_tiled(x, dy, koff, poff, top, left, hp, wp, dx_w, dx_koff, dx_roff, dx_pad, dx_mode,
                   stride, dilation, k_hw, p0, p1, n_parts, dw_parts, db_parts, dx):  # fmt: skip
    """Gradients of conv_fwd_tiled for the image parts [p0, p1) of n_parts fixed parts.

    Adds part p's weight gradient (K*O flat, taps major) to dw_parts[p] and its bias gradient
    to db_parts[p]. dx_mode 0: no dx; 1: dx as the stride-1 transposed conv (dx_w the flipped
    kernel (KH*KW*O)*C flat, dx_koff its taps' offsets into dy padded by dx_pad = (top, left,
    Hq, Wq), dx_roff each dx column's offset); 2: dcols = dy @ dx_w (O*K flat) by the tile
    (dx_koff = arange(O), dx_roff = pixel * O), scattered back by col2im_add.
    """
    n_img, h, wd, c = x.shape
    _, oh, ow, o = dy.shape
    k = koff.shape[0]
    pixels = oh * ow
    xp = np.zeros(hp * wp * c, dtype=x.dtype)
    dyf = dy.reshape(-1)
    dxf = dx.reshape(-1)
    q_top, q_left, hq, wq = dx_pad
    dyp = np.zeros(hq * wq * o if dx_mode == 1 else 0, dtype=x.dtype)
    dcols = np.empty(pixels * k if dx_mode == 2 else 0, dtype=x.dtype)
    for p in range(p0, p1):
        n0, n1 = p * n_img // n_parts, (p + 1) * n_img // n_parts
        dw_part, db_part = dw_parts[p], db_parts[p]
        for n in range(n0, n1):
            _pad_image(x, n, top, left, wp, xp)
            base = n * pixels * o
            ftile_span(xp, 0, koff, 0, k, poff, pixels, dyf, base, o, dw_part, 0, o, o)
            for q in range(pixels):
                row = dyf[base + q * o:]
                for j in range(o):
                    db_part[j] += row[j]
            if dx_mode == 1:
                _pad_image(dy, n, q_top, q_left, wq, dyp)
                dx_base = n * h * wd * c
                dxf[dx_base:dx_base + h * wd * c] = 0.0
                for iy in range(h):
                    ftile_span(dyp, iy * wq * o, dx_roff, 0, wd, dx_koff, dx_koff.shape[0], dx_w, 0, c, dxf,
                               dx_base + iy * wd * c, c, c)  # fmt: skip
            elif dx_mode == 2:
                dcols[:] = 0.0
                ftile_span(dyf, base, dx_roff, 0, pixels, dx_koff, o, dx_w, 0, k, dcols, 0, k, k)
                col2im_add(dcols.reshape(pixels, k), 0, 1, k_hw[0], k_hw[1], stride[0], stride[1], dilation[0],
                           dilation[1], top, left, oh, ow, dx[n:n + 1])  # fmt: skip


IMAGE_CHANNELS = 4  # convs of inputs this narrow (an image) take the tile even without a tiled dx: nobody
                    # asks for an image's gradient (else dx runs as plain loops). Wider ones without one
                    # (LeNet's C3, 6 channels and 5x5 taps) keep their old paths, whose dx is fast.


def tiled_ok(dtype, x_shape, w_shape, stride, pad, dilation, groups, taps):
    """Whether a conv runs on the tile: float32, ungrouped, O a multiple of the tile's lanes, all taps,
    and a tiled form for dx unless the input is image-narrow."""
    c_in, (c_out, kh, kw, _) = x_shape[3], w_shape
    return (dtype == np.float32 and groups == 1 and c_out % LANES == 0 and taps is None
            and (c_in <= IMAGE_CHANNELS or dx_mode(c_in, stride, dilation, pad, (kh, kw)) != 0))


def dx_mode(c_in, stride, dilation, pad, k_hw):
    """1: dx as a transposed stride-1 conv; 2: dcols + col2im; 0: the tile cannot (another path must)."""
    (kh, kw), (dh, dw) = k_hw, dilation
    top, bottom, left, right = pad
    fits = (0 <= top <= (kh - 1) * dh and 0 <= bottom <= (kh - 1) * dh
            and 0 <= left <= (kw - 1) * dw and 0 <= right <= (kw - 1) * dw)
    if stride == (1, 1) and c_in % LANES == 0 and fits:
        return 1
    if (kh * kw * c_in) % LANES == 0:
        return 2
    return 0
