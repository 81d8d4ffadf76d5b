"""Softmax and mean softmax cross-entropy over a batch of logits."""

from typing import NamedTuple

import numpy as np

from edgecnn.errors import ShapeError


class SoftmaxCrossEntropyCache(NamedTuple):
    probs: np.ndarray   # (N, K)
    labels: np.ndarray  # (N,) int


def softmax(logits):
    """Row-wise softmax of (N, K) logits; subtracting the row max keeps exp() from overflowing."""
    logits = np.asarray(logits)
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def softmax_cross_entropy_forward(logits, labels):
    """Mean over the batch of -log softmax(logits)[label]. logits (N,K), labels int (N,) -> (float, cache)."""
    logits = np.asarray(logits)
    labels = np.asarray(labels)
    if logits.ndim != 2 or labels.shape != (logits.shape[0],) or logits.shape[0] == 0:
        raise ShapeError(f"cross-entropy wants logits (N,K) and labels (N,), got {logits.shape} and {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ShapeError(f"cross-entropy labels must be integers, got {labels.dtype}")
    if labels.min() < 0 or labels.max() >= logits.shape[1]:
        raise ShapeError(f"cross-entropy labels must lie in [0, {logits.shape[1]}), got [{labels.min()}, {labels.max()}]")
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    total = e.sum(axis=1)
    # log softmax = z - log(sum exp z): exact even when a probability underflows to 0
    picked = z[np.arange(len(labels)), labels]
    loss = float(np.mean(np.log(total) - picked))
    return loss, SoftmaxCrossEntropyCache(e / total[:, None], labels)


def softmax_cross_entropy_backward(cache):
    """dloss/dlogits = (softmax - onehot) / N, in the logits' dtype."""
    probs, labels = cache
    dlogits = probs.copy()
    dlogits[np.arange(len(labels)), labels] -= 1
    dlogits /= len(labels)
    return dlogits
