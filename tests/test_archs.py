"""The named graph architectures: whole-model float64 gradients, and a few training steps learn."""

from __future__ import annotations

import numpy as np
import pytest

from edgecnn.model import build
from edgecnn.reference.loss import softmax_cross_entropy_backward, softmax_cross_entropy_forward
from edgecnn.train.trainer import TrainConfig, train

SMALL = [("resnet8", (12, 12, 3), {}), ("dscnn", (13, 6, 1), {}), ("mobilenet-v1", (32, 32, 3), {"width": 0.25})]


def _loss(model, x, y):
    return softmax_cross_entropy_forward(model.forward(x, train=True), y)[0]


@pytest.mark.slow
@pytest.mark.parametrize("arch,shape,options", SMALL, ids=[a for a, _, _ in SMALL])
def test_whole_model_gradients_match_finite_differences(arch, shape, options):
    rng = np.random.default_rng(0)
    model = build(arch, input_shape=shape, classes=5, **options).init_params(1, dtype=np.float64)
    x, y = rng.uniform(0, 1, (4, *shape)), np.array([0, 1, 2, 4])
    _, cache = softmax_cross_entropy_forward(model.forward(x, train=True), y)
    model.backward(softmax_cross_entropy_backward(cache))
    grads = dict(model.named_grads())
    for key, p in list(model.named_params())[::3]:  # every third tensor, two entries each
        flat, g = p.reshape(-1), grads[key].reshape(-1)
        for i in rng.choice(flat.size, size=min(2, flat.size), replace=False):
            old = flat[i]
            flat[i] = old + 1e-6
            up = _loss(model, x, y)
            flat[i] = old - 1e-6
            down = _loss(model, x, y)
            flat[i] = old
            num = (up - down) / 2e-6
            assert abs(num - g[i]) <= 1e-7 + 1e-4 * abs(num), (key, i, num, g[i])


@pytest.mark.parametrize("arch,shape,options", SMALL, ids=[a for a, _, _ in SMALL])
def test_a_few_epochs_learn(arch, shape, options):
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 96)
    x = rng.uniform(0, 0.2, (96, *shape)).astype(np.float32)
    x[..., 0] += y[:, None, None] * 0.4  # class = brightness of channel 0
    model = build(arch, input_shape=shape, classes=3, **options).init_params(0)
    state = train(model, (x, y), (x, y), TrainConfig(epochs=4, batch_size=16, lr=3e-3), progress=False)
    first, last = state.history[0], state.history[-1]
    assert last["loss"] < 0.9 * first["loss"] and last["train_accuracy"] > 0.45, state.history  # chance: 1/3
