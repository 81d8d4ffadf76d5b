"""Batch normalization over the last (channel) axis, forward and backward.

Train mode normalizes by the batch's mean and biased variance over every axis
but the channel one (N, or N*H*W for images) and reports those statistics, so the
layer can update its running averages. Eval mode is the fixed per-channel affine
map that the quantizer folds into the preceding conv or dense:
    y = gamma * (x - mean) / sqrt(var + eps) + beta.

The fast path is two Numba passes per direction; `*_naive` is the textbook numpy
form. Statistics are summed in float64 in a fixed order, so training repeats bit
for bit.
"""

from typing import NamedTuple

import numpy as np
from numba import njit

from edgecnn.errors import ShapeError


class BatchNormCache(NamedTuple):
    x_hat: np.ndarray    # (M, C) normalized input, M = every position of every image
    inv_std: np.ndarray  # (C,) 1 / sqrt(var + eps), in x's dtype
    gamma: np.ndarray    # (C,)
    train: bool          # the batch statistics depend on x (train) or not (eval)
    shape: tuple         # x's shape
    mean: np.ndarray     # (C,) statistics used: the batch's (train) or the running ones (eval), float64
    var: np.ndarray      # (C,) biased variance


def _rows(x, gamma, beta):
    x = np.ascontiguousarray(x)
    c = x.shape[-1] if x.ndim else 0
    if x.ndim < 2 or np.shape(gamma) != (c,) or np.shape(beta) != (c,):
        raise ShapeError(f"batchnorm wants x (N,...,C) and gamma, beta (C,), got {x.shape}, "
                         f"{np.shape(gamma)}, {np.shape(beta)}")
    return x.reshape(-1, c)


# Rows are split into a fixed number of chunks, summed per chunk, then the chunk sums
# added in order (the order the parallel version of these kernels used; results kept).
# One thread: in a resnet8 training step on 2 vCPUs, waking Numba's second (passive)
# OpenMP thread for each of these short loops made every BN 2x slower than running alone
# (28x28x16 at batch 64: 3.0 vs 1.6 ms forward, 3.0 vs 2.2 backward).
CHUNKS = 8


@njit(cache=True, nogil=True)
def _moments(x, mean, var):
    # x (M,C) -> mean, biased var (C,) in float64; two passes, so var never goes negative
    m, c = x.shape
    part = np.zeros((CHUNKS, c))
    for k in range(CHUNKS):
        r0, r1 = k * m // CHUNKS, (k + 1) * m // CHUNKS
        for i in range(r0, r1):
            for j in range(c):
                part[k, j] += x[i, j]
    mean[:] = 0.0
    for k in range(CHUNKS):
        mean += part[k]
    mean /= m
    part[:, :] = 0.0
    for k in range(CHUNKS):
        r0, r1 = k * m // CHUNKS, (k + 1) * m // CHUNKS
        for i in range(r0, r1):
            for j in range(c):
                d = x[i, j] - mean[j]
                part[k, j] += d * d
    var[:] = 0.0
    for k in range(CHUNKS):
        var += part[k]
    var /= m
    return mean, var


