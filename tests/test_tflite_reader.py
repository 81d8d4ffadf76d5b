"""The .tflite reader on bad input: every failure is an edgecnn error that
names the problem, never a struct/IndexError traceback."""

from __future__ import annotations

import numpy as np
import pytest
import tflite
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tflite_models import GraphBuilder, lenet5, raw_model, raw_options, raw_tensor

from edgecnn.deploy.runtime.prepare import prepare_graph
from edgecnn.deploy.tflite import metadata as md
from edgecnn.deploy.tflite import read_tflite, to_bytes
from edgecnn.errors import EdgecnnError, TFLiteFormatError, UnsupportedOpError

F32, I8, I32, U8 = (tflite.TensorType.FLOAT32, tflite.TensorType.INT8, tflite.TensorType.INT32,
                    tflite.TensorType.UINT8)  # fmt: skip


def small_file() -> bytes:
    g = GraphBuilder(np.random.default_rng(0), (1, 5, 5, 1))
    g.conv2d(2, 3, 3).pool().flatten().fully_connected(3).softmax()
    return to_bytes(g.build({"labels": ["a", "b", "c"]}))


SMALL = small_file()


def test_every_truncation_is_a_format_error():
    for cut in range(len(SMALL)):
        with pytest.raises(TFLiteFormatError):
            read_tflite(SMALL[:cut])


def test_short_and_foreign_files():
    with pytest.raises(TFLiteFormatError, match="too short"):
        read_tflite(b"TFL3")
    with pytest.raises(TFLiteFormatError, match="file identifier"):
        read_tflite(SMALL[:4] + b"TFL2" + SMALL[8:])
    with pytest.raises(TFLiteFormatError, match="file identifier"):
        read_tflite(b"\x89PNG\r\n\x1a\n" + bytes(100))


def test_bad_root_offset():
    with pytest.raises(TFLiteFormatError, match="root table"):
        read_tflite(b"\xff\xff\xff\x7f" + SMALL[4:])


@settings(max_examples=40, deadline=None)
@given(st.binary(min_size=0, max_size=300))
def test_random_bytes(data):
    with pytest.raises(TFLiteFormatError):
        read_tflite(data)
    # Even with the right identifier, random content is refused cleanly.
    with pytest.raises(EdgecnnError):
        read_tflite(data[:4].ljust(4, b"\0") + b"TFL3" + data[8:])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(8, len(SMALL) - 1), st.integers(0, 255)), min_size=1, max_size=4))
def test_corrupted_bytes_never_escape_as_low_level_errors(edits):
    data = bytearray(SMALL)
    for pos, value in edits:
        data[pos] = value
    try:
        graph = read_tflite(bytes(data))
    except EdgecnnError:
        return
    assert graph.validate() is graph


def test_missing_file(tmp_path):
    with pytest.raises(TFLiteFormatError, match="cannot read"):
        read_tflite(tmp_path / "nope.tflite")


def _tensor(name, shape, ttype, scale=None, zp=None, data=None):
    return {"name": name, "shape": shape, "type": ttype, "scale": scale, "zero_point": zp, "data": data}


def _float_conv_model():
    w = np.ones((2, 3, 3, 1), "<f4").tobytes()
    b = np.zeros(2, "<f4").tobytes()
    tensors = [_tensor("x", (1, 5, 5, 1), F32), _tensor("w", (2, 3, 3, 1), F32, data=w),
               _tensor("b", (2,), F32, data=b), _tensor("y", (1, 3, 3, 2), F32)]  # fmt: skip
    g = GraphBuilder(np.random.default_rng(0), (1, 5, 5, 1)).conv2d(2, 3, 3).build()
    ops = [{"op": "CONV_2D", "inputs": [0, 1, 2], "outputs": [3], "options": raw_options(g.ops[0])}]
    return raw_model(tensors, ops, [0], [3])


def test_float_model_is_refused():
    with pytest.raises(TFLiteFormatError, match="FLOAT32 constant: a float or hybrid model"):
        read_tflite(_float_conv_model())


def test_float_io_around_an_int8_model_reads():
    # The converter's default full-int8 output: QUANTIZE in, DEQUANTIZE out.
    graph = GraphBuilder(np.random.default_rng(0), (1, 5, 5, 1)).conv2d(2, 3, 3).build()
    tensors = [raw_tensor(t) for t in graph.tensors]
    tensors += [_tensor("x_float", (1, 5, 5, 1), F32), _tensor("y_float", (1, 3, 3, 2), F32)]
    fx, fy = len(tensors) - 2, len(tensors) - 1
    ops = [
        {"op": "QUANTIZE", "inputs": [fx], "outputs": [graph.inputs[0]]},
        {"op": "CONV_2D", "version": 3, "inputs": graph.ops[0].inputs, "outputs": graph.ops[0].outputs,
         "options": raw_options(graph.ops[0])},
        {"op": "DEQUANTIZE", "version": 2, "inputs": graph.outputs, "outputs": [fy]},
    ]  # fmt: skip
    g = read_tflite(raw_model(tensors, ops, [fx], [fy]))
    assert [op.kind for op in g.ops] == ["QUANTIZE", "CONV_2D", "DEQUANTIZE"]
    assert [g.tensors[t].dtype for t in g.inputs + g.outputs] == ["float32", "float32"]
    # int8 in, float out
    g = read_tflite(raw_model(tensors, ops[1:], graph.inputs, [fy]))
    assert [g.tensors[t].dtype for t in g.inputs + g.outputs] == ["int8", "float32"]


