"""Folding LeCun's scaled-tanh constants into neighbouring layers (BatchNorm folding is in edgecnn.model.norm_layers)."""

from __future__ import annotations

from edgecnn.reference.activations import SCALED_TANH_A, SCALED_TANH_S


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
