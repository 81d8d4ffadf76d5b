"""LeNet-5 (1998) trainable subsampling, S2 and S4, forward and backward.

y[n, oy, ox, c] = coef[c] * (sum of the size x size window at (oy, ox) of map c) + bias[c],
with stride = size and no padding; rows/cols past the last whole window are unused.
It is a depthwise size x size, stride-size conv whose kernel is tied to one value per
map, which is how the int8 graph expresses it (DEPTHWISE_CONV_2D).
"""

from typing import NamedTuple

import numpy as np
from numba import njit

from edgecnn.errors import ShapeError
from edgecnn.reference.taps import FAST


class SubsampleCache(NamedTuple):
    x_shape: tuple
    coef: np.ndarray
    window_sum: np.ndarray  # (N, OH, OW, C)
    size: int


def _check_subsample(x, coef, bias, size):
    if x.ndim != 4:
        raise ShapeError(f"subsample wants x (N,H,W,C), got shape {x.shape}")
    c_in = x.shape[3]
    if coef.shape != (c_in,) or bias.shape != (c_in,):
        raise ShapeError(f"subsample: coef {coef.shape} and bias {bias.shape} must both be ({c_in},)")
    if size < 1 or x.shape[1] < size or x.shape[2] < size:
        raise ShapeError(f"subsample: window {size} does not fit input {x.shape[1]}x{x.shape[2]}")


@njit(cache=True, fastmath=FAST)
def _subsample_fwd(x, c_in, coef, bias, size, window_sum, y):
    # x (N,H,W*C) -> window_sum, y (N,OH,OW,C); rows first (a long vector loop), then columns
    n_img, _, row_len = x.shape
    _, oh, ow, _ = y.shape
    col_sum = np.empty(row_len, dtype=x.dtype)
    for n in range(n_img):
        for oy in range(oh):
            col_sum[:] = x[n, oy * size]
            for i in range(1, size):
                xr = x[n, oy * size + i]
                for j in range(row_len):
                    col_sum[j] += xr[j]
            for ox in range(ow):
                for c in range(c_in):
                    acc = col_sum[ox * size * c_in + c]
                    for k in range(1, size):
                        acc += col_sum[(ox * size + k) * c_in + c]
                    window_sum[n, oy, ox, c] = acc
                    y[n, oy, ox, c] = coef[c] * acc + bias[c]
    return y


@njit(cache=True, fastmath=FAST)
def _subsample_bwd(dy, window_sum, coef, size, dx, dcoef, dbias):
    # dy (N,OH,OW,C) -> dx (N,H,W*C), fully written; dcoef, dbias (C,) start at zero
    n_img, oh, ow, c_in = dy.shape
    _, h, row_len = dx.shape
    share = np.zeros(row_len, dtype=dx.dtype)  # columns past the last window stay 0
    for n in range(n_img):
        for oy in range(oh):
            for ox in range(ow):
                for c in range(c_in):
                    g = dy[n, oy, ox, c]
                    dcoef[c] += g * window_sum[n, oy, ox, c]
                    dbias[c] += g
                    for k in range(size):
                        share[(ox * size + k) * c_in + c] = coef[c] * g
            for i in range(size):
                dx[n, oy * size + i, :] = share
        dx[n, oh * size:, :] = 0.0
    return dx


def subsample_forward(x, coef, bias, size=2):
    """x (N,H,W,C), coef (C,), bias (C,) -> y (N,H//size,W//size,C), in x's dtype."""
    x = np.ascontiguousarray(x)
    coef, bias = np.ascontiguousarray(coef, dtype=x.dtype), np.ascontiguousarray(bias, dtype=x.dtype)
    _check_subsample(x, coef, bias, size)
    n_img, h, w, c_in = x.shape
    out_shape = (n_img, h // size, w // size, c_in)
    window_sum, y = np.empty(out_shape, dtype=x.dtype), np.empty(out_shape, dtype=x.dtype)
    _subsample_fwd(x.reshape(n_img, h, w * c_in), c_in, coef, bias, size, window_sum, y)
    return y, SubsampleCache(x.shape, coef, window_sum, size)


def subsample_backward(dy, cache):
    """(dx, dcoef, dbias) from dy (N,OH,OW,C)."""
    x_shape, coef, window_sum, size = cache
    dy = np.ascontiguousarray(dy, dtype=coef.dtype)
    if dy.shape != window_sum.shape:
        raise ShapeError(f"subsample_backward: dy {dy.shape} != forward output {window_sum.shape}")
    n_img, h, w, c_in = x_shape
    dx = np.empty((n_img, h, w * c_in), dtype=dy.dtype)
    dcoef, dbias = np.zeros(c_in, dtype=dy.dtype), np.zeros(c_in, dtype=dy.dtype)
    _subsample_bwd(dy, window_sum, coef, size, dx, dcoef, dbias)
    return dx.reshape(x_shape), dcoef, dbias


# ----------------------------------------------------------------------------- naive reference

def subsample_forward_naive(x, coef, bias, size=2):
    x = np.asarray(x)
    coef, bias = np.asarray(coef, dtype=x.dtype), np.asarray(bias, dtype=x.dtype)
    _check_subsample(x, coef, bias, size)
    n_img, h, w, c_in = x.shape
    y = np.zeros((n_img, h // size, w // size, c_in), dtype=x.dtype)
    for out_y in range(h // size):
        for out_x in range(w // size):
            for dy_ in range(size):
                for dx_ in range(size):
                    y[:, out_y, out_x, :] += x[:, out_y * size + dy_, out_x * size + dx_, :]
    return y * coef + bias, (x, coef, size)


def subsample_backward_naive(dy, cache):
    x, coef, size = cache
    dx = np.zeros_like(x)
    dcoef = np.zeros_like(coef)
    for out_y in range(dy.shape[1]):
        for out_x in range(dy.shape[2]):
            for dy_ in range(size):
                for dx_ in range(size):
                    in_y, in_x = out_y * size + dy_, out_x * size + dx_
                    dx[:, in_y, in_x, :] += dy[:, out_y, out_x, :] * coef
                    dcoef += (dy[:, out_y, out_x, :] * x[:, in_y, in_x, :]).sum(axis=0)
    return dx, dcoef, dy.sum(axis=(0, 1, 2))
