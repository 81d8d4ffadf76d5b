"""edgecnn against a real file from TensorFlow's converter, not one shaped like it.

tests/tf_convert_lenet.py rebuilds the session's trained lenet5 in Keras and
converts it full-integer int8 with tf.lite.TFLiteConverter. It runs under a
separate TensorFlow venv named by $EDGECNN_TF_PYTHON, because TensorFlow must
never be an edgecnn dependency (it pins numpy its own way). .ci/run builds
that venv; locally the tests skip without it, in CI they fail.

The claims: edgecnn reads the converter's file (Keras Flatten's shape ops
folded away), runs it bit-exact with LiteRT's BUILTIN_REF on all 10,000
MNIST test images, and writes a file for the same float model that is no
larger than the converter's.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tflite

from edgecnn.data.datasets import lenet_input, lenet_input_int8, load_split
from edgecnn.deploy.litert import LiteRTRunner
from edgecnn.deploy.runtime import Runtime
from edgecnn.deploy.tflite import read_tflite, to_bytes
from edgecnn.deploy.tflite.metadata import OP_NAMES
from edgecnn.model.checkpoint import load_checkpoint
from edgecnn.quantize.ptq import quantize_model

pytestmark = pytest.mark.slow

TF_PYTHON_ENV = "EDGECNN_TF_PYTHON"
SCRIPT = Path(__file__).with_name("tf_convert_lenet.py")
CALIB_IMAGES = 500
MAX_ACCURACY_DROP = 0.005  # 0.5 percentage points below float
# What TF 2.20 emits for the Keras LeNet-5: Flatten on a dynamic batch is the
# SHAPE -> STRIDED_SLICE -> PACK chain computing RESHAPE's [batch, 400].
CONVERTER_OPS = ["CONV_2D", "MAX_POOL_2D", "CONV_2D", "MAX_POOL_2D", "SHAPE", "STRIDED_SLICE", "PACK", "RESHAPE",
                 "FULLY_CONNECTED", "FULLY_CONNECTED", "FULLY_CONNECTED"]  # fmt: skip
FOLDED_OPS = ["CONV_2D", "MAX_POOL_2D", "CONV_2D", "MAX_POOL_2D", "RESHAPE",
              "FULLY_CONNECTED", "FULLY_CONNECTED", "FULLY_CONNECTED"]  # fmt: skip
WEIGHTED_LAYERS = ["conv1", "conv2", "fc1", "fc2", "fc3"]  # in graph order, as the float model names them


@pytest.fixture(scope="session")
def tf_python() -> str:
    """The TensorFlow venv's python; skip locally without one, fail in CI."""
    path = os.environ.get(TF_PYTHON_ENV)
    if not path:
        reason = (f"${TF_PYTHON_ENV} is not set: point it at a python with tensorflow-cpu installed "
                  f"(python3.11 -m venv venv-tf && venv-tf/bin/pip install tensorflow-cpu==2.20.0)")
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must provide it (.ci/run does)")
        pytest.skip(reason)
    if not os.access(path, os.X_OK):
        pytest.fail(f"${TF_PYTHON_ENV}={path} is not an executable python")
    return path


@dataclass
class ConverterRun:
    data: bytes  # the converter's .tflite
    tensorflow: str  # its version
    calib: np.ndarray  # float (N, 32, 32, 1), what both quantizers calibrated on
    keras_logits: np.ndarray  # the Keras float model on `calib`


def _shared_dir(tmp_path_factory) -> Path:
    # Shared by all xdist workers, so TensorFlow runs once per session.
    base = tmp_path_factory.getbasetemp()
    d = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "edgecnn-tf-converter"
    d.mkdir(exist_ok=True)
    return d


@pytest.fixture(scope="session")
def converted(tf_python, tmp_path_factory, lenet5_path, mnist_root) -> ConverterRun:
    # tf_python comes first: without TensorFlow, skip before lenet5_path trains a model.
    d = _shared_dir(tmp_path_factory)
    stem = f"{Path(lenet5_path).stem}-n{CALIB_IMAGES}"
    calib_path, logits_path = d / f"{stem}-calib.npy", d / f"{stem}-keras-logits.npy"
    out, info_path = d / f"{stem}.tflite", d / f"{stem}.json"
    with open(d / f"{stem}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not info_path.exists():
            images, _ = load_split("mnist", "train", mnist_root)
            np.save(calib_path, lenet_input(images[:CALIB_IMAGES]))
            # A PYTHONPATH meant for edgecnn's venv would leak its numpy into TensorFlow's.
            env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
            p = subprocess.run(
                [tf_python, str(SCRIPT), "--weights", str(lenet5_path), "--calib", str(calib_path), "--out", str(out),
                 "--float-logits", str(logits_path)],
                capture_output=True, text=True, env=env, timeout=900,
            )  # fmt: skip
            assert p.returncode == 0, f"{SCRIPT.name} failed (exit {p.returncode}):\n{p.stderr[-4000:]}"
            info_path.write_text(p.stdout.strip().splitlines()[-1])  # written last: marks a complete run
    info = json.loads(info_path.read_text())
    assert info["bytes"] == out.stat().st_size
    return ConverterRun(out.read_bytes(), info["tensorflow"], np.load(calib_path), np.load(logits_path))


@pytest.fixture(scope="module")
def float_model(lenet5_path):
    return load_checkpoint(lenet5_path)


@pytest.fixture(scope="module")
def test_set(mnist_test):
    images, labels = mnist_test
    return lenet_input_int8(images), labels


@pytest.fixture(scope="module")
def litert_ref_outputs(converted, test_set):
    """The judge: LiteRT's reference kernels on the converter's own file."""
    return LiteRTRunner(converted.data, "ref").run(test_set[0])


def converter_op_codes(data: bytes) -> list[tuple[str, int]]:
    """(builtin name, version) of each op in the file's first subgraph, in order."""
    m = tflite.Model.GetRootAs(data, 0)
    sg = m.Subgraphs(0)
    codes = []
    for i in range(sg.OperatorsLength()):
        code = m.OperatorCodes(sg.Operators(i).OpcodeIndex())
        codes.append((OP_NAMES[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())], code.Version()))
    return codes


