"""Colour (32x32x3, CIFAR-10) models end to end: quantize with per-channel mean/std, then eval and predict on
every back end (Numba, LiteRT BUILTIN_REF, onnxruntime, C via gcc, float) with identical int8 outputs, and the
RGB preprocessing (channel order, per-channel normalisation) the same everywhere."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from cifar10_data import write_cifar_folder
from cli_main import run_main
from conftest import assert_clean_error, run_cli
from edgecnn.cli import main
from edgecnn.data.cifar import LABELS

MEAN, STD = [0.49, 0.48, 0.45], [0.25, 0.24, 0.26]
INT8_BACKENDS = ("numba", "litert-ref", "onnxruntime")


def tiny_colour_model():
    """conv 5x5 stride 2 -> max-pool -> flatten -> dense: small, and every output depends on each channel."""
    from edgecnn.model import GraphBuilder
    from edgecnn.model.layers import Conv2D, Dense, Flatten, MaxPool2D

    g = GraphBuilder((32, 32, 3), arch="tiny-rgb", labels=list(LABELS))
    x = g.add(Conv2D(8, 5, stride=2, activation="relu", name="c1"), g.input)
    x = g.add(MaxPool2D(2, name="p1"), x)
    x = g.add(Flatten(name="flat"), x)
    g.add(Dense(10, name="fc"), x)
    return g.build().init_params(0)


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar-data")
    batches = write_cifar_folder(root, per_train_batch=40, test=40)
    return root, batches


@pytest.fixture(scope="module")
def models(cifar, tmp_path_factory):
    """tiny.npz, and tiny.tflite / .onnx / .c quantized with a per-channel mean/std."""
    from edgecnn.model.checkpoint import save_checkpoint

    root, _ = cifar
    d = tmp_path_factory.mktemp("rgb-models")
    save_checkpoint(d / "tiny.npz", tiny_colour_model())
    assert main(["quantize", str(d / "tiny.npz"), "--dataset", "cifar10", "--data", str(root),
                 "--calib-samples", "100", "--mean", *map(str, MEAN), "--std", *map(str, STD),
                 "--out", str(d / "tiny.tflite"), "--also", str(d / "tiny.onnx"), "--also", str(d / "tiny.c"),
                 "--quiet", "--json"]) == 0
    return d


def eval_outputs(capsys, model, root, backend=None):
    out = model.parent / f"{model.stem}-{backend}.npy"
    args = ["eval", str(model), "--dataset", "cifar10", "--data", str(root), "--save-outputs", str(out),
            "--quiet", "--json"]
    assert main(args + (["--backend", backend] if backend else [])) == 0
    row = json.loads(capsys.readouterr().out)[0]
    return np.load(out), row


def test_every_back_end_gives_identical_int8_outputs(cifar, models, capsys):
    root, _ = cifar
    outs = {b: eval_outputs(capsys, models / "tiny.tflite", root, b) for b in INT8_BACKENDS}
    outs["onnx file"] = eval_outputs(capsys, models / "tiny.onnx", root)
    ref, row = outs["litert-ref"]
    assert ref.shape == (40, 10) and ref.dtype == np.int8 and len(np.unique(ref)) > 10
    for name, (y, r) in outs.items():
        np.testing.assert_array_equal(y, ref, err_msg=name)
        assert r["accuracy"] == row["accuracy"] and r["samples"] == 40


def test_c_export_equals_builtin_ref(cifar, models):
    from test_export_graphs import assert_exports_match_litert

    from edgecnn.data.datasets import load_split
    from edgecnn.deploy.backends import open_backend
    from edgecnn.deploy.tflite.reader import read_tflite

    images, _ = load_split("cifar10", "test", cifar[0])
    x = open_backend(models / "tiny.tflite", "numba").prepare(images[:16])
    assert x.shape == (16, 32, 32, 3) and x.dtype == np.int8
    assert assert_exports_match_litert(read_tflite(models / "tiny.tflite"), [x]) == 16 * 10


def test_metadata_mean_std_apply_per_channel_in_rgb_order(cifar, models):
    from edgecnn.data.datasets import load_split
    from edgecnn.deploy.backends import open_backend
    from edgecnn.int8.rules import quantize_input

    images, _ = load_split("cifar10", "test", cifar[0])
    b = open_backend(models / "tiny.tflite", "litert-ref")
    pre = b.metadata["preprocessing"]
    assert pre["mean"] == MEAN and pre["std"] == STD
    spec = b.inputs[0]
    x = np.empty(images.shape, np.float32)  # written out per channel: R with MEAN[0], G with MEAN[1], ...
    for c in range(3):
        x[..., c] = (images[..., c].astype(np.float32) / np.float32(255) - np.float32(MEAN[c])) / np.float32(STD[c])
    expected = quantize_input(x, spec.scale, spec.zero_point)
    for backend in INT8_BACKENDS:
        np.testing.assert_array_equal(open_backend(models / "tiny.tflite", backend).prepare(images), expected)
    onnx_b = open_backend(models / "tiny.onnx")  # ONNX metadata carries the same dict as JSON text
    np.testing.assert_array_equal(onnx_b.prepare(images), expected)
    assert not np.array_equal(b.prepare(images[..., ::-1]), expected)  # BGR is not RGB


def _save_images(folder, images):
    folder.mkdir(exist_ok=True)
    paths = []
    for i, img in enumerate(images):
        Image.fromarray(img).save(folder / f"t{i}.png")
        np.save(folder / f"t{i}.npy", img)
        np.save(folder / f"f{i}.npy", img.astype(np.float32) / 255)  # floats in 0..1
        paths += [folder / f"t{i}.png", folder / f"t{i}.npy", folder / f"f{i}.npy"]
    return paths


@pytest.mark.parametrize("backend", [*INT8_BACKENDS, "onnx file", "float"])
def test_predict_on_png_and_npy_equals_eval_on_the_dataset(cifar, models, capsys, backend, tmp_path):
    root, batches = cifar
    test_images = batches["test_batch.bin"][0]
    paths = _save_images(tmp_path, test_images[:4])
    model = {"onnx file": models / "tiny.onnx", "float": models / "tiny.npz"}.get(backend, models / "tiny.tflite")
    flag = [] if backend in ("onnx file", "float") else ["--backend", backend]
    expected, _ = eval_outputs(capsys, model, root, flag[1] if flag else None)
    assert main(["predict", str(model), *map(str, paths), *flag, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 12
    for k, row in enumerate(rows):
        assert row["labels"] == list(LABELS) and row["framing"] == "as-is" and not row["inverted"]
        got = np.asarray(row["outputs"])
        if backend == "float":
            np.testing.assert_allclose(got, expected[k // 3], rtol=1e-5, atol=1e-5)
        else:
            np.testing.assert_array_equal(got, expected[k // 3], err_msg=row["image"])


def test_predict_rgba_grey_jpeg_and_larger_images(cifar, models, capsys, tmp_path):
    img = cifar[1]["test_batch.bin"][0][0]
    Image.fromarray(img).save(tmp_path / "rgb.png")
    Image.fromarray(np.dstack([img, np.full(img.shape[:2], 255, np.uint8)]), "RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(img[..., 1]).save(tmp_path / "grey.png")
    np.save(tmp_path / "grey3.npy", np.repeat(img[..., 1:2], 3, axis=2))
    Image.fromarray(img).save(tmp_path / "rgb.jpg", quality=95)
    Image.fromarray(np.kron(img, np.ones((3, 3, 1), np.uint8))).save(tmp_path / "big.png")  # 96x96
    names = ["rgb.png", "rgba.png", "grey.png", "grey3.npy", "rgb.jpg", "big.png"]
    results = {}
    for backend in INT8_BACKENDS:
        assert main(["predict", str(models / "tiny.tflite"), *[str(tmp_path / n) for n in names],
                     "--backend", backend, "--json"]) == 0
        results[backend] = json.loads(capsys.readouterr().out)
    rows = {n: r for n, r in zip(names, results["numba"])}
    assert rows["rgba.png"]["outputs"] == rows["rgb.png"]["outputs"]  # opaque alpha changes nothing
    assert rows["grey.png"]["outputs"] == rows["grey3.npy"]["outputs"]  # grey files fill all three channels
    assert rows["big.png"]["framing"] == "resize"
    for backend in INT8_BACKENDS:
        assert [r["outputs"] for r in results[backend]] == [r["outputs"] for r in results["numba"]], backend


@pytest.mark.parametrize("make,needles", [
    (lambda p: np.save(p, np.zeros((32, 32, 4), np.uint8)), ["x.npy", "(H, W, 3)"]),
    (lambda p: np.save(p, np.full((32, 32, 3), 300.0)), ["x.npy", "0..255"]),
])
def test_bad_colour_npy_is_one_line(models, tmp_path, capsys, make, needles):
    make(tmp_path / "x.npy")
    rc, out, err = run_main(capsys, "predict", models / "tiny.tflite", tmp_path / "x.npy")
    assert_clean_error(rc, err, *needles)
    assert out == ""


def test_mnist_framing_on_a_colour_model_is_one_line(models, tmp_path, capsys):
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "x.png")
    rc, _, err = run_main(capsys, "predict", models / "tiny.tflite", tmp_path / "x.png", "--framing", "mnist")
    assert_clean_error(rc, err, "one-channel")


def test_grey_dataset_on_a_colour_model_is_one_line(models, tmp_path):
    from edgecnn.data.idx import write_idx

    d = tmp_path / "grey"
    d.mkdir()
    write_idx(d / "t10k-images-idx3-ubyte", np.zeros((3, 28, 28), np.uint8))
    write_idx(d / "t10k-labels-idx1-ubyte", np.zeros(3, np.uint8))
    rc, _, err = run_cli("eval", models / "tiny.tflite", "--data", d)
    assert_clean_error(rc, err, "tiny.tflite", "32x32x3", "1-channel")
