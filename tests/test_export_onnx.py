"""The ONNX exporter: checker-valid models that onnxruntime runs bit-exactly like the Numba runtime."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper
from tflite_models import GraphBuilder, graphs, lenet5, random_input

import edgecnn
from edgecnn.deploy.export.onnx import OPSET, to_onnx, write_onnx
from edgecnn.deploy.export.onnx_builder import OnnxGraphBuilder
from edgecnn.deploy.runtime import Runtime
from edgecnn.deploy.runtime.fixedpoint import multiply_by_quantized_multiplier
from edgecnn.deploy.runtime.pooling import divide_rounding_half_away
from edgecnn.errors import UnsupportedOpError
from edgecnn.int8.rules import round_half_away

from conftest import assert_clean_error, run_cli


def session(model: onnx.ModelProto) -> ort.InferenceSession:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def run_onnx(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    s = session(model)
    return s.run(None, {s.get_inputs()[0].name: x})[0]


def assert_exact(graph, x, fc_rescale="float"):
    model = to_onnx(graph, fc_rescale)
    onnx.checker.check_model(model, full_check=True)
    ours, ref = run_onnx(model, x), Runtime(graph, fc_rescale=fc_rescale).run(x)
    assert ours.dtype == ref.dtype == np.int8 and ours.shape == ref.shape
    assert np.array_equal(ours, ref), f"{int(np.sum(ours != ref))} of {ours.size} outputs differ"


# ---------------------------------------------------------------- the arithmetic primitives, one at a time


def _elementwise(build, inputs: dict[str, tuple[int, np.ndarray]], out_type=TensorProto.INT64) -> np.ndarray:
    """Run `build(builder, *input names) -> output name` on 1-D arrays in onnxruntime."""
    b = OnnxGraphBuilder()
    out = build(b, *inputs)
    elem = {TensorProto.INT64: np.int64, TensorProto.DOUBLE: np.float64}
    graph_inputs = [helper.make_tensor_value_info(n, t, ["n"]) for n, (t, _) in inputs.items()]
    graph = helper.make_graph(b.nodes, "t", graph_inputs, [helper.make_tensor_value_info(out, out_type, ["n"])],
                              b.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    return session(model).run(None, {n: a.astype(elem[t]) for n, (t, a) in inputs.items()})[0]


def _int32_samples(rng, n=4000):
    edges = [0, 1, -1, 2**31 - 1, -(2**31), 2**30, -(2**30), 2**30 + 1, -(2**30) - 1, 250, -250, 12345, -12345]
    return np.concatenate([edges, rng.integers(-(2**31), 2**31, n), rng.integers(-3000, 3000, n)]).astype(np.int64)


@pytest.mark.parametrize("shift", [-31, -20, -8, -1, 0, 1, 3])
def test_multiply_by_quantized_multiplier_matches_fixedpoint(shift, rng):
    x = _int32_samples(rng)
    for multiplier in (1099511562, 2**30, 2**31 - 1, 1518500250, 0):
        got = _elementwise(lambda b, a: b.multiply_by_quantized_multiplier(a, [multiplier], [shift], (1,)),
                           {"a": (TensorProto.INT64, x)})
        want = [multiply_by_quantized_multiplier.py_func(int(v), multiplier, shift) for v in x]
        assert np.array_equal(got, want), (multiplier, shift)


def test_round_half_away_double_matches_c_round(rng):
    ties = np.arange(-20, 21) + 0.5
    near = np.array([0.49999999999999994, -0.49999999999999994, 2.5000000000000004, 1e15 + 0.5, -0.0, 0.0])
    v = np.concatenate([ties, near, rng.normal(0, 300, 2000), rng.normal(0, 1, 2000)])
    got = _elementwise(lambda b, a: b.round_half_away_double(a), {"a": (TensorProto.DOUBLE, v)}, TensorProto.DOUBLE)
    assert np.array_equal(got, round_half_away(v))


@pytest.mark.parametrize("divisor", [1, 2, 3, 4, 9, 25, 2**12])
def test_divide_round_half_away_matches_average_pool(divisor, rng):
    x = np.concatenate([np.arange(-60, 61), rng.integers(-(2**31), 2**31, 500)]).astype(np.int64)
    def build(b, a):
        return b.divide_round_half_away(a, b.const(divisor, np.int64), b.const(divisor // 2, np.int64))

    got = _elementwise(build, {"a": (TensorProto.INT64, x)})
    assert np.array_equal(got, [divide_rounding_half_away.py_func(int(v), divisor) for v in x])


def test_floor_div_and_wrap(rng):
    x = np.concatenate([np.arange(-9, 10), rng.integers(-(2**62), 2**62, 500)]).astype(np.int64)
    got = _elementwise(lambda b, a: b.floor_div(a, b.const(2**31, np.int64)), {"a": (TensorProto.INT64, x)})
    assert np.array_equal(got, x // 2**31)
    y = rng.integers(-(2**40), 2**40, 500).astype(np.int64)
    got = _elementwise(lambda b, a: b.wrap_int32(a), {"a": (TensorProto.INT64, y)})
    assert np.array_equal(got, y.astype(np.int32))


# ---------------------------------------------------------------- whole graphs


@settings(max_examples=150, deadline=None)
@given(graph=graphs(max_layers=3), fc_rescale=st.sampled_from(["float", "float", "integer"]),
       seed=st.integers(0, 2**16))
def test_random_graphs_bit_exact(graph, fc_rescale, seed):
    assert_exact(graph, random_input(graph, 9, seed), fc_rescale)


@pytest.mark.parametrize("per_channel", [True, False])
def test_every_op_in_one_chain(per_channel):
    """Odd sizes, strides, dilations, SAME padding with an odd pixel, every fused activation, depth multiplier."""
    g = GraphBuilder(np.random.default_rng(7), (1, 11, 9, 3), 0.1, 5)
    g.conv2d(4, 3, 2, (2, 1), "SAME", (1, 2), "RELU6", per_channel)
    g.depthwise(2, 3, 3, (1, 2), "SAME", (2, 1), "RELU", bias=False)
    g.pool("AVERAGE_POOL_2D", (3, 3), (2, 2), "SAME", "RELU_N1_TO_1").tanh()
    g.pool("MAX_POOL_2D", (2, 3), (1, 1), "SAME", "RELU").logistic()
    g.flatten().fully_connected(5, "NONE", per_channel, bias=False).tanh()
    graph = g.build()
    graph.ops[1].inputs = graph.ops[1].inputs[:2]  # a depthwise conv without bias has two inputs
    assert_exact(graph, random_input(graph, 33, 1))


def test_lenet5_random_weights_and_metadata(tmp_path):
    graph = lenet5(metadata={"labels": list("0123456789"), "preprocessing": "pixel/255"})
    path = write_onnx(graph, tmp_path / "m.onnx")
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    props = {p.key: p.value for p in model.metadata_props}
    assert props["edgecnn_version"] == edgecnn.__version__
    assert json.loads(props["labels"]) == list("0123456789")
    assert "exact" in props["exactness"] and "exact" in model.doc_string
    assert (float(props["input_scale"]), int(props["input_zero_point"])) == (float(graph.input.scale[0]), -128)
    assert model.opset_import[0].version == OPSET
    [x] = model.graph.input
    assert x.type.tensor_type.elem_type == TensorProto.INT8
    assert [d.dim_value or d.dim_param for d in x.type.tensor_type.shape.dim] == ["batch", 32, 32, 1]
    assert not [n for n in model.graph.node if n.op_type.startswith("QLinear")]
    data = random_input(graph, 200, 3)
    assert np.array_equal(run_onnx(model, data), Runtime(graph).run(data))
    assert not [p for p in tmp_path.iterdir() if p.name != "m.onnx"]  # atomic: no temp files left


@pytest.mark.parametrize("beta", [1.0, 0.25, 4.0])
@pytest.mark.parametrize("depth", [1, 2, 10, 511, 1000, 4001])
def test_softmax_rows_bit_exact(depth, beta, rng):
    """Flat rows, near-ties, saturated rows, and rows of ImageNet's 1,000 classes and longer."""
    long = depth >= 512  # a flat row's Q12.19 sum would reach 2^28, where TFLite aborts (tested below)
    g = GraphBuilder(np.random.default_rng(depth), (1, 2, 2, depth), 0.5 if long else 0.05, 3)
    g.softmax(beta)
    graph = g.build()
    x = random_input(graph, 40, depth)
    if not long:
        x[0], x[1], x[2] = 127, -128, np.arange(x[2].size).reshape(x[2].shape) % 7 - 128
    else:  # logits spread like a trained head's, one clear winner per row in x[0]
        x[0, ..., 7] = 127
    assert_exact(graph, x)


