"""An int8-vs-float regression test to copy into your own suite (see docs/regression.md).

Run with `pytest` where `edgecnn[train]` is installed and MNIST can be found
($EDGECNN_DATA, ~/.cache/edgecnn or /usr/share/datasets; `edgecnn data fetch mnist`).
The fixtures `edgecnn_dataset` and `edgecnn_assert_int8_close` come from edgecnn's
pytest plugin, loaded automatically once edgecnn is installed.

This file trains and quantizes a small LeNet-5 itself so that it runs anywhere;
in your suite, replace the `models` fixture with the paths of your own float
checkpoint (.npz or float .onnx) and int8 .tflite.
"""

from __future__ import annotations

import numpy as np
import pytest

MAX_DROP = 1.0  # percentage points of accuracy int8 may lose against float
MIN_AGREEMENT = 0.97  # share of images whose top-1 class must be the same in both
EVAL_IMAGES = 2000


@pytest.fixture(scope="module")
def models(tmp_path_factory, edgecnn_dataset):
    """(float .npz, good int8 .tflite, int8 .tflite calibrated on black images): made here, in a temp folder."""
    from edgecnn.data.datasets import lenet_input
    from edgecnn.deploy.tflite import write_tflite
    from edgecnn.model import build
    from edgecnn.model.checkpoint import save_checkpoint
    from edgecnn.quantize.ptq import quantize_model
    from edgecnn.train.trainer import TrainConfig, train

    d = tmp_path_factory.mktemp("models")
    images, labels = edgecnn_dataset("mnist", split="train", limit=12000)
    test_images, test_labels = edgecnn_dataset("mnist", split="test", limit=500)
    model = build("lenet5").init_params(0)
    train(model, (lenet_input(images), labels), (lenet_input(test_images), test_labels),
          TrainConfig(epochs=1, seed=0), progress=False)
    save_checkpoint(d / "float.npz", model)
    write_tflite(quantize_model(model, lenet_input(images[:500]), progress=False).graph, d / "int8.tflite")
    black = np.zeros((4, 28, 28), np.uint8)  # a broken calibration set
    write_tflite(quantize_model(model, lenet_input(black), progress=False).graph, d / "spoiled.tflite")
    return d / "float.npz", d / "int8.tflite", d / "spoiled.tflite"


def test_int8_stays_close_to_float(models, edgecnn_assert_int8_close):
    float_model, int8_model, _ = models
    result = edgecnn_assert_int8_close(float_model, int8_model, dataset="mnist", limit=EVAL_IMAGES,
                                       max_drop=MAX_DROP, min_agreement=MIN_AGREEMENT)
    assert result.accuracy > 0.9


def test_a_broken_calibration_is_caught(models, edgecnn_assert_int8_close):
    float_model, _, spoiled = models
    with pytest.raises(AssertionError) as failure:
        edgecnn_assert_int8_close(float_model, spoiled, dataset="mnist", limit=EVAL_IMAGES,
                                  max_drop=MAX_DROP, min_agreement=MIN_AGREEMENT)
    report = str(failure.value)
    assert "drop" in report and "agreement" in report and "worst classes" in report
    assert "CONV_2D" in report  # the op where int8 departs from float
