"""conv2d: fast kernels vs the plain-loop reference, and backward vs finite differences."""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from edgecnn.errors import ShapeError
from edgecnn.reference.conv import conv2d_backward, conv2d_backward_naive, conv2d_forward, conv2d_forward_naive
from edgecnn.reference.gradcheck import numerical_gradient
from edgecnn.reference.padding import resolve_padding

FAST = settings(max_examples=40, deadline=None)
FD = settings(max_examples=6, deadline=None)


@st.composite
def conv_cases(draw, max_hw=8):
    """A random conv: groups (incl. depthwise x2), stride, dilation, valid/same/explicit padding."""
    kind = draw(st.sampled_from(["dense", "grouped", "depthwise"]))
    if kind == "dense":
        groups, cg, og = 1, draw(st.integers(1, 3)), draw(st.integers(1, 4))
    elif kind == "grouped":
        groups, cg, og = draw(st.integers(2, 3)), draw(st.integers(1, 2)), draw(st.integers(1, 2))
    else:
        groups, cg, og = draw(st.integers(1, 4)), 1, 2  # depthwise, channel multiplier 2
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    h, w = draw(st.integers(1, max_hw)), draw(st.integers(1, max_hw))
    padding = draw(st.one_of(
        st.sampled_from(["valid", "same"]),
        st.tuples(*[st.integers(0, 2)] * 4),
    ))
    try:
        _, pad = resolve_padding(padding, (h, w), (kh, kw), stride, dilation)
    except ShapeError:
        assume(False)
    n = draw(st.integers(1, 2))
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h, w, groups * cg))
    wt = rng.standard_normal((groups * og, kh, kw, cg))
    b = rng.standard_normal(groups * og) if draw(st.booleans()) else None
    return x, wt, b, dict(stride=stride, pad=pad, dilation=dilation, groups=groups), rng


def assert_close(actual, expected, rtol=1e-10, atol=1e-12):
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


@FAST
@given(conv_cases())
def test_fast_matches_naive(case):
    x, w, b, kw, rng = case
    y, cache = conv2d_forward(x, w, b, **kw)
    y_ref, cache_ref = conv2d_forward_naive(x, w, b, **kw)
    assert y.dtype == np.float64
    assert_close(y, y_ref)
    dy = rng.standard_normal(y.shape)
    for got, want in zip(conv2d_backward(dy, cache), conv2d_backward_naive(dy, cache_ref)):
        if want is None:
            assert got is None
        else:
            assert got.shape == want.shape
            assert_close(got, want)


def _fd_check(x, w, b, kw, rng, backward):
    y, cache = conv2d_forward(x, w, b, **kw)
    r = rng.standard_normal(y.shape)

    def loss():
        return float(np.sum(conv2d_forward(x, w, b, **kw)[0] * r))

    dx, dw, db = backward(r, cache)
    np.testing.assert_allclose(dx, numerical_gradient(loss, x), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dw, numerical_gradient(loss, w), rtol=1e-6, atol=1e-8)
    if b is not None:
        np.testing.assert_allclose(db, numerical_gradient(loss, b), rtol=1e-6, atol=1e-8)


@FD
@given(conv_cases(max_hw=6))
def test_fast_backward_matches_finite_differences(case):
    _fd_check(*case, conv2d_backward)


@FD
@given(conv_cases(max_hw=5))
def test_naive_backward_matches_finite_differences(case):
    x, w, b, kw, rng = case
    # the loss runs the fast forward (proven equal to the naive one above); the gradient is the naive one
    _, cache_ref = conv2d_forward_naive(x, w, b, **kw)
    _fd_check(x, w, b, kw, rng, lambda dy, _: conv2d_backward_naive(dy, cache_ref))


def test_known_values():
    # 1x3x3x1 input 1..9, 2x2 kernel of ones: each output is the sum of a 2x2 block, + bias 0.5
    x = np.arange(1, 10, dtype=np.float64).reshape(1, 3, 3, 1)
    w = np.ones((1, 2, 2, 1))
    y, cache = conv2d_forward(x, w, np.array([0.5]))
    np.testing.assert_array_equal(y[0, :, :, 0], [[12.5, 16.5], [24.5, 28.5]])
    dx, dw, db = conv2d_backward(np.ones_like(y), cache)
    np.testing.assert_array_equal(dx[0, :, :, 0], [[1, 2, 1], [2, 4, 2], [1, 2, 1]])  # taps covering each pixel
    np.testing.assert_array_equal(dw[0, :, :, 0], [[12, 16], [24, 28]])
    np.testing.assert_array_equal(db, [4.0])


@pytest.mark.parametrize("stride", [1, 2])
def test_lenet_shapes_float32(stride):
    """The trainer's case: float32 in, float32 out, agreeing with float64 naive to float32 accuracy."""
    rng = np.random.default_rng(0)
    for x_shape, w_shape in [((3, 32, 32, 1), (6, 5, 5, 1)), ((3, 14, 14, 6), (16, 5, 5, 6))]:
        x = rng.random(x_shape).astype(np.float32)
        w = (rng.standard_normal(w_shape) * 0.2).astype(np.float32)
        b = rng.standard_normal(w_shape[0]).astype(np.float32)
        y, cache = conv2d_forward(x, w, b, stride=stride)
        y_ref, cache_ref = conv2d_forward_naive(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64),
                                                stride=(stride, stride))
        assert y.dtype == np.float32
        np.testing.assert_allclose(y, y_ref, rtol=1e-4, atol=1e-4)
        dy = rng.standard_normal(y.shape).astype(np.float32)
        grads = conv2d_backward(dy, cache)
        for got, want in zip(grads, conv2d_backward_naive(dy.astype(np.float64), cache_ref)):
            assert got.dtype == np.float32
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)


