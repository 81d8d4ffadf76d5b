"""The issue's path on colour data: `edgecnn train --arch resnet8 --dataset cifar10` (one short epoch on a
made-up CIFAR-format set), `quantize`, then eval/predict on Numba, LiteRT BUILTIN_REF, onnxruntime and C,
every int8 output identical. Slow: it trains."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from cifar10_data import write_cifar_folder
from conftest import run_cli
from edgecnn.data.cifar import LABELS


@pytest.mark.slow
def test_resnet8_on_cifar10_trains_quantizes_and_runs_bit_exact(tmp_path):
    from test_export_graphs import assert_exports_match_litert

    from edgecnn.data.datasets import load_split
    from edgecnn.deploy.backends import open_backend
    from edgecnn.deploy.tflite.reader import read_tflite
    from edgecnn.model.checkpoint import load_checkpoint

    root = tmp_path / "data"
    batches = write_cifar_folder(root, per_train_batch=40, test=40)  # 200 train, 40 test images
    npz, tfl = tmp_path / "r8.npz", tmp_path / "r8.tflite"
    rc, out, err = run_cli("train", "--arch", "resnet8", "--dataset", "cifar10", "--data", root, "--epochs", "1",
                           "--batch-size", "32", "--seed", "0", "--out", npz, "--json")
    assert rc == 0, err
    trained = json.loads(out)
    assert trained["arch"] == "resnet8" and trained["epochs"] == 1 and 0 <= trained["test_accuracy"] <= 1
    model = load_checkpoint(npz)
    assert tuple(model.input_shape) == (32, 32, 3) and list(model.labels) == list(LABELS)

    rc, out, err = run_cli("quantize", npz, "--dataset", "cifar10", "--data", root, "--calib-samples", "100",
                           "--out", tfl, "--also", tmp_path / "r8.onnx", "--also", tmp_path / "r8.c", "--json")
    assert rc == 0, err
    q = json.loads(out)
    assert q["samples"] == 40 and len(q["written"]) == 4

    outputs = {}
    for backend, model_path in [("numba", tfl), ("litert-ref", tfl), ("onnxruntime", tmp_path / "r8.onnx")]:
        save = tmp_path / f"{backend}.npy"
        rc, out, err = run_cli("eval", model_path, "--dataset", "cifar10", "--data", root, "--backend", backend,
                               "--save-outputs", save, "--json")
        assert rc == 0, err
        assert json.loads(out)[0]["accuracy"] == pytest.approx(q["int8_accuracy"])  # the quantizer's own figure
        outputs[backend] = np.load(save)
    for backend, y in outputs.items():
        np.testing.assert_array_equal(y, outputs["litert-ref"], err_msg=backend)

    images, _ = load_split("cifar10", "test", root)
    x = open_backend(tfl, "numba").prepare(images)
    assert assert_exports_match_litert(read_tflite(tfl), [x]) == 40 * 10  # C (gcc) and ONNX vs BUILTIN_REF

    test_images = batches["test_batch.bin"][0]
    for i in range(3):
        Image.fromarray(test_images[i]).save(tmp_path / f"t{i}.png")
    rc, out, err = run_cli("predict", tfl, *[tmp_path / f"t{i}.png" for i in range(3)], "--backend", "litert-ref",
                           "--json")
    assert rc == 0, err
    rows = json.loads(out)
    np.testing.assert_array_equal([r["outputs"] for r in rows], outputs["litert-ref"][:3])
    assert all(r["label"] in LABELS for r in rows)
