"""MEAN (global average pooling as the converter writes it): naive == Numba == LiteRT BUILTIN_REF on every element."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reduce_copy_cases import (c_and_onnx_equal_runtime, c_and_onnx_equal_runtime_in, exports_match_litert,
                               naive_equals_numba, numba_equals_litert, random_axes, reduce_graph, scales,
                               zero_points)  # fmt: skip
from tflite_models import GraphBuilder

from edgecnn.deploy.litert import LiteRTRunner
from edgecnn.deploy.ops import mean as mean_op
from edgecnn.deploy.runtime import Runtime
from edgecnn.deploy.tflite import to_bytes
from edgecnn.errors import ModelError, ShapeError, TFLiteFormatError, UnsupportedOpError
from edgecnn.int8.graph import Tensor


def example_graph(rng):
    """conv -> MEAN over [1, 2] (keep_dims false, Keras' GlobalAveragePooling2D) -> fully connected."""
    b = GraphBuilder(rng, (1, 6, 6, 2)).conv2d(4, 3, 3, padding="SAME", act="RELU")
    conv = b.tensors[b.x]
    axis = b._add(Tensor("gap_axis", (2,), "int32", [], [], 0, np.array([1, 2], np.int32)))
    b._next("MEAN", [b.x, axis], {"keep_dims": False}, (1, 4), float(conv.scale[0]) * 0.6, -100)
    return b.fully_connected(3).build()


def test_example_graph_equals_litert():
    assert numba_equals_litert(example_graph(np.random.default_rng(0)), batch=5) == 15


@st.composite
def mean_cases(draw, max_dim=5):
    rank = draw(st.integers(2, 5))
    shape = (1,) + tuple(draw(st.integers(1, max_dim)) for _ in range(rank - 1))
    in_q = (draw(scales), draw(zero_points))
    same = draw(st.booleans())
    out_q = in_q if same else (in_q[0] * draw(st.sampled_from([0.1, 0.37, 1.0, 2.5, 9.0])), draw(zero_points))
    return reduce_graph("MEAN", shape, random_axes(draw, rank), draw(st.booleans()), in_q, out_q)


@settings(max_examples=25, deadline=None)
@given(mean_cases(), st.integers(0, 2**16))
def test_naive_equals_numba(graph, seed):
    naive_equals_numba(graph, batch=2, seed=seed)


@settings(max_examples=25, deadline=None)
@given(mean_cases(max_dim=7), st.integers(0, 2**16))
def test_numba_equals_litert(graph, seed):
    numba_equals_litert(graph, batch=3, seed=seed)


@pytest.mark.parametrize("hw", [(1, 1), (3, 3), (7, 7), (5, 9), (32, 32), (61, 67)])
@pytest.mark.parametrize("keep_dims", [True, False])
def test_global_average_pool_equals_litert(hw, keep_dims):
    """Window sizes of real heads and odd ones (count not a power of two, 4087 elements)."""
    graph = reduce_graph("MEAN", (1, *hw, 3), [1, 2], keep_dims, (0.05, -7), (0.031, 12))
    numba_equals_litert(graph, batch=4)


@pytest.mark.parametrize("ratio", [1e-9, 3e-5, 0.5, 1.0, 1.999, 40.0, 1000.0])
@pytest.mark.parametrize("zps", [(-128, 127), (127, -128), (0, 0)])
def test_extreme_rescales_equal_litert(ratio, zps):
    """in_scale / out_scale from the flush-to-zero end (shift -31 caps the 1/count fold) to large gains."""
    graph = reduce_graph("MEAN", (1, 13, 11, 2), [2, 1], False, (0.02, zps[0]), (0.02 / ratio, zps[1]))
    numba_equals_litert(graph, batch=3)


def test_mean_multiplier_doctests():
    assert doctest.testmod(mean_op).failed == 0


def test_mean_multiplier_caps():
    # k is floor(log2 count), capped at 32 and at 31 + shift (the final right shift stays within 31).
    assert mean_op.mean_multiplier(1 << 30, -30, 1000) == ((1 << 30) * 2 // 1000, -31)
    assert mean_op.mean_multiplier(2**31 - 1, 0, 2**40) == ((2**31 - 1) * 2**31 // 2**40, -31)
    with pytest.raises(ValueError):
        mean_op.mean_multiplier(1 << 30, 0, 0)


@pytest.mark.parametrize("axes, error, message", [
    ([0, 1], UnsupportedOpError, "the batch"),
    ([4], ShapeError, "out of range"),
    ([-5], ShapeError, "out of range"),
])  # fmt: skip
def test_refusals_name_the_op(axes, error, message):
    graph = reduce_graph("MEAN", (1, 4, 4, 2), [1, 2], True, (0.05, 0), (0.05, 0))
    graph.tensors[1].data = np.asarray(axes, np.int32)
    graph.tensors[1].shape = (len(axes),)
    with pytest.raises(error, match=rf"op 0 \(MEAN\): .*{message}"):
        Runtime(graph)


def test_wrong_output_shape_and_axis_type_are_refused():
    graph = reduce_graph("MEAN", (1, 4, 4, 2), [1, 2], True, (0.05, 0), (0.05, 0))
    graph.tensors[2].shape = (1, 2)  # keep_dims true makes (1, 1, 1, 2)
    with pytest.raises(ShapeError, match=r"MEAN.*produces \(1, 1, 1, 2\)"):
        Runtime(graph)
    graph = reduce_graph("MEAN", (1, 4, 4, 2), [1, 2], True, (0.05, 0), (0.05, 0))
    graph.tensors[1] = Tensor("axis", (2,), "int64", [], [], 0, np.array([1, 2], np.int64))
    with pytest.raises(UnsupportedOpError, match="int32"):
        Runtime(graph)
    with pytest.raises(TFLiteFormatError):  # LiteRT refuses the int64 axis too
        LiteRTRunner(to_bytes(graph), "ref")


def test_error_is_a_model_error():
    graph = reduce_graph("MEAN", (1, 4, 4, 2), [0], True, (0.05, 0), (0.05, 0))
    with pytest.raises(ModelError):
        Runtime(graph)


def test_c_and_onnx_equal_the_runtime(tmp_path):
    """GAP after a conv (the ONNX input is NCHW), a mean over H only (kept dims leave NCHW order), ranks 2-5."""
    b = GraphBuilder(np.random.default_rng(1), (1, 5, 6, 3)).conv2d(4, 3, 3, padding="SAME")
    conv = b.tensors[b.x]
    axis = b._add(Tensor("h_axis", (1,), "int32", [], [], 0, np.array([1], np.int32)))
    b._next("MEAN", [b.x, axis], {"keep_dims": False}, (1, 6, 4), float(conv.scale[0]), 9)
    graphs = [example_graph(np.random.default_rng(0)), b.build(),
              reduce_graph("MEAN", (1, 7), [1], True, (0.05, -128), (0.01, 127)),
              reduce_graph("MEAN", (1, 3, 4, 5), [1, -1], True, (0.1, 3), (0.05, -7)),
              reduce_graph("MEAN", (1, 2, 3, 4, 5), [2, 4], False, (0.3, 127), (0.02, -128)),
              reduce_graph("MEAN", (1, 13, 11, 2), [1, 2], False, (0.02, 0), (0.02 / 3e-5, 0))]  # fmt: skip
    assert c_and_onnx_equal_runtime(graphs, tmp_path) > 0
    assert exports_match_litert(graphs) > 0


@settings(max_examples=3, deadline=None)
@given(st.lists(mean_cases(), min_size=6, max_size=6))
def test_random_graphs_c_and_onnx_equal_the_runtime(graphs):
    c_and_onnx_equal_runtime_in(graphs)


@pytest.mark.parametrize("axes", [[], [1, 2, 3, -1, 2]])
@pytest.mark.parametrize("keep_dims", [True, False])
def test_no_axes_and_repeated_axes_equal_litert(axes, keep_dims):
    """No axes: a per-element requantization; repeated axes collapse, as LiteRT's ResolveAxis does."""
    graph = reduce_graph("MEAN", (1, 3, 4, 2), axes, keep_dims, (0.05, 3), (0.07, 9))
    numba_equals_litert(graph)
    naive_equals_numba(graph)
    c_and_onnx_equal_runtime_in([graph])
