"""DEQUANTIZE: int8/uint8 -> float32; naive == Numba == LiteRT BUILTIN_REF in every bit of every float."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from io_spatial_cases import (activation, exports_equal_litert, naive_equals_numba, numba_equals_litert, random_batch,
                              single_op)  # fmt: skip
from tflite_models import GraphBuilder

from edgecnn.deploy.runtime import Runtime
from edgecnn.deploy.runtime.prepare import prepare_graph
from edgecnn.errors import UnsupportedOpError
from edgecnn.int8.graph import Int8Graph, Op, Tensor


def example_graph(rng):
    """int8 -> conv -> DEQUANTIZE -> float32 output (the converter's float output edge)."""
    b = GraphBuilder(rng, (1, 6, 6, 2)).conv2d(3, 3, 3, act="RELU")
    y = b.tensors[b.x]
    tensors = list(b.tensors) + [Tensor("y_float", y.shape, "float32", [], [])]
    ops = list(b.ops) + [Op("DEQUANTIZE", [b.x], [len(tensors) - 1])]
    return Int8Graph(tensors, ops, [b.input], [len(tensors) - 1]).validate()


def test_example_graph_equals_litert():
    graph = example_graph(np.random.default_rng(0))
    x = random_batch(graph, 4, seed=2)
    assert numba_equals_litert(graph, x) == 4 * 4 * 4 * 3
    naive_equals_numba(graph, x)


def dequantize_graph(shape, dtype, scale, zero_point):
    return single_op("DEQUANTIZE", activation("q", shape, dtype, scale, zero_point), activation("y", shape, "float32"))


# float32 scales from the denormal end to the overflow end: products round, underflow and overflow.
scales = st.one_of(
    st.floats(2.0**-20, 1024.0, width=32),
    st.sampled_from([1 / 255, 1 / 256, 0.1, 1.0, 3.0, 1e-40, 1.4e-45, 1e-38, 3e38, 1e36]),
)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["int8", "uint8"]), scales, st.integers(-128, 127), st.integers(0, 2**16))
def test_naive_equals_numba(dtype, scale, zero_point, seed):
    graph = dequantize_graph((1, 4, 9), dtype, scale, zero_point + (128 if dtype == "uint8" else 0))
    naive_equals_numba(graph, random_batch(graph, 2, seed))


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(["int8", "uint8"]), scales, st.integers(-128, 127))
def test_numba_equals_litert_on_every_input_value(dtype, scale, zero_point):
    graph = dequantize_graph((1, 256), dtype, scale, zero_point + (128 if dtype == "uint8" else 0))
    x = np.arange(256).astype(dtype).reshape(1, 256)  # every value once
    assert numba_equals_litert(graph, np.concatenate([x, x[:, ::-1]])) == 512


def test_rounding_is_one_float32_rounding_of_the_exact_product():
    # 0.1f * 3 is 0.30000001192...; the exact product rounds to 0.3f + 1 ulp, the same as a float32 multiply.
    graph = dequantize_graph((1, 2), "int8", 0.1, 0)
    y = Runtime(graph).run(np.array([[3, -3]], np.int8))
    assert y.dtype == np.float32
    assert y.tolist() == [[float(np.float32(0.1) * np.float32(3)), float(np.float32(0.1) * np.float32(-3))]]


def test_per_channel_and_float_inputs_are_refused():
    per_channel = Tensor("q", (1, 2), "int8", [0.1, 0.2], [0, 0], 1)
    with pytest.raises(UnsupportedOpError, match=r"DEQUANTIZE.*per channel"):
        prepare_graph(single_op("DEQUANTIZE", per_channel, activation("y", (1, 2), "float32")))
    with pytest.raises(UnsupportedOpError, match="DEQUANTIZE gives float32"):
        prepare_graph(single_op("DEQUANTIZE", activation("q", (1, 2)), activation("y", (1, 2))))


@pytest.mark.parametrize("dtype,scale,zero_point", [("int8", 0.1, 0), ("int8", 1 / 255, -128), ("uint8", 0.0137, 131),
                                                    ("int8", 3e38, 5), ("uint8", 1e-40, 0)])  # fmt: skip
def test_exports_equal_litert_bit_for_bit(dtype, scale, zero_point):
    """C ((float)((double)scale * (q - zp))) and ONNX (float32 Mul of exact factors) == LiteRT on every value."""
    graph = dequantize_graph((1, 256), dtype, scale, zero_point)
    x = np.arange(256).astype(dtype).reshape(1, 256)
    assert exports_equal_litert(graph, np.concatenate([x, x[:, ::-1]])) == 512


def test_example_exports_equal_litert():
    graph = example_graph(np.random.default_rng(0))
    assert exports_equal_litert(graph, random_batch(graph, 3, seed=5)) == 3 * 4 * 4 * 3
