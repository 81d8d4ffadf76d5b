"""PADV2 (PAD with a constant border value): naive == Numba == LiteRT BUILTIN_REF on every element."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reduce_copy_cases import (c_and_onnx_equal_runtime, c_and_onnx_equal_runtime_in, exports_match_litert,
                               naive_equals_numba, numba_equals_litert, pad_graph)  # fmt: skip
from test_op_pad import add_pad, pad_cases
from tflite_models import GraphBuilder

from edgecnn.deploy.litert import LiteRTRunner
from edgecnn.deploy.runtime import Runtime
from edgecnn.deploy.tflite import to_bytes
from edgecnn.errors import ShapeError, UnsupportedOpError
from edgecnn.int8.graph import Tensor


def example_graph(rng):
    """PADV2 with -128 around a 4x4 image (the max-pool border TF writes) -> 3x3 max pool."""
    b = add_pad(GraphBuilder(rng, (1, 4, 4, 3), 0.05, -20), [[0, 0], [1, 1], [1, 1], [0, 0]], "PADV2", -128)
    return b.pool("MAX_POOL_2D", size=(3, 3), stride=(2, 2)).build()


def test_example_graph_equals_litert():
    assert numba_equals_litert(example_graph(np.random.default_rng(0)), batch=3) == 3 * 2 * 2 * 3


@settings(max_examples=25, deadline=None)
@given(pad_cases("PADV2"), st.integers(0, 2**16))
def test_naive_equals_numba(graph, seed):
    naive_equals_numba(graph, batch=2, seed=seed)


@settings(max_examples=20, deadline=None)
@given(pad_cases("PADV2", max_dim=6), st.integers(0, 2**16))
def test_numba_equals_litert(graph, seed):
    numba_equals_litert(graph, batch=3, seed=seed)


@pytest.mark.parametrize("constant", [-128, 127, 5])
def test_border_is_the_constant(constant):
    graph = pad_graph("PADV2", (1, 1, 2, 1), [[0, 0], [0, 0], [1, 1], [0, 0]], (0.1, 3), (0.2, -9), constant)
    y = Runtime(graph).run(np.array([[[[7], [8]]]], np.int8))
    assert y[0, 0, :, 0].tolist() == [constant, 7, 8, constant]


def test_two_inputs_pad_with_the_output_zero_point():
    graph = pad_graph("PAD", (1, 2, 2, 1), [[0, 0], [1, 1], [1, 1], [0, 0]], (0.1, 3), (0.1, 3))
    graph.ops[0].kind = "PADV2"
    numba_equals_litert(graph, batch=2)
    assert Runtime(graph).run(np.zeros((1, 2, 2, 1), np.int8))[0, 0, 0, 0] == 3


@pytest.mark.parametrize("qparams", [(0.2, -9), (0.1, -8)])
def test_constant_with_other_qparams_is_refused_as_litert_does(qparams):
    graph = pad_graph("PADV2", (1, 2, 2, 1), [[0, 0], [1, 1], [1, 1], [0, 0]], (0.1, -8), (0.1, -9), 4)
    graph.tensors[2] = Tensor("constant_values", (), "int8", [qparams[0]], [qparams[1]], 0, np.int8(4))
    with pytest.raises(UnsupportedOpError, match=r"op 0 \(PADV2\): .*scale and zero point"):
        Runtime(graph)
    with pytest.raises(RuntimeError, match="zero_point|scale"):  # LiteRT: at invoke
        LiteRTRunner(to_bytes(graph), "ref").run(np.zeros((1, 2, 2, 1), np.int8))


def test_constant_must_be_one_int8_value():
    graph = pad_graph("PADV2", (1, 2, 2, 1), [[0, 0], [1, 1], [1, 1], [0, 0]], (0.1, 0), (0.1, 0), 4)
    graph.tensors[2] = Tensor("constant_values", (2,), "int8", [0.1], [0], 0, np.array([1, 2], np.int8))
    with pytest.raises(ShapeError, match="one"):
        Runtime(graph)


def test_c_and_onnx_equal_the_runtime(tmp_path):
    b = GraphBuilder(np.random.default_rng(1), (1, 4, 5, 2)).conv2d(3, 1, 1)
    b = add_pad(b, [[0, 0], [1, 1], [0, 2], [0, 1]], "PADV2", 127).pool("MAX_POOL_2D")
    graphs = [example_graph(np.random.default_rng(0)), b.build(),
              pad_graph("PADV2", (1, 5, 3), [[0, 0], [1, 2], [0, 1]], (0.1, 3), (0.2, -7), -128)]
    assert c_and_onnx_equal_runtime(graphs, tmp_path) > 0
    assert exports_match_litert(graphs) > 0


@settings(max_examples=3, deadline=None)
@given(st.lists(pad_cases("PADV2"), min_size=6, max_size=6))
def test_random_graphs_c_and_onnx_equal_the_runtime(graphs):
    c_and_onnx_equal_runtime_in(graphs)
