"""Ops that join branches: elementwise Add and channel Concatenate (NHWC), forward and backward.

These are what make the float model a graph: ResNet's shortcut is an Add, an
Inception-style block a Concatenate. Both are pure data movement or one add per
element: numpy, with a large two-input Add split over workers.py's threads.
"""

import numpy as np
from numba import njit

from edgecnn.errors import ShapeError
from edgecnn.reference.activations import relu_backward, relu_forward
from edgecnn.reference.workers import over_spans


@njit(cache=True, nogil=True)
def _add_relu(a, b, out):
    # out = max(a + b, 0) in one pass: 0 where the sum is < 0, else the sum (np.maximum's bytes)
    for i in range(out.shape[0]):
        v = a[i] + b[i]
        if v < 0:
            out[i] = 0
        else:
            out[i] = v


def add_forward(xs, relu=False):
    """y = xs[0] + xs[1] + ... (summed left to right), then max(y, 0) if relu.

    Each x (N,...) of one shape -> y (N,...). The cache is (number of inputs, y if relu).
    Two float inputs with relu take one fused pass (ResNet's shortcut Add-ReLU).
    """
    xs = [np.asarray(x) for x in xs]
    if len(xs) < 2 or any(x.shape != xs[0].shape for x in xs):
        raise ShapeError(f"add wants two or more inputs of one shape, got {[x.shape for x in xs]}")
    if len(xs) == 2 and all(x.flags.c_contiguous and x.dtype.kind == "f" for x in xs) and xs[0].dtype == xs[1].dtype:
        a, b = (x.reshape(-1) for x in xs)
        y = np.empty_like(xs[0])
        y_flat = y.reshape(-1)
        if relu:
            over_spans(y.size, lambda i, j: _add_relu(a[i:j], b[i:j], y_flat[i:j]))
            return y, (2, y)
        over_spans(y.size, lambda i, j: np.add(a[i:j], b[i:j], out=y_flat[i:j]))
        return y, (2, None)
    y = xs[0] + xs[1]
    for x in xs[2:]:
        y += x
    if relu:
        y = relu_forward(y)[0]
    return y, (len(xs), y if relu else None)


def add_backward(dy, cache):
    """[dx_0, ..., dx_{n-1}]: every input receives dy (through the ReLU if there was one) itself
    (callers must not edit it in place)."""
    n_inputs, y = cache
    return [dy if y is None else relu_backward(dy, y)] * n_inputs


def concatenate_forward(xs, axis=-1):
    """y = the xs side by side along `axis` (channels by default). xs (N,...,C_i) -> y (N,...,sum C_i)."""
    xs = [np.asarray(x) for x in xs]
    if len(xs) < 2:
        raise ShapeError("concatenate wants two or more inputs")
    ax = axis % xs[0].ndim
    rest = [x.shape[:ax] + x.shape[ax + 1:] for x in xs]
    if any(x.ndim != xs[0].ndim for x in xs) or any(r != rest[0] for r in rest):
        raise ShapeError(f"concatenate: inputs {[x.shape for x in xs]} differ outside axis {axis}")
    sizes = [x.shape[ax] for x in xs]
    return np.concatenate(xs, axis=ax), (ax, sizes)


def concatenate_backward(dy, cache):
    """[dx_i]: dy cut back into the inputs' slices along the concatenation axis."""
    ax, sizes = cache
    cuts = np.cumsum(sizes)[:-1]
    return [np.ascontiguousarray(part) for part in np.split(dy, cuts, axis=ax)]