@njit(cache=True, nogil=True)
def _normalize(x, shift, inv_std, gamma, beta, x_hat, y):
    # x_hat = (x - shift) * inv_std; y = gamma * x_hat + beta; all (M,C) with (C,) vectors
    m, c = x.shape
    for k in range(CHUNKS):
        for i in range(k * m // CHUNKS, (k + 1) * m // CHUNKS):
            for j in range(c):
                h = (x[i, j] - shift[j]) * inv_std[j]
                x_hat[i, j] = h
                y[i, j] = gamma[j] * h + beta[j]


@njit(cache=True, nogil=True)
def _dy_sums(dy, x_hat, sum_dy, sum_dy_xhat):
    # per channel: sum of dy and of dy * x_hat, in float64, chunk by chunk
    m, c = dy.shape
    part = np.zeros((2, CHUNKS, c))
    for k in range(CHUNKS):
        for i in range(k * m // CHUNKS, (k + 1) * m // CHUNKS):
            for j in range(c):
                part[0, k, j] += dy[i, j]
                part[1, k, j] += dy[i, j] * x_hat[i, j]
    sum_dy[:] = 0.0
    sum_dy_xhat[:] = 0.0
    for k in range(CHUNKS):
        sum_dy += part[0, k]
        sum_dy_xhat += part[1, k]


@njit(cache=True, nogil=True)
def _bn_backward_train(dy, x_hat, scale, dx, dgamma, dbeta):
    # dx = scale * (dy - mean(dy) - x_hat * mean(dy * x_hat)), scale = gamma * inv_std (C,)
    m, c = dy.shape
    sum_dy, sum_dy_xhat = np.empty(c), np.empty(c)
    _dy_sums(dy, x_hat, sum_dy, sum_dy_xhat)
    mean_dy = np.empty_like(scale)
    mean_dy_xhat = np.empty_like(scale)
    for j in range(c):
        dbeta[j] = sum_dy[j]
        dgamma[j] = sum_dy_xhat[j]
        mean_dy[j] = sum_dy[j] / m
        mean_dy_xhat[j] = sum_dy_xhat[j] / m
    for k in range(CHUNKS):
        for i in range(k * m // CHUNKS, (k + 1) * m // CHUNKS):
            for j in range(c):
                dx[i, j] = scale[j] * (dy[i, j] - mean_dy[j] - x_hat[i, j] * mean_dy_xhat[j])


@njit(cache=True, nogil=True)
def _bn_backward_eval(dy, x_hat, scale, dx, dgamma, dbeta):
    # eval mode is an affine map: dx = scale * dy
    m, c = dy.shape
    sum_dy, sum_dy_xhat = np.empty(c), np.empty(c)
    _dy_sums(dy, x_hat, sum_dy, sum_dy_xhat)
    for j in range(c):
        dbeta[j] = sum_dy[j]
        dgamma[j] = sum_dy_xhat[j]
    for k in range(CHUNKS):
        for i in range(k * m // CHUNKS, (k + 1) * m // CHUNKS):
            for j in range(c):
                dx[i, j] = scale[j] * dy[i, j]


def batchnorm_forward(x, gamma, beta, running_mean, running_var, eps=1e-5, train=False):
    """y = gamma * (x - mean) / sqrt(var + eps) + beta over the last axis.

    x (N,...,C), gamma, beta, running_mean, running_var (C,) -> y like x, in x's dtype.
    train=True uses the batch's mean and biased variance (returned in the cache as
    float64 `mean`, `var`); train=False uses the running ones.
    """
    rows = _rows(x, gamma, beta)
    dt = rows.dtype
    if train:
        if rows.shape[0] < 2:
            raise ShapeError("batchnorm in train mode needs more than one value per channel")
        mean, var = _moments(rows, np.empty(rows.shape[1]), np.empty(rows.shape[1]))
    else:
        mean, var = np.asarray(running_mean, np.float64), np.asarray(running_var, np.float64)
    inv_std = (1.0 / np.sqrt(var + eps)).astype(dt)
    x_hat, y = np.empty_like(rows), np.empty_like(rows)
    _normalize(rows, mean.astype(dt), inv_std, np.asarray(gamma, dt), np.asarray(beta, dt), x_hat, y)
    return y.reshape(x.shape), BatchNormCache(x_hat, inv_std, np.asarray(gamma, dt), train, x.shape, mean, var)


def batchnorm_backward(dy, cache):
    """(dx, dgamma, dbeta) from dy shaped like the forward's x."""
    dy = np.ascontiguousarray(dy, dtype=cache.x_hat.dtype)
    if dy.shape != cache.shape:
        raise ShapeError(f"batchnorm_backward: dy {dy.shape} != forward shape {cache.shape}")
    rows = dy.reshape(cache.x_hat.shape)
    c = rows.shape[1]
    dx = np.empty_like(rows)
    dgamma, dbeta = np.empty(c, rows.dtype), np.empty(c, rows.dtype)
    kernel = _bn_backward_train if cache.train else _bn_backward_eval
    kernel(rows, cache.x_hat, cache.gamma * cache.inv_std, dx, dgamma, dbeta)
    return dx.reshape(cache.shape), dgamma, dbeta


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
