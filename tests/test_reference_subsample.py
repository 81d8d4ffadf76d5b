"""LeNet-5 subsampling: vectorized vs plain loops, finite differences, known values."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgecnn.errors import ShapeError
from edgecnn.reference.gradcheck import numerical_gradient
from edgecnn.reference.subsample import (
    subsample_backward,
    subsample_backward_naive,
    subsample_forward,
    subsample_forward_naive,
)


@st.composite
def subsample_cases(draw):
    size = draw(st.integers(1, 3))
    h, w = draw(st.integers(size, 3 * size + 2)), draw(st.integers(size, 3 * size + 2))  # incl. leftover rows
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    c = draw(st.integers(1, 3))
    x = rng.standard_normal((draw(st.integers(1, 2)), h, w, c))
    return x, rng.standard_normal(c), rng.standard_normal(c), size, rng


@settings(max_examples=40, deadline=None)
@given(subsample_cases())
def test_fast_matches_naive(case):
    x, coef, bias, size, rng = case
    y, cache = subsample_forward(x, coef, bias, size)
    y_ref, cache_ref = subsample_forward_naive(x, coef, bias, size)
    np.testing.assert_allclose(y, y_ref, rtol=1e-10, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    for got, want in zip(subsample_backward(dy, cache), subsample_backward_naive(dy, cache_ref)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


@settings(max_examples=10, deadline=None)
@given(subsample_cases())
def test_backward_matches_finite_differences(case):
    x, coef, bias, size, rng = case
    y, cache = subsample_forward(x, coef, bias, size)
    r = rng.standard_normal(y.shape)

    def loss():
        return float(np.sum(subsample_forward(x, coef, bias, size)[0] * r))

    dx, dcoef, dbias = subsample_backward(r, cache)
    np.testing.assert_allclose(dx, numerical_gradient(loss, x), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dcoef, numerical_gradient(loss, coef), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dbias, numerical_gradient(loss, bias), rtol=1e-6, atol=1e-8)


def test_known_values_and_float32():
    x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    y, cache = subsample_forward(x, np.array([0.5]), np.array([1.0]), 2)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y[0, :, :, 0], [[6.0, 10.0], [22.0, 26.0]])  # 0.5 * (0+1+4+5) + 1 ...
    dx, dcoef, dbias = subsample_backward(np.ones_like(y), cache)
    assert dx.dtype == dcoef.dtype == dbias.dtype == np.float32
    np.testing.assert_array_equal(dx, np.full(x.shape, 0.5))
    np.testing.assert_array_equal(dcoef, [10 + 18 + 42 + 50])
    np.testing.assert_array_equal(dbias, [4.0])


@pytest.mark.parametrize("x_shape, c", [((1, 4, 4, 2), 3), ((1, 1, 4, 2), 2), ((4, 4, 2), 2)])
def test_bad_shapes_raise_shape_error(x_shape, c):
    with pytest.raises(ShapeError):
        subsample_forward(np.zeros(x_shape), np.zeros(c), np.zeros(c), 2)