def test_converter_emits_lenet_ops_and_the_flatten_shape_chain(converted, record_property):
    codes = converter_op_codes(converted.data)
    versions = {name: version for name, version in codes}
    record_property("tensorflow", converted.tensorflow)
    record_property("converter_op_versions", json.dumps(versions, sort_keys=True))
    print(f"\nTF {converted.tensorflow} converter ops (name: version): {versions}")
    assert [name for name, _ in codes] == CONVERTER_OPS


def test_keras_twin_carries_the_edgecnn_weights(converted, float_model):
    # Guards the script's layout changes (OHWI -> HWIO, [out, in] -> [in, out]):
    # a wrong transpose would still convert, into a different model.
    want = float_model.predict(converted.calib)
    np.testing.assert_allclose(converted.keras_logits, want, rtol=1e-4, atol=1e-3 * np.abs(want).max())


def test_reader_folds_the_converter_flatten(converted, float_model):
    graph = read_tflite(converted.data)
    assert [op.kind for op in graph.ops] == FOLDED_OPS
    assert graph.ops[4].options == {"new_shape": [-1, 400]}
    # The converter picks the int8 input edgecnn fixes: 1/255, -128 (pixel - 128).
    assert np.float32(graph.input.scale[0]) == np.float32(1 / 255) and graph.input.zero_point[0] == -128
    # Each filter read back is the float weight to within half a quantization step.
    weighted = [op for op in graph.ops if op.kind in ("CONV_2D", "FULLY_CONNECTED")]
    params = dict(float_model.named_params())
    for name, op in zip(WEIGHTED_LAYERS, weighted):
        w = graph.tensors[op.inputs[1]]
        scale = w.scale.astype(np.float64).reshape((-1,) + (1,) * (w.data.ndim - 1))
        err = np.abs(w.data * scale - params[f"{name}/w"])
        assert np.all(err <= scale / 2 * (1 + 1e-5)), f"{name}: max error {err.max()} vs scale {scale.max()}"


def test_runtime_matches_litert_reference_on_all_mnist_test_images(converted, test_set, litert_ref_outputs):
    got = Runtime(read_tflite(converted.data)).run(test_set[0])
    want = litert_ref_outputs
    assert got.dtype == np.int8 and got.shape == want.shape == (len(test_set[0]), 10)
    bad = np.argwhere(got != want)
    assert bad.size == 0, (f"{len(bad)} of {want.size} outputs differ; first at image {bad[0][0]}, class "
                           f"{bad[0][1]}: edgecnn {got[tuple(bad[0])]}, LiteRT {want[tuple(bad[0])]}")  # fmt: skip


def test_converter_int8_accuracy_is_close_to_float(converted, float_model, mnist_test, litert_ref_outputs,
                                                   record_property):  # fmt: skip
    images, labels = mnist_test
    float_accuracy = float(np.mean(float_model.predict(lenet_input(images)).argmax(1) == labels))
    int8_accuracy = float(np.mean(litert_ref_outputs.argmax(1) == labels))
    record_property("float_accuracy", float_accuracy)
    record_property("converter_int8_accuracy", int8_accuracy)
    print(f"\nfloat accuracy {float_accuracy:.4f}, converter int8 accuracy {int8_accuracy:.4f}")
    assert int8_accuracy >= float_accuracy - MAX_ACCURACY_DROP


def test_edgecnn_file_is_no_larger_than_the_converters(converted, float_model, record_property):
    ours = to_bytes(quantize_model(float_model, converted.calib, progress=False).graph)
    record_property("converter_bytes", len(converted.data))
    record_property("edgecnn_bytes", len(ours))
    print(f"\n.tflite bytes: TF {converted.tensorflow} converter {len(converted.data)}, edgecnn {len(ours)}")
    assert len(ours) <= len(converted.data)