def test_need_dx_false_skips_only_dx():
    rng = np.random.default_rng(1)
    x, w, b = rng.standard_normal((2, 7, 7, 1)), rng.standard_normal((3, 3, 3, 1)), rng.standard_normal(3)
    y, cache = conv2d_forward(x, w, b)
    dy = rng.standard_normal(y.shape)
    dx, dw, db = conv2d_backward(dy, cache)
    dx2, dw2, db2 = conv2d_backward(dy, cache, need_dx=False)
    assert dx2 is None
    np.testing.assert_array_equal(dw, dw2)
    np.testing.assert_array_equal(db, db2)


@pytest.mark.parametrize("x_shape, w_shape, groups", [
    ((1, 5, 5, 4), (6, 3, 3, 3), 1),   # Cin mismatch
    ((1, 5, 5, 4), (6, 3, 3, 2), 3),   # groups does not divide Cin
    ((1, 5, 5, 4), (5, 3, 3, 2), 2),   # groups does not divide O
    ((1, 2, 2, 1), (1, 3, 3, 1), 1),   # kernel larger than input
    ((5, 5, 4), (6, 3, 3, 4), 1),      # not NHWC
])
def test_bad_shapes_raise_shape_error(x_shape, w_shape, groups):
    with pytest.raises(ShapeError):
        conv2d_forward(np.zeros(x_shape), np.zeros(w_shape), None, groups=groups)


def test_backward_rejects_wrong_dy():
    y, cache = conv2d_forward(np.zeros((1, 5, 5, 1)), np.zeros((2, 3, 3, 1)), None)
    with pytest.raises(ShapeError):
        conv2d_backward(np.zeros((1, 4, 4, 2)), cache)


@pytest.mark.parametrize("stride", [1, 2])
def test_kernel_covering_the_input_matches_naive(stride):
    """LeNet's C5 shape (one window over the whole input) takes the dense route; same results."""
    rng = np.random.default_rng(2)
    x, w, b = rng.standard_normal((3, 5, 4, 2)), rng.standard_normal((7, 5, 4, 2)), rng.standard_normal(7)
    y, cache = conv2d_forward(x, w, b, stride=stride)
    assert cache.path == "dense"
    y_ref, cache_ref = conv2d_forward_naive(x, w, b, stride=stride)
    assert_close(y, y_ref)
    dy = rng.standard_normal(y.shape)
    for got, want in zip(conv2d_backward(dy, cache), conv2d_backward_naive(dy, cache_ref)):
        assert_close(got, want)
    assert conv2d_backward(dy, cache, need_dx=False)[0] is None
    _fd_check(x[:1], w[:2], b[:2], dict(stride=(stride, stride)), rng, conv2d_backward)


@pytest.mark.parametrize("shape,w_shape,stride,padding,groups", [
    ((2, 32, 32, 4), (32, 3, 3, 4), 2, "same", 1),      # few input channels (the GEMM path takes >= 8)
    ((2, 16, 16, 3), (16, 1, 1, 3), 2, "same", 1),      # 1x1 shortcut: one phase only
    ((2, 49, 10, 1), (8, 10, 4, 1), 2, "same", 1),      # DS-CNN's stem, odd sizes
    ((2, 13, 11, 6), (6, 3, 3, 2), 2, "same", 3),       # grouped, two channels per group
    ((1, 9, 9, 4), (4, 3, 3, 2), 3, (1, 0, 2, 1), 2),   # stride 3, grouped, explicit padding
])
def test_strided_convs_run_as_phases_and_match_naive(shape, w_shape, stride, padding, groups):
    rng = np.random.default_rng(4)
    x, w, b = rng.standard_normal(shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape[0])
    _, pad = resolve_padding(padding, shape[1:3], w_shape[1:3], (stride, stride), (1, 1))
    kw = dict(stride=(stride, stride), pad=pad, groups=groups)
    y, cache = conv2d_forward(x, w, b, **kw)
    assert cache.path == "phases"
    y_ref, cache_ref = conv2d_forward_naive(x, w, b, **kw)
    assert_close(y, y_ref)
    dy = rng.standard_normal(y.shape)
    for fast, ref in zip(conv2d_backward(dy, cache), conv2d_backward_naive(dy, cache_ref)):
        assert_close(fast, ref)


@pytest.mark.parametrize("shape,w_shape,stride,padding,dilation", [
    ((2, 12, 12, 6), (6, 3, 3, 1), 2, "same", 1),       # MobileNet's strided depthwise
    ((2, 13, 11, 4), (8, 3, 3, 1), 2, "same", 1),       # channel multiplier 2, odd sizes
    ((1, 9, 10, 3), (3, 3, 2, 1), 3, (2, 0, 1, 2), 2),  # stride 3, dilation 2, explicit padding
    ((1, 7, 7, 2), (2, 3, 3, 1), 2, (0, 4, 0, 4), 1),   # more bottom padding than any window reads
])
def test_strided_depthwise_runs_subsampled_and_matches_naive(shape, w_shape, stride, padding, dilation):
    rng = np.random.default_rng(5)
    x, w, b = rng.standard_normal(shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape[0])
    _, pad = resolve_padding(padding, shape[1:3], w_shape[1:3], (stride, stride), (dilation, dilation))
    kw = dict(stride=(stride, stride), pad=pad, dilation=(dilation, dilation), groups=shape[3])
    y, cache = conv2d_forward(x, w, b, **kw)
    assert cache.path == "subsampled"
    y_ref, cache_ref = conv2d_forward_naive(x, w, b, **kw)
    assert_close(y, y_ref)
    dy = rng.standard_normal(y.shape)
    for fast, ref in zip(conv2d_backward(dy, cache), conv2d_backward_naive(dy, cache_ref)):
        assert_close(fast, ref)
