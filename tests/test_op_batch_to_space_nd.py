"""BATCH_TO_SPACE_ND: naive == Numba == LiteRT BUILTIN_REF, and a batch of N images == N single runs.

The chain it ends (Keras 3's dilated convolution) is tested in
test_op_space_to_batch_nd.py; here the op alone, fed by a RESHAPE that turns
a batch-1 row into block_h * block_w (times b) rows.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from io_spatial_cases import (activation, batch_equals_single_runs, exports_equal_litert, exports_equal_runtime,
                              int32_constant, naive_equals_numba, numba_equals_litert, random_batch,
                              single_op)  # fmt: skip
from test_op_space_to_batch_nd import dilated_conv, space_to_batch
from tflite_models import GraphBuilder

from edgecnn.deploy.litert import LiteRTRunner
from edgecnn.deploy.ops import REGISTRY
from edgecnn.deploy.runtime import Runtime
from edgecnn.deploy.runtime.prepare import prepare_op
from edgecnn.errors import ShapeError
from edgecnn.deploy.tflite import to_bytes
from edgecnn.int8.graph import Int8Graph, Op


def example_graph(rng):
    """A Keras 3 dilated depthwise-free 3x3 conv, rates (2, 3), VALID: S2B -> CONV_2D -> B2S, with crops."""
    b = GraphBuilder(rng, (1, 10, 11, 2), scale=0.02, zero_point=5)
    return dilated_conv(b, 3, 3, (2, 3), "VALID", act="RELU6").build()


def test_example_graph_equals_litert_for_one_and_many_images():
    graph = example_graph(np.random.default_rng(0))
    assert [op.kind for op in graph.ops] == ["SPACE_TO_BATCH_ND", "CONV_2D", "BATCH_TO_SPACE_ND"]
    for batch in (1, 4):
        x = random_batch(graph, batch, seed=batch)
        assert numba_equals_litert(graph, x) == batch * 6 * 5 * 3
        naive_equals_numba(graph, x)
    batch_equals_single_runs(graph, random_batch(graph, 5, seed=0))


def b2s_from_row(rows, hw, depth, block, crops, zero_point=9) -> Int8Graph:
    """x [1, rows*h*w*c] -> RESHAPE [rows, h, (w,) c] -> BATCH_TO_SPACE_ND (rank 3 when hw has one entry)."""
    mid_shape = (rows, *hw, depth)
    x = activation("x", (1, int(np.prod(mid_shape))), "int8", 0.1, zero_point)
    mid = activation("mid", mid_shape, "int8", 0.1, zero_point)
    out_spatial = [s * b - sum(c) for s, b, c in zip(hw, block, crops)]
    y = activation("y", (rows // int(np.prod(block)), *out_spatial, depth), "int8", 0.1, zero_point)
    tensors = [x, mid, y, int32_constant("block", block), int32_constant("crops", crops)]
    ops = [Op("RESHAPE", [0], [1], {"new_shape": [-1, *hw, depth]}), Op("BATCH_TO_SPACE_ND", [1, 3, 4], [2])]
    return Int8Graph(tensors, ops, [0], [2]).validate()


@st.composite
def b2s_cases(draw):
    rank = draw(st.sampled_from([3, 4]))
    block = [draw(st.integers(1, 3)) for _ in range(rank - 2)]
    hw = [draw(st.integers(1, 5)) for _ in range(rank - 2)]
    crops = []
    for size, b in zip(hw, block):
        total = draw(st.integers(0, size * b - 1))
        before = draw(st.integers(0, total))
        crops.append([before, total - before])
    return int(np.prod(block)), hw, draw(st.integers(1, 3)), block, crops, draw(st.integers(-128, 127))


@settings(max_examples=60, deadline=None)
@given(b2s_cases(), st.integers(1, 4), st.integers(0, 2**16))
def test_naive_equals_numba_alone(case, batch, seed):
    graph = b2s_from_row(*case)
    naive_equals_numba(graph, random_batch(graph, batch, seed))
    batch_equals_single_runs(graph, random_batch(graph, batch, seed + 1))


@settings(max_examples=30, deadline=None)
@given(b2s_cases(), st.integers(0, 2**16))
def test_numba_equals_litert_alone_per_image(case, seed):
    graph = b2s_from_row(*case)
    x = random_batch(graph, 3, seed)
    runner, got = LiteRTRunner(to_bytes(graph), "ref"), Runtime(graph).run(x)
    for n in range(3):
        assert np.array_equal(got[n:n + 1], runner.run(x[n:n + 1]))


def test_space_to_batch_then_back_is_the_cropped_padding():
    """S2B then B2S with the same block and crops equal to the pads gives the input back, for N images."""
    b = GraphBuilder(np.random.default_rng(1), (1, 5, 7, 3), scale=0.1, zero_point=-3)
    space_to_batch(b, (2, 3), [[1, 2], [2, 3]])
    t = b.tensors[b.x]
    crops = b._add(type(t)("crops", (2, 2), "int32", [], [], 0, np.array([[1, 2], [2, 3]], np.int32)))
    b._next("BATCH_TO_SPACE_ND", [b.x, b.ops[0].inputs[1], crops], {}, (1, 5, 7, 3), float(t.scale[0]),
            int(t.zero_point[0]))  # fmt: skip
    graph = b.build()
    x = random_batch(graph, 4, seed=0)
    assert np.array_equal(Runtime(graph).run(x), x)
    assert numba_equals_litert(graph, x) == x.size


def test_versions():
    graph = example_graph(np.random.default_rng(0))
    assert REGISTRY["BATCH_TO_SPACE_ND"].version(graph, graph.ops[2]) == 2
    rank3 = b2s_from_row(2, [3], 2, [2], [[0, 1]])
    assert REGISTRY["BATCH_TO_SPACE_ND"].version(rank3, rank3.ops[1]) == 3


def test_refusals_name_the_op():
    # The TensorFlow converter records batch 1 where a dilated conv's middle holds block_h * block_w rows.
    x = activation("x", (1, 3, 3, 1))
    block = int32_constant("block", [2, 2])
    with pytest.raises(ShapeError, match=r"BATCH_TO_SPACE_ND.*not a multiple of the block.*converter"):
        prepare_op(single_op("BATCH_TO_SPACE_ND", x, activation("y", (1, 6, 6, 1)),
                             [block, int32_constant("crops", [[0, 0], [0, 0]])]), 0)  # fmt: skip
    with pytest.raises(ShapeError, match="non-negative"):
        prepare_op(single_op("BATCH_TO_SPACE_ND", activation("x", (4, 3, 3, 1)), activation("y", (1, 7, 6, 1)),
                             [block, int32_constant("crops", [[-1, 0], [0, 0]])]), 0)  # fmt: skip


# ------------------------------------------------------------ C (gcc) and ONNX (onnxruntime)


@pytest.mark.parametrize("case", [(4, [3, 2], 2, [2, 2], [[0, 1], [1, 0]]), (2, [3], 2, [2], [[0, 1]]),
                                  (6, [2, 3], 1, [2, 3], [[1, 2], [0, 4]])])  # fmt: skip
def test_exports_alone_equal_litert_and_keep_images_apart(case):
    graph = b2s_from_row(*case)
    assert exports_equal_litert(graph, random_batch(graph, 1, seed=0)) == int(np.prod(graph.output.shape))
    exports_equal_runtime(graph, random_batch(graph, 4, seed=1))


def test_exports_of_s2b_then_b2s_equal_litert_for_many_images():
    b = GraphBuilder(np.random.default_rng(1), (1, 5, 7, 3), scale=0.1, zero_point=-3)
    space_to_batch(b, (2, 3), [[1, 2], [2, 3]])
    t = b.tensors[b.x]
    crops = b._add(type(t)("crops", (2, 2), "int32", [], [], 0, np.array([[1, 2], [2, 3]], np.int32)))
    b._next("BATCH_TO_SPACE_ND", [b.x, b.ops[0].inputs[1], crops], {}, (1, 5, 7, 3), float(t.scale[0]),
            int(t.zero_point[0]))  # fmt: skip
    graph = b.build()
    assert exports_equal_litert(graph, random_batch(graph, 4, seed=0)) == 4 * 5 * 7 * 3
