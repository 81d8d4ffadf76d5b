"""Batch normalization over the last (channel) axis, forward and backward.

Train mode normalizes by the batch's mean and biased variance over every axis
but the channel one (N, or N*H*W for images) and reports those statistics, so the
layer can update its running averages. Eval mode is the fixed per-channel affine
map that the quantizer folds into the preceding conv or dense:
    y = gamma * (x - mean) / sqrt(var + eps) + beta.

The fast path is Numba passes over fixed row chunks (two forward, two backward;
x_hat is recomputed from x rather than stored); `*_naive` is the textbook numpy form.
Statistics are summed in float64 in a fixed order, so training repeats bit for bit.

`relu=True` applies a ReLU inside the same passes (BN-ReLU is most of a ResNet's
elementwise work, memory-bound in a training step): the forward writes max(y, 0),
the backward gates dy by y > 0 with y recomputed from x, so neither y nor the gated
dy is ever written out. The results are bit-identical to relu_forward/_backward
after the plain op.
"""

from typing import NamedTuple

import numpy as np
from numba import njit

from edgecnn.errors import ShapeError
from edgecnn.reference.activations import relu_backward
from edgecnn.reference.workers import run_chunks, sum_in_order


class BatchNormCache(NamedTuple):
    x: np.ndarray        # (M, C) the input, M = every position of every image (x_hat is recomputed)
    inv_std: np.ndarray  # (C,) 1 / sqrt(var + eps), in x's dtype
    gamma: np.ndarray    # (C,)
    train: bool          # the batch statistics depend on x (train) or not (eval)
    shape: tuple         # x's shape
    mean: np.ndarray     # (C,) statistics used: the batch's (train) or the running ones (eval), float64
    var: np.ndarray      # (C,) biased variance
    shift: np.ndarray    # (C,) mean in x's dtype: x_hat = (x - shift) * inv_std
    beta: np.ndarray     # (C,) in x's dtype
    relu: bool           # a ReLU follows inside the op


def _rows(x, gamma, beta):
    x = np.ascontiguousarray(x)
    c = x.shape[-1] if x.ndim else 0
    if x.ndim < 2 or np.shape(gamma) != (c,) or np.shape(beta) != (c,):
        raise ShapeError(f"batchnorm wants x (N,...,C) and gamma, beta (C,), got {x.shape}, "
                         f"{np.shape(gamma)}, {np.shape(beta)}")
    return x.reshape(-1, c)


# Rows are split into a fixed number of chunks, summed per chunk (float64), then the chunk
# sums added in order: results do not depend on the thread count. Chunks run on
# workers.py's threads; as Numba prange regions (one shared partial-sum array) every BN
# of a resnet8 step ran 2x slower on 2 vCPUs than on one thread.
CHUNKS = 8
PASS_CHUNKS = 16  # elementwise passes (no sums): finer, so two threads end closer together


def _span(k, m, chunks=CHUNKS):
    return k * m // chunks, (k + 1) * m // chunks


@njit(cache=True, nogil=True)
def _shifted_sums(x, r0, r1, ref, out):
    # out (2, C) float64 = sums of d and d^2 over rows r0..r1-1, d = x - ref (ref: one row of x).
    # One pass; the shift keeps d^2's sum free of the cancellation a raw sum of squares suffers.
    s1 = np.zeros(x.shape[1])
    s2 = np.zeros(x.shape[1])
    for i in range(r0, r1):
        row = x[i]
        for j in range(x.shape[1]):
            d = np.float64(row[j]) - ref[j]
            s1[j] += d
            s2[j] += d * d
    out[0] = s1
    out[1] = s2


@njit(cache=True, nogil=True)
def _normalize(x, r0, r1, shift, inv_std, gamma, beta, relu, y):
    # y = gamma * (x - shift) * inv_std + beta on rows r0..r1-1; (C,) vectors in x's dtype.
    # relu: 0 where y < 0 (y itself otherwise, NaN and -0.0 included: np.maximum(y, 0)'s bytes)
    for i in range(r0, r1):
        row, out = x[i], y[i]
        for j in range(x.shape[1]):
            v = gamma[j] * ((row[j] - shift[j]) * inv_std[j]) + beta[j]
            if relu and v < 0:
                out[j] = 0
            else:
                out[j] = v


