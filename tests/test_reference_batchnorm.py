"""BatchNorm: train/eval forward, the fast kernels vs the naive form, float64 gradients, folding."""

import numpy as np
import pytest

from edgecnn.errors import ShapeError
from edgecnn.model.norm_layers import fold_batchnorm
from edgecnn.reference import batchnorm as B
from edgecnn.reference.gradcheck import numerical_gradient


def _case(shape=(3, 4, 5, 6), seed=0):
    rng = np.random.default_rng(seed)
    c = shape[-1]
    return (rng.normal(1, 2, shape), rng.normal(1, 0.3, c), rng.normal(0, 1, c), rng.normal(0, 1, c),
            rng.uniform(0.5, 2, c), rng)


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("shape", [(3, 4, 5, 6), (7, 5)])
def test_backward_matches_finite_differences(train, shape):
    x, g, b, rm, rv, rng = _case(shape)
    r = rng.standard_normal(shape)
    y, cache = B.batchnorm_forward(x, g, b, rm, rv, 1e-5, train)
    dx, dg, db = B.batchnorm_backward(r, cache)

    def loss():
        return float(np.sum(B.batchnorm_forward(x, g, b, rm, rv, 1e-5, train)[0] * r))

    np.testing.assert_allclose(dx, numerical_gradient(loss, x), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dg, numerical_gradient(loss, g), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(db, numerical_gradient(loss, b), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("train", [True, False])
def test_fast_matches_naive(train):
    x, g, b, rm, rv, rng = _case((4, 6, 6, 16), seed=1)
    y, cache = B.batchnorm_forward(x, g, b, rm, rv, 1e-3, train)
    yn, cache_n = B.batchnorm_forward_naive(x, g, b, rm, rv, 1e-3, train)
    np.testing.assert_allclose(y, yn, rtol=1e-12, atol=1e-12)
    r = rng.standard_normal(x.shape)
    for fast, naive in zip(B.batchnorm_backward(r, cache), B.batchnorm_backward_naive(r, cache_n)):
        np.testing.assert_allclose(fast, naive, rtol=1e-10, atol=1e-12)


def test_train_mode_normalizes_and_eval_uses_running_stats():
    x, g, b, rm, rv, _ = _case((64, 3, 3, 4), seed=2)
    y, cache = B.batchnorm_forward(x, np.ones(4), np.zeros(4), rm, rv, 1e-8, True)
    np.testing.assert_allclose(y.mean(axis=(0, 1, 2)), 0, atol=1e-10)
    np.testing.assert_allclose(y.var(axis=(0, 1, 2)), 1, atol=1e-6)
    np.testing.assert_allclose(cache.mean, x.mean(axis=(0, 1, 2)))
    y, _ = B.batchnorm_forward(x, g, b, rm, rv, 1e-5, False)
    np.testing.assert_allclose(y, g * (x - rm) / np.sqrt(rv + 1e-5) + b)


def test_float32_stays_float32():
    x, g, b, rm, rv, _ = _case((2, 3, 3, 8))
    y, cache = B.batchnorm_forward(x.astype(np.float32), g.astype(np.float32), b.astype(np.float32), rm, rv,
                                   1e-5, True)
    assert y.dtype == np.float32 and all(a.dtype == np.float32 for a in B.batchnorm_backward(np.ones_like(y), cache))


def test_shape_errors():
    with pytest.raises(ShapeError):
        B.batchnorm_forward(np.zeros((2, 3)), np.ones(4), np.zeros(4), np.zeros(4), np.ones(4))
    with pytest.raises(ShapeError, match="more than one value"):
        B.batchnorm_forward(np.zeros((1, 4)), np.ones(4), np.zeros(4), np.zeros(4), np.ones(4), train=True)


@pytest.mark.parametrize("depthwise", [False, True])
def test_fold_batchnorm_equals_bn_after_the_layer(depthwise):
    rng = np.random.default_rng(3)
    w = rng.normal(size=(1, 3, 3, 5) if depthwise else (5, 3, 3, 2))
    bias, scale, shift = rng.normal(size=5), rng.uniform(0.5, 2, 5), rng.normal(size=5)
    w2, b2 = fold_batchnorm(w, bias, scale, shift, depthwise=depthwise)
    x = rng.normal(size=w.shape[1:] if not depthwise else (3, 3, 5))
    # one output pixel of the layer per channel
    out = (w[0] * x).sum(axis=(0, 1)) if depthwise else np.einsum("ohwi,hwi->o", w, x)
    out2 = (w2[0] * x).sum(axis=(0, 1)) if depthwise else np.einsum("ohwi,hwi->o", w2, x)
    np.testing.assert_allclose(out2 + b2, scale * (out + bias) + shift)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_statistics_hold_for_a_large_mean_and_small_spread(dtype):
    """One-pass shifted sums: no cancellation when the mean dwarfs the standard deviation."""
    rng = np.random.default_rng(3)
    x = (1000.0 + 1e-2 * rng.standard_normal((64, 5, 5, 3))).astype(dtype)
    g, b = np.ones(3, dtype), np.zeros(3, dtype)
    _, cache = B.batchnorm_forward(x, g, b, None, None, 1e-5, True)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(cache.mean, x64.mean(axis=(0, 1, 2)), rtol=1e-12)
    np.testing.assert_allclose(cache.var, x64.var(axis=(0, 1, 2)), rtol=1e-9)
