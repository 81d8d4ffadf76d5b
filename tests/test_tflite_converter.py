"""Reading files shaped like the TF converter's: Keras Flatten's shape ops
(SHAPE -> STRIDED_SLICE -> PACK/CONCATENATION -> RESHAPE) fold into RESHAPE's
new_shape, and the folded graph computes what the original file computes."""

from __future__ import annotations

import numpy as np
import pytest
import tflite
from hypothesis import given, settings
from tflite_models import GraphBuilder, assert_graphs_equal, converter_style, graphs, lenet5, random_input, raw_model

from edgecnn.deploy.litert import LiteRTRunner
from edgecnn.deploy.tflite import read_tflite, to_bytes
from edgecnn.errors import TFLiteFormatError, UnsupportedOpError


def _kinds(data: bytes) -> list[str]:
    names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
    m = tflite.Model.GetRootAs(data, 0)
    sg = m.Subgraphs(0)
    return [names[m.OperatorCodes(sg.Operators(i).OpcodeIndex()).BuiltinCode()] for i in range(sg.OperatorsLength())]


@pytest.mark.parametrize("flatten", ["pack", "concat", "const"])
def test_lenet5_converter_file_folds_to_the_edgecnn_graph(flatten):
    graph = lenet5()
    data = converter_style(graph, flatten)
    if flatten == "pack":
        assert _kinds(data)[4:8] == ["SHAPE", "STRIDED_SLICE", "PACK", "RESHAPE"]
    folded = read_tflite(data)
    assert_graphs_equal(graph, folded)
    assert folded.ops[4].options == {"new_shape": [-1, 400]}


@pytest.mark.parametrize("resolver", ["ref", "builtin", "default"])
def test_folded_graph_runs_like_the_converter_file(resolver):
    graph = lenet5(seed=3)
    original = converter_style(graph)
    rewritten = to_bytes(read_tflite(original))
    for batch in (1, 3):
        x = random_input(graph, batch, seed=batch)
        want = LiteRTRunner(original, resolver).run(x)
        got = LiteRTRunner(rewritten, resolver).run(x)
        assert got.shape == (batch, 10)
        np.testing.assert_array_equal(got, want)


@settings(max_examples=20, deadline=None)
@given(graphs(max_layers=2))
def test_converter_style_random_graphs_fold(graph):
    for flatten in ("pack", "concat"):
        assert_graphs_equal(graph.__class__(graph.tensors, graph.ops, graph.inputs, graph.outputs),
                            read_tflite(converter_style(graph, flatten)))  # fmt: skip


def _reshape_fed_by(extra_tensors, extra_ops, shape_tensor):
    """A one-RESHAPE model whose shape comes from `shape_tensor`."""
    i8 = tflite.TensorType.INT8
    tensors = [
        {"name": "x", "shape": (1, 2, 2, 1), "type": i8, "scale": [0.1], "zero_point": [0]},
        {"name": "y", "shape": (1, 4), "type": i8, "scale": [0.1], "zero_point": [0]},
    ] + extra_tensors
    ops = extra_ops + [{"op": "RESHAPE", "inputs": [0, shape_tensor], "outputs": [1]}]
    return raw_model(tensors, ops, [0], [1])


def test_shape_from_an_unsupported_op_names_that_op():
    i32 = tflite.TensorType.INT32
    extra = [{"name": "a", "shape": (2,), "type": i32, "data": np.array([1, 4], "<i4").tobytes()},
             {"name": "s", "shape": (2,), "type": i32}]  # fmt: skip
    data = _reshape_fed_by(extra, [{"op": "SQUARED_DIFFERENCE", "inputs": [2, 2], "outputs": [3]}], 3)
    with pytest.raises(UnsupportedOpError, match=r"unsupported operator SQUARED_DIFFERENCE \(op 0\)"):
        read_tflite(data)


def test_shape_known_only_at_run_time_is_refused():
    i32 = tflite.TensorType.INT32
    extra = [{"name": "s", "shape": (2,), "type": i32}]  # no producer, no data
    with pytest.raises(TFLiteFormatError, match="RESHAPE.*run time"):
        read_tflite(_reshape_fed_by(extra, [], 2))


def test_reshape_to_a_fixed_batch_keeps_it():
    i32 = tflite.TensorType.INT32
    extra = [{"name": "s", "shape": (2,), "type": i32, "data": np.array([1, 4], "<i4").tobytes()}]
    graph = read_tflite(_reshape_fed_by(extra, [], 2))
    assert graph.ops[0].inputs == [0] and graph.ops[0].options == {"new_shape": [1, 4]}
    assert len(graph.tensors) == 2  # the shape constant is gone


def test_edgecnn_writes_reshape_as_options_only():
    g = GraphBuilder(np.random.default_rng(0), (1, 3, 3, 2)).flatten().build()
    m = tflite.Model.GetRootAs(to_bytes(g), 0)
    op = m.Subgraphs(0).Operators(0)
    assert op.InputsLength() == 1 and op.BuiltinOptionsType() == tflite.BuiltinOptions.ReshapeOptions
