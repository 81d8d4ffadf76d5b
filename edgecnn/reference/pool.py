"""Max and average pooling (NHWC), forward and backward, with TFLite's padding rule.

TFLite clips each window to the input: padded positions are neither candidates for
the max nor counted in the average (the divisor is the in-bounds count), so the float
model trains on exactly what the int8 kernels will compute.
"""

from typing import NamedTuple

import numpy as np
from numba import njit, prange

from edgecnn.errors import ShapeError
from edgecnn.reference.padding import as_pair, normalize_pad


class PoolCache(NamedTuple):
    x_shape: tuple
    size: tuple
    stride: tuple
    pad: tuple
    argmax: object  # max pool: (N,OH,OW,C) int32 pixel index iy*W + ix of each window's max; avg: None


def _pool_geometry(x, size, stride, pad):
    """Validate and return (size, stride, pad, (oh, ow))."""
    if x.ndim != 4:
        raise ShapeError(f"pooling wants x (N,H,W,C), got shape {x.shape}")
    (kh, kw), (sh, sw) = size, stride = as_pair(size, "pool size"), as_pair(stride, "pool stride")
    top, bottom, left, right = pad = normalize_pad(pad)
    h, w = x.shape[1], x.shape[2]
    oh, ow = (h + top + bottom - kh) // sh + 1, (w + left + right - kw) // sw + 1
    # Every window needs an in-bounds element; only the first and last can miss.
    if oh < 1 or ow < 1 or top >= kh or left >= kw or (oh - 1) * sh - top >= h or (ow - 1) * sw - left >= w:
        raise ShapeError(f"pool {size} stride {stride} pad {pad} does not fit input {h}x{w} (a window would be empty)")
    return size, stride, pad, (oh, ow)


@njit(cache=True, inline="always")
def _window(o, stride, pad, size, limit):
    # in-bounds index range [lo, hi) of window o along one axis
    start = o * stride - pad
    return max(start, 0), min(start + size, limit)


# ----------------------------------------------------------------------------- max pool

@njit(cache=True, parallel=True)
def _max_pool_fwd(x, kh, kw, sh, sw, top, left, y, argmax):
    # x (N,H,W,C) -> y (N,OH,OW,C), argmax (N,OH,OW,C) = iy*W + ix of the first max, row-major
    n_img, h, w, c_in = x.shape
    _, oh, ow, _ = y.shape
    for n in prange(n_img):
        for oy in range(oh):
            y0, y1 = _window(oy, sh, top, kh, h)
            for ox in range(ow):
                x0, x1 = _window(ox, sw, left, kw, w)
                best, best_at = y[n, oy, ox], argmax[n, oy, ox]
                for c in range(c_in):
                    best[c] = x[n, y0, x0, c]
                    best_at[c] = y0 * w + x0
                for iy in range(y0, y1):
                    for ix in range(x0, x1):
                        for c in range(c_in):
                            v = x[n, iy, ix, c]
                            if v > best[c]:  # strict: ties keep the earlier element
                                best[c] = v
                                best_at[c] = iy * w + ix
    return y


@njit(cache=True, parallel=True)
def _max_pool_bwd(dy, argmax, dx):
    # dy (N,OH,OW,C) -> dx (N,H*W,C), which must start at zero
    n_img, oh, ow, c_in = dy.shape
    for n in prange(n_img):
        for oy in range(oh):
            for ox in range(ow):
                for c in range(c_in):
                    dx[n, argmax[n, oy, ox, c], c] += dy[n, oy, ox, c]
    return dx


def max_pool2d_forward(x, size=(2, 2), stride=(2, 2), pad=(0, 0, 0, 0)):
    """y = max over each window, padding ignored. x (N,H,W,C) -> y (N,OH,OW,C)."""
    x = np.ascontiguousarray(x)
    size, stride, pad, (oh, ow) = _pool_geometry(x, size, stride, pad)
    y = np.empty((x.shape[0], oh, ow, x.shape[3]), dtype=x.dtype)
    argmax = np.empty(y.shape, dtype=np.int32)
    _max_pool_fwd(x, *size, *stride, pad[0], pad[2], y, argmax)
    return y, PoolCache(x.shape, size, stride, pad, argmax)


def max_pool2d_backward(dy, cache):
    """dx: each dy goes to its window's (first) max. dy (N,OH,OW,C) -> dx (N,H,W,C)."""
    n_img, h, w, c_in = cache.x_shape
    dy = np.ascontiguousarray(dy)
    if dy.shape != cache.argmax.shape:
        raise ShapeError(f"max_pool2d_backward: dy {dy.shape} != forward output {cache.argmax.shape}")
    dx = np.zeros((n_img, h * w, c_in), dtype=dy.dtype)
    _max_pool_bwd(dy, cache.argmax, dx)
    return dx.reshape(cache.x_shape)


# ----------------------------------------------------------------------------- average pool

