"""CONCATENATION of int8 activations: naive == Numba == LiteRT BUILTIN_REF on every element.

LiteRT's int8 CONCATENATION is a copy: its Prepare refuses inputs whose
scale or zero point differ from the output's, and any fused activation, and
the TF converter gives every branch the output's qparams. edgecnn refuses
the same graphs (tested against LiteRT below).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reduce_copy_cases import (assert_same, c_and_onnx_equal_runtime, c_and_onnx_equal_runtime_in,
                               exports_match_litert, inputs, litert_ref_multi, numba_equals_litert, scales,
                               zero_points)  # fmt: skip
from tflite_models import GraphBuilder

from edgecnn.deploy.litert import LiteRTRunner
from edgecnn.deploy.runtime import Runtime
from edgecnn.deploy.runtime.naive import run_graph
from edgecnn.deploy.tflite import to_bytes
from edgecnn.errors import ModelError, ShapeError, TFLiteFormatError, UnsupportedOpError
from edgecnn.int8.graph import Int8Graph, Op, Tensor


def example_graph(rng):
    """Two branches from one input (a 3x3 conv and a 1x1 conv), concatenated on channels, then a 1x1 conv.

    As the converter does, both branches write at the concatenation's qparams.
    """
    b = GraphBuilder(rng, (1, 6, 6, 2))
    left = b.conv2d(3, 3, 3, padding="SAME", act="RELU").x
    b.x = b.input
    right = b.conv2d(2, 1, 1, act="RELU").x
    shared = b.tensors[left]
    b.tensors[right].scale, b.tensors[right].zero_point = shared.scale.copy(), shared.zero_point.copy()
    b._next("CONCATENATION", [left, right], {"axis": 3, "fused_activation_function": "NONE"}, (1, 6, 6, 5),
            float(shared.scale[0]), int(shared.zero_point[0]))  # fmt: skip
    return b.conv2d(2, 1, 1).build()


def test_example_graph_equals_litert():
    assert numba_equals_litert(example_graph(np.random.default_rng(0)), batch=4) == 4 * 6 * 6 * 2


def concat_graph(shape, sizes, axis, q) -> Int8Graph:
    """len(sizes) graph inputs, input k of `shape` with sizes[k] along `axis`, concatenated at the shared qparams q."""
    rank = len(shape)
    a = axis % rank
    tensors = []
    for k, n in enumerate(sizes):
        tensors.append(Tensor(f"in{k}", shape[:a] + (n,) + shape[a + 1 :], "int8", [q[0]], [q[1]]))
    tensors.append(Tensor("out", shape[:a] + (sum(sizes),) + shape[a + 1 :], "int8", [q[0]], [q[1]]))
    op = Op("CONCATENATION", list(range(len(sizes))), [len(sizes)], {"axis": axis, "fused_activation_function": "NONE"})
    return Int8Graph(tensors, [op], list(range(len(sizes))), [len(sizes)]).validate()


@st.composite
def concat_cases(draw, max_dim=5):
    rank = draw(st.integers(2, 5))
    shape = (1,) + tuple(draw(st.integers(1, max_dim)) for _ in range(rank - 1))
    axis = draw(st.integers(1, rank - 1))
    axis = axis - rank if draw(st.booleans()) else axis
    sizes = draw(st.lists(st.integers(1, max_dim), min_size=1, max_size=4))
    return concat_graph(shape, sizes, axis, (draw(scales), draw(zero_points)))


def _images(graph, batch, seed):
    return [inputs(Int8Graph(graph.tensors, [], [t], [t]), batch, seed + k) for k, t in enumerate(graph.inputs)]


@settings(max_examples=25, deadline=None)
@given(concat_cases(), st.integers(0, 2**16))
def test_naive_equals_numba(graph, seed):
    xs = _images(graph, 2, seed)
    got = np.asarray(Runtime(graph).run(xs))
    assert_same(got, run_graph(graph, xs)[graph.outputs[0]].reshape(got.shape), "Numba vs naive")
    a = graph.ops[0].options["axis"] % got.ndim
    assert_same(got, np.concatenate(xs, axis=a), "Numba vs numpy")


@settings(max_examples=20, deadline=None)
@given(concat_cases(max_dim=6), st.integers(0, 2**16))
def test_numba_equals_litert(graph, seed):
    xs = _images(graph, 3, seed)
    assert_same(np.asarray(Runtime(graph).run(xs)), litert_ref_multi(graph, xs), "Numba vs LiteRT BUILTIN_REF")


def test_one_branch_twice_equals_litert():
    """The same tensor fed twice (x, x) and a three-way split of a chain."""
    graph = concat_graph((1, 3, 4, 2), [2, 2], 3, (0.05, -128))
    graph.ops[0].inputs = [0, 0]
    graph.inputs = [0]
    graph = Int8Graph(graph.tensors, graph.ops, [0], [2]).validate()
    numba_equals_litert(graph, batch=3)


def _two_branch_graph(qa, qb, qout, act="NONE") -> Int8Graph:
    """x -> MAX_POOL 1x1 (a, qparams qa) and x -> MAX_POOL 1x1 (b, qb) -> CONCATENATION (qout)."""
    pool = {"padding": "VALID", "stride_h": 1, "stride_w": 1, "filter_height": 1, "filter_width": 1,
            "fused_activation_function": "NONE"}  # fmt: skip
    tensors = [Tensor("x", (1, 3, 3, 2), "int8", [0.05], [3]), Tensor("a", (1, 3, 3, 2), "int8", [qa[0]], [qa[1]]),
               Tensor("b", (1, 3, 3, 2), "int8", [qb[0]], [qb[1]]),
               Tensor("y", (1, 3, 3, 4), "int8", [qout[0]], [qout[1]])]  # fmt: skip
    ops = [Op("MAX_POOL_2D", [0], [1], pool), Op("MAX_POOL_2D", [0], [2], pool),
           Op("CONCATENATION", [1, 2], [3], {"axis": -1, "fused_activation_function": act})]  # fmt: skip
    return Int8Graph(tensors, ops, [0], [3]).validate()


@pytest.mark.parametrize("qa, qb, qout, act, message", [
    ((0.05, 3), (0.1, 3), (0.05, 3), "NONE", "share the output's scale"),
    ((0.05, 3), (0.05, 4), (0.05, 3), "NONE", "share the output's scale"),
    ((0.05, 3), (0.05, 3), (0.07, 3), "NONE", "share the output's scale"),
    ((0.05, 3), (0.05, 3), (0.05, 3), "RELU", "fused activation"),
])  # fmt: skip
def test_what_litert_refuses_is_refused(qa, qb, qout, act, message):
    graph = _two_branch_graph(qa, qb, qout, act)
    with pytest.raises(ModelError, match=rf"op 2 \(CONCATENATION\): .*{message}"):
        Runtime(graph)
    with pytest.raises(TFLiteFormatError, match="CONCATENATION"):
        LiteRTRunner(to_bytes(graph), "ref")


def test_shared_qparams_two_branches_equal_litert():
    numba_equals_litert(_two_branch_graph((0.05, 3), (0.05, 3), (0.05, 3)), batch=5)


def test_batch_axis_and_bad_shapes_are_refused():
    graph = concat_graph((1, 3, 2), [2, 1], 1, (0.1, 0))
    graph.ops[0].options["axis"] = 0
    with pytest.raises(UnsupportedOpError, match="the batch"):
        Runtime(graph)
    graph.ops[0].options["axis"] = 3
    with pytest.raises(ShapeError, match="out of range"):
        Runtime(graph)
    graph = concat_graph((1, 3, 2), [2, 1], 1, (0.1, 0))
    graph.tensors[1].shape = (1, 1, 3)
    with pytest.raises(ShapeError, match="does not fit"):
        Runtime(graph)


def test_constant_inputs_are_refused():
    graph = concat_graph((1, 3, 2), [2, 1], 1, (0.1, 0))
    graph.tensors[1].data = np.zeros((1, 1, 2), np.int8)
    graph = Int8Graph(graph.tensors, graph.ops, [0], graph.outputs).validate()
    with pytest.raises(UnsupportedOpError, match="constant"):
        Runtime(graph)


def test_shape_values_still_fold():
    from edgecnn.deploy.ops.concatenation import fold

    out = fold([np.array([1]), np.array([-1, 4])], {"axis": 0, "fused_activation_function": "NONE"})
    assert out[0].tolist() == [1, -1, 4]


def padded_branches(shape, axis: int, extras, q) -> Int8Graph:
    """One input, one PAD per branch adding extras[k] zero-point rows at the end of `axis`, then CONCATENATION.

    Gives a single-input graph whose concatenated pieces differ in size (what the C and ONNX tests can feed).
    """
    rank = len(shape)
    tensors = [Tensor("x", shape, "int8", [q[0]], [q[1]])]
    ops, branches = [], []
    for k, extra in enumerate(extras):
        paddings = np.zeros((rank, 2), np.int32)
        paddings[axis % rank, 1] = extra
        tensors.append(Tensor(f"paddings{k}", (rank, 2), "int32", [], [], 0, paddings))
        out_shape = tuple(int(n + p[1]) for n, p in zip(shape, paddings))
        tensors.append(Tensor(f"branch{k}", out_shape, "int8", [q[0]], [q[1]]))
        ops.append(Op("PAD", [0, len(tensors) - 2], [len(tensors) - 1], {}))
        branches.append(len(tensors) - 1)
    a = axis % rank
    total = sum(tensors[t].shape[a] for t in branches)
    tensors.append(Tensor("y", shape[:a] + (total,) + shape[a + 1 :], "int8", [q[0]], [q[1]]))
    ops.append(Op("CONCATENATION", branches, [len(tensors) - 1], {"axis": axis, "fused_activation_function": "NONE"}))
    return Int8Graph(tensors, ops, [0], [len(tensors) - 1]).validate()


@pytest.mark.parametrize("shape, axis, extras", [((1, 3, 4, 2), 3, (0, 2, 1)), ((1, 3, 4, 2), -3, (1, 0)),
                                                 ((1, 5), 1, (0, 3)), ((1, 2, 3, 2, 2), 2, (2, 0, 1))])  # fmt: skip
def test_padded_branches_equal_litert(shape, axis, extras):
    numba_equals_litert(padded_branches(shape, axis, extras, (0.02, -128)), batch=3)


def test_c_and_onnx_equal_the_runtime(tmp_path):
    graphs = [example_graph(np.random.default_rng(0)), _two_branch_graph((0.05, 3), (0.05, 3), (0.05, 3)),
              padded_branches((1, 3, 4, 2), 3, (0, 2, 1), (0.02, -128)),
              padded_branches((1, 3, 4, 2), 1, (1, 0), (0.02, 127)),
              padded_branches((1, 5), 1, (0, 3), (0.1, 0)),
              padded_branches((1, 2, 3, 2, 2), 2, (2, 0, 1), (0.1, 5))]  # fmt: skip
    assert c_and_onnx_equal_runtime(graphs, tmp_path) > 0
    assert exports_match_litert(graphs) > 0


@st.composite
def branch_cases(draw, max_dim=4):
    rank = draw(st.integers(2, 5))
    shape = (1,) + tuple(draw(st.integers(1, max_dim)) for _ in range(rank - 1))
    axis = draw(st.integers(1, rank - 1))
    extras = draw(st.lists(st.integers(0, 3), min_size=1, max_size=4))
    axis = axis - rank if draw(st.booleans()) else axis
    return padded_branches(shape, axis, extras, (draw(scales), draw(zero_points)))


@settings(max_examples=3, deadline=None)
@given(st.lists(branch_cases(), min_size=6, max_size=6))
def test_random_graphs_c_and_onnx_equal_the_runtime(graphs):
    c_and_onnx_equal_runtime_in(graphs)


@settings(max_examples=15, deadline=None)
@given(concat_cases(), st.integers(0, 2**16))
def test_onnx_with_several_graph_inputs_equals_the_runtime(graph, seed):
    import onnxruntime as ort

    from edgecnn.deploy.export.onnx import to_onnx

    xs = _images(graph, 2, seed)
    session = ort.InferenceSession(to_onnx(graph).SerializeToString(), providers=["CPUExecutionProvider"])
    feed = {graph.tensors[t].name: x for t, x in zip(graph.inputs, xs)}
    assert_same(session.run(None, feed)[0], np.asarray(Runtime(graph).run(xs)), "ONNX vs Numba")


def test_several_graph_inputs_match_litert_in_every_back_end():
    """Concatenated graph inputs (no producer op): C, ONNX and LiteRT on every element."""
    graphs = [concat_graph((1, 3, 4, 2), [2, 1, 3], 3, (0.05, -128)), concat_graph((1, 5, 2), [1, 4], -2, (0.3, 127))]
    assert exports_match_litert(graphs) == 4 * (3 * 4 * 6 + 5 * 2)
