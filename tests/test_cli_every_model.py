"""`edgecnn summary`, `bench`, `eval` and `predict` on every model the runtime runs (issue 7, item 6).

Small graphs built here with Int8Graph and written with write_tflite (no
TensorFlow needed): two outputs, two inputs, float32 in/out (the model's own
QUANTIZE / DEQUANTIZE), uint8 in. All share one int8 body (a 28x28 MNIST
classifier with random weights), so on MNIST the float, uint8 and int8
variants must predict the very same classes. Marked slow: the TensorFlow
converter's conformance models, when EDGECNN_TF_PYTHON is set (CI sets it).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_clean_error, run_cli
from tflite_models import GraphBuilder

from edgecnn.deploy.tflite import write_tflite
from edgecnn.int8.graph import Int8Graph, Op, Tensor


def _body(seed: int = 0) -> tuple[GraphBuilder, int]:
    """The int8 MNIST classifier: (builder, index of its flattened features)."""
    b = GraphBuilder(np.random.default_rng(seed), (1, 28, 28, 1), scale=1 / 255, zero_point=-128)
    b.conv2d(4, 5, 5, stride=(2, 2), act="RELU").flatten()
    features = b.x
    b.fully_connected(10)
    return b, features


def int8_model() -> Int8Graph:
    return _body()[0].build()


def two_outputs() -> Int8Graph:
    """Outputs: the 576 features first, then the 10 class scores (eval must pick the second)."""
    b, features = _body()
    return Int8Graph(list(b.tensors), list(b.ops), [b.input], [features, b.x]).validate()


def two_inputs() -> Int8Graph:
    """A 10-value side input (first, as the converter orders them) added to the image's class scores."""
    b, _ = _body()
    tensors, ops = list(b.tensors), list(b.ops)
    scores = tensors[b.x]
    tensors.append(Tensor("side", scores.shape, "int8", scores.scale, scores.zero_point))
    tensors.append(Tensor("sum", scores.shape, "int8", scores.scale * 2, scores.zero_point))
    ops.append(Op("ADD", [b.x, len(tensors) - 2], [len(tensors) - 1], {"fused_activation_function": "NONE"}))
    return Int8Graph(tensors, ops, [len(tensors) - 2, b.input], [len(tensors) - 1]).validate()


def edges(in_dtype: str, out_dtype: str) -> Int8Graph:
    """The body behind a QUANTIZE from a float32 or uint8 input, and before a DEQUANTIZE when out is float32."""
    b, _ = _body()
    tensors, ops = list(b.tensors), list(b.ops)
    x8, y8 = tensors[b.input], tensors[b.x]
    if in_dtype == "float32":
        tensors.append(Tensor("x_float", x8.shape, "float32", [], []))
    else:  # the converter's uint8 input: same scale, zero point + 128
        tensors.append(Tensor("x_uint8", x8.shape, "uint8", x8.scale, x8.zero_point + 128))
    x_in = len(tensors) - 1
    ops = [Op("QUANTIZE", [x_in], [b.input])] + ops
    y_out = b.x
    if out_dtype == "float32":
        tensors.append(Tensor("y_float", y8.shape, "float32", [], []))
        y_out = len(tensors) - 1
        ops.append(Op("DEQUANTIZE", [b.x], [y_out]))
    return Int8Graph(tensors, ops, [x_in], [y_out]).validate()


def two_outputs_labelled() -> Int8Graph:
    g = two_outputs()
    g.metadata["labels"] = ["zero"] + [str(i) for i in range(1, 10)]
    return g


MODELS = {"int8": int8_model, "two_outputs": two_outputs, "two_outputs_labelled": two_outputs_labelled,
          "two_inputs": two_inputs,
          "float_io": lambda: edges("float32", "float32"), "uint8_in": lambda: edges("uint8", "int8")}


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("every-model")
    paths = {}
    for name, make in MODELS.items():
        paths[name] = d / f"{name}.tflite"
        write_tflite(make(), paths[name])
    return paths


def cli_json(*args):
    rc, out, err = run_cli(*args, "--json")
    assert rc == 0, err
    assert "Traceback" not in err
    return json.loads(out)


# ------------------------------------------------------------------ summary

