"""Max and average pooling (NHWC), forward and backward, with TFLite's padding rule.

TFLite clips each window to the input: padded positions are neither candidates for
the max nor counted in the average (the divisor is the in-bounds count), so the float
model trains on exactly what the int8 kernels will compute.
"""

from typing import NamedTuple

import numpy as np
from numba import njit

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
#
# Single-threaded: a LeNet pool takes 0.1-0.3 ms, so a second thread saves less than
# its wake-ups cost once OpenMP waits passively (see edgecnn/tuning.py).
# Both pools run in two stages per output row: first reduce the window's rows
# elementwise over the flat (ix, c) row, a long contiguous loop that vectorizes,
# then reduce each window's columns in that short row. x arrives as (N, H, W*C).

@njit(cache=True)
def _max_pool_fwd(x, c_in, kh, kw, sh, sw, top, left, y, argmax):
    # x (N,H,W*C) -> y (N,OH,OW,C), argmax (N,OH,OW,C) = iy*W + ix of the window's first max, row-major
    n_img, h, row_len = x.shape
    w = row_len // c_in
    _, oh, ow, _ = y.shape
    for n in range(n_img):
        col_max = np.empty(row_len, dtype=x.dtype)
        col_row = np.empty(row_len, dtype=np.int32)  # which row holds col_max
        for oy in range(oh):
            y0, y1 = _window(oy, sh, top, kh, h)
            col_max[:] = x[n, y0]
            col_row[:] = y0
            for iy in range(y0 + 1, y1):
                xr = x[n, iy]
                for j in range(row_len):
                    v = xr[j]
                    later = v > col_max[j]  # strict: on ties the earlier row wins
                    col_max[j] = v if later else col_max[j]
                    col_row[j] = iy if later else col_row[j]
            for ox in range(ow):
                x0, x1 = _window(ox, sw, left, kw, w)
                for c in range(c_in):
                    best, best_row, best_col = col_max[x0 * c_in + c], col_row[x0 * c_in + c], x0
                    for ix in range(x0 + 1, x1):
                        v, r = col_max[ix * c_in + c], col_row[ix * c_in + c]
                        # row-major: a tie goes to the earlier row, then the earlier column.
                        # Selects, not branches: random data made the branch a coin toss.
                        later = (v > best) | ((v == best) & (r < best_row))
                        best = v if later else best
                        best_row = r if later else best_row
                        best_col = ix if later else best_col
                    y[n, oy, ox, c] = best
                    argmax[n, oy, ox, c] = best_row * w + best_col
    return y


@njit(cache=True)
def _max_pool_bwd(dy, argmax, dx):
    # dy (N,OH,OW,C) -> dx (N,H*W,C), which must start at zero
    n_img, oh, ow, c_in = dy.shape
    for n in range(n_img):
        for oy in range(oh):
            for ox in range(ow):
                for c in range(c_in):
                    dx[n, argmax[n, oy, ox, c], c] += dy[n, oy, ox, c]
    return dx


def max_pool2d_forward(x, size=(2, 2), stride=(2, 2), pad=(0, 0, 0, 0)):
    """y = max over each window, padding ignored. x (N,H,W,C) -> y (N,OH,OW,C)."""
    x = np.ascontiguousarray(x)
    size, stride, pad, (oh, ow) = _pool_geometry(x, size, stride, pad)
    n_img, h, w, c_in = x.shape
    y = np.empty((n_img, oh, ow, c_in), dtype=x.dtype)
    argmax = np.empty(y.shape, dtype=np.int32)
    _max_pool_fwd(x.reshape(n_img, h, w * c_in), c_in, *size, *stride, pad[0], pad[2], y, argmax)
    return y, PoolCache(x.shape, size, stride, pad, argmax)


