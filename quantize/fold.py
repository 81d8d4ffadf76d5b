"""Rewrites that fold float constants into neighbouring layers before quantization."""

from __future__ import annotations

import numpy as np

from edgecnn.reference.activations import SCALED_TANH_A, SCALED_TANH_S


def fold_batchnorm(w, b, gamma, beta, mean, var, eps=1e-5):
    """Fold y = gamma * (conv(x) + b - mean) / sqrt(var + eps) + beta into conv's (w, b).

    `w` has output channels on axis 0 (OHWI conv or [units, in] dense), so
    the per-channel factor broadcasts over the rest. Folding happens in
    float64 and is exact up to rounding: conv(x; w') + b' == BN(conv(x; w) + b).
    """
    w = np.asarray(w, dtype=np.float64)
    b = np.zeros(w.shape[0]) if b is None else np.asarray(b, dtype=np.float64)
    factor = np.asarray(gamma, np.float64) / np.sqrt(np.asarray(var, np.float64) + eps)
    w_folded = w * factor.reshape((-1,) + (1,) * (w.ndim - 1))
    b_folded = (b - np.asarray(mean, np.float64)) * factor + np.asarray(beta, np.float64)
    return w_folded, b_folded


def scaled_tanh_factors(prev_activation: str, activation: str) -> tuple[float, float]:
    """(input factor, output factor) that fold LeCun's A*tanh(S*a) into a layer.

    A layer fed by a scaled tanh sees A*t, where t is the int8 TANH output, so
    its weights take a factor A. A layer followed by a scaled tanh must emit
    S*a for the TANH op, so its weights and bias take a factor S. The int8
    graph then needs only plain TANH ops.
    """
    w_in = SCALED_TANH_A if prev_activation == "scaled_tanh" else 1.0
    out = SCALED_TANH_S if activation == "scaled_tanh" else 1.0
    return w_in, out
