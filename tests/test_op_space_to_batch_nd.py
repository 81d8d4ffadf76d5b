"""SPACE_TO_BATCH_ND: naive == Numba == LiteRT BUILTIN_REF, and a batch of N images == N single runs.

Keras 3 writes every dilated convolution as SPACE_TO_BATCH_ND -> CONV_2D
(VALID, no dilation) -> BATCH_TO_SPACE_ND; `dilated_conv` builds that chain
the way TensorFlow pads it. Between the two ops a batch-1 image is
block_h * block_w rows; the runtime keeps each image's rows together, LiteRT
(run on N images) interleaves them, and both give the same final outputs.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from io_spatial_cases import (activation, batch_equals_single_runs, exports_equal_litert, exports_equal_runtime,
                              int32_constant, naive_equals_numba, numba_equals_litert, random_batch,
                              single_op)  # fmt: skip
from tflite_models import GraphBuilder

from edgecnn.deploy.litert import LiteRTRunner
from edgecnn.deploy.ops import REGISTRY
from edgecnn.deploy.ops.space_batch_common import restore_block_batches
from edgecnn.deploy.runtime import Runtime
from edgecnn.deploy.runtime.prepare import prepare_op
from edgecnn.deploy.tflite import read_tflite, to_bytes
from edgecnn.errors import ModelError, ShapeError
from edgecnn.int8.graph import Int8Graph, Op, Tensor


def _constant(b: GraphBuilder, name: str, values) -> int:
    values = np.asarray(values, np.int32)
    return b._add(Tensor(f"{name}{len(b.ops)}", values.shape, "int32", [], [], 0, values))


def space_to_batch(b: GraphBuilder, block, paddings) -> GraphBuilder:
    n, h, w, c = b.shape
    t = b.tensors[b.x]
    shape = (n * block[0] * block[1], (h + sum(paddings[0])) // block[0], (w + sum(paddings[1])) // block[1], c)
    inputs = [b.x, _constant(b, "block", block), _constant(b, "paddings", paddings)]
    return b._next("SPACE_TO_BATCH_ND", inputs, {}, shape, float(t.scale[0]), int(t.zero_point[0]))


def batch_to_space(b: GraphBuilder, block, crops) -> GraphBuilder:
    n, h, w, c = b.shape
    t = b.tensors[b.x]
    shape = (n // (block[0] * block[1]), h * block[0] - sum(crops[0]), w * block[1] - sum(crops[1]), c)
    inputs = [b.x, _constant(b, "block", block), _constant(b, "crops", crops)]
    return b._next("BATCH_TO_SPACE_ND", inputs, {}, shape, float(t.scale[0]), int(t.zero_point[0]))


def dilated_conv(b: GraphBuilder, out_ch, k, dilation, padding="SAME", act="NONE") -> GraphBuilder:
    """Keras 3 / TensorFlow's dilated Conv2D: S2B (pads to a multiple of the block) -> VALID conv -> B2S (crops)."""
    _, h, w, _ = b.shape
    pads, crops = [], []
    for size, d in zip((h, w), dilation):
        eff = (k - 1) * d + 1
        start = (eff - 1) // 2 if padding == "SAME" else 0
        end = eff - 1 - start if padding == "SAME" else 0
        extra = -(size + start + end) % d
        pads.append([start, end + extra])
        crops.append([0, extra])
    space_to_batch(b, dilation, pads)
    b.conv2d(out_ch, k, k, padding="VALID", act=act)
    return batch_to_space(b, dilation, crops)


def example_graph(rng):
    """conv -> dilated 3x3 conv (rate 2, SAME) as S2B -> CONV_2D -> B2S -> conv: the Keras 3 form."""
    b = GraphBuilder(rng, (1, 9, 9, 2), scale=0.031, zero_point=-20).conv2d(3, 1, 1, act="RELU")
    return dilated_conv(b, 4, 3, (2, 2), "SAME", act="RELU").conv2d(2, 1, 1).build()


def test_example_graph_equals_litert_for_one_and_many_images():
    graph = example_graph(np.random.default_rng(0))
    assert [op.kind for op in graph.ops] == ["CONV_2D", "SPACE_TO_BATCH_ND", "CONV_2D", "BATCH_TO_SPACE_ND", "CONV_2D"]
    assert graph.tensors[graph.ops[1].outputs[0]].shape == (4, 7, 7, 3)  # 9 + 2 + 2 + 1: 4 rows of 7x7 per image
    for batch in (1, 2, 7):
        x = random_batch(graph, batch, seed=batch)
        assert numba_equals_litert(graph, x) == batch * 9 * 9 * 2
        naive_equals_numba(graph, x)
    batch_equals_single_runs(graph, random_batch(graph, 6, seed=11))


