"""LiteRTRunner: every file edgecnn writes loads and runs in LiteRT under all
three op resolvers, at any batch size, and the wrapper fails cleanly."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from tflite_models import graphs, lenet5, random_input

from edgecnn.deploy.litert import LiteRTRunner, backend_version, load_interpreter_module
from edgecnn.deploy.tflite import to_bytes, write_tflite
from edgecnn.errors import BackendUnavailableError, ShapeError, TFLiteFormatError

RESOLVERS = ("ref", "builtin", "default")


@settings(max_examples=25, deadline=None)
@given(graphs())
def test_every_written_graph_runs_under_every_resolver(graph):
    data = to_bytes(graph)
    x = random_input(graph, 3, seed=7)
    out_shape = (3,) + graph.output.shape[1:]
    ref = None
    for resolver in RESOLVERS:
        runner = LiteRTRunner(data, resolver)
        y = runner.run(x)
        assert y.dtype == np.int8 and y.shape == out_shape, resolver
        if resolver == "ref":
            ref = y
            # Rows are independent: the resized batch equals one-by-one runs.
            rows = np.concatenate([runner.run(x[i : i + 1]) for i in range(3)])
            np.testing.assert_array_equal(rows, y)
    assert ref is not None


def test_signature_and_names(tmp_path):
    graph = lenet5()
    path = tmp_path / "m.tflite"
    write_tflite(graph, path)
    runner = LiteRTRunner(path, "ref")
    interp = runner.interpreter
    assert interp.get_signature_list() == {
        "serving_default": {"inputs": [graph.input.name], "outputs": [graph.output.name]}
    }
    x = random_input(graph, 2)
    by_signature = interp.get_signature_runner("serving_default")(**{graph.input.name: x})[graph.output.name]
    np.testing.assert_array_equal(by_signature, runner.run(x))
    details = interp.get_input_details()[0]
    assert list(details["shape_signature"]) == [-1, 32, 32, 1]
    assert details["quantization"] == (pytest.approx(1 / 255), -128)


def test_run_checks_dtype_and_shape():
    graph = lenet5()
    runner = LiteRTRunner(to_bytes(graph), "ref")
    assert runner.input_shape == (32, 32, 1)
    with pytest.raises(ShapeError, match="int8"):
        runner.run(np.zeros((1, 32, 32, 1), np.float32))
    with pytest.raises(ShapeError, match="shape"):
        runner.run(np.zeros((1, 28, 28, 1), np.int8))
    with pytest.raises(ShapeError, match="shape"):
        runner.run(np.zeros((0, 32, 32, 1), np.int8))
    with pytest.raises(ValueError, match="resolver"):
        LiteRTRunner(to_bytes(graph), "fast")


def test_bad_model_is_a_format_error(tmp_path):
    with pytest.raises(TFLiteFormatError, match="LiteRT cannot load"):
        LiteRTRunner(b"not a model at all", "ref")
    with pytest.raises(TFLiteFormatError, match="cannot read"):
        LiteRTRunner(tmp_path / "missing.tflite")


def test_missing_litert_is_backend_unavailable(monkeypatch):
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    monkeypatch.setitem(sys.modules, "tflite_runtime", None)
    monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", None)
    with pytest.raises(BackendUnavailableError, match="ai-edge-litert"):
        load_interpreter_module()
    with pytest.raises(BackendUnavailableError):
        LiteRTRunner(to_bytes(lenet5()))


def test_backend_version():
    assert backend_version().startswith("ai_edge_litert 2.")


def test_device_path_imports_no_heavy_modules(tmp_path):
    path = tmp_path / "m.tflite"
    write_tflite(lenet5(), path)
    code = f"""
import sys
import numpy as np
from edgecnn.deploy.tflite import read_tflite
from edgecnn.deploy.litert import LiteRTRunner
g = read_tflite({str(path)!r})
y = LiteRTRunner({str(path)!r}, "ref").run(np.zeros((2, 32, 32, 1), np.int8))
assert y.shape == (2, 10)
heavy = [m for m in ("numba", "onnx", "onnxruntime", "edgecnn.train", "edgecnn.quantize",
                   "edgecnn.deploy.runtime.interpreter") if m in sys.modules]
print(heavy)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
