"""Elementwise activations, each a NAME_forward(x) -> (y, cache) / NAME_backward(dy, cache) -> dx pair.

Any shape; y and dx keep x's dtype. At a kink (relu at 0, relu6 at 0 and 6) the
gradient is 0, as in PyTorch.
"""

import numpy as np
from numba import njit

from edgecnn.errors import ShapeError
from edgecnn.reference.taps import FAST
from edgecnn.reference.workers import over_spans

# LeCun et al. 1998, appendix A: f(a) = A tanh(S a), chosen so that f(+-1) = +-1.
SCALED_TANH_A = 1.7159
SCALED_TANH_S = 2.0 / 3.0


def relu_forward(x):
    """y = max(x, 0)."""
    x = np.asarray(x)
    zero = x.dtype.type(0)
    if not x.flags.c_contiguous or x.dtype.kind != "f":
        y = np.maximum(x, zero)
        return y, y
    y = np.empty_like(x)
    x_flat, y_flat = x.reshape(-1), y.reshape(-1)
    over_spans(x.size, lambda a, b: np.maximum(x_flat[a:b], zero, out=y_flat[a:b]))
    return y, y


@njit(cache=True, nogil=True)
def _pass_where(dy, lo, hi, x, out):
    # out = dy where lo < x < hi, else exactly 0 (np.where was 8x slower; dy * mask keeps NaN * 0)
    for i in range(out.shape[0]):
        out[i] = dy[i] if lo < x[i] < hi else 0.0
    return out


@njit(cache=True, fastmath=FAST)
def _times_tanh_slope(dy, t, scale, out):
    # out = dy * scale * (1 - t^2): one pass instead of numpy's four temporaries
    for i in range(out.shape[0]):
        out[i] = dy[i] * (scale * (1 - t[i] * t[i]))
    return out


@njit(cache=True, fastmath=FAST)
def _times_sigmoid_slope(dy, y, out):
    for i in range(out.shape[0]):
        out[i] = dy[i] * (y[i] * (1 - y[i]))
    return out


@njit(cache=True, fastmath=FAST)
def _times_leaky_slope(dy, x, alpha, out):
    for i in range(out.shape[0]):
        out[i] = dy[i] if x[i] > 0 else alpha * dy[i]
    return out


@njit(cache=True, fastmath=FAST)
def _times_hard_swish_slope(dy, x, out):
    for i in range(out.shape[0]):
        v = x[i]
        if v < -3.0:
            out[i] = 0.0
        elif v <= 3.0:
            out[i] = dy[i] * (v / 3.0 + 0.5)
        else:
            out[i] = dy[i]
    return out


def _flat_pair(dy, cache):
    """dy cast to the cache's dtype and both flattened, after checking they match."""
    dy = np.ascontiguousarray(dy, dtype=cache.dtype)
    if dy.shape != cache.shape:
        raise ShapeError(f"activation backward: dy {dy.shape} != forward shape {cache.shape}")
    out = np.empty_like(dy)
    return dy.reshape(-1), np.ascontiguousarray(cache).reshape(-1), out


def _gate(dy, x, lo, hi):
    dy_flat, x_flat, out = _flat_pair(dy, x)
    out_flat = out.reshape(-1)
    over_spans(out.size, lambda a, b: _pass_where(dy_flat[a:b], lo, hi, x_flat[a:b], out_flat[a:b]))
    return out


def relu_backward(dy, y):
    return _gate(dy, y, 0.0, np.inf)


def relu6_forward(x):
    """y = min(max(x, 0), 6)."""
    x = np.asarray(x)
    y = np.clip(x, x.dtype.type(0), x.dtype.type(6))
    return y, x


def relu6_backward(dy, x):
    return _gate(dy, x, 0.0, 6.0)


def tanh_forward(x):
    x = np.asarray(x)
    y = np.tanh(x)
    return y, y


def tanh_backward(dy, y):
    dy_flat, y_flat, out = _flat_pair(dy, y)
    _times_tanh_slope(dy_flat, y_flat, y.dtype.type(1.0), out.reshape(-1))
    return out


def sigmoid_forward(x):
    """y = 1 / (1 + exp(-x)), computed as (1 + tanh(x/2)) / 2, which never overflows."""
    x = np.asarray(x)
    half = x.dtype.type(0.5)
    y = half * np.tanh(half * x) + half
    return y, y


def sigmoid_backward(dy, y):
    dy_flat, y_flat, out = _flat_pair(dy, y)
    _times_sigmoid_slope(dy_flat, y_flat, out.reshape(-1))
    return out


def leaky_relu_forward(x, alpha=0.2):
    """y = x where x > 0, else alpha * x. The cache is x (the slope depends on its sign)."""
    x = np.asarray(x)
    y = np.where(x > 0, x, x * x.dtype.type(alpha))
    return y, (x, float(alpha))


def leaky_relu_backward(dy, cache):
    """dy where x > 0, else alpha * dy (at 0 the slope is alpha, as in PyTorch)."""
    x, alpha = cache
    dy_flat, x_flat, out = _flat_pair(dy, x)
    _times_leaky_slope(dy_flat, x_flat, x.dtype.type(alpha), out.reshape(-1))
    return out


def hard_swish_forward(x):
    """y = x * relu6(x + 3) / 6 (Howard et al. 2019, MobileNetV3; TFLite's HARD_SWISH)."""
    x = np.asarray(x)
    t = x.dtype.type
    y = x * np.clip(x + t(3), t(0), t(6)) / t(6)
    return y, x


def hard_swish_backward(dy, x):
    """dy * (0 below -3, 1 above 3, (2x + 3) / 6 between); PyTorch's choice at the kinks."""
    dy_flat, x_flat, out = _flat_pair(dy, x)
    _times_hard_swish_slope(dy_flat, x_flat, out.reshape(-1))
    return out


def scaled_tanh_forward(x):
    """y = A tanh(S x), A = SCALED_TANH_A, S = SCALED_TANH_S."""
    x = np.asarray(x)
    t = np.tanh(x.dtype.type(SCALED_TANH_S) * x)
    return x.dtype.type(SCALED_TANH_A) * t, t


def scaled_tanh_backward(dy, t):
    """dy * A S (1 - tanh(S x)^2); the cache is tanh(S x), not y."""
    dy_flat, t_flat, out = _flat_pair(dy, t)
    _times_tanh_slope(dy_flat, t_flat, t.dtype.type(SCALED_TANH_A * SCALED_TANH_S), out.reshape(-1))
    return out
