"""Central finite differences, the judge for every *_backward (float64 only)."""

import numpy as np


def numerical_gradient(loss_fn, x, eps=1e-6):
    """d loss_fn() / d x by central differences, perturbing x in place one element at a time.

    loss_fn takes no arguments and must read x afresh on every call. Truncation error
    is O(eps^2 * f'''), rounding error O(machine eps * |loss| / eps): 1e-6 balances them
    in float64 to about 1e-9 relative.
    """
    grad = np.zeros_like(x, dtype=np.float64)
    flat_x, flat_g = x.reshape(-1), grad.reshape(-1)  # views: x must be contiguous
    assert np.shares_memory(flat_x, x), "numerical_gradient needs a contiguous x"
    for i in range(flat_x.size):
        saved = flat_x[i]
        flat_x[i] = saved + eps
        up = loss_fn()
        flat_x[i] = saved - eps
        down = loss_fn()
        flat_x[i] = saved
        flat_g[i] = (up - down) / (2 * eps)
    return grad
