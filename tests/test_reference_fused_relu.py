"""BN-ReLU and Add-ReLU fused into one pass: the same bytes as the op then relu, float64 gradients.

The fusion is an execution detail of training (Layer.fused_activations): a model trains
to the same weights with it or without it, and nothing else sees it.
"""

import numpy as np
import pytest

from edgecnn.model import build
from edgecnn.model.merge_layers import Add
from edgecnn.model.norm_layers import BatchNorm
from edgecnn.reference import batchnorm as B
from edgecnn.reference.activations import relu_backward, relu_forward
from edgecnn.reference.gradcheck import numerical_gradient
from edgecnn.reference.merge import add_backward, add_forward


def _bn_case(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    c = shape[-1]
    x = rng.normal(0.5, 2, shape).astype(dtype)
    x.reshape(-1)[::7] = 0.0  # exact zeros, and (below) y == 0 at the kink
    gamma, beta = rng.normal(1, 0.5, c).astype(dtype), rng.normal(0, 1, c).astype(dtype)
    gamma[0], beta[0] = 0.0, 0.0  # a channel whose y is exactly 0 everywhere
    return x, gamma, beta, rng.normal(0, 1, c), rng.uniform(0.5, 2, c), rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("shape", [(8, 28, 28, 16), (3, 5, 5, 7), (9, 4)])
def test_bn_relu_is_bytewise_bn_then_relu(shape, train, dtype):
    x, g, b, rm, rv, dy = _bn_case(shape, dtype)
    y, cache = B.batchnorm_forward(x, g, b, rm, rv, 1e-5, train)
    y_ref, act = relu_forward(y)
    dx_ref, dg_ref, db_ref = B.batchnorm_backward(relu_backward(dy, act), cache)
    y_f, cache_f = B.batchnorm_forward(x, g, b, rm, rv, 1e-5, train, relu=True)
    dx, dg, db = B.batchnorm_backward(dy, cache_f)
    for fused, ref in ((y_f, y_ref), (dx, dx_ref), (dg, dg_ref), (db, db_ref)):
        assert fused.dtype == ref.dtype and fused.tobytes() == ref.tobytes()


@pytest.mark.parametrize("train", [True, False])
def test_bn_relu_gradients_match_finite_differences(train):
    rng = np.random.default_rng(1)
    x, g, b = rng.normal(0, 1, (4, 3, 3, 5)), rng.normal(1, 0.3, 5), rng.normal(0, 1, 5)
    rm, rv, r = rng.normal(0, 1, 5), rng.uniform(0.5, 2, 5), rng.standard_normal((4, 3, 3, 5))
    _, cache = B.batchnorm_forward(x, g, b, rm, rv, 1e-5, train, relu=True)
    assert 0.2 < np.mean(B.batchnorm_forward(x, g, b, rm, rv, 1e-5, train, relu=True)[0] > 0) < 0.8
    dx, dg, db = B.batchnorm_backward(r, cache)

    def loss():
        return float(np.sum(B.batchnorm_forward(x, g, b, rm, rv, 1e-5, train, relu=True)[0] * r))

    for analytic, wrt in ((dx, x), (dg, g), (db, b)):
        np.testing.assert_allclose(analytic, numerical_gradient(loss, wrt), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(64, 14, 14, 32), (2, 3, 4)])
def test_add_relu_is_bytewise_add_then_relu(shape, dtype):
    rng = np.random.default_rng(2)
    a, b, dy = (rng.standard_normal(shape).astype(dtype) for _ in range(3))
    b.reshape(-1)[::5] = -a.reshape(-1)[::5]  # sums of exactly 0 (and -0.0)
    y, cache = add_forward([a, b])
    y_ref, act = relu_forward(y)
    y_f, cache_f = add_forward([a, b], relu=True)
    assert y_f.tobytes() == y_ref.tobytes()
    d_ref = relu_backward(dy, act)
    assert all(d.tobytes() == d_ref.tobytes() for d in add_backward(dy, cache_f))
    y3, _ = add_forward([a, b, a], relu=True)  # more than two inputs: the plain path, then relu
    assert y3.tobytes() == relu_forward((a + b) + a)[0].tobytes()


def test_add_relu_gradients_match_finite_differences():
    rng = np.random.default_rng(3)
    xs = [rng.normal(size=(2, 3, 3, 4)) for _ in range(2)]
    r = rng.normal(size=(2, 3, 3, 4))
    dxs = add_backward(r, add_forward(xs, relu=True)[1])
    for i, x in enumerate(xs):
        expected = numerical_gradient(lambda: float(np.sum(add_forward(xs, relu=True)[0] * r)), x)
        np.testing.assert_allclose(dxs[i], expected, rtol=1e-6, atol=1e-8)


def test_resnet8_step_is_the_same_with_and_without_fusion(monkeypatch):
    """One training step's output, parameter gradients and running statistics, byte for byte."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((8, 12, 12, 1)).astype(np.float32)
    results = []
    for fused in (True, False):
        if not fused:
            monkeypatch.setattr(BatchNorm, "fused_activations", ())
            monkeypatch.setattr(Add, "fused_activations", ())
        model = build("resnet8", input_shape=(12, 12, 1), classes=10).init_params(0)
        out = model.forward(x, train=True)
        model.backward(np.ones_like(out) / out.size)
        results.append([out] + [g for _, g in model.named_grads()] + [v for _, v in model.named_buffers()])
    assert all(a.tobytes() == b.tobytes() for a, b in zip(*results))