def test_summary_lists_every_input_and_output(models):
    doc = cli_json("summary", models["two_inputs"])
    assert {"arch", "total_params", "layers", "input_shape"} <= set(doc)
    assert [(i["name"], i["dtype"], i["shape"]) for i in doc["inputs"]] == [("side", "int8", [10]),
                                                                            ("input", "int8", [28, 28, 1])]
    assert doc["outputs"][0]["shape"] == [10] and doc["outputs"][0]["scale"] > 0
    assert [layer["kind"] for layer in doc["layers"]] == ["conv_2d", "reshape", "fully_connected", "add"]
    assert set(doc["layers"][-1]["inputs"]) == {doc["layers"][-2]["name"], "side"}
    float_doc = cli_json("summary", models["float_io"])
    assert float_doc["inputs"][0] == {"name": "x_float", "dtype": "float32", "shape": [28, 28, 1],
                                      "scale": None, "zero_point": None}
    assert [layer["kind"] for layer in float_doc["layers"]][::3] == ["quantize", "fully_connected"]
    rc, out, err = run_cli("summary", models["two_outputs"])
    assert rc == 0, err
    assert out.count("\noutput ") == 2 and "int8 576" in out


# ------------------------------------------------------------------ bench

@pytest.mark.parametrize("name", ["two_outputs", "two_inputs", "float_io", "uint8_in"])
def test_bench_runs_every_model(models, name):
    for backend in ("numba", "litert-ref"):
        doc = cli_json("bench", models[name], "--backend", backend, "--seconds", "0.05", "--batch", "3")
        assert doc["backend"] == backend and doc["images_per_second"] > 0 and doc["batch"] == 3
        assert [i["shape"] for i in doc["inputs"]] == [i["shape"] for i in cli_json("summary", models[name])["inputs"]]


def test_bench_float_inputs_span_the_quantize_range():
    from edgecnn.deploy.backends import Int8Backend
    from edgecnn.deploy.bench import random_input

    x = random_input(Int8Backend(edges("float32", "float32")), 4)
    assert x.dtype == np.float32 and x.shape == (4, 28, 28, 1)  # a one-channel image: pixels / 255
    assert 0 <= x.min() and x.max() <= 1
    g = two_inputs()
    g.tensors[g.inputs[0]] = Tensor("side", (1, 10), "float32", [], [])  # a float side input (not run)
    g.ops.insert(0, Op("QUANTIZE", [g.inputs[0]], [len(g.tensors)]))
    g.tensors.append(Tensor("side_q", (1, 10), "int8", [0.5], [-28]))
    side, image = random_input(Int8Backend(g), 50)
    assert side.dtype == np.float32 and image.dtype == np.int8
    assert side.min() >= 0.5 * (-128 + 28) and side.max() <= 0.5 * (127 + 28) and side.max() - side.min() > 50


# ------------------------------------------------------------------ eval

def test_eval_float_uint8_and_int8_inputs_agree(models, mnist_root, tmp_path):
    rows = cli_json("eval", models["int8"], models["float_io"], models["uint8_in"], models["two_outputs"],
                    "--data", mnist_root, "--limit", "300", "--backend", "litert-ref", "--quiet")
    assert [r["samples"] for r in rows] == [300] * 4
    assert len({r["accuracy"] for r in rows}) == 1, rows  # one body, one prediction per image
    assert [r["output"] for r in rows[:3]] == [rows[0]["output"], "y_float", rows[0]["output"]]
    assert rows[3]["output"] == rows[0]["output"]  # the 10-class output, not the features
    numba = cli_json("eval", models["float_io"], "--data", mnist_root, "--limit", "300", "--backend", "numba",
                     "--quiet", "--save-outputs", tmp_path / "f.npy")
    assert numba[0]["accuracy"] == rows[0]["accuracy"]
    assert np.load(tmp_path / "f.npy").dtype == np.float32


def test_eval_saves_every_output_of_a_two_output_model(models, mnist_root, tmp_path):
    rc, _, err = run_cli("eval", models["two_outputs"], "--data", mnist_root, "--limit", "5",
                         "--save-outputs", tmp_path / "o.npy")
    assert_clean_error(rc, err, "2 outputs", ".npz")
    cli_json("eval", models["two_outputs"], "--data", mnist_root, "--limit", "7", "--backend", "numba",
             "--quiet", "--save-outputs", tmp_path / "o.npz")
    with np.load(tmp_path / "o.npz") as z:
        assert sorted(z.files) == ["output0", "output1"]
        assert z["output0"].shape == (7, 576) and z["output1"].shape == (7, 10) and z["output1"].dtype == np.int8