def test_float_weights_inside_int8_io_are_refused():
    w = np.ones((2, 4), "<f4").tobytes()
    tensors = [_tensor("x", (1, 4), I8, [0.1], [0]), _tensor("w", (2, 4), F32, data=w),
               _tensor("y", (1, 2), I8, [0.1], [0])]  # fmt: skip
    ops = [{"op": "FULLY_CONNECTED", "inputs": [0, 1], "outputs": [2]}]
    with pytest.raises(TFLiteFormatError, match="float or hybrid model"):
        read_tflite(raw_model(tensors, ops, [0], [2]))


def test_uint8_model_is_refused():
    tensors = [_tensor("x", (1, 4), U8, [0.1], [128]), _tensor("y", (1, 4), U8, [1 / 256], [0])]
    ops = [{"op": "LOGISTIC", "inputs": [0], "outputs": [1]}]
    graph = read_tflite(raw_model(tensors, ops, [0], [1]))  # uint8 edges are read; int8 kernels refuse them
    with pytest.raises(UnsupportedOpError, match="input x is uint8, not int8"):
        prepare_graph(graph)


def test_unsupported_operator_is_named():
    tensors = [_tensor("a", (1, 4), I8, [0.1], [0]), _tensor("b", (1, 4), I8, [0.1], [0]),
               _tensor("c", (1, 4), I8, [0.2], [0]), _tensor("d", (1, 4), I8, [1 / 256], [-128])]  # fmt: skip
    ops = [{"op": "LOGISTIC", "version": 2, "inputs": [0], "outputs": [3]},
           {"op": "SQUARED_DIFFERENCE", "version": 2, "inputs": [0, 1], "outputs": [2]}]  # fmt: skip
    with pytest.raises(UnsupportedOpError, match=r"unsupported operator SQUARED_DIFFERENCE \(op 1\)"):
        read_tflite(raw_model(tensors, ops, [0, 1], [2, 3]))


def test_unsupported_fused_activation_is_named():
    graph = GraphBuilder(np.random.default_rng(0), (1, 5, 5, 1)).conv2d(2, 3, 3).build()
    opts_type, build = raw_options(graph.ops[0])

    def tanh_conv(b):
        tflite.Conv2DOptionsStart(b)
        tflite.Conv2DOptionsAddStrideH(b, 1)
        tflite.Conv2DOptionsAddStrideW(b, 1)
        tflite.Conv2DOptionsAddFusedActivationFunction(b, tflite.ActivationFunctionType.TANH)
        return tflite.Conv2DOptionsEnd(b)

    ops = [{"op": "CONV_2D", "version": 3, "inputs": graph.ops[0].inputs, "outputs": graph.ops[0].outputs,
            "options": (opts_type, tanh_conv)}]  # fmt: skip
    data = raw_model([raw_tensor(t) for t in graph.tensors], ops, graph.inputs, graph.outputs)
    with pytest.raises(UnsupportedOpError, match="CONV_2D.*fused activation 4"):
        read_tflite(data)


def test_newer_metadata_format_is_refused(monkeypatch):
    graph = lenet5(metadata={"labels": ["x"]})
    monkeypatch.setattr(md, "METADATA_FORMAT_VERSION", 2)
    data = to_bytes(graph)
    monkeypatch.setattr(md, "METADATA_FORMAT_VERSION", 1)
    with pytest.raises(TFLiteFormatError, match="metadata format 2 is newer"):
        read_tflite(data)


def test_files_without_edgecnn_metadata_read_as_empty():
    graph = GraphBuilder(np.random.default_rng(0), (1, 4)).fully_connected(3).build()
    ops = [{"op": "FULLY_CONNECTED", "version": 4, "inputs": graph.ops[0].inputs, "outputs": graph.ops[0].outputs,
            "options": raw_options(graph.ops[0])}]  # fmt: skip
    back = read_tflite(raw_model([raw_tensor(t) for t in graph.tensors], ops, graph.inputs, graph.outputs))
    assert back.metadata == {}
    assert back.ops[0].options == {"fused_activation_function": "NONE", "keep_num_dims": False}


@pytest.mark.parametrize("metadata,message", [
    ({"labels": 5}, "'labels' must be a list of strings"),
    ({"labels": ["a", 3]}, "'labels' must be a list of strings"),
    ({"preprocessing": "x"}, "'preprocessing' must be a JSON object"),
    ({"preprocessing": {"pad": -1}}, "'pad' must be an int"),
    ({"preprocessing": {"std": [0.0]}}, "'std' must be positive"),
])
def test_metadata_with_wrong_types_is_refused(metadata, message):
    from edgecnn.deploy.tflite.metadata import decode_edgecnn_metadata, encode_edgecnn_metadata

    with pytest.raises(TFLiteFormatError, match=message):
        decode_edgecnn_metadata(encode_edgecnn_metadata(metadata, "0"), "m.tflite")


def test_deeply_nested_metadata_is_refused():
    from edgecnn.deploy.tflite.metadata import decode_edgecnn_metadata

    raw = b'{"magic": "edgecnn-tflite-metadata", "format_version": 1, "metadata": {"x": ' + b"[" * 100000 + b"]" * 100000 + b"}}"
    with pytest.raises(TFLiteFormatError, match="nested too deeply"):
        decode_edgecnn_metadata(raw, "m.tflite")
