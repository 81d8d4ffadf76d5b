"""REDUCE_MAX (global max pooling): naive == Numba == LiteRT BUILTIN_REF on every element."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reduce_copy_cases import (c_and_onnx_equal_runtime, c_and_onnx_equal_runtime_in, exports_match_litert,
                               naive_equals_numba, numba_equals_litert, random_axes, reduce_graph, scales,
                               zero_points)  # fmt: skip
from tflite_models import GraphBuilder

from edgecnn.deploy.litert import LiteRTRunner
from edgecnn.deploy.runtime import Runtime
from edgecnn.deploy.tflite import to_bytes
from edgecnn.errors import ModelError, TFLiteFormatError, UnsupportedOpError
from edgecnn.int8.graph import Tensor


def example_graph(rng):
    """conv -> REDUCE_MAX over [1, 2] (keep_dims true: GlobalMaxPooling2D(keepdims=True)) -> reshape -> dense."""
    b = GraphBuilder(rng, (1, 5, 7, 2)).conv2d(3, 3, 3, padding="SAME")
    conv = b.tensors[b.x]
    axis = b._add(Tensor("gmp_axis", (2,), "int32", [], [], 0, np.array([1, 2], np.int32)))
    b._next("REDUCE_MAX", [b.x, axis], {"keep_dims": True}, (1, 1, 1, 3), float(conv.scale[0]),
            int(conv.zero_point[0]))  # fmt: skip
    return b.flatten().fully_connected(2).build()


def test_example_graph_equals_litert():
    assert numba_equals_litert(example_graph(np.random.default_rng(0)), batch=4) == 8


@st.composite
def max_cases(draw, max_dim=5):
    rank = draw(st.integers(2, 5))
    shape = (1,) + tuple(draw(st.integers(1, max_dim)) for _ in range(rank - 1))
    q = (draw(scales), draw(zero_points))
    return reduce_graph("REDUCE_MAX", shape, random_axes(draw, rank), draw(st.booleans()), q, q)


@settings(max_examples=25, deadline=None)
@given(max_cases(), st.integers(0, 2**16))
def test_naive_equals_numba(graph, seed):
    naive_equals_numba(graph, batch=2, seed=seed)


@settings(max_examples=20, deadline=None)
@given(max_cases(max_dim=7), st.integers(0, 2**16))
def test_numba_equals_litert(graph, seed):
    numba_equals_litert(graph, batch=3, seed=seed)


@pytest.mark.parametrize("hw", [(1, 1), (7, 7), (48, 33)])
def test_global_max_pool_equals_litert(hw):
    numba_equals_litert(reduce_graph("REDUCE_MAX", (1, *hw, 4), [1, 2], False, (0.1, -128), (0.1, -128)), batch=3)


def test_all_minimum_input_gives_minimum():
    graph = reduce_graph("REDUCE_MAX", (1, 3, 3, 2), [1, 2], False, (0.1, 5), (0.1, 5))
    x = np.full((2, 3, 3, 2), -128, np.int8)
    assert np.array_equal(Runtime(graph).run(x), np.full((2, 2), -128, np.int8))


@pytest.mark.parametrize("out_q", [(0.2, 5), (0.1, 6)])
def test_rescaling_is_refused_as_litert_does(out_q):
    graph = reduce_graph("REDUCE_MAX", (1, 3, 3, 2), [1, 2], False, (0.1, 5), out_q)
    with pytest.raises(ModelError, match=r"op 0 \(REDUCE_MAX\): .*share scale and zero point"):
        Runtime(graph)
    with pytest.raises((TFLiteFormatError, RuntimeError), match="scale|zero_point"):  # LiteRT: at invoke
        LiteRTRunner(to_bytes(graph), "ref").run(np.zeros((1, 3, 3, 2), np.int8))


def test_batch_axis_is_refused():
    graph = reduce_graph("REDUCE_MAX", (1, 3, 3, 2), [0, 1], True, (0.1, 5), (0.1, 5))
    with pytest.raises(UnsupportedOpError, match="the batch"):
        Runtime(graph)


def test_c_and_onnx_equal_the_runtime(tmp_path):
    graphs = [example_graph(np.random.default_rng(0)),
              reduce_graph("REDUCE_MAX", (1, 9), [1], False, (0.05, -128), (0.05, -128)),
              reduce_graph("REDUCE_MAX", (1, 4, 5, 3), [2], False, (0.1, 3), (0.1, 3)),
              reduce_graph("REDUCE_MAX", (1, 3, 4, 5, 2), [1, 3], True, (0.1, 127), (0.1, 127))]  # fmt: skip
    assert c_and_onnx_equal_runtime(graphs, tmp_path) > 0
    assert exports_match_litert(graphs) > 0


@settings(max_examples=3, deadline=None)
@given(st.lists(max_cases(), min_size=6, max_size=6))
def test_random_graphs_c_and_onnx_equal_the_runtime(graphs):
    c_and_onnx_equal_runtime_in(graphs)


def test_no_axes_is_a_copy_in_every_back_end():
    graph = reduce_graph("REDUCE_MAX", (1, 3, 4, 2), [], False, (0.05, 3), (0.05, 3))
    numba_equals_litert(graph)
    c_and_onnx_equal_runtime_in([graph])
