"""Max/avg pooling: fast kernels vs plain loops, TFLite window clipping, finite differences."""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from edgecnn.errors import ShapeError
from edgecnn.reference.gradcheck import numerical_gradient
from edgecnn.reference.padding import resolve_padding
from edgecnn.reference.pool import (
    avg_pool2d_backward,
    avg_pool2d_backward_naive,
    avg_pool2d_forward,
    avg_pool2d_forward_naive,
    max_pool2d_backward,
    max_pool2d_backward_naive,
    max_pool2d_forward,
    max_pool2d_forward_naive,
)

POOLS = {
    "max": (max_pool2d_forward, max_pool2d_backward, max_pool2d_forward_naive, max_pool2d_backward_naive),
    "avg": (avg_pool2d_forward, avg_pool2d_backward, avg_pool2d_forward_naive, avg_pool2d_backward_naive),
}


def distinct_values(rng, shape):
    """Values at least 0.01 apart: no ties in a max window, none within a finite-difference step."""
    n = int(np.prod(shape))
    return (rng.permutation(n) * 0.01 - n * 0.005 + rng.uniform(0, 0.001, n)).reshape(shape)


@st.composite
def pool_cases(draw, max_hw=9):
    size = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    h, w = draw(st.integers(1, max_hw)), draw(st.integers(1, max_hw))
    padding = draw(st.one_of(st.sampled_from(["valid", "same"]), st.tuples(*[st.integers(0, 2)] * 4)))
    try:
        _, pad = resolve_padding(padding, (h, w), size, stride, (1, 1))
        rng = np.random.default_rng(draw(st.integers(0, 2**31)))
        x = distinct_values(rng, (draw(st.integers(1, 2)), h, w, draw(st.integers(1, 3))))
        max_pool2d_forward(x, size, stride, pad)  # rejects windows that lie wholly in the padding
    except ShapeError:
        assume(False)
    return x, size, stride, pad, rng


@pytest.mark.parametrize("kind", ["max", "avg"])
@settings(max_examples=40, deadline=None)
@given(case=pool_cases())
def test_fast_matches_naive(kind, case):
    fwd, bwd, fwd_ref, bwd_ref = POOLS[kind]
    x, size, stride, pad, rng = case
    y, cache = fwd(x, size, stride, pad)
    y_ref, cache_ref = fwd_ref(x, size, stride, pad)
    np.testing.assert_allclose(y, y_ref, rtol=1e-10, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    np.testing.assert_allclose(bwd(dy, cache), bwd_ref(dy, cache_ref), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", ["max", "avg"])
@settings(max_examples=10, deadline=None)
@given(case=pool_cases(max_hw=6))
def test_backward_matches_finite_differences(kind, case):
    fwd, bwd, _, _ = POOLS[kind]
    x, size, stride, pad, rng = case
    y, cache = fwd(x, size, stride, pad)
    r = rng.standard_normal(y.shape)
    expected = numerical_gradient(lambda: float(np.sum(fwd(x, size, stride, pad)[0] * r)), x, eps=1e-5)
    np.testing.assert_allclose(bwd(r, cache), expected, rtol=1e-6, atol=1e-8)


def test_padding_is_ignored_not_zero():
    """TFLite semantics: an all-negative window padded by SAME still returns its own max,
    and the average divides by the in-bounds count only."""
    x = -np.arange(1.0, 10.0).reshape(1, 3, 3, 1)
    _, pad = resolve_padding("same", (3, 3), (2, 2), (2, 2), (1, 1))
    assert pad == (0, 1, 0, 1)
    y, _ = max_pool2d_forward(x, 2, 2, pad)
    np.testing.assert_array_equal(y[0, :, :, 0], [[-1, -3], [-7, -9]])
    y, cache = avg_pool2d_forward(x, 2, 2, pad)
    np.testing.assert_array_equal(y[0, :, :, 0], [[-3, -4.5], [-7.5, -9]])
    dx = avg_pool2d_backward(np.ones_like(y), cache)
    np.testing.assert_array_equal(dx[0, :, :, 0], [[0.25, 0.25, 0.5], [0.25, 0.25, 0.5], [0.5, 0.5, 1]])


@pytest.mark.parametrize("window, first", [
    ([[0, 0], [0, 0]], (0, 0)),
    ([[0, 1], [1, 0]], (0, 1)),   # row-major: row 0 beats the earlier column of row 1
    ([[0, 0], [1, 1]], (1, 0)),
    ([[2, 0, 2], [2, 0, 0], [0, 0, 2]], (0, 0)),
    ([[0, 0, 1], [1, 0, 1], [0, 0, 0]], (0, 2)),
])
def test_max_gradient_goes_to_first_max_on_ties(window, first):
    window = np.array(window, dtype=np.float64)
    k = window.shape[0]
    y, cache = max_pool2d_forward(window.reshape(1, k, k, 1), k, k)
    dx = max_pool2d_backward(np.ones_like(y), cache)
    expected = np.zeros((k, k))
    expected[first] = 1
    np.testing.assert_array_equal(dx[0, :, :, 0], expected)
    np.testing.assert_array_equal(max_pool2d_backward_naive(np.ones_like(y), (window.reshape(1, k, k, 1), (k, k),
                                                                             (k, k), (0, 0, 0, 0)))[0, :, :, 0],
                                  expected)


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_lenet_shapes_float32(kind):
    fwd, bwd, fwd_ref, bwd_ref = POOLS[kind]
    rng = np.random.default_rng(0)
    for shape in [(3, 28, 28, 6), (3, 10, 10, 16)]:
        x = distinct_values(rng, shape).astype(np.float32)
        y, cache = fwd(x)
        y_ref, cache_ref = fwd_ref(x.astype(np.float64))
        assert y.dtype == np.float32
        np.testing.assert_allclose(y, y_ref, rtol=1e-6, atol=1e-5)  # |x| ~ 50: float32 sums
        dy = rng.standard_normal(y.shape).astype(np.float32)
        dx = bwd(dy, cache)
        assert dx.dtype == np.float32
        np.testing.assert_allclose(dx, bwd_ref(dy.astype(np.float64), cache_ref), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("size, stride, pad", [
    (2, 2, (2, 0, 0, 0)),   # first window entirely padding
    (2, 2, (0, 2, 0, 0)),   # last window entirely padding
    (5, 1, (0, 0, 0, 0)),   # window larger than the input
])
def test_empty_windows_raise_shape_error(size, stride, pad):
    with pytest.raises(ShapeError):
        max_pool2d_forward(np.zeros((1, 4, 4, 1)), size, stride, pad)
