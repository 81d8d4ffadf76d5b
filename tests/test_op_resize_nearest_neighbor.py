"""RESIZE_NEAREST_NEIGHBOR (int8, GetNearestNeighbor in float32): naive == Numba == LiteRT BUILTIN_REF."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from io_spatial_cases import (batch_equals_single_runs, exports_equal_litert, naive_equals_numba, numba_equals_litert,
                              random_batch)  # fmt: skip
from test_op_resize_bilinear import resize, resize_fan, resize_graph
from tflite_models import GraphBuilder

from edgecnn.deploy.ops.resize_nearest_neighbor import source_indices
from edgecnn.deploy.runtime.prepare import prepare_graph
from edgecnn.deploy.tflite import read_tflite, to_bytes

KIND = "RESIZE_NEAREST_NEIGHBOR"
FLAGS = [(False, False), (True, False), (False, True), (True, True)]  # LiteRT takes both flags together here


def example_graph(rng):
    """conv -> RESIZE_NEAREST_NEIGHBOR x2 (Keras UpSampling2D nearest) -> conv."""
    b = GraphBuilder(rng, (1, 4, 5, 2)).conv2d(3, 3, 3, padding="SAME", act="RELU")
    return resize(b, KIND, (8, 10)).conv2d(2, 1, 1).build()


def test_example_graph_equals_litert():
    graph = example_graph(np.random.default_rng(0))
    x = random_batch(graph, 3, seed=0)
    assert numba_equals_litert(graph, x) == 3 * 8 * 10 * 2
    naive_equals_numba(graph, x)
    batch_equals_single_runs(graph, x)


@st.composite
def cases(draw, max_in=9, max_out=24):
    in_hw = (draw(st.integers(1, max_in)), draw(st.integers(1, max_in)))
    out_hw = (draw(st.integers(1, max_out)), draw(st.integers(1, max_out)))
    align, half = draw(st.sampled_from(FLAGS))
    return in_hw, out_hw, draw(st.integers(1, 3)), align, half


@settings(max_examples=80, deadline=None)
@given(cases(), st.integers(0, 2**16))
def test_naive_equals_numba(case, seed):
    graph = resize_graph(KIND, *case)
    naive_equals_numba(graph, random_batch(graph, 2, seed))


@settings(max_examples=40, deadline=None)
@given(cases(max_in=13, max_out=40), st.integers(0, 2**16))
def test_numba_equals_litert(case, seed):
    graph = resize_graph(KIND, *case)
    numba_equals_litert(graph, random_batch(graph, 3, seed))


@pytest.mark.parametrize("align,half", FLAGS)
def test_float32_rounding_cases_equal_litert(align, half):
    """Sizes whose float32 scale is inexact (3/7, 10/3, 1/49, 100/99), where (i + offset) * scale lands near .5."""
    for in_hw, out_hw in [((3, 10), (7, 3)), ((1, 100), (49, 99)), ((13, 17), (29, 31))]:
        graph = resize_graph(KIND, in_hw, out_hw, 1, align, half)
        numba_equals_litert(graph, random_batch(graph, 2, seed=3))


def test_source_indices_worked_examples():
    assert source_indices(2, 4, False, False).tolist() == [0, 0, 1, 1]
    assert source_indices(3, 5, True, False).tolist() == [0, 1, 1, 2, 2]  # round(i * 0.5): 0.5 -> 1, 1.5 -> 2
    assert source_indices(4, 2, False, True).tolist() == [1, 3]  # floor((i + 0.5) * 2)


def test_options_round_trip_and_versions():
    graph = resize_graph(KIND, (3, 3), (6, 6), 1, True, True)
    back = read_tflite(to_bytes(graph))
    assert back.ops[0].options == {"align_corners": True, "half_pixel_centers": True}
    prepare_graph(back)
    from edgecnn.deploy.ops import REGISTRY

    assert REGISTRY[KIND].version(graph, graph.ops[0]) == 3
    plain = resize_graph(KIND, (3, 3), (6, 6), 1, False, False)
    assert REGISTRY[KIND].version(plain, plain.ops[0]) == 2


def test_exports_equal_litert():
    """C (gcc) and ONNX (onnxruntime) == LiteRT for every option pair, up and down, and on the example."""
    graph = resize_fan(KIND, (5, 7), [(10, 14), (9, 4), (1, 3), (13, 29)], FLAGS)
    assert exports_equal_litert(graph, random_batch(graph, 3, seed=2)) > 0
    example = example_graph(np.random.default_rng(0))
    assert exports_equal_litert(example, random_batch(example, 2, seed=1)) == 2 * 8 * 10 * 2


@settings(max_examples=6, deadline=None)
@given(st.tuples(st.integers(1, 9), st.integers(1, 9)),
       st.lists(st.tuples(st.integers(1, 30), st.integers(1, 30)), min_size=1, max_size=3), st.integers(0, 2**16))
def test_exports_of_drawn_sizes_equal_litert(in_hw, sizes, seed):
    graph = resize_fan(KIND, in_hw, sizes, FLAGS)
    exports_equal_litert(graph, random_batch(graph, 2, seed))
