"""`edgecnn predict` on the images users really have: drawn black on white, larger than 28x28,
RGB or RGBA with a transparent background; and on .npy inputs of models that take no image."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from conftest import assert_clean_error, run_cli


@pytest.fixture(scope="module")
def untrained_tflite(tmp_path_factory):
    from edgecnn.deploy.tflite import write_tflite
    from edgecnn.model import build
    from edgecnn.quantize.ptq import quantize_model

    m = build("lenet5").init_params(0)
    qm = quantize_model(m, np.random.default_rng(0).uniform(0, 1, (8, 32, 32, 1)).astype(np.float32), progress=False)
    p = tmp_path_factory.mktemp("untrained") / "m.tflite"
    write_tflite(qm.graph, p)
    return p


@pytest.fixture(scope="module")
def trained_tflite(tmp_path_factory, lenet5_path, mnist_root):
    from edgecnn.data.datasets import lenet_input, load_split
    from edgecnn.deploy.tflite import write_tflite
    from edgecnn.model.checkpoint import load_checkpoint
    from edgecnn.quantize.ptq import quantize_model

    images, _ = load_split("mnist", "train", mnist_root)
    qm = quantize_model(load_checkpoint(lenet5_path), lenet_input(images[:500]), progress=False)
    p = tmp_path_factory.mktemp("trained") / "lenet5.tflite"
    write_tflite(qm.graph, p)
    return p


def paper_digits(folder, images, kind: str, side: int = 128):
    """MNIST digits as drawn on paper: black on white, upscaled (bilinear) to side x side."""
    folder.mkdir(exist_ok=True)
    paths = []
    for i, img in enumerate(images):
        big = np.asarray(Image.fromarray(img).resize((side, side), Image.Resampling.BILINEAR))
        if kind == "rgb":
            im = Image.fromarray(255 - big).convert("RGB")
        else:  # black ink whose opacity is the stroke, on a fully transparent canvas
            rgba = np.zeros((side, side, 4), np.uint8)
            rgba[..., 3] = big
            im = Image.fromarray(rgba, "RGBA")
        paths.append(folder / f"{kind}{i:03d}.png")
        im.save(paths[-1])
    return paths


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["rgb", "rgba"])
def test_100_inverted_upscaled_digits(trained_tflite, mnist_test, tmp_path, kind):
    images, labels = mnist_test
    paths = paper_digits(tmp_path / kind, images[:100], kind)
    rc, stdout, err = run_cli("predict", trained_tflite, *paths, "--json")
    assert rc == 0, err
    rows = json.loads(stdout)
    right = sum(r["label"] == str(v) for r, v in zip(rows, labels[:100]))
    print(f"{kind}: {right}/100 right")
    assert right >= 95
    assert all(r["inverted"] and r["framing"] == "mnist" for r in rows)


def test_predict_prints_probabilities_and_exits_0(untrained_tflite, mnist_test, tmp_path):
    images, _ = mnist_test
    paths = paper_digits(tmp_path / "d", images[:2], "rgb", side=64)
    Image.fromarray(images[2]).save(tmp_path / "plain.png")
    rc, stdout, err = run_cli("predict", untrained_tflite, *paths, tmp_path / "plain.png", "--json",
                              "--backend", "litert")
    assert rc == 0, err
    assert err == ""  # no LiteRT/XNNPACK INFO line, no warnings
    rows = json.loads(stdout)
    for r in rows:
        assert abs(sum(r["scores"]) - 1) < 1e-3 and 0 <= r["probability"] <= 1
        assert r["labels"] == [str(i) for i in range(10)] and r["label"] in r["labels"]
        assert len(r["outputs"]) == 10 and all(isinstance(v, int) for v in r["outputs"])
    assert [r["inverted"] for r in rows] == [True, True, False]
    rc, stdout, err = run_cli("predict", untrained_tflite, paths[0], "--invert", "no", "--backend", "litert")
    assert rc == 0, err
    assert stdout.startswith("rgb000.png: ") and "%" in stdout and "(inverted)" not in stdout


@pytest.mark.parametrize("backend", ["litert", pytest.param("numba", marks=pytest.mark.slow)])
def test_litert_info_line_stays_off_stdout_and_stderr(untrained_tflite, tmp_path, backend):
    np.save(tmp_path / "d.npy", np.zeros((28, 28), np.uint8))
    rc, stdout, err = run_cli("predict", untrained_tflite, tmp_path / "d.npy", "--backend", backend, "--json")
    assert rc == 0 and err == "", err
    assert "INFO" not in stdout
    rc, _, err = run_cli("bench", untrained_tflite, "--backend", "litert", "--seconds", "0.1")
    assert rc == 0 and "XNNPACK" not in err
    rc, _, err = run_cli("bench", untrained_tflite, "--backend", "litert", "--seconds", "0.1",
                         env={"EDGECNN_LITERT_LOG": "1"})
    assert rc == 0 and "XNNPACK" in err  # shown when asked


@pytest.mark.parametrize("content", [b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, b"GIF89a\x01", b"\xff\xd8\xff\xe0junk",
                                     b"BM" + b"\xff" * 60, b"II*\x00" + b"\xff" * 30, b""])
def test_predict_hostile_images_one_line(untrained_tflite, tmp_path, content):
    p = tmp_path / "bad.img"
    p.write_bytes(content)
    rc, _, err = run_cli("predict", untrained_tflite, p, "--backend", "litert")
    assert_clean_error(rc, err, "bad.img")


@pytest.fixture(scope="module")
def feature_model(tmp_path_factory):
    """An autoencoder-like float model whose input is 640 features, not an image."""
    from edgecnn.model import Sequential
    from edgecnn.model.checkpoint import save_checkpoint
    from edgecnn.model.layers import Dense

    m = Sequential([Dense(32, activation="relu"), Dense(640)], input_shape=(640,), arch="autoencoder").init_params(0)
    return save_checkpoint(tmp_path_factory.mktemp("ae") / "ae.npz", m)


def test_non_image_model_refuses_images_in_one_line(feature_model, tmp_path, mnist_root):
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "d.png")
    rc, _, err = run_cli("predict", feature_model, tmp_path / "d.png")
    assert_clean_error(rc, err, ".npy")
    np.save(tmp_path / "wrong.npy", np.zeros((1, 64), np.float32))
    rc, _, err = run_cli("predict", feature_model, tmp_path / "wrong.npy")
    assert_clean_error(rc, err, "wrong.npy")
    rc, _, err = run_cli("eval", feature_model, "--data", mnist_root, "--limit", "5")
    assert_clean_error(rc, err, "640")


def test_non_image_model_runs_on_npy(feature_model, tmp_path):
    np.save(tmp_path / "x.npy", np.random.default_rng(0).uniform(0, 1, (1, 640)).astype(np.float32))
    rc, stdout, err = run_cli("predict", feature_model, tmp_path / "x.npy", "--json")
    assert rc == 0, err
    assert len(json.loads(stdout)[0]["outputs"]) == 640


@pytest.mark.parametrize("backend", [pytest.param("numba", marks=pytest.mark.slow), "litert"])
def test_int8_feature_model_runs_on_npy(tmp_path, backend):
    """An int8 autoencoder-like model: [1, 640] in, [1, 640] out; predict, bench and eval behave."""
    from edgecnn.deploy.tflite import write_tflite
    from tflite_models import GraphBuilder

    g = GraphBuilder(np.random.default_rng(0), (1, 640))
    g.fully_connected(32, "RELU").fully_connected(640)
    model = tmp_path / "ae.tflite"
    write_tflite(g.build(), model)
    np.save(tmp_path / "x.npy", np.random.default_rng(1).uniform(0, 1, (1, 640)).astype(np.float32))
    np.save(tmp_path / "q.npy", np.zeros(640, np.int8))
    rc, stdout, err = run_cli("predict", model, tmp_path / "x.npy", tmp_path / "q.npy", "--backend", backend, "--json")
    assert rc == 0, err
    rows = json.loads(stdout)
    assert [len(r["outputs"]) for r in rows] == [640, 640]
    rc, stdout, err = run_cli("bench", model, "--backend", backend, "--seconds", "0.1", "--json")
    assert rc == 0, err
