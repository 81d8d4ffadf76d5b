"""Fully connected layer, forward and backward. Weights are [out, in], as TFLite's FULLY_CONNECTED."""

from typing import NamedTuple

import numpy as np
from numba import get_num_threads, njit, prange

from edgecnn.errors import ShapeError


class DenseCache(NamedTuple):
    x: np.ndarray
    w: np.ndarray
    has_bias: bool


# Numba kernels rather than np.dot: BLAS threads and Numba's OpenMP threads, both
# spinning between calls, slowed the conv kernels down 3x on 2 cores (see conv.py).

_FAST = {"reassoc", "contract"}


@njit(cache=True, parallel=True, fastmath=_FAST)
def _dense_fwd(x, w, b, y):
    # x (N,D), w (U,D), b (U,) -> y (N,U): one dot product of length D per output
    n_rows, depth = x.shape
    units = w.shape[0]
    for n in prange(n_rows):
        xr = x[n]
        for u in range(units):
            wr = w[u]
            acc = b[u]
            for d in range(depth):
                acc += xr[d] * wr[d]
            y[n, u] = acc
    return y


@njit(cache=True, parallel=True, fastmath=_FAST)
def _dense_bwd_w(x, dy, n_threads, dw):
    # dw (U,D) = dy^T x, split over units: row u of dw is a sum of rows of x scaled by dy[:, u]
    n_rows, depth = x.shape
    units = dy.shape[1]
    for t in prange(n_threads):
        for u in range(t * units // n_threads, (t + 1) * units // n_threads):
            acc = dw[u]
            acc[:] = 0.0
            n = 0
            while n + 4 <= n_rows:
                g0, g1, g2, g3 = dy[n, u], dy[n + 1, u], dy[n + 2, u], dy[n + 3, u]
                x0, x1, x2, x3 = x[n], x[n + 1], x[n + 2], x[n + 3]
                for d in range(depth):
                    acc[d] += g0 * x0[d] + g1 * x1[d] + g2 * x2[d] + g3 * x3[d]
                n += 4
            while n < n_rows:
                g0, x0 = dy[n, u], x[n]
                for d in range(depth):
                    acc[d] += g0 * x0[d]
                n += 1
    return dw


@njit(cache=True, parallel=True, fastmath=_FAST)
def _dense_bwd_x(dy, w, dx):
    # dx (N,D) = dy w: row n of dx is a sum of rows of w scaled by dy[n]
    n_rows, units = dy.shape
    depth = w.shape[1]
    for n in prange(n_rows):
        acc = dx[n]
        acc[:] = 0.0
        u = 0
        while u + 4 <= units:
            g0, g1, g2, g3 = dy[n, u], dy[n, u + 1], dy[n, u + 2], dy[n, u + 3]
            w0, w1, w2, w3 = w[u], w[u + 1], w[u + 2], w[u + 3]
            for d in range(depth):
                acc[d] += g0 * w0[d] + g1 * w1[d] + g2 * w2[d] + g3 * w3[d]
            u += 4
        while u < units:
            g0, w0 = dy[n, u], w[u]
            for d in range(depth):
                acc[d] += g0 * w0[d]
            u += 1
    return dx


def dense_forward(x, w, b):
    """y = x w^T + b. x (N,D), w (U,D), b (U,) or None -> y (N,U), in x's dtype."""
    x = np.ascontiguousarray(x)
    w = np.ascontiguousarray(w, dtype=x.dtype)
    if x.ndim != 2 or w.ndim != 2 or x.shape[1] != w.shape[1]:
        raise ShapeError(f"dense wants x (N,D) and w (U,D), got {x.shape} and {w.shape}")
    if b is not None and np.shape(b) != (w.shape[0],):
        raise ShapeError(f"dense: bias shape {np.shape(b)} != ({w.shape[0]},)")
    bias = np.zeros(w.shape[0], dtype=x.dtype) if b is None else np.ascontiguousarray(b, dtype=x.dtype)
    y = _dense_fwd(x, w, bias, np.empty((x.shape[0], w.shape[0]), dtype=x.dtype))
    return y, DenseCache(x, w, b is not None)


def dense_backward(dy, cache):
    """(dx, dw, db) from dy (N,U); db is None if the forward had no bias."""
    x, w, has_bias = cache
    dy = np.ascontiguousarray(dy, dtype=x.dtype)
    if dy.shape != (x.shape[0], w.shape[0]):
        raise ShapeError(f"dense_backward: dy {dy.shape} != forward output {(x.shape[0], w.shape[0])}")
    n_threads = max(1, min(get_num_threads(), w.shape[0]))
    dw = _dense_bwd_w(x, dy, n_threads, np.empty_like(w))
    dx = _dense_bwd_x(dy, w, np.empty_like(x))
    db = dy.sum(axis=0) if has_bias else None
    return dx, dw, db


# ----------------------------------------------------------------------------- naive reference

def dense_forward_naive(x, w, b):
    x = np.asarray(x)
    y = np.zeros((x.shape[0], w.shape[0]), dtype=x.dtype)
    for n in range(x.shape[0]):
        for u in range(w.shape[0]):
            y[n, u] = np.sum(x[n] * w[u]) + (0.0 if b is None else b[u])
    return y, (x, np.asarray(w, dtype=x.dtype), b is not None)


def dense_backward_naive(dy, cache):
    x, w, has_bias = cache
    dx = np.zeros_like(x)
    dw = np.zeros_like(w)
    for n in range(x.shape[0]):
        for u in range(w.shape[0]):
            dx[n] += dy[n, u] * w[u]
            dw[u] += dy[n, u] * x[n]
    return dx, dw, (dy.sum(axis=0) if has_bias else None)