def max_pool2d_backward(dy, cache):
    """dx: each dy goes to its window's first max (row-major). dy (N,OH,OW,C) -> dx (N,H,W,C)."""
    n_img, h, w, c_in = cache.x_shape
    dy = np.ascontiguousarray(dy)
    if dy.shape != cache.argmax.shape:
        raise ShapeError(f"max_pool2d_backward: dy {dy.shape} != forward output {cache.argmax.shape}")
    dx = np.zeros((n_img, h * w, c_in), dtype=dy.dtype)
    _max_pool_bwd(dy, cache.argmax, dx)
    return dx.reshape(cache.x_shape)


# ----------------------------------------------------------------------------- average pool

@njit(cache=True)
def _avg_pool_fwd(x, c_in, kh, kw, sh, sw, top, left, y):
    # x (N,H,W*C) -> y (N,OH,OW,C): mean over each window's in-bounds elements
    n_img, h, row_len = x.shape
    w = row_len // c_in
    _, oh, ow, _ = y.shape
    for n in range(n_img):
        col_sum = np.empty(row_len, dtype=x.dtype)
        for oy in range(oh):
            y0, y1 = _window(oy, sh, top, kh, h)
            col_sum[:] = x[n, y0]
            for iy in range(y0 + 1, y1):
                xr = x[n, iy]
                for j in range(row_len):
                    col_sum[j] += xr[j]
            for ox in range(ow):
                x0, x1 = _window(ox, sw, left, kw, w)
                count = (y1 - y0) * (x1 - x0)
                for c in range(c_in):
                    acc = col_sum[x0 * c_in + c]
                    for ix in range(x0 + 1, x1):
                        acc += col_sum[ix * c_in + c]
                    y[n, oy, ox, c] = acc / count
    return y


@njit(cache=True)
def _avg_pool_bwd(dy, kh, kw, sh, sw, top, left, dx):
    # dy (N,OH,OW,C) -> dx (N,H,W*C), which must start at zero: each window spreads
    # dy / count over its in-bounds elements; a row's share is built once, then added to each row
    n_img, h, row_len = dx.shape
    _, oh, ow, c_in = dy.shape
    w = row_len // c_in
    for n in range(n_img):
        share = np.empty(row_len, dtype=dx.dtype)
        for oy in range(oh):
            y0, y1 = _window(oy, sh, top, kh, h)
            share[:] = 0.0
            for ox in range(ow):
                x0, x1 = _window(ox, sw, left, kw, w)
                count = (y1 - y0) * (x1 - x0)
                for ix in range(x0, x1):
                    for c in range(c_in):
                        share[ix * c_in + c] += dy[n, oy, ox, c] / count
            for iy in range(y0, y1):
                dxr = dx[n, iy]
                for j in range(row_len):
                    dxr[j] += share[j]
    return dx


def avg_pool2d_forward(x, size=(2, 2), stride=(2, 2), pad=(0, 0, 0, 0)):
    """y = mean over the in-bounds part of each window. x (N,H,W,C) -> y (N,OH,OW,C)."""
    x = np.ascontiguousarray(x)
    size, stride, pad, (oh, ow) = _pool_geometry(x, size, stride, pad)
    n_img, h, w, c_in = x.shape
    y = np.empty((n_img, oh, ow, c_in), dtype=x.dtype)
    _avg_pool_fwd(x.reshape(n_img, h, w * c_in), c_in, *size, *stride, pad[0], pad[2], y)
    return y, PoolCache(x.shape, size, stride, pad, None)


def avg_pool2d_backward(dy, cache):
    """dx from dy (N,OH,OW,C)."""
    n_img, h, w, c_in = cache.x_shape
    dy = np.ascontiguousarray(dy)
    (kh, kw), (sh, sw), (top, bottom, left, right) = cache.size, cache.stride, cache.pad
    out_shape = (n_img, (h + top + bottom - kh) // sh + 1, (w + left + right - kw) // sw + 1, c_in)
    if dy.shape != out_shape:
        raise ShapeError(f"avg_pool2d_backward: dy {dy.shape} != forward output {out_shape}")
    dx = np.zeros((n_img, h, w * c_in), dtype=dy.dtype)
    _avg_pool_bwd(dy, *cache.size, *cache.stride, cache.pad[0], cache.pad[2], dx)
    return dx.reshape(cache.x_shape)


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