@njit(cache=True, nogil=True)
def _dy_sums(dy, x, r0, r1, shift, inv_std, out_dy, out_dy_xhat):
    # per channel over rows r0..r1-1, float64: sum of dy and of dy * x_hat
    a = np.zeros(dy.shape[1])
    b = np.zeros(dy.shape[1])
    for i in range(r0, r1):
        g, row = dy[i], x[i]
        for j in range(dy.shape[1]):
            a[j] += g[j]
            b[j] += g[j] * ((row[j] - shift[j]) * inv_std[j])
    out_dy[:] = a
    out_dy_xhat[:] = b


@njit(cache=True, nogil=True)
def _dy_sums_relu(dy, x, r0, r1, shift, inv_std, gamma, beta, zero, out_dy, out_dy_xhat):
    # _dy_sums of dy through the ReLU: dy kept where 0 < y < inf (relu_backward's test on its
    # output), y = gamma * x_hat + beta recomputed exactly as the forward computed it
    a = np.zeros(dy.shape[1])
    b = np.zeros(dy.shape[1])
    for i in range(r0, r1):
        g, row = dy[i], x[i]
        for j in range(dy.shape[1]):
            xh = (row[j] - shift[j]) * inv_std[j]
            v = gamma[j] * xh + beta[j]
            gj = g[j] if (v > 0) & (v < np.inf) else zero
            a[j] += gj
            b[j] += gj * xh
    out_dy[:] = a
    out_dy_xhat[:] = b


@njit(cache=True, nogil=True)
def _dx_train(dy, x, r0, r1, shift, inv_std, scale, mean_dy, mean_dy_xhat, dx):
    # dx = scale * (dy - mean(dy) - x_hat * mean(dy * x_hat)), scale = gamma * inv_std
    for i in range(r0, r1):
        g, row, out = dy[i], x[i], dx[i]
        for j in range(dy.shape[1]):
            out[j] = scale[j] * (g[j] - mean_dy[j] - ((row[j] - shift[j]) * inv_std[j]) * mean_dy_xhat[j])


@njit(cache=True, nogil=True)
def _dx_train_relu(dy, x, r0, r1, shift, inv_std, gamma, beta, zero, scale, mean_dy, mean_dy_xhat, dx):
    # _dx_train of dy through the ReLU (the gate as in _dy_sums_relu)
    for i in range(r0, r1):
        g, row, out = dy[i], x[i], dx[i]
        for j in range(dy.shape[1]):
            xh = (row[j] - shift[j]) * inv_std[j]
            v = gamma[j] * xh + beta[j]
            gj = g[j] if (v > 0) & (v < np.inf) else zero
            out[j] = scale[j] * (gj - mean_dy[j] - xh * mean_dy_xhat[j])


@njit(cache=True, nogil=True)
def _dx_eval(dy, r0, r1, scale, dx):
    # eval mode is an affine map: dx = scale * dy
    for i in range(r0, r1):
        g, out = dy[i], dx[i]
        for j in range(dy.shape[1]):
            out[j] = scale[j] * g[j]


def _moments(rows):
    """(mean, biased var) per channel in float64: one pass of shifted sums over fixed chunks,
    added in chunk order. Measured: BN is memory-bound inside a training step, and the
    two-pass form read every activation once more."""
    m, c = rows.shape
    ref = rows[0].astype(np.float64)
    part = np.empty((CHUNKS, 2, c))
    run_chunks(lambda k: _shifted_sums(rows, *_span(k, m), ref, part[k]), CHUNKS)
    s1, s2 = sum_in_order(part[:, 0]) / m, sum_in_order(part[:, 1]) / m
    return ref + s1, np.maximum(s2 - s1 * s1, 0.0)


def batchnorm_forward(x, gamma, beta, running_mean, running_var, eps=1e-5, train=False, relu=False):
    """y = gamma * (x - mean) / sqrt(var + eps) + beta over the last axis (then max(y, 0) if relu).

    x (N,...,C), gamma, beta, running_mean, running_var (C,) -> y like x, in x's dtype.
    train=True uses the batch's mean and biased variance (returned in the cache as
    float64 `mean`, `var`); train=False uses the running ones.
    """
    rows = _rows(x, gamma, beta)
    dt = rows.dtype
    m, c = rows.shape
    if train:
        if m < 2:
            raise ShapeError("batchnorm in train mode needs more than one value per channel")
        mean, var = _moments(rows)
    else:
        mean, var = np.asarray(running_mean, np.float64), np.asarray(running_var, np.float64)
    inv_std = (1.0 / np.sqrt(var + eps)).astype(dt)
    shift, gamma, beta = mean.astype(dt), np.asarray(gamma, dt), np.asarray(beta, dt)
    y = np.empty_like(rows)
    relu = bool(relu)
    run_chunks(lambda k: _normalize(rows, *_span(k, m, PASS_CHUNKS), shift, inv_std, gamma, beta, relu, y),
               PASS_CHUNKS)
    return y.reshape(x.shape), BatchNormCache(rows, inv_std, gamma, train, x.shape, mean, var, shift, beta, relu)


