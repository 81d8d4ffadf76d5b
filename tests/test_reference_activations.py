"""Activations: closed forms, dtype, and backward vs finite differences."""

import numpy as np
import pytest

from edgecnn.reference import activations as A
from edgecnn.reference.gradcheck import numerical_gradient

NAMES = ["relu", "relu6", "tanh", "sigmoid", "scaled_tanh", "leaky_relu", "hard_swish"]

CLOSED_FORM = {
    "relu": lambda x: np.maximum(x, 0),
    "relu6": lambda x: np.minimum(np.maximum(x, 0), 6),
    "tanh": np.tanh,
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "scaled_tanh": lambda x: 1.7159 * np.tanh(2 * x / 3),
    "leaky_relu": lambda x: np.where(x > 0, x, 0.2 * x),
    "hard_swish": lambda x: x * np.minimum(np.maximum(x + 3, 0), 6) / 6,
}


def away_from_kinks(rng, shape):
    """Values in (-9, 9), none within 1e-3 of a kink (0, 6; hard_swish's -3 and 3)."""
    x = rng.uniform(-9, 9, shape)
    for kink in (0.0, 6.0, -3.0, 3.0):
        near = np.abs(x - kink) < 1e-3
        x[near] += 0.01
    return x


@pytest.mark.parametrize("name", NAMES)
def test_forward_matches_closed_form(name):
    x = away_from_kinks(np.random.default_rng(0), (3, 4, 5, 2))
    y, _ = getattr(A, f"{name}_forward")(x)
    np.testing.assert_allclose(y, CLOSED_FORM[name](x), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", NAMES)
def test_backward_matches_finite_differences(name):
    rng = np.random.default_rng(1)
    fwd, bwd = getattr(A, f"{name}_forward"), getattr(A, f"{name}_backward")
    x = away_from_kinks(rng, (2, 3, 4, 2))
    r = rng.standard_normal(x.shape)
    y, cache = fwd(x)
    expected = numerical_gradient(lambda: float(np.sum(fwd(x)[0] * r)), x)
    np.testing.assert_allclose(bwd(r, cache), expected, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name", NAMES)
def test_float32_stays_float32(name):
    x = np.linspace(-8, 8, 64, dtype=np.float32).reshape(2, 32)
    y, cache = getattr(A, f"{name}_forward")(x)
    dx = getattr(A, f"{name}_backward")(np.ones_like(y), cache)
    assert y.dtype == dx.dtype == np.float32
    np.testing.assert_allclose(y, CLOSED_FORM[name](x.astype(np.float64)), rtol=1e-6, atol=1e-6)


def test_kinks_have_zero_gradient_and_relu_blocks_nan():
    x = np.array([-1.0, 0.0, 3.0, 6.0, 7.0])
    dy = np.array([np.nan, 1.0, 1.0, 1.0, 1.0])
    _, cache = A.relu_forward(x)
    np.testing.assert_array_equal(A.relu_backward(dy, cache), [0, 0, 1, 1, 1])  # NaN * inactive = 0
    _, cache = A.relu6_forward(x)
    np.testing.assert_array_equal(A.relu6_backward(dy, cache), [0, 0, 1, 0, 0])


def test_sigmoid_saturates_without_overflow():
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y, _ = A.sigmoid_forward(np.array([-1e4, 1e4], dtype=np.float32))
    np.testing.assert_array_equal(y, [0.0, 1.0])


def test_scaled_tanh_constants():
    assert A.SCALED_TANH_A == 1.7159 and A.SCALED_TANH_S == 2 / 3
    y, _ = A.scaled_tanh_forward(np.array([1.0, -1.0]))
    np.testing.assert_allclose(y, [1.0, -1.0], atol=2e-4)  # LeCun's choice: f(+-1) = +-1


def test_leaky_relu_alpha_and_hard_swish_kinks():
    x = np.array([-4.0, -3.0, -1.0, 0.0, 3.0, 4.0])
    y, cache = A.leaky_relu_forward(x, 0.1)
    np.testing.assert_allclose(y, [-0.4, -0.3, -0.1, 0.0, 3.0, 4.0])
    np.testing.assert_allclose(A.leaky_relu_backward(np.ones_like(x), cache), [0.1, 0.1, 0.1, 0.1, 1, 1])
    _, cache = A.hard_swish_forward(x)
    np.testing.assert_allclose(A.hard_swish_backward(np.ones_like(x), cache), [0, -0.5, 1 / 6, 0.5, 1.5, 1])
