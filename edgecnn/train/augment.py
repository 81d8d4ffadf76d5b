"""Random-shift augmentation: each image moves by up to `max_shift` pixels, zero-filled."""

from __future__ import annotations

import numpy as np


def random_shift(x: np.ndarray, max_shift: int, rng: np.random.Generator) -> np.ndarray:
    # x: (N, H, W, C) -> (N, H, W, C), content moved by (dy, dx) in [-max_shift, max_shift]
    if max_shift <= 0:
        return x
    n, h, w, _ = x.shape
    s = max_shift
    padded = np.zeros((n, h + 2 * s, w + 2 * s, x.shape[3]), dtype=x.dtype)
    padded[:, s:s + h, s:s + w] = x
    offs = rng.integers(0, 2 * s + 1, size=(n, 2))
    out = np.empty_like(x)
    for i, (oy, ox) in enumerate(offs):
        out[i] = padded[i, oy:oy + h, ox:ox + w]
    return out