def test_softmax_row_that_tflite_aborts_on_fails_the_run():
    """512 equal maxima make the Q12.19 sum 2^28: TFLite's final shift would be 32, and it aborts.
    The runtime raises, and onnxruntime refuses the run rather than give an output."""
    g = GraphBuilder(np.random.default_rng(0), (1, 1000), 0.1, 0)
    graph = g.softmax(1.0).build()
    model = to_onnx(graph)
    x = random_input(graph, 3, 1)
    assert np.array_equal(run_onnx(model, x), Runtime(graph).run(x))
    flat = np.zeros((1, 1000), np.int8)
    with pytest.raises(Exception) as raised:  # Numba wraps an error raised inside prange in a SystemError
        Runtime(graph).run(flat)
    assert "softmax: row too long" in str(raised.value) + str(raised.value.__cause__)
    with pytest.raises(Exception, match="out of (data )?bounds"):
        run_onnx(model, flat)


def test_unsupported_ops_are_refused_clearly():
    g = GraphBuilder(np.random.default_rng(0), (1, 6, 6, 1))
    g.conv2d(2, 3, 3).flatten().fully_connected(4)
    graph = g.build()
    graph.ops[1].kind = "SQUEEZE"
    with pytest.raises(UnsupportedOpError, match=r"op 1 \(SQUEEZE\): SQUEEZE is not supported by the ONNX"):
        to_onnx(graph)
    g = GraphBuilder(np.random.default_rng(0), (1, 1, 1, 8192))
    with pytest.raises(UnsupportedOpError, match="SOFTMAX.*8192"):
        to_onnx(g.softmax().build())


