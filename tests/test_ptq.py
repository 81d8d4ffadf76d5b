"""Post-training quantization: accuracy against float on real MNIST, folding, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from edgecnn.data.datasets import lenet_input, load_split
from edgecnn.deploy.runtime import Runtime
from edgecnn.errors import CalibrationError, QuantizationError
from edgecnn.model import build
from edgecnn.model.checkpoint import load_checkpoint
from edgecnn.model.layers import Conv2D, Dense, Flatten, MaxPool2D
from edgecnn.model.sequential import Sequential
from edgecnn.model.norm_layers import fold_batchnorm
from edgecnn.quantize.ptq import quantize_model
from edgecnn.int8.rules import quantize_input
from edgecnn.quantize.report import layer_sqnr


@pytest.fixture(scope="module")
def mnist(mnist_root):
    train_images, _ = load_split("mnist", "train", mnist_root)
    test_images, test_labels = load_split("mnist", "test", mnist_root)
    rng = np.random.default_rng(0)
    calib = lenet_input(train_images[np.sort(rng.choice(len(train_images), 1000, replace=False))])
    return calib, lenet_input(test_images), test_labels


def _accuracies(model, qm, x, y):
    f = float(np.mean(np.argmax(model.predict(x), 1) == y))
    inp = qm.graph.input
    q = Runtime(qm.graph).run(quantize_input(x, inp.scale[0], inp.zero_point[0]))
    return f, float(np.mean(np.argmax(q.reshape(len(y), -1), 1) == y))


def test_lenet5_default_within_0_1pp(lenet5_path, mnist):
    calib, x, y = mnist
    model = load_checkpoint(lenet5_path)
    f, q = _accuracies(model, quantize_model(model, calib, progress=False), x, y)
    assert f > 0.97
    assert abs(f - q) <= 0.001, (f, q)


@pytest.mark.parametrize("method", ["minmax", "percentile", "mse", "entropy"])
def test_every_calibration_within_0_3pp(lenet5_path, mnist, method):
    calib, x, y = mnist
    model = load_checkpoint(lenet5_path)
    f, q = _accuracies(model, quantize_model(model, calib, method, progress=False), x, y)
    assert abs(f - q) <= 0.003, (method, f, q)


def test_per_tensor_weights_also_work(lenet5_path, mnist):
    calib, x, y = mnist
    model = load_checkpoint(lenet5_path)
    qm = quantize_model(model, calib, per_tensor=True, progress=False)
    assert all(t.scale.size == 1 for t in qm.graph.tensors)
    f, q = _accuracies(model, qm, x, y)
    assert abs(f - q) <= 0.003


def test_classic_within_0_5pp(classic_path, mnist):
    calib, x, y = mnist
    model = load_checkpoint(classic_path)
    qm = quantize_model(model, calib, progress=False)
    kinds = [op.kind for op in qm.graph.ops]
    assert kinds.count("DEPTHWISE_CONV_2D") == 2 and kinds.count("TANH") == 6
    f, q = _accuracies(model, qm, x, y)
    assert f > 0.95
    assert abs(f - q) <= 0.005, (f, q)


def test_sqnr_report(lenet5_path, mnist):
    calib, _, _ = mnist
    model = load_checkpoint(lenet5_path)
    qm = quantize_model(model, calib[:200], progress=False)
    rows = layer_sqnr(model, qm, calib[:200], Runtime(qm.graph).run_intermediates)
    assert [r["name"] for r in rows] == [layer.name for layer in model.layers]
    assert all(15 < r["sqnr_db"] < 80 for r in rows), rows


def test_graph_is_tflite_int8_spec(lenet5_path, mnist):
    calib, _, _ = mnist
    qm = quantize_model(load_checkpoint(lenet5_path), calib[:100], progress=False)
    g = qm.graph
    assert g.input.scale[0] == np.float32(1 / 255) and g.input.zero_point[0] == -128
    for op in g.ops:
        if op.kind in ("CONV_2D", "FULLY_CONNECTED"):
            x, w, b = (g.tensors[i] for i in op.inputs)
            assert w.dtype == "int8" and np.all(w.zero_point == 0) and w.data.min() >= -127
            assert w.scale.size == w.shape[0]  # per channel on the output axis
            assert b.dtype == "int32"
            np.testing.assert_allclose(b.scale, np.float32(x.scale[0]) * w.scale, rtol=1e-6)
        if op.kind == "MAX_POOL_2D":
            src, dst = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
            assert src.scale[0] == dst.scale[0] and src.zero_point[0] == dst.zero_point[0]


def test_nan_weights_are_refused():
    model = build("lenet5").init_params(0)
    model.layers[0].params["w"][0, 0, 0, 0] = np.nan
    with pytest.raises(QuantizationError, match="NaN"):
        quantize_model(model, np.zeros((4, 32, 32, 1), np.float32), progress=False)
    model.layers[0].params["w"][0, 0, 0, 0] = np.inf
    with pytest.raises(QuantizationError):
        quantize_model(model, np.zeros((4, 32, 32, 1), np.float32), progress=False)


def test_bad_calibration_sets():
    model = build("lenet5").init_params(0)
    with pytest.raises(CalibrationError, match="empty"):
        quantize_model(model, np.zeros((0, 32, 32, 1), np.float32), progress=False)
    with pytest.raises(CalibrationError, match="shape"):
        quantize_model(model, np.zeros((4, 28, 28, 1), np.float32), progress=False)
    with pytest.raises(CalibrationError, match="NaN"):
        quantize_model(model, np.full((4, 32, 32, 1), np.nan, np.float32), progress=False)


def test_constant_activations_get_defined_qparams():
    """A layer whose outputs are all zero (min == max) still quantizes and runs."""
    model = Sequential([Conv2D(2, 3, activation="relu"), MaxPool2D(2), Flatten(), Dense(3)], (8, 8, 1)).init_params(0)
    model.layers[0].params["w"][:] = 0
    model.layers[0].params["b"][:] = -1.0  # relu(-1) == 0 everywhere
    x = np.random.default_rng(0).uniform(0, 1, (16, 8, 8, 1)).astype(np.float32)
    qm = quantize_model(model, x, progress=False)
    out = Runtime(qm.graph).run(quantize_input(x, qm.graph.input.scale[0], -128))
    assert out.shape == (16, 3)
    assert np.all(np.isfinite(qm.graph.tensors[qm.layer_tensors[0][1]].scale))


def test_fold_batchnorm_matches_float():
    rng = np.random.default_rng(0)
    w, b = rng.normal(size=(4, 3, 3, 2)), rng.normal(size=4)
    gamma, beta, mean, var = rng.uniform(0.5, 2, 4), rng.normal(size=4), rng.normal(size=4), rng.uniform(0.1, 2, 4)
    x = rng.normal(size=(2, 6, 6, 2))
    from edgecnn.reference.conv import conv2d_forward

    y, _ = conv2d_forward(x, w, b)
    bn = gamma * (y - mean) / np.sqrt(var + 1e-5) + beta
    scale = gamma / np.sqrt(var + 1e-5)
    wf, bf = fold_batchnorm(w, b, scale, beta - scale * mean)
    yf, _ = conv2d_forward(x, wf, bf)
    np.testing.assert_allclose(yf, bn, rtol=1e-10, atol=1e-10)
