"""Zero padding of the spatial axes (TFLite's PAD with zeros), forward and backward."""

import numpy as np

from edgecnn.errors import ShapeError
from edgecnn.reference.padding import normalize_pad


def zero_pad2d_forward(x, pad):
    """x (N,H,W,C), pad (top, bottom, left, right) -> y (N,H+top+bottom,W+left+right,C)."""
    x = np.asarray(x)
    if x.ndim != 4:
        raise ShapeError(f"zero padding wants x (N,H,W,C), got shape {x.shape}")
    top, bottom, left, right = pad = normalize_pad(pad)
    n, h, w, c = x.shape
    y = np.zeros((n, h + top + bottom, w + left + right, c), dtype=x.dtype)
    y[:, top:top + h, left:left + w, :] = x
    return y, (x.shape, pad)


def zero_pad2d_backward(dy, cache):
    """dx is dy's interior: the padded border never touched the loss through x."""
    (n, h, w, c), (top, bottom, left, right) = cache
    if dy.shape != (n, h + top + bottom, w + left + right, c):
        raise ShapeError(f"zero_pad2d_backward: dy {dy.shape} does not match the padded input")
    return np.ascontiguousarray(dy[:, top:top + h, left:left + w, :])
