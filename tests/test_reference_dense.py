"""dense: Numba kernels vs plain loops and finite differences."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgecnn.errors import ShapeError
from edgecnn.reference.dense import dense_backward, dense_backward_naive, dense_forward, dense_forward_naive
from edgecnn.reference.gradcheck import numerical_gradient


@st.composite
def dense_cases(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    n, d, u = draw(st.integers(1, 9)), draw(st.integers(1, 13)), draw(st.integers(1, 11))
    b = rng.standard_normal(u) if draw(st.booleans()) else None
    return rng.standard_normal((n, d)), rng.standard_normal((u, d)), b, rng


@settings(max_examples=40, deadline=None)
@given(dense_cases())
def test_fast_matches_naive(case):
    x, w, b, rng = case
    y, cache = dense_forward(x, w, b)
    y_ref, cache_ref = dense_forward_naive(x, w, b)
    np.testing.assert_allclose(y, y_ref, rtol=1e-10, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    for got, want in zip(dense_backward(dy, cache), dense_backward_naive(dy, cache_ref)):
        if want is None:
            assert got is None
        else:
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


@settings(max_examples=10, deadline=None)
@given(dense_cases())
def test_backward_matches_finite_differences(case):
    x, w, b, rng = case
    y, cache = dense_forward(x, w, b)
    r = rng.standard_normal(y.shape)

    def loss():
        return float(np.sum(dense_forward(x, w, b)[0] * r))

    dx, dw, db = dense_backward(r, cache)
    np.testing.assert_allclose(dx, numerical_gradient(loss, x), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dw, numerical_gradient(loss, w), rtol=1e-6, atol=1e-8)
    if b is not None:
        np.testing.assert_allclose(db, numerical_gradient(loss, b), rtol=1e-6, atol=1e-8)


def test_lenet_shapes_float32():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 400)).astype(np.float32)
    w = (rng.standard_normal((120, 400)) * 0.05).astype(np.float32)
    b = rng.standard_normal(120).astype(np.float32)
    y, cache = dense_forward(x, w, b)
    assert y.dtype == np.float32
    x64, w64, b64 = x.astype(np.float64), w.astype(np.float64), b.astype(np.float64)
    np.testing.assert_allclose(y, x64 @ w64.T + b64, rtol=1e-4, atol=1e-4)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx, dw, db = dense_backward(dy, cache)
    assert dx.dtype == dw.dtype == db.dtype == np.float32
    dy64 = dy.astype(np.float64)
    np.testing.assert_allclose(dx, dy64 @ w64, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dw, dy64.T @ x64, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(db, dy64.sum(axis=0), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("x_shape, w_shape, b_shape", [((2, 5), (3, 4), (3,)), ((2, 5), (3, 5), (4,)), ((5,), (3, 5), (3,))])
def test_bad_shapes_raise_shape_error(x_shape, w_shape, b_shape):
    with pytest.raises(ShapeError):
        dense_forward(np.zeros(x_shape), np.zeros(w_shape), np.zeros(b_shape))
