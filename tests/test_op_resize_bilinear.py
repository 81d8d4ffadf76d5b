"""RESIZE_BILINEAR (int8, ResizeBilinearInteger's 10-bit fixed point): naive == Numba == LiteRT BUILTIN_REF."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from io_spatial_cases import (activation, batch_equals_single_runs, exports_equal_litert, int32_constant,
                              naive_equals_numba, numba_equals_litert, random_batch, single_op)  # fmt: skip
from tflite_models import GraphBuilder

from edgecnn.deploy.ops.resize_bilinear import interpolation_table
from edgecnn.deploy.runtime.prepare import prepare_graph
from edgecnn.errors import ModelError, ShapeError
from edgecnn.int8.graph import Int8Graph, Op, Tensor

KIND = "RESIZE_BILINEAR"


def resize(b: GraphBuilder, kind: str, size, align_corners=False, half_pixel_centers=False) -> GraphBuilder:
    """Append a resize of b's current tensor to `size`, keeping its quantization."""
    n, _, _, c = b.shape
    t = b.tensors[b.x]
    size_t = b._add(Tensor(f"size{len(b.ops)}", (2,), "int32", [], [], 0, np.asarray(size, np.int32)))
    options = {"align_corners": align_corners, "half_pixel_centers": half_pixel_centers}
    return b._next(kind, [b.x, size_t], options, (n, size[0], size[1], c), float(t.scale[0]), int(t.zero_point[0]))


def example_graph(rng):
    """conv -> RESIZE_BILINEAR x2 (half-pixel centers, Keras UpSampling2D bilinear) -> conv."""
    b = GraphBuilder(rng, (1, 5, 5, 2)).conv2d(3, 3, 3, padding="SAME")
    return resize(b, KIND, (10, 10), half_pixel_centers=True).conv2d(2, 1, 1).build()


def test_example_graph_equals_litert():
    graph = example_graph(np.random.default_rng(0))
    x = random_batch(graph, 3, seed=0)
    assert numba_equals_litert(graph, x) == 3 * 10 * 10 * 2
    naive_equals_numba(graph, x)
    batch_equals_single_runs(graph, x)


def resize_graph(kind, in_hw, out_hw, depth, align, half, zero_point=0):
    x = activation("x", (1, *in_hw, depth), "int8", 0.05, zero_point)
    y = activation("y", (1, *out_hw, depth), "int8", 0.05, zero_point)
    return single_op(kind, x, y, [int32_constant("size", out_hw)],
                     {"align_corners": align, "half_pixel_centers": half})  # fmt: skip


@st.composite
def cases(draw, max_in=9, max_out=20):
    in_hw = (draw(st.integers(1, max_in)), draw(st.integers(1, max_in)))
    out_hw = (draw(st.integers(1, max_out)), draw(st.integers(1, max_out)))
    align, half = draw(st.sampled_from([(False, False), (True, False), (False, True)]))
    return in_hw, out_hw, draw(st.integers(1, 3)), align, half


@settings(max_examples=80, deadline=None)
@given(cases(), st.integers(0, 2**16))
def test_naive_equals_numba(case, seed):
    graph = resize_graph(KIND, *case)
    naive_equals_numba(graph, random_batch(graph, 2, seed))


@settings(max_examples=40, deadline=None)
@given(cases(max_in=12, max_out=30), st.integers(0, 2**16))
def test_numba_equals_litert(case, seed):
    graph = resize_graph(KIND, *case)
    numba_equals_litert(graph, random_batch(graph, 3, seed))


@pytest.mark.parametrize("in_hw,out_hw", [((4, 4), (8, 8)), ((7, 5), (3, 2)), ((1, 1), (5, 5)), ((3, 3), (1, 1)),
                                          ((2, 9), (17, 4)), ((6, 6), (6, 6))])  # fmt: skip
