"""LeNet-5 (1998) trainable subsampling, S2 and S4, forward and backward.

y[n, oy, ox, c] = coef[c] * (sum of the size x size window at (oy, ox) of map c) + bias[c],
with stride = size and no padding; rows/cols past the last whole window are unused.
It is a depthwise size x size, stride-size conv whose kernel is tied to one value per
map, which is how the int8 graph expresses it (DEPTHWISE_CONV_2D).
"""

from typing import NamedTuple

import numpy as np

from edgecnn.errors import ShapeError


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


def subsample_forward(x, coef, bias, size=2):
    """x (N,H,W,C), coef (C,), bias (C,) -> y (N,H//size,W//size,C), in x's dtype."""
    x = np.asarray(x)
    coef, bias = np.asarray(coef, dtype=x.dtype), np.asarray(bias, dtype=x.dtype)
    _check_subsample(x, coef, bias, size)
    n_img, h, w, c_in = x.shape
    oh, ow = h // size, w // size
    windows = x[:, : oh * size, : ow * size, :].reshape(n_img, oh, size, ow, size, c_in)
    window_sum = windows.sum(axis=(2, 4))
    y = window_sum * coef + bias
    return y, SubsampleCache(x.shape, coef, window_sum, size)


def subsample_backward(dy, cache):
    """(dx, dcoef, dbias) from dy (N,OH,OW,C)."""
    x_shape, coef, window_sum, size = cache
    dy = np.asarray(dy, dtype=coef.dtype)
    if dy.shape != window_sum.shape:
        raise ShapeError(f"subsample_backward: dy {dy.shape} != forward output {window_sum.shape}")
    n_img, oh, ow, c_in = dy.shape
    dcoef = (dy * window_sum).sum(axis=(0, 1, 2))
    dbias = dy.sum(axis=(0, 1, 2))
    dx = np.zeros(x_shape, dtype=dy.dtype)
    # every element of a window gets coef * dy of that window
    spread = np.broadcast_to((dy * coef)[:, :, None, :, None, :], (n_img, oh, size, ow, size, c_in))
    dx[:, : oh * size, : ow * size, :] = spread.reshape(n_img, oh * size, ow * size, c_in)
    return dx, dcoef, dbias


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
