"""Softmax cross-entropy: closed form, stability on huge logits, gradient."""

import numpy as np
import pytest

from edgecnn.errors import ShapeError
from edgecnn.reference.gradcheck import numerical_gradient
from edgecnn.reference.loss import softmax, softmax_cross_entropy_backward, softmax_cross_entropy_forward


def naive_loss(logits, labels):
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return -np.mean(np.log(p[np.arange(len(labels)), labels]))


def test_matches_naive_and_finite_differences():
    rng = np.random.default_rng(0)
    logits, labels = rng.standard_normal((7, 10)) * 3, rng.integers(0, 10, 7)
    loss, cache = softmax_cross_entropy_forward(logits, labels)
    assert isinstance(loss, float)
    np.testing.assert_allclose(loss, naive_loss(logits, labels), rtol=1e-12)
    grad = softmax_cross_entropy_backward(cache)
    expected = numerical_gradient(lambda: softmax_cross_entropy_forward(logits, labels)[0], logits)
    np.testing.assert_allclose(grad, expected, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(softmax(logits), cache.probs, rtol=1e-12)
    np.testing.assert_allclose(softmax(logits).sum(axis=1), 1.0)


def test_huge_logits_are_stable_in_float32():
    logits = np.array([[1e4, 0.0, -1e4], [0.0, 1e4, 0.0]], dtype=np.float32)
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow to 0 is fine
        loss, cache = softmax_cross_entropy_forward(logits, np.array([2, 1]))
        grad = softmax_cross_entropy_backward(cache)
    # sample 0 picks a logit 2e4 below the max: loss 2e4; sample 1 is right with certainty: loss 0
    assert loss == pytest.approx(1e4, rel=1e-6)
    assert grad.dtype == np.float32
    np.testing.assert_allclose(grad, [[0.5, 0, -0.5], [0, 0, 0]], atol=1e-6)


@pytest.mark.parametrize("logits, labels", [
    (np.zeros((2, 3)), np.array([0, 3])),      # label out of range
    (np.zeros((2, 3)), np.array([0, -1])),
    (np.zeros((2, 3)), np.array([0.0, 1.0])),  # float labels
    (np.zeros((2, 3)), np.array([0, 1, 2])),   # count mismatch
    (np.zeros(3), np.array([0])),              # logits not 2-D
])
def test_bad_labels_raise_shape_error(logits, labels):
    with pytest.raises(ShapeError):
        softmax_cross_entropy_forward(logits, labels)