def test_eval_refuses_a_model_whose_first_input_is_not_the_image(models, mnist_root):
    rc, _, err = run_cli("eval", models["two_inputs"], "--data", mnist_root, "--limit", "5")
    assert_clean_error(rc, err, "2 inputs")


# ------------------------------------------------------------------ predict

def test_predict_float_and_two_output_models(models, tmp_path):
    from PIL import Image

    img = np.zeros((28, 28), np.uint8)
    img[6:22, 12:16] = 255
    Image.fromarray(img).save(tmp_path / "one.png")
    ref = cli_json("predict", models["int8"], tmp_path / "one.png", "--backend", "litert-ref")[0]
    for name in ("float_io", "uint8_in", "two_outputs_labelled"):
        for backend in ("numba", "litert-ref"):
            row = cli_json("predict", models[name], tmp_path / "one.png", "--backend", backend)[0]
            assert row["label"] == ref["label"] and len(row["scores"]) == 10, (name, backend)
            assert np.allclose(row["scores"], ref["scores"], atol=1e-6), (name, backend)
    row = cli_json("predict", models["two_outputs"], tmp_path / "one.png", "--output", "1")[0]
    assert [len(o) for o in row["outputs"]] == [576, 10] and row["output_index"] == 1
    assert row["scores"] == ref["scores"] and row["outputs"][1] == ref["outputs"]
    row = cli_json("predict", models["two_outputs_labelled"], tmp_path / "one.png")[0]  # the labels pick it
    assert row["output_index"] == 1 and row["labels"][0] == "zero" and row["scores"] == ref["scores"]
    features = cli_json("predict", models["two_outputs"], tmp_path / "one.png")[0]  # no labels, no softmax
    assert features["output_index"] == 0 and len(features["scores"]) == 576
    assert isinstance(cli_json("predict", models["float_io"], tmp_path / "one.png")[0]["outputs"][0], float)


def test_predict_refuses_two_input_models_clearly(models, tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((28, 28, 1), np.float32))
    rc, _, err = run_cli("predict", models["two_inputs"], tmp_path / "x.npy")
    assert_clean_error(rc, err, "2 inputs")


# ------------------------------------------------------------------ the TF converter's models

@pytest.fixture(scope="module")
def converter_models(tmp_path_factory) -> Path:
    d = os.environ.get("EDGECNN_CONFORMANCE_DIR")
    if d and Path(d, "two_outputs.tflite").is_file():
        return Path(d)
    tf_python = os.environ.get("EDGECNN_TF_PYTHON")
    if not tf_python:
        pytest.fail("set EDGECNN_TF_PYTHON (CI's TensorFlow python) or EDGECNN_CONFORMANCE_DIR")
    import subprocess

    out = tmp_path_factory.mktemp("converter")
    script = Path(__file__).with_name("tf_conformance_models.py")
    subprocess.run([tf_python, str(script), str(out)], check=True, capture_output=True, timeout=1800)
    return out


@pytest.mark.slow
@pytest.mark.skipif(not (os.environ.get("EDGECNN_TF_PYTHON") or os.environ.get("EDGECNN_CONFORMANCE_DIR")),
                    reason="needs EDGECNN_TF_PYTHON (CI's TensorFlow venv)")
def test_converter_models(converter_models, tmp_path):
    for path in sorted(converter_models.glob("*.tflite")):
        doc = cli_json("summary", path)
        assert doc["layers"] and doc["inputs"] and doc["outputs"], path.name
        for backend in ("numba", "litert-ref", "onnxruntime"):
            r = cli_json("bench", path, "--backend", backend, "--seconds", "0.05")
            assert r["images_per_second"] > 0, (path.name, backend)
        inputs = doc["inputs"]
        if len(inputs) == 1:
            x = np.random.default_rng(0).random((1, *inputs[0]["shape"]), dtype=np.float32)
            if inputs[0]["dtype"] != "float32":
                x = np.random.default_rng(0).integers(0, 100, (1, *inputs[0]["shape"])).astype(inputs[0]["dtype"])
            if len(x.shape) == 4 and x.shape[3] == 1:  # a one-channel input is read as a grayscale image
                x = np.random.default_rng(0).integers(0, 256, x.shape[1:3]).astype(np.uint8)
            np.save(tmp_path / "x.npy", x)
            row = cli_json("predict", path, tmp_path / "x.npy", "--backend", "litert-ref")[0]
            assert row["scores"], path.name