@st.composite
def dilated_cases(draw):
    h, w = draw(st.integers(1, 11)), draw(st.integers(1, 11))
    k = draw(st.integers(1, 3))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = draw(st.sampled_from(["SAME", "VALID"]))
    if padding == "VALID" and (h <= (k - 1) * dilation[0] or w <= (k - 1) * dilation[1]):
        padding = "SAME"
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    b = GraphBuilder(rng, (1, h, w, draw(st.integers(1, 3))), scale=0.02, zero_point=draw(st.integers(-128, 127)))
    return dilated_conv(b, draw(st.integers(1, 3)), k, dilation, padding).build()


@settings(max_examples=40, deadline=None)
@given(dilated_cases(), st.integers(1, 4), st.integers(0, 2**16))
def test_dilated_conv_naive_equals_numba(graph, batch, seed):
    naive_equals_numba(graph, random_batch(graph, batch, seed))


@settings(max_examples=30, deadline=None)
@given(dilated_cases(), st.integers(1, 4), st.integers(0, 2**16))
def test_dilated_conv_numba_equals_litert(graph, batch, seed):
    numba_equals_litert(graph, random_batch(graph, batch, seed))


# ------------------------------------------------------------ SPACE_TO_BATCH_ND alone


def s2b_flattened(shape, block, paddings, zero_point=-100) -> Int8Graph:
    """x -> SPACE_TO_BATCH_ND -> RESHAPE [-1, everything]: the op's whole output as one batch-1 row."""
    rank = len(shape)
    x = activation("x", shape, "int8", 0.1, zero_point)
    h = (shape[1] + sum(paddings[0])) // block[0]
    if rank == 4:
        w = (shape[2] + sum(paddings[1])) // block[1]
        mid_shape = (shape[0] * block[0] * block[1], h, w, shape[3])
    else:
        mid_shape = (shape[0] * block[0], h, shape[2])
    mid = activation("mid", mid_shape, "int8", 0.1, zero_point)
    flat = activation("flat", (1, int(np.prod(mid_shape))), "int8", 0.1, zero_point)
    tensors = [x, mid, flat, int32_constant("block", block), int32_constant("paddings", paddings)]
    ops = [Op("SPACE_TO_BATCH_ND", [0, 3, 4], [1]), Op("RESHAPE", [1], [2], {"new_shape": [-1, flat.shape[1]]})]
    return Int8Graph(tensors, ops, [0], [2]).validate()


@st.composite
def s2b_cases(draw):
    rank = draw(st.sampled_from([3, 4]))
    spatial = rank - 2
    block = [draw(st.integers(1, 3)) for _ in range(spatial)]
    sizes, paddings = [], []
    for d in range(spatial):
        size = draw(st.integers(1, 8))
        before = draw(st.integers(0, 3))
        after = draw(st.integers(0, 3))
        after += -(size + before + after) % block[d]
        sizes.append(size)
        paddings.append([before, after])
    shape = (1, *sizes, draw(st.integers(1, 3)))
    return shape, block, paddings, draw(st.integers(-128, 127))


@settings(max_examples=60, deadline=None)
@given(s2b_cases(), st.integers(1, 4), st.integers(0, 2**16))
def test_naive_equals_numba_alone(case, batch, seed):
    graph = s2b_flattened(*case)
    naive_equals_numba(graph, random_batch(graph, batch, seed))


@settings(max_examples=30, deadline=None)
@given(s2b_cases(), st.integers(0, 2**16))
def test_numba_equals_litert_alone_and_per_image(case, seed):
    """One image: the whole output in TFLite's row order. Several: each image as its own LiteRT run."""
    graph = s2b_flattened(*case)
    x = random_batch(graph, 3, seed)
    runner, runtime = LiteRTRunner(to_bytes(graph), "ref"), Runtime(graph)
    got = runtime.run(x)
    for n in range(3):
        assert np.array_equal(got[n:n + 1], runner.run(x[n:n + 1]))


def test_padding_is_the_zero_point_and_rows_follow_tflites_order():
    # A 2x2 image, block 2x2, one pixel of padding on top and left: the 4 output rows hold
    # block offsets (0,0), (0,1), (1,0), (1,1); the padded 4x4 grid is zp-filled except the image.
    graph = s2b_flattened((1, 2, 2, 1), (2, 2), [[1, 1], [1, 1]], zero_point=-100)
    x = np.array([[[[1], [2]], [[3], [4]]]], np.int8)
    got = Runtime(graph).run(x).reshape(4, 2, 2)
    z = -100
    assert got.tolist() == [[[z, z], [z, 4]], [[z, z], [3, z]], [[z, 2], [z, z]], [[1, z], [z, z]]]
    assert np.array_equal(got.reshape(1, -1), LiteRTRunner(to_bytes(graph), "ref").run(x))


