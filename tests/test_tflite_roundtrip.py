"""The .tflite writer: field-for-field round trips, and a file layout LiteRT
tooling recognises (op versions, signature, metadata, alignment, size)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tflite
from hypothesis import given, settings
from tflite_models import LENET5_PARAMS, GraphBuilder, assert_graphs_equal, graphs, lenet5

from edgecnn.int8.graph import Int8Graph, Op, Tensor
from edgecnn.deploy.tflite import read_tflite, to_bytes, write_tflite
from edgecnn.errors import ModelError

# TF 2.x converter output for the same LeNet-5 (full int8, int8 input/output).
TF_CONVERTER_LENET5_BYTES = 73_232

META = {
    "labels": [str(d) for d in range(10)],
    "preprocessing": {"pad": 2, "scale": 1 / 255, "zero_point": -128, "layout": "NHWC"},
}


def _model(data: bytes):
    return tflite.Model.GetRootAs(data, 0)


@settings(max_examples=40, deadline=None)
@given(graphs())
def test_round_trip_keeps_every_field(graph):
    assert_graphs_equal(graph, read_tflite(to_bytes(graph)))


@settings(max_examples=15, deadline=None)
@given(graphs())
def test_writing_is_deterministic_and_idempotent(graph):
    data = to_bytes(graph)
    assert to_bytes(graph) == data
    assert to_bytes(read_tflite(data)) == data


def test_lenet5_is_smaller_than_the_tf_converter_file():
    graph = lenet5(metadata=META)
    params = sum(t.data.size for t in graph.tensors if t.data is not None)
    assert params == LENET5_PARAMS
    size = len(to_bytes(graph))
    weight_bytes = sum(t.data.nbytes for t in graph.tensors if t.data is not None)
    assert weight_bytes < size <= TF_CONVERTER_LENET5_BYTES


def test_write_tflite_is_atomic_and_returns_the_size(tmp_path):
    graph = lenet5(metadata=META)
    path = tmp_path / "sub" / "model.tflite"
    size = write_tflite(graph, path)
    assert path.stat().st_size == size
    assert [p.name for p in path.parent.iterdir()] == ["model.tflite"]  # no temp file left behind
    assert_graphs_equal(graph, read_tflite(path))
    # A failing write leaves the old file untouched.
    bad = lenet5()
    bad.metadata = {"x": object()}
    with pytest.raises(ModelError, match="metadata"):
        write_tflite(bad, path)
    assert path.read_bytes() == to_bytes(graph)
    assert [p.name for p in path.parent.iterdir()] == ["model.tflite"]


def test_metadata_round_trips_with_magic_and_version():
    graph = lenet5(metadata=META)
    data = to_bytes(graph)
    assert read_tflite(data).metadata == META
    m = _model(data)
    entries = {m.Metadata(i).Name().decode(): m.Metadata(i).Buffer() for i in range(m.MetadataLength())}
    assert set(entries) == {"edgecnn", "min_runtime_version"}
    envelope = json.loads(m.Buffers(entries["edgecnn"]).DataAsNumpy().tobytes())
    assert envelope["magic"] == "edgecnn-tflite-metadata" and envelope["format_version"] == 1
    assert envelope["writer"].startswith("edgecnn ")
    assert envelope["metadata"] == META
    # Converter layout: 16 bytes, zero-padded; LeNet's newest op version needs 1.14.
    runtime = m.Buffers(entries["min_runtime_version"]).DataAsNumpy().tobytes()
    assert runtime == b"1.14.0".ljust(16, b"\0")
    assert m.Description().decode().startswith("edgecnn ")


def test_file_layout_matches_the_converter_conventions():
    data = to_bytes(lenet5())
    assert data[4:8] == b"TFL3"
    m = _model(data)
    assert m.Version() == 3 and m.SubgraphsLength() == 1
    # Buffer 0 is the empty sentinel; activations point at it.
    assert m.Buffers(0).DataLength() == 0
    sg = m.Subgraphs(0)
    for i in range(sg.TensorsLength()):
        t = sg.Tensors(i)
        is_const = m.Buffers(t.Buffer()).DataLength() > 0
        assert is_const or t.Buffer() == 0
        if not is_const:
            assert t.ShapeSignatureAsNumpy()[0] == -1  # resizable batch
    # Constants are 16-byte aligned and never duplicated.
    seen = set()
    for i in range(1, m.BuffersLength()):
        buf = m.Buffers(i)
        if buf.DataLength():
            start = buf._tab.Vector(4)
            assert start % 16 == 0
            raw = buf.DataAsNumpy().tobytes()
            assert raw not in seen
            seen.add(raw)


def test_operator_codes_and_versions():
    g = GraphBuilder(np.random.default_rng(0), (1, 9, 9, 2))
    g.conv2d(4, 3, 3, act="RELU").depthwise(2, 3, 3, dilation=(2, 2))
    g.pool("AVERAGE_POOL_2D").pool("MAX_POOL_2D", (1, 1))
    g.logistic().tanh().flatten().fully_connected(5).softmax()
    graph = g.build()
    m = _model(to_bytes(graph))
    codes = {}
    for i in range(m.OperatorCodesLength()):
        c = m.OperatorCodes(i)
        assert c.DeprecatedBuiltinCode() == min(c.BuiltinCode(), 127)
        name = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}[c.BuiltinCode()]
        codes[name] = c.Version()
    assert codes == {
        "CONV_2D": 3, "DEPTHWISE_CONV_2D": 3, "AVERAGE_POOL_2D": 2, "MAX_POOL_2D": 2, "LOGISTIC": 2,
        "TANH": 2, "RESHAPE": 1, "FULLY_CONNECTED": 4, "SOFTMAX": 2,
    }  # fmt: skip


def test_versions_for_grouped_conv_and_fc_variants():
    rng = np.random.default_rng(0)
    g = GraphBuilder(rng, (1, 4, 4, 4))
    g.conv2d(4, 1, 1)
    graph = g.build()
    conv = graph.ops[0]
    w = graph.tensors[conv.inputs[1]]
    # Two groups: the filter sees 2 of the 4 input channels.
    graph.tensors[conv.inputs[1]] = Tensor(w.name, (4, 1, 1, 2), "int8", w.scale, w.zero_point, 0, w.data[..., :2])
    g2 = GraphBuilder(rng, (1, 6))
    g2.fully_connected(3)
    fc = g2.build()
    fc.ops[0].options["keep_num_dims"] = True
    for built, name, version in ((graph, "CONV_2D", 6), (fc, "FULLY_CONNECTED", 5)):
        m = _model(to_bytes(built))
        assert m.OperatorCodes(0).Version() == version, name
    assert read_tflite(to_bytes(fc)).ops[0].options["keep_num_dims"] is True
    fc.ops[0].inputs = fc.ops[0].inputs[:2]  # no bias slot at all
    fc.ops[0].options["keep_num_dims"] = False
    assert _model(to_bytes(fc)).OperatorCodes(0).Version() == 6


def test_per_channel_quantized_dimensions_are_written():
    g = GraphBuilder(np.random.default_rng(0), (1, 6, 6, 2))
    g.conv2d(3, 3, 3).depthwise(2, 3, 3)
    graph = g.build()
    sg = _model(to_bytes(graph)).Subgraphs(0)
    conv_w = sg.Tensors(graph.ops[0].inputs[1]).Quantization()
    dw_w = sg.Tensors(graph.ops[1].inputs[1]).Quantization()
    assert conv_w.QuantizedDimension() == 0 and conv_w.ScaleLength() == 3
    assert dw_w.QuantizedDimension() == 3 and dw_w.ScaleLength() == 6
    bias = sg.Tensors(graph.ops[0].inputs[2])
    assert bias.Type() == tflite.TensorType.INT32 and bias.Quantization().ScaleLength() == 3


def test_signature_def_serving_default():
    graph = lenet5()
    m = _model(to_bytes(graph))
    assert m.SignatureDefsLength() == 1
    sig = m.SignatureDefs(0)
    assert sig.SignatureKey() == b"serving_default" and sig.SubgraphIndex() == 0
    assert sig.Inputs(0).Name().decode() == graph.input.name and sig.Inputs(0).TensorIndex() == graph.inputs[0]
    assert sig.Outputs(0).Name().decode() == graph.output.name and sig.Outputs(0).TensorIndex() == graph.outputs[0]


def test_writer_rejects_bad_graphs():
    graph = lenet5()
    graph.tensors[1] = Tensor("w", (6, 5, 5, 1), "int8", [0.1], [0], 0, np.zeros(10, np.int8))
    with pytest.raises(ModelError, match="150"):
        to_bytes(graph)
    graph = lenet5()
    del graph.ops[0].options["padding"]
    with pytest.raises(ModelError, match="op 0 .*padding"):
        to_bytes(graph)
    t = Tensor("x", (1, 4), "int8", [0.1], [0])
    g = Int8Graph([t, Tensor("y", (1, 4), "int8", [0.1], [0])], [Op("CONV_2D", [0], [1], {})], [0], [1])
    with pytest.raises(ModelError, match="CONV_2D"):
        to_bytes(g)
    g.ops[0] = Op("ADD", [0], [1], {})
    with pytest.raises(ModelError, match="ADD"):
        to_bytes(g)


@pytest.mark.parametrize("inputs", [lambda ins: [ins[0], ins[1], -1], lambda ins: ins[:2]])
def test_writer_refuses_depthwise_without_bias(inputs):
    # LiteRT 2.3.0: a -1 bias fails to prepare; no bias slot segfaults the
    # optimized and XNNPACK kernels (only BUILTIN_REF copes).
    graph = GraphBuilder(np.random.default_rng(0), (1, 5, 5, 2)).depthwise(1, 3, 3).build()
    graph.ops[0].inputs = inputs(graph.ops[0].inputs)
    with pytest.raises(ModelError, match="no bias|not a valid"):
        to_bytes(graph)


def test_unused_tensors_and_fc_without_bias_survive():
    g = GraphBuilder(np.random.default_rng(0), (1, 6))
    graph = g.fully_connected(3, bias=False, per_channel=False).build()
    graph.add_tensor(Tensor("spare", (2,), "int32", [], [], 0, np.array([7, -7], np.int32)))
    back = read_tflite(to_bytes(graph))
    assert_graphs_equal(graph, back)
    assert back.ops[0].inputs[2] == -1 and back.tensors[-1].scale.size == 0
