"""Fully connected layer, forward and backward. Weights are [out, in], as TFLite's FULLY_CONNECTED."""

from typing import NamedTuple

import numpy as np
from numba import njit

from edgecnn.errors import ShapeError
from edgecnn.reference.taps import FAST, dot_taps, dot_taps2, stream_taps, stream_taps2


class DenseCache(NamedTuple):
    x: np.ndarray
    w: np.ndarray
    has_bias: bool


# Numba kernels rather than np.dot: BLAS threads and Numba's OpenMP threads, both
# spinning between calls, slowed the conv kernels down 3x on 2 cores (see conv_kernels.py).
# Each is the tap loop of taps.py over rows of a flat matrix, two outputs per pass.
# Single-threaded on purpose: LeNet's largest dense layer takes ~0.1 ms, about what
# waking a second thread twice costs on a busy VM.


@njit(cache=True, fastmath=FAST)
def _dense_fwd(x, w_flat, row_offs, b, y):
    # y[n, u] = b[u] + x[n] . w[u]: dot products of x rows with the U rows of w_flat (U*D,)
    n_rows, depth = x.shape
    for pair in range((n_rows + 1) // 2):
        n = 2 * pair
        y[n, :] = b
        if n + 1 < n_rows:
            y[n + 1, :] = b
            dot_taps2(y[n], y[n + 1], x[n], x[n + 1], w_flat, row_offs, 0, depth)
        else:
            dot_taps(y[n], x[n], w_flat, row_offs, 0, depth)
    return y


@njit(cache=True, fastmath=FAST)
def _rows_times_matrix(coef, mat_flat, row_offs, depth, out):
    # out[i] = sum_k coef[i, k] * mat[k] for each row i: a tap per row k of mat (flat, K*D)
    n_out = out.shape[0]
    for pair in range((n_out + 1) // 2):
        i = 2 * pair
        out[i, :] = 0.0
        if i + 1 < n_out:
            out[i + 1, :] = 0.0
            stream_taps2(out[i], out[i + 1], mat_flat, row_offs, 0, coef[i], coef[i + 1], depth)
        else:
            stream_taps(out[i], mat_flat, row_offs, 0, coef[i], depth)
    return out


def _row_offsets(n_rows, depth):
    return np.arange(n_rows, dtype=np.int64) * depth


def dense_forward(x, w, b):
    """y = x w^T + b. x (N,D), w (U,D), b (U,) or None -> y (N,U), in x's dtype."""
    x = np.ascontiguousarray(x)
    w = np.ascontiguousarray(w, dtype=x.dtype)
    if x.ndim != 2 or w.ndim != 2 or x.shape[1] != w.shape[1]:
        raise ShapeError(f"dense wants x (N,D) and w (U,D), got {x.shape} and {w.shape}")
    if b is not None and np.shape(b) != (w.shape[0],):
        raise ShapeError(f"dense: bias shape {np.shape(b)} != ({w.shape[0]},)")
    units, depth = w.shape
    bias = np.zeros(units, dtype=x.dtype) if b is None else np.ascontiguousarray(b, dtype=x.dtype)
    y = _dense_fwd(x, w.reshape(-1), _row_offsets(units, depth), bias, np.empty((x.shape[0], units), dtype=x.dtype))
    return y, DenseCache(x, w, b is not None)


def dense_backward(dy, cache):
    """(dx, dw, db) from dy (N,U); db is None if the forward had no bias."""
    x, w, has_bias = cache
    dy = np.ascontiguousarray(dy, dtype=x.dtype)
    if dy.shape != (x.shape[0], w.shape[0]):
        raise ShapeError(f"dense_backward: dy {dy.shape} != forward output {(x.shape[0], w.shape[0])}")
    (n_rows, depth), units = x.shape, w.shape[0]
    # dw[u] = sum_n dy[n, u] x[n];  dx[n] = sum_u dy[n, u] w[u]
    dw = _rows_times_matrix(np.ascontiguousarray(dy.T), x.reshape(-1), _row_offsets(n_rows, depth), depth,
                            np.empty_like(w))
    dx = _rows_times_matrix(dy, w.reshape(-1), _row_offsets(units, depth), depth, np.empty_like(x))
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
