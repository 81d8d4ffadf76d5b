"""Trainable batch normalization, and its folding into the conv or dense layer before it.

At int8 time BatchNorm does not exist: in eval mode it is a per-channel affine map
y = scale * x + shift, which `fold_batchnorm` merges into the preceding layer's
weights and bias, exactly as the TFLite converter does. The quantizer calls
`fold_batchnorm` (or `Graph.folded()`), so the folding lives here in core, beside
the layer whose parameters it reads.
"""

from __future__ import annotations

import math

import numpy as np

from edgecnn.errors import ModelError, ShapeError
from edgecnn.model.layers import Layer


class BatchNorm(Layer):
    """Normalize each channel (the last axis) by batch statistics in training, running ones in eval.

    Running statistics follow PyTorch's convention: running = (1 - momentum) * running
    + momentum * batch, with the unbiased batch variance; Keras' momentum=0.99 is
    this momentum=0.01. Parameters: gamma, beta (trained); buffers: mean, var.
    """

    kind = "batchnorm"
    fused_activations = ("relu",)  # BN-ReLU in one pass each way (reference/batchnorm.py)

    def __init__(self, momentum=0.1, eps=1e-5, name=None, activation="none"):
        super().__init__(name, activation)
        self.momentum, self.eps = float(momentum), float(eps)
        if not (0.0 < self.momentum <= 1.0) or not (math.isfinite(self.eps) and self.eps > 0.0):
            raise ModelError(f"{self.name or 'batchnorm'}: momentum must lie in (0, 1] and eps be positive, "
                             f"got momentum={momentum!r}, eps={eps!r}")

    def _infer(self, shape):
        if len(shape) not in (1, 3):
            raise ShapeError(f"{self.name}: batchnorm needs a (C,) or HWC input, got shape {shape}")
        return shape

    @property
    def channels(self) -> int:
        return self.input_shape[-1]

    def _init_params(self, rng):
        return {"gamma": np.ones(self.channels), "beta": np.zeros(self.channels)}

    def _init_buffers(self):
        return {"mean": np.zeros(self.channels), "var": np.ones(self.channels)}

    def param_count(self):
        return 4 * self.channels

    def config(self):
        return {**super().config(), "momentum": self.momentum, "eps": self.eps}

    def _forward(self, x):
        from edgecnn.reference.batchnorm import batchnorm_forward

        p, b = self.params, self.buffers
        y, cache = batchnorm_forward(x, p["gamma"], p["beta"], b["mean"], b["var"], self.eps, self.training,
                                     relu=self.activation in self.fused_activations)
        if self.training:
            m = x.size // self.channels
            unbiased = cache.var * (m / (m - 1))
            # in place: the arrays the checkpoint and model.named_buffers() hold
            b["mean"][...] = (1.0 - self.momentum) * b["mean"] + self.momentum * cache.mean
            b["var"][...] = (1.0 - self.momentum) * b["var"] + self.momentum * unbiased
        return y, cache

    def _backward(self, dy):
        from edgecnn.reference.batchnorm import batchnorm_backward

        dx, dgamma, dbeta = batchnorm_backward(dy, self._cache)
        self.grads = {"gamma": dgamma, "beta": dbeta}
        return dx

    def scale_shift(self) -> tuple[np.ndarray, np.ndarray]:
        """Eval-mode BN as y = scale * x + shift, per channel, in float64."""
        gamma, beta = (self.params[k].astype(np.float64) for k in ("gamma", "beta"))
        mean, var = (self.buffers[k].astype(np.float64) for k in ("mean", "var"))
        scale = gamma / np.sqrt(var + self.eps)
        return scale, beta - scale * mean


def fold_batchnorm(w: np.ndarray, b: np.ndarray | None, scale: np.ndarray, shift: np.ndarray,
                   depthwise: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(w', b') with layer'(x) = scale * layer(x) + shift, in float64.

    Output channels are w's first axis: OHWI conv filters, [units, in] dense weights,
    and edgecnn's grouped/depthwise conv filters (O, KH, KW, C/G). `depthwise=True`
    takes TFLite's 1HW(C*M) depthwise layout instead, whose channels are the last axis.
    """
    w = np.asarray(w, dtype=np.float64)
    axis = w.ndim - 1 if depthwise else 0
    if scale.shape != (w.shape[axis],) or shift.shape != scale.shape:
        raise ShapeError(f"fold_batchnorm: {scale.shape[0]} BN channels for weights {w.shape}")
    bshape = [1] * w.ndim
    bshape[axis] = -1
    b = np.zeros(scale.shape) if b is None else np.asarray(b, dtype=np.float64)
    return w * scale.reshape(bshape), b * scale + shift
