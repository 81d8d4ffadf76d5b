"""Global average and max pooling: (N,H,W,C) -> (N,C), forward and backward.

Global average pooling is TFLite's MEAN over axes 1 and 2 (keep_dims false); the
output is flat, so a dense layer follows without a Flatten.
"""

from typing import NamedTuple

import numpy as np

from edgecnn.errors import ShapeError


class GlobalPoolCache(NamedTuple):
    x_shape: tuple
    argmax: object  # max: (N,C) index h*W + w of the first maximum, row-major; average: None


def _check(x):
    x = np.asarray(x)
    if x.ndim != 4:
        raise ShapeError(f"global pooling wants x (N,H,W,C), got shape {x.shape}")
    return x


def global_avg_pool2d_forward(x):
    """y[n, c] = mean over (h, w) of x[n, h, w, c]. x (N,H,W,C) -> y (N,C)."""
    x = _check(x)
    n, h, w, c = x.shape
    y = x.reshape(n, h * w, c).sum(axis=1) / x.dtype.type(h * w)
    return y, GlobalPoolCache(x.shape, None)


def global_avg_pool2d_backward(dy, cache):
    """dx[n, h, w, c] = dy[n, c] / (H*W). dy (N,C) -> dx (N,H,W,C)."""
    n, h, w, c = cache.x_shape
    dy = np.asarray(dy)
    if dy.shape != (n, c):
        raise ShapeError(f"global_avg_pool2d_backward: dy {dy.shape} != forward output {(n, c)}")
    share = dy / dy.dtype.type(h * w)
    return np.ascontiguousarray(np.broadcast_to(share[:, None, None, :], cache.x_shape))


def global_max_pool2d_forward(x):
    """y[n, c] = max over (h, w) of x[n, h, w, c]. x (N,H,W,C) -> y (N,C)."""
    x = _check(x)
    n, h, w, c = x.shape
    flat = x.reshape(n, h * w, c)
    argmax = flat.argmax(axis=1)  # the first maximum, row-major, as max_pool2d picks it
    y = np.take_along_axis(flat, argmax[:, None, :], axis=1)[:, 0, :]
    return y, GlobalPoolCache(x.shape, argmax)


def global_max_pool2d_backward(dy, cache):
    """dy (N,C) goes to each channel's first maximum; dx (N,H,W,C) is zero elsewhere."""
    n, h, w, c = cache.x_shape
    dy = np.asarray(dy)
    if dy.shape != (n, c):
        raise ShapeError(f"global_max_pool2d_backward: dy {dy.shape} != forward output {(n, c)}")
    dx = np.zeros((n, h * w, c), dtype=dy.dtype)
    np.put_along_axis(dx, cache.argmax[:, None, :], dy[:, None, :], axis=1)
    return dx.reshape(cache.x_shape)