@njit(cache=True, parallel=True)
def _avg_pool_fwd(x, kh, kw, sh, sw, top, left, y):
    n_img, h, w, c_in = x.shape
    _, oh, ow, _ = y.shape
    for n in prange(n_img):
        for oy in range(oh):
            y0, y1 = _window(oy, sh, top, kh, h)
            for ox in range(ow):
                x0, x1 = _window(ox, sw, left, kw, w)
                acc = y[n, oy, ox]
                acc[:] = 0.0
                for iy in range(y0, y1):
                    for ix in range(x0, x1):
                        for c in range(c_in):
                            acc[c] += x[n, iy, ix, c]
                scale = 1.0 / ((y1 - y0) * (x1 - x0))
                for c in range(c_in):
                    acc[c] *= scale
    return y


@njit(cache=True, parallel=True)
def _avg_pool_bwd(dy, kh, kw, sh, sw, top, left, dx):
    # dx must start at zero; each window spreads dy / (in-bounds count) over its in-bounds elements
    n_img, h, w, c_in = dx.shape
    _, oh, ow, _ = dy.shape
    for n in prange(n_img):
        for oy in range(oh):
            y0, y1 = _window(oy, sh, top, kh, h)
            for ox in range(ow):
                x0, x1 = _window(ox, sw, left, kw, w)
                scale = 1.0 / ((y1 - y0) * (x1 - x0))
                for iy in range(y0, y1):
                    for ix in range(x0, x1):
                        for c in range(c_in):
                            dx[n, iy, ix, c] += dy[n, oy, ox, c] * scale
    return dx


def avg_pool2d_forward(x, size=(2, 2), stride=(2, 2), pad=(0, 0, 0, 0)):
    """y = mean over the in-bounds part of each window. x (N,H,W,C) -> y (N,OH,OW,C)."""
    x = np.ascontiguousarray(x)
    size, stride, pad, (oh, ow) = _pool_geometry(x, size, stride, pad)
    y = np.empty((x.shape[0], oh, ow, x.shape[3]), dtype=x.dtype)
    _avg_pool_fwd(x, *size, *stride, pad[0], pad[2], y)
    return y, PoolCache(x.shape, size, stride, pad, None)


def avg_pool2d_backward(dy, cache):
    """dx from dy (N,OH,OW,C)."""
    dy = np.ascontiguousarray(dy)
    dx = np.zeros(cache.x_shape, dtype=dy.dtype)
    _avg_pool_bwd(dy, *cache.size, *cache.stride, cache.pad[0], cache.pad[2], dx)
    return dx


# ----------------------------------------------------------------------------- naive reference

def _windows_naive(x_shape, size, stride, pad):
    """Yield (out_y, out_x, rows, cols) with each window's in-bounds slices."""
    _, h, w, _ = x_shape
    (kh, kw), (sh, sw), (top, _, left, _) = size, stride, pad
    _, _, _, (oh, ow) = _pool_geometry(np.empty(x_shape), size, stride, pad)
    for out_y in range(oh):
        for out_x in range(ow):
            y0, x0 = out_y * sh - top, out_x * sw - left
            rows = slice(max(y0, 0), min(y0 + kh, h))
            cols = slice(max(x0, 0), min(x0 + kw, w))
            yield out_y, out_x, rows, cols


def _pool_forward_naive(x, size, stride, pad, reduce):
    x = np.asarray(x)
    size, stride, pad, (oh, ow) = _pool_geometry(x, size, stride, pad)
    y = np.empty((x.shape[0], oh, ow, x.shape[3]), dtype=x.dtype)
    for out_y, out_x, rows, cols in _windows_naive(x.shape, size, stride, pad):
        y[:, out_y, out_x, :] = reduce(x[:, rows, cols, :], axis=(1, 2))
    return y, (x, size, stride, pad)


def max_pool2d_forward_naive(x, size=(2, 2), stride=(2, 2), pad=(0, 0, 0, 0)):
    return _pool_forward_naive(x, size, stride, pad, np.max)


def max_pool2d_backward_naive(dy, cache):
    x, size, stride, pad = cache
    dx = np.zeros_like(x)
    for out_y, out_x, rows, cols in _windows_naive(x.shape, size, stride, pad):
        window = x[:, rows, cols, :]
        n_img, wh, ww, c_in = window.shape
        first_max = window.reshape(n_img, wh * ww, c_in).argmax(axis=1)  # argmax picks the first, row-major
        for n in range(n_img):
            for c in range(c_in):
                wy, wx = divmod(first_max[n, c], ww)
                dx[n, rows.start + wy, cols.start + wx, c] += dy[n, out_y, out_x, c]
    return dx


def avg_pool2d_forward_naive(x, size=(2, 2), stride=(2, 2), pad=(0, 0, 0, 0)):
    return _pool_forward_naive(x, size, stride, pad, np.mean)


def avg_pool2d_backward_naive(dy, cache):
    x, size, stride, pad = cache
    dx = np.zeros_like(x)
    for out_y, out_x, rows, cols in _windows_naive(x.shape, size, stride, pad):
        count = (rows.stop - rows.start) * (cols.stop - cols.start)
        dx[:, rows, cols, :] += dy[:, out_y, out_x, None, None, :] / count
    return dx
