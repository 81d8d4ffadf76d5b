"""Add and Concatenate: forward, float64 gradients by finite differences, shape errors."""

import numpy as np
import pytest

from edgecnn.errors import ShapeError
from edgecnn.reference.gradcheck import numerical_gradient
from edgecnn.reference.merge import add_backward, add_forward, concatenate_backward, concatenate_forward


def test_add_forward_and_gradients():
    rng = np.random.default_rng(0)
    xs = [rng.normal(size=(2, 3, 3, 4)) for _ in range(3)]
    y, cache = add_forward(xs)
    np.testing.assert_array_equal(y, (xs[0] + xs[1]) + xs[2])
    r = rng.normal(size=y.shape)
    dxs = add_backward(r, cache)
    for i, x in enumerate(xs):
        expected = numerical_gradient(lambda: float(np.sum(add_forward(xs)[0] * r)), x)
        np.testing.assert_allclose(dxs[i], expected, rtol=1e-6, atol=1e-8)


def test_concatenate_forward_and_gradients():
    rng = np.random.default_rng(1)
    xs = [rng.normal(size=(2, 3, 3, c)) for c in (2, 5, 1)]
    y, cache = concatenate_forward(xs)
    assert y.shape == (2, 3, 3, 8)
    np.testing.assert_array_equal(y[..., 2:7], xs[1])
    r = rng.normal(size=y.shape)
    dxs = concatenate_backward(r, cache)
    for i, x in enumerate(xs):
        expected = numerical_gradient(lambda: float(np.sum(concatenate_forward(xs)[0] * r)), x)
        np.testing.assert_allclose(dxs[i], expected, rtol=1e-6, atol=1e-8)


def test_shape_errors():
    with pytest.raises(ShapeError):
        add_forward([np.zeros((1, 2)), np.zeros((1, 3))])
    with pytest.raises(ShapeError):
        add_forward([np.zeros((1, 2))])
    with pytest.raises(ShapeError):
        concatenate_forward([np.zeros((1, 2, 2, 3)), np.zeros((1, 3, 2, 3))])
