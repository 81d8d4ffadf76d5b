"""PAD (Keras ZeroPadding2D): naive == Numba == LiteRT BUILTIN_REF on every element."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reduce_copy_cases import (c_and_onnx_equal_runtime, c_and_onnx_equal_runtime_in, exports_match_litert,
                               naive_equals_numba, numba_equals_litert, pad_graph, scales, zero_points)  # fmt: skip
from tflite_models import GraphBuilder

from edgecnn.deploy.runtime import Runtime
from edgecnn.errors import ShapeError, UnsupportedOpError
from edgecnn.int8.graph import Tensor


def add_pad(b: GraphBuilder, paddings, kind="PAD", constant=None) -> GraphBuilder:
    """Append PAD (or PADV2 with an int8 constant) to a GraphBuilder chain; the output keeps the input's qparams."""
    x = b.tensors[b.x]
    paddings = np.asarray(paddings, np.int32)
    pads = b._add(Tensor(f"paddings{len(b.ops)}", paddings.shape, "int32", [], [], 0, paddings))
    inputs = [b.x, pads]
    if constant is not None:
        inputs.append(b._add(Tensor(f"pad_value{len(b.ops)}", (), "int8", x.scale, x.zero_point, 0,
                                    np.int8(constant))))  # fmt: skip
    shape = tuple(int(n + lo + hi) for n, (lo, hi) in zip(x.shape, paddings))
    return b._next(kind, inputs, {}, shape, float(x.scale[0]), int(x.zero_point[0]))


def example_graph(rng):
    """ZeroPadding2D(((1, 1), (2, 1))) -> conv VALID, as Keras writes a padded conv."""
    b = add_pad(GraphBuilder(rng, (1, 5, 5, 2), 0.02, 17), [[0, 0], [1, 1], [2, 1], [0, 0]])
    return b.conv2d(3, 3, 3, padding="VALID", act="RELU").build()


def test_example_graph_equals_litert():
    assert numba_equals_litert(example_graph(np.random.default_rng(0)), batch=3) == 3 * 5 * 6 * 3


@st.composite
def pad_cases(draw, kind="PAD", max_dim=4, max_pad=3):
    rank = draw(st.integers(2, 5))
    shape = (1,) + tuple(draw(st.integers(1, max_dim)) for _ in range(rank - 1))
    paddings = [[0, 0]] + [[draw(st.integers(0, max_pad)), draw(st.integers(0, max_pad))] for _ in range(rank - 1)]
    in_q = (draw(scales), draw(zero_points))
    out_q = in_q if draw(st.booleans()) else (draw(scales), draw(zero_points))  # LiteRT copies, whatever the qparams
    constant = draw(st.integers(-128, 127)) if kind == "PADV2" else None
    return pad_graph(kind, shape, paddings, in_q, out_q, constant, draw(st.sampled_from(["int32", "int64"])))


@settings(max_examples=25, deadline=None)
@given(pad_cases(), st.integers(0, 2**16))
def test_naive_equals_numba(graph, seed):
    naive_equals_numba(graph, batch=2, seed=seed)


@settings(max_examples=20, deadline=None)
@given(pad_cases(max_dim=6), st.integers(0, 2**16))
def test_numba_equals_litert(graph, seed):
    numba_equals_litert(graph, batch=3, seed=seed)


def test_border_is_the_output_zero_point():
    graph = pad_graph("PAD", (1, 2, 2, 1), [[0, 0], [1, 0], [0, 1], [0, 0]], (0.1, 3), (0.2, -9))
    x = np.arange(4, dtype=np.int8).reshape(1, 2, 2, 1)
    y = Runtime(graph).run(x)[0, :, :, 0]
    assert y.tolist() == [[-9, -9, -9], [0, 1, -9], [2, 3, -9]]


@pytest.mark.parametrize("paddings, error, message", [
    ([[1, 0], [0, 0], [0, 0], [0, 0]], UnsupportedOpError, "the batch"),
    ([[0, 0], [-1, 0], [0, 0], [0, 0]], ShapeError, "non-negative"),
])  # fmt: skip
def test_refusals_name_the_op(paddings, error, message):
    graph = pad_graph("PAD", (1, 3, 3, 1), [[0, 0]] * 4, (0.1, 0), (0.1, 0))
    graph.tensors[1].data = np.asarray(paddings, np.int32)
    with pytest.raises(error, match=rf"op 0 \(PAD\): .*{message}"):
        Runtime(graph)


def test_wrong_paddings_shape_and_type_are_refused():
    graph = pad_graph("PAD", (1, 3, 3, 1), [[0, 0]] * 4, (0.1, 0), (0.1, 0))
    graph.tensors[1] = Tensor("paddings", (3, 2), "int32", [], [], 0, np.zeros((3, 2), np.int32))
    with pytest.raises(ShapeError, match=r"needs \(4, 2\)"):
        Runtime(graph)
    graph.tensors[1] = Tensor("paddings", (4, 2), "int8", [], [], 0, np.zeros((4, 2), np.int8))
    with pytest.raises(UnsupportedOpError, match="int32 or int64"):
        Runtime(graph)


def test_rank_5_is_version_4():
    from edgecnn.deploy.ops import REGISTRY

    graph = pad_graph("PAD", (1, 2, 2, 2, 2), [[0, 0]] + [[1, 1]] * 4, (0.1, 0), (0.1, 0))
    assert REGISTRY["PAD"].version(graph, graph.ops[0]) == 4
    numba_equals_litert(graph, batch=2)


def test_c_and_onnx_equal_the_runtime(tmp_path):
    """PAD on the graph input (NHWC in ONNX) and after a conv (NCHW), ranks 2 to 5, int32 and int64 paddings."""
    b = GraphBuilder(np.random.default_rng(1), (1, 4, 5, 2)).conv2d(3, 1, 1)
    b = add_pad(b, [[0, 0], [2, 0], [1, 3], [1, 2]]).conv2d(2, 3, 3)
    graphs = [example_graph(np.random.default_rng(0)), b.build(),
              pad_graph("PAD", (1, 6), [[0, 0], [3, 4]], (0.05, -128), (0.05, 127), dtype="int64"),
              pad_graph("PAD", (1, 2, 3, 4, 2), [[0, 0], [1, 2], [0, 1], [3, 0], [1, 1]], (0.1, 3), (0.2, -7))]
    assert c_and_onnx_equal_runtime(graphs, tmp_path) > 0
    assert exports_match_litert(graphs) > 0


@settings(max_examples=3, deadline=None)
@given(st.lists(pad_cases(), min_size=6, max_size=6))
def test_random_graphs_c_and_onnx_equal_the_runtime(graphs):
    c_and_onnx_equal_runtime_in(graphs)