def batchnorm_backward(dy, cache):
    """(dx, dgamma, dbeta) from dy shaped like the forward's x."""
    dy = np.ascontiguousarray(dy, dtype=cache.x.dtype)
    if dy.shape != cache.shape:
        raise ShapeError(f"batchnorm_backward: dy {dy.shape} != forward shape {cache.shape}")
    rows = dy.reshape(cache.x.shape)
    m, c = rows.shape
    dt = rows.dtype
    sums = np.empty((2, CHUNKS, c))
    x, shift, inv_std = cache.x, cache.shift, cache.inv_std
    gate = (cache.gamma, cache.beta, dt.type(0))  # the ReLU's gate: y recomputed from x
    if cache.relu:
        run_chunks(lambda k: _dy_sums_relu(rows, x, *_span(k, m), shift, inv_std, *gate, sums[0, k], sums[1, k]),
                   CHUNKS)
    else:
        run_chunks(lambda k: _dy_sums(rows, x, *_span(k, m), shift, inv_std, sums[0, k], sums[1, k]), CHUNKS)
    sum_dy, sum_dy_xhat = sum_in_order(sums[0]), sum_in_order(sums[1])
    scale = cache.gamma * cache.inv_std
    dx = np.empty_like(rows)
    if cache.train:
        mean_dy, mean_dy_xhat = (sum_dy / m).astype(dt), (sum_dy_xhat / m).astype(dt)
        if cache.relu:
            run_chunks(lambda k: _dx_train_relu(rows, x, *_span(k, m, PASS_CHUNKS), shift, inv_std, *gate, scale,
                                                mean_dy, mean_dy_xhat, dx), PASS_CHUNKS)
        else:
            run_chunks(lambda k: _dx_train(rows, x, *_span(k, m, PASS_CHUNKS), shift, inv_std, scale, mean_dy,
                                           mean_dy_xhat, dx), PASS_CHUNKS)
    else:
        if cache.relu:  # eval mode (gradient checks, not training): the gate as a pass of its own
            y = np.empty_like(rows)
            run_chunks(lambda k: _normalize(x, *_span(k, m), shift, inv_std, cache.gamma, cache.beta, True, y),
                       CHUNKS)
            rows = relu_backward(rows, y)
        run_chunks(lambda k: _dx_eval(rows, *_span(k, m), scale, dx), CHUNKS)
    return dx.reshape(cache.shape), sum_dy_xhat.astype(dt), sum_dy.astype(dt)


# ----------------------------------------------------------------------------- naive reference

def batchnorm_forward_naive(x, gamma, beta, running_mean, running_var, eps=1e-5, train=False):
    x = np.asarray(x)
    axes = tuple(range(x.ndim - 1))
    if train:
        mean, var = x.mean(axis=axes, dtype=np.float64), x.var(axis=axes, dtype=np.float64)
    else:
        mean, var = np.asarray(running_mean, np.float64), np.asarray(running_var, np.float64)
    x_hat = (x - mean) / np.sqrt(var + eps)
    y = (gamma * x_hat + beta).astype(x.dtype)
    return y, (x_hat.astype(x.dtype), np.asarray(gamma, x.dtype), 1.0 / np.sqrt(var + eps), train, mean, var)


def batchnorm_backward_naive(dy, cache):
    x_hat, gamma, inv_std, train, _, _ = cache
    axes = tuple(range(dy.ndim - 1))
    dgamma, dbeta = (dy * x_hat).sum(axis=axes), dy.sum(axis=axes)
    if train:
        m = dy.size // dy.shape[-1]
        dx = gamma * inv_std / m * (m * dy - dbeta - x_hat * dgamma)
    else:
        dx = gamma * inv_std * dy
    return dx.astype(dy.dtype), dgamma.astype(dy.dtype), dbeta.astype(dy.dtype)
