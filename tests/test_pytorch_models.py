"""Float CNNs trained in PyTorch, exported with torch.onnx.export, quantized by `edgecnn quantize`.

PyTorch is never an edgecnn dependency: tests/torch_models.py runs in a
separate venv named by $EDGECNN_TORCH_PYTHON (.ci/run makes it; locally the
repo's .venv-torch is used when present), trains four small nets briefly on
an MNIST subset (seeded) and writes their ONNX files and float test logits.
For each net this checks, on all 10,000 MNIST test images:
- edgecnn's float import computes PyTorch's logits (so both float accuracies agree);
- the int8 `.tflite` is within 0.3 percentage points of the float accuracy;
- LiteRT's BUILTIN_REF kernels give exactly the edgecnn runtime's outputs;
- `eval`'s backend, reading the preprocessing from the `.tflite` metadata,
  reproduces the quantizer's int8 accuracy (the LeNet's mean/std included).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli

pytestmark = pytest.mark.slow

TORCH_PYTHON_ENV = "EDGECNN_TORCH_PYTHON"
SCRIPT = Path(__file__).with_name("torch_models.py")
REPO = Path(__file__).resolve().parents[1]
MODELS = ("resnet", "mobilenetv2", "concat", "lenet")
MAX_DROP = 0.003  # 0.3 percentage points
LITERT_IMAGES = 500  # BUILTIN_REF's reference kernels are slow; every element of these is compared


@pytest.fixture(scope="session")
def torch_python() -> str:
    """The PyTorch venv's python; skip locally without one, fail in CI."""
    path = os.environ.get(TORCH_PYTHON_ENV) or ""
    if not path and (REPO / ".venv-torch" / "bin" / "python").exists():
        path = str(REPO / ".venv-torch" / "bin" / "python")
    if not path:
        reason = (f"${TORCH_PYTHON_ENV} is not set: point it at a python with torch and onnx installed "
                  f"(python3.11 -m venv .venv-torch && .venv-torch/bin/pip install torch==2.13.0 onnx)")
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must provide it (.ci/run does)")
        pytest.skip(reason)
    if not os.access(path, os.X_OK):
        pytest.fail(f"${TORCH_PYTHON_ENV}={path} is not an executable python")
    return path


@pytest.fixture(scope="session")
def torch_models(tmp_path_factory, torch_python, mnist_root):
    """Train and export all four nets once per session: (folder, results)."""
    base = tmp_path_factory.getbasetemp()
    out = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "edgecnn-torch-models"
    lock = out.with_suffix(".lock")
    import fcntl

    with open(lock, "w") as fh:  # xdist workers share one run
        fcntl.flock(fh, fcntl.LOCK_EX)
        if not (out / "results.json").exists():
            p = subprocess.run([torch_python, str(SCRIPT), str(Path(mnist_root) / "mnist"), str(out)],
                               capture_output=True, text=True, timeout=1200)
            assert p.returncode == 0, p.stderr[-4000:]
    return out, json.loads((out / "results.json").read_text())


@pytest.fixture(scope="session")
def mnist_test_split(mnist_root):
    from edgecnn.data.datasets import load_split

    images, labels = load_split("mnist", "test", mnist_root)
    return images, labels.astype(np.int64)


@pytest.mark.parametrize("name", MODELS)
def test_pytorch_model_quantizes_within_0p3_points(name, torch_models, mnist_test_split, mnist_root, tmp_path):
    from edgecnn.deploy.backends import open_backend
    from edgecnn.deploy.litert import LiteRTRunner
    from edgecnn.deploy.runtime import Runtime
    from edgecnn.deploy.tflite.reader import read_tflite
    from edgecnn.int8.preprocessing import pixels_to_float
    from edgecnn.model.onnx_import import import_onnx

    folder, results = torch_models
    info = results[name]
    images, labels = mnist_test_split
    n = info["test"]
    assert n == len(labels) == 10000
    norm = (info["mean"], info["std"]) if info["mean"] else (None, None)

    # edgecnn's float import computes what PyTorch computed
    model = import_onnx(folder / f"{name}.onnx")
    assert model.input_shape == (28, 28, 1)  # the model's own size: no padding to 32
    logits = model.predict(pixels_to_float(images[..., None], *norm))
    torch_logits = np.load(folder / f"{name}.npy")
    np.testing.assert_allclose(logits, torch_logits, rtol=1e-4, atol=1e-4)
    float_acc = float(np.mean(logits.argmax(1) == labels))
    assert float_acc == pytest.approx(info["float_accuracy"], abs=2e-4) and float_acc > 0.8

    # edgecnn quantize, with the normalisation on the command line where the model was trained with one
    out = tmp_path / f"{name}.tflite"
    extra = ["--mean", *info["mean"], "--std", *info["std"]] if info["mean"] else []
    rc, stdout, err = run_cli("quantize", folder / f"{name}.onnx", "--data", mnist_root, *extra, "--out", out,
                              "--json", "--quiet")
    assert rc == 0, err
    result = json.loads(stdout)
    assert result["samples"] == n and result["float_accuracy"] == pytest.approx(float_acc, abs=1e-9)
    assert result["float_accuracy"] - result["int8_accuracy"] <= MAX_DROP, result

    graph = read_tflite(out)
    prep = graph.metadata["preprocessing"]
    if info["mean"]:
        assert prep["mean"] == info["mean"] and prep["std"] == info["std"]
        assert graph.input.scale[0] != np.float32(1 / 255)  # the qparams span the normalised range
    else:
        assert "mean" not in prep and graph.input.scale[0] == np.float32(1 / 255)

    # the device runner applies the metadata's preprocessing: the quantizer's int8 accuracy again
    backend = open_backend(out, "numba")
    x = backend.prepare(images)
    got = np.asarray(backend.run(x)).reshape(n, -1)
    assert float(np.mean(got.argmax(1) == labels)) == pytest.approx(result["int8_accuracy"], abs=1e-9)

    # LiteRT BUILTIN_REF == the edgecnn runtime, every output element
    ref = LiteRTRunner(out.read_bytes(), resolver="ref").run(x[:LITERT_IMAGES])
    mine = Runtime(graph).run(x[:LITERT_IMAGES])
    assert ref.dtype == mine.dtype == np.int8
    np.testing.assert_array_equal(ref, mine)