def test_options_table_absent_and_versions():
    graph = s2b_flattened((1, 4, 4, 1), (2, 2), [[0, 0], [0, 0]])
    back = read_tflite(to_bytes(graph))
    assert back.ops[0].options == {} and back.ops[0].kind == "SPACE_TO_BATCH_ND"
    assert REGISTRY["SPACE_TO_BATCH_ND"].version(graph, graph.ops[0]) == 2
    rank3 = s2b_flattened((1, 4, 3), (2,), [[0, 0]])
    assert REGISTRY["SPACE_TO_BATCH_ND"].version(rank3, rank3.ops[0]) == 3


def test_refusals_name_the_op():
    x = activation("x", (1, 4, 4, 1))
    block, pads = int32_constant("block", [2, 2]), int32_constant("paddings", [[0, 1], [0, 0]])
    with pytest.raises(ShapeError, match=r"SPACE_TO_BATCH_ND.*not a multiple of the block"):
        prepare_op(single_op("SPACE_TO_BATCH_ND", x, activation("y", (4, 2, 2, 1)), [block, pads]), 0)
    with pytest.raises(ModelError, match="share scale and zero point"):
        prepare_op(single_op("SPACE_TO_BATCH_ND", x, activation("y", (4, 2, 2, 1), zero_point=3),
                             [block, int32_constant("paddings", [[0, 0], [0, 0]])]), 0)  # fmt: skip
    with pytest.raises(ShapeError, match="non-negative"):
        prepare_op(single_op("SPACE_TO_BATCH_ND", x, activation("y", (4, 2, 2, 1)),
                             [block, int32_constant("paddings", [[-1, 1], [0, 0]])]), 0)  # fmt: skip


def converter_style(graph: Int8Graph) -> Int8Graph:
    """What the TensorFlow converter records: batch 1 for every tensor, also between S2B and B2S."""
    g = copy.deepcopy(graph)
    for t in g.tensors:
        if not t.is_constant and t.shape:
            t.shape = (1,) + tuple(t.shape[1:])
    return g


def test_restore_block_batches_fixes_the_converters_batch_1():
    graph = example_graph(np.random.default_rng(5))
    recorded = converter_style(graph)
    with pytest.raises(ShapeError, match=r"SPACE_TO_BATCH_ND.*converter.*restore_block_batches"):
        prepare_op(recorded, 1)
    restored = restore_block_batches(recorded)
    assert [t.shape for t in restored.tensors] == [t.shape for t in graph.tensors]
    assert restore_block_batches(restored) is restored  # edgecnn's own shapes are left alone
    assert [t.shape for t in restored.tensors] == [t.shape for t in graph.tensors]


@pytest.mark.parametrize("batch", [1, 3])
def test_converter_files_with_batch_1_between_s2b_and_b2s_run_like_litert(batch):
    """The reader restores the block batches; LiteRT recomputes the shapes itself. Same outputs."""
    graph = example_graph(np.random.default_rng(5))
    data = to_bytes(converter_style(graph))
    read = read_tflite(data)
    assert [t.shape for t in read.tensors] == [t.shape for t in graph.tensors]
    x = random_batch(read, batch, seed=batch)
    assert np.array_equal(Runtime(read).run(x), LiteRTRunner(data, "ref").run(x))


# ------------------------------------------------------------ C (gcc) and ONNX (onnxruntime)


@pytest.mark.parametrize("case", [((1, 5, 4, 2), (2, 3), [[1, 2], [0, 2]]), ((1, 6, 3), (3,), [[2, 1]]),
                                  ((1, 2, 2, 1), (2, 2), [[1, 1], [1, 1]])])  # fmt: skip
def test_exports_alone_equal_litert_and_keep_images_apart(case):
    graph = s2b_flattened(*case, zero_point=-100)
    assert exports_equal_litert(graph, random_batch(graph, 1, seed=0)) == graph.output.shape[1]
    exports_equal_runtime(graph, random_batch(graph, 4, seed=1))  # N images: each image's rows together


@pytest.mark.parametrize("batch", [1, 4])
def test_exports_of_the_dilated_conv_equal_litert(batch):
    """S2B -> CONV_2D -> B2S in C (the conv steps through the 4 rows of each image) and ONNX, == LiteRT."""
    graph = example_graph(np.random.default_rng(0))
    assert exports_equal_litert(graph, random_batch(graph, batch, seed=3)) == batch * 9 * 9 * 2


@settings(max_examples=8, deadline=None)
@given(dilated_cases(), st.integers(1, 3), st.integers(0, 2**16))
def test_exports_of_drawn_dilated_convs_equal_litert(graph, batch, seed):
    exports_equal_litert(graph, random_batch(graph, batch, seed))