# ---------------------------------------------------------------- trained LeNets on all of MNIST test


@pytest.fixture(scope="module")
def mnist_int8(mnist_root):
    from edgecnn.data.datasets import lenet_input, lenet_input_int8, load_split

    train_images, _ = load_split("mnist", "train", mnist_root)
    test_images, _ = load_split("mnist", "test", mnist_root)
    return lenet_input(train_images[:500]), lenet_input_int8(test_images)


@pytest.fixture(scope="module")
def tflite_models(lenet5_path, classic_path, mnist_int8, tmp_path_factory):
    from edgecnn.deploy.tflite import to_bytes
    from edgecnn.model.checkpoint import load_checkpoint
    from edgecnn.quantize.ptq import quantize_model

    d = tmp_path_factory.mktemp("onnx-models")
    paths = {}
    for arch, ckpt in (("lenet5", lenet5_path), ("lenet5-classic", classic_path)):
        paths[arch] = d / f"{arch}.tflite"
        paths[arch].write_bytes(to_bytes(quantize_model(load_checkpoint(ckpt), mnist_int8[0], progress=False).graph))
    return paths


@pytest.mark.parametrize("arch", ["lenet5", "lenet5-classic"])
def test_trained_lenets_bit_exact_on_mnist(arch, tflite_models, mnist_int8):
    from edgecnn.deploy.tflite import read_tflite

    graph = read_tflite(tflite_models[arch].read_bytes())
    x = mnist_int8[1]
    ours, ref = run_onnx(to_onnx(graph), x), Runtime(graph).run(x)
    assert ours.shape == ref.shape == (10_000, 10) and ours.dtype == np.int8
    assert np.array_equal(ours, ref), f"{int(np.sum(ours != ref))} of {ours.size} outputs differ"


@pytest.mark.slow
def test_cli_eval_onnxruntime_matches_numba(tflite_models, mnist_root, tmp_path):
    tfl = tflite_models["lenet5-classic"]
    saved = {}
    for backend in ("numba", "onnxruntime"):
        saved[backend] = tmp_path / f"{backend}.npy"
        rc, out, err = run_cli("eval", tfl, "--data", mnist_root, "--backend", backend, "--limit", "300",
                               "--save-outputs", saved[backend], "--json")
        assert rc == 0, err
        assert json.loads(out)[0]["backend"] == backend
    onnx_path = tmp_path / "m.onnx"
    rc, _, err = run_cli("export", tfl, "--out", onnx_path)
    assert rc == 0, err
    saved["file"] = tmp_path / "file.npy"
    rc, out, err = run_cli("eval", onnx_path, "--data", mnist_root, "--limit", "300", "--save-outputs", saved["file"])
    assert rc == 0, err
    outputs = [np.load(p, allow_pickle=False) for p in saved.values()]
    assert outputs[0].shape == (300, 10) and outputs[0].dtype == np.int8
    assert all(np.array_equal(outputs[0], o) for o in outputs[1:])


def test_cli_unsupported_op_is_one_clean_line(tmp_path, mnist_root):
    from edgecnn.deploy.tflite import to_bytes

    g = GraphBuilder(np.random.default_rng(0), (1, 32, 32, 1))
    g.conv2d(8, 5, 5, padding="SAME").flatten().softmax()  # rows of 8192: beyond the exporter's softmax
    tfl = tmp_path / "softmax.tflite"
    tfl.write_bytes(to_bytes(g.build()))
    rc, _, err = run_cli("export", tfl, "--out", tmp_path / "s.onnx")
    assert_clean_error(rc, err, "SOFTMAX", "ONNX")
    assert not list(tmp_path.glob("*.onnx*"))
    rc, _, err = run_cli("eval", tfl, "--data", mnist_root, "--backend", "onnxruntime", "--limit", "5")
    assert_clean_error(rc, err, "SOFTMAX")