@pytest.mark.parametrize("align,half", [(False, False), (True, False), (False, True)])
def test_up_and_down_sampling_equal_litert(in_hw, out_hw, align, half):
    """Constant extreme images and random ones: the +-2^19 rounding on both signs, every option."""
    graph = resize_graph(KIND, in_hw, out_hw, 2, align, half, zero_point=-7)
    x = np.concatenate([np.full((1, *in_hw, 2), -128, np.int8), np.full((1, *in_hw, 2), 127, np.int8),
                        random_batch(graph, 2, seed=sum(in_hw + out_hw))])  # fmt: skip
    numba_equals_litert(graph, x)


def test_tables_match_a_worked_example():
    # 2 -> 4, half-pixel: scale_10 = 512; positions 512 * i + 256 - 512 = -256, 256, 768, 1280.
    lower, upper, frac = interpolation_table(2, 4, False, True)
    assert lower.tolist() == [0, 0, 0, 1] and upper.tolist() == [0, 1, 1, 1] and frac.tolist() == [-256, 256, 768, 256]


def test_refusals_name_the_op():
    with pytest.raises(ModelError, match=r"RESIZE_BILINEAR.*half_pixel_centers needs align_corners False"):
        prepare_graph(resize_graph(KIND, (3, 3), (6, 6), 1, True, True))
    with pytest.raises(ShapeError, match=r"RESIZE_BILINEAR.*read past"):  # 3 -> 2000: scale_10 rounds 1.536 up to 2
        prepare_graph(resize_graph(KIND, (3, 3), (2000, 3), 1, False, True))
    x = activation("x", (1, 3, 3, 1))
    with pytest.raises(ShapeError, match="produces"):
        prepare_graph(single_op(KIND, x, activation("y", (1, 5, 5, 1)), [int32_constant("size", (6, 6))]))
    with pytest.raises(ShapeError, match="positive"):
        prepare_graph(single_op(KIND, x, activation("y", (1, 0, 5, 1)), [int32_constant("size", (0, 5))]))


def resize_fan(kind, in_hw, sizes, flags, depth=2, zero_point=-7) -> Int8Graph:
    """One input resized to every size with every flag pair, each result a graph output (one C compile for all)."""
    tensors = [activation("x", (1, *in_hw, depth), "int8", 0.05, zero_point)]
    ops, outputs = [], []
    for k, (size, (align, half)) in enumerate((s, f) for s in sizes for f in flags):
        tensors += [activation(f"y{k}", (1, *size, depth), "int8", 0.05, zero_point), int32_constant(f"size{k}", size)]
        ops.append(Op(kind, [0, len(tensors) - 1], [len(tensors) - 2],
                      {"align_corners": align, "half_pixel_centers": half}))  # fmt: skip
        outputs.append(len(tensors) - 2)
    return Int8Graph(tensors, ops, [0], outputs).validate()


def test_exports_equal_litert():
    """C (gcc) and ONNX (onnxruntime) == LiteRT on up- and down-sampling with every option, and on the example."""
    graph = resize_fan(KIND, (5, 7), [(10, 14), (9, 4), (1, 3), (5, 7), (16, 2)],
                       [(False, False), (True, False), (False, True)])  # fmt: skip
    x = np.concatenate([np.full((1, 5, 7, 2), -128, np.int8), np.full((1, 5, 7, 2), 127, np.int8),
                        random_batch(graph, 2, seed=9)])  # fmt: skip
    assert exports_equal_litert(graph, x) > 0
    example = example_graph(np.random.default_rng(0))
    assert exports_equal_litert(example, random_batch(example, 2, seed=1)) == 2 * 10 * 10 * 2


@settings(max_examples=6, deadline=None)
@given(st.tuples(st.integers(1, 9), st.integers(1, 9)),
       st.lists(st.tuples(st.integers(1, 20), st.integers(1, 20)), min_size=1, max_size=3), st.integers(0, 2**16))
def test_exports_of_drawn_sizes_equal_litert(in_hw, sizes, seed):
    graph = resize_fan(KIND, in_hw, sizes, [(False, False), (True, False), (False, True)])
    exports_equal_litert(graph, random_batch(graph, 2, seed))
