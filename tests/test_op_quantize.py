"""QUANTIZE: float32 -> int8/uint8 (AffineQuantize) and int8/uint8 requantize.

naive (rules.quantize_input; exact-Fraction requantize) == Numba == LiteRT
BUILTIN_REF on every element, ties and extremes included; float and uint8
model edges end to end.
"""

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
from edgecnn.errors import ModelError, UnsupportedOpError
from edgecnn.int8.graph import Int8Graph, Op, Tensor
from edgecnn.int8.rules import quantize_input


def float_edges(b: GraphBuilder, out_dtype: str = "float32") -> Int8Graph:
    """Put a float32 QUANTIZE in front of b's int8 graph and a DEQUANTIZE (or uint8 QUANTIZE) behind it."""
    tensors, ops = list(b.tensors), list(b.ops)
    x_int8, y_int8 = tensors[b.input], tensors[b.x]
    tensors.append(Tensor("x_float", x_int8.shape, "float32", [], []))
    if out_dtype == "float32":
        tensors.append(Tensor("y_float", y_int8.shape, "float32", [], []))
        tail = Op("DEQUANTIZE", [b.x], [len(tensors) - 1])
    else:  # the converter's uint8 output: same scale, zero point + 128
        tensors.append(Tensor("y_uint8", y_int8.shape, "uint8", y_int8.scale, y_int8.zero_point + 128))
        tail = Op("QUANTIZE", [b.x], [len(tensors) - 1])
    ops = [Op("QUANTIZE", [len(tensors) - 2], [b.input])] + ops + [tail]
    return Int8Graph(tensors, ops, [len(tensors) - 2], [len(tensors) - 1]).validate()


def example_graph(rng):
    """float32 -> QUANTIZE -> conv -> QUANTIZE (int8 -> uint8): both kinds of QUANTIZE."""
    return float_edges(GraphBuilder(rng, (1, 6, 6, 2), scale=0.0137, zero_point=-3).conv2d(3, 3, 3), "uint8")


def test_example_graph_equals_litert():
    graph = example_graph(np.random.default_rng(0))
    x = random_batch(graph, 4, seed=1)
    assert numba_equals_litert(graph, x) == 4 * 4 * 4 * 3
    naive_equals_numba(graph, x)


# ------------------------------------------------------------ float32 -> int8 / uint8

scales = st.sampled_from([1 / 255, 0.0078125, 0.0123, 0.25, 1.0, 3.7, 1e-5, 2e3])


def affine_graph(shape, scale, zero_point, dtype="int8"):
    return single_op("QUANTIZE", activation("x", shape, "float32"), activation("q", shape, dtype, scale, zero_point))


def tricky_floats(rng, scale, n, beyond_int32=True):
    """Exact halves of the scale, their float32 neighbours, zero, -0, and values far outside the range.

    beyond_int32 adds +-1e30, whose quotient leaves int32: there the kernel follows LiteRT on x86-64
    and rules.quantize_input clips (test_out_of_int32_quotients_follow_litert_on_x86).
    """
    s = np.float32(scale)
    k = rng.integers(-300, 300, size=n).astype(np.float32)
    halves = (k + np.float32(0.5)) * s
    near = np.nextafter(halves, np.where(rng.random(n) < 0.5, np.inf, -np.inf).astype(np.float32))
    wide = rng.normal(0, 200 * float(s), size=n).astype(np.float32)
    special = [0.0, -0.0, 127.5 * s, -128.5 * s, 254.5 * s] + ([1e30, -1e30] if beyond_int32 else [])
    special = np.array(special, dtype=np.float32)
    return np.concatenate([halves, near, wide, special]).astype(np.float32)


@settings(max_examples=60, deadline=None)
@given(scales, st.integers(-128, 127), st.booleans(), st.integers(0, 2**16))
def test_affine_naive_equals_numba(scale, zero_point, unsigned, seed):
    dtype, zp = ("uint8", zero_point + 128) if unsigned else ("int8", zero_point)
    values = tricky_floats(np.random.default_rng(seed), scale, 40, beyond_int32=False)
    graph = affine_graph((1, values.size), scale, zp, dtype)
    naive_equals_numba(graph, values.reshape(1, -1))


@settings(max_examples=25, deadline=None)
@given(scales, st.integers(-128, 127), st.booleans(), st.integers(0, 2**16))
def test_affine_numba_equals_litert(scale, zero_point, unsigned, seed):
    dtype, zp = ("uint8", zero_point + 128) if unsigned else ("int8", zero_point)
    values = tricky_floats(np.random.default_rng(seed), scale, 60)
    graph = affine_graph((1, 3, values.size // 3 + 1), scale, zp, dtype)
    x = np.resize(values, (2,) + graph.input.shape[1:]).astype(np.float32)
    numba_equals_litert(graph, x)


any_float32 = st.floats(width=32, allow_nan=True, allow_infinity=True)


@settings(max_examples=30, deadline=None)
@given(st.lists(any_float32, min_size=1, max_size=64), scales, st.integers(-128, 127), st.booleans())
def test_any_float32_input_numba_equals_litert_and_the_rule_inside_int32(values, scale, zero_point, unsigned):
    """Arbitrary float32 bit patterns: LiteRT on every element; rules.quantize_input wherever x / s fits int32."""
    dtype, zp = ("uint8", zero_point + 128) if unsigned else ("int8", zero_point)
    x = np.array(values, np.float32).reshape(1, -1)
    graph = affine_graph(x.shape, scale, zp, dtype)
    numba_equals_litert(graph, x)
    with np.errstate(all="ignore"):
        rounded = np.abs(x / np.float32(scale)) + np.float32(0.5)
    inside = np.isfinite(rounded) & (rounded < np.float32(2.0**31))
    if inside.any():
        got = Runtime(graph).run(x)[inside]
        qrange = (0, 255) if unsigned else (-128, 127)
        assert got.tolist() == quantize_input(x[inside], np.float32(scale), zp, *qrange).tolist()


def test_affine_ties_round_away_from_zero_after_the_float32_division():
    # x / s = 127.5 with zero point -128 gives 0 (round 128, then -128), not -1; 2.5 -> 3, -2.5 -> -3.
    graph = affine_graph((1, 4), 1.0, -128)
    x = np.array([[127.5, 2.5, -2.5, 0.49999997]], np.float32)
    got = Runtime(graph).run(x)
    assert got.tolist() == [[0, -125, -128, -128]]
    assert numba_equals_litert(graph, x) == 4


@pytest.mark.parametrize("zero_point", [-128, -5, 0, 5, 127])
def test_out_of_int32_quotients_follow_litert_on_x86(zero_point):
    """|x / s| >= 2^31, inf and NaN: C's cast is undefined; LiteRT (x86-64) gives INT32_MIN, then + zero point wraps."""
    x = np.array([[1e10, -1e10, np.inf, -np.inf, np.nan, 2.2e9, -2.2e9, 2.1e9, -2.1e9]], np.float32)
    graph = affine_graph((1, x.size), 1.0, zero_point)
    numba_equals_litert(graph, x)
    got = Runtime(graph).run(x)[0]
    expect_out = 127 if zero_point < 0 else -128
    assert got[:7].tolist() == [expect_out] * 7
    # inside int32, the rule (rules.quantize_input) and the kernel agree
    assert got[7:].tolist() == quantize_input(x[0, 7:], np.float32(1.0), zero_point).tolist()


# ------------------------------------------------------------ requantize: int8/uint8 -> int8/uint8

dtypes = st.sampled_from(["int8", "uint8"])
ratios = st.sampled_from([1.0, 0.5, 2.0, 0.999, 1.37, 0.013, 77.0, 1e-4, 1 / 3])


def requantize_graph(shape, in_dtype, in_zp, out_dtype, out_zp, in_scale, ratio):
    return single_op("QUANTIZE", activation("x", shape, in_dtype, in_scale, in_zp),
                     activation("q", shape, out_dtype, in_scale / ratio, out_zp))  # fmt: skip


def _zp(draw_int, dtype):
    return draw_int + (128 if dtype == "uint8" else 0)


@settings(max_examples=60, deadline=None)
@given(dtypes, dtypes, st.integers(-128, 127), st.integers(-128, 127), ratios, st.integers(0, 2**16))
def test_requantize_naive_equals_numba(in_dtype, out_dtype, in_zp, out_zp, ratio, seed):
    graph = requantize_graph((1, 5, 7), in_dtype, _zp(in_zp, in_dtype), out_dtype, _zp(out_zp, out_dtype), 0.02, ratio)
    naive_equals_numba(graph, random_batch(graph, 3, seed))


@settings(max_examples=30, deadline=None)
@given(dtypes, dtypes, st.integers(-128, 127), st.integers(-128, 127), ratios, st.integers(0, 2**16))
def test_requantize_numba_equals_litert(in_dtype, out_dtype, in_zp, out_zp, ratio, seed):
    graph = requantize_graph((1, 16, 16), in_dtype, _zp(in_zp, in_dtype), out_dtype, _zp(out_zp, out_dtype), 0.031,
                             ratio)  # fmt: skip
    numba_equals_litert(graph, random_batch(graph, 2, seed))


@pytest.mark.parametrize("in_dtype,out_dtype,in_zp,out_zp", [
    ("uint8", "int8", 128, 0), ("int8", "uint8", 0, 128), ("int8", "uint8", -11, 117), ("uint8", "int8", 3, -125),
])  # fmt: skip
def test_the_converters_uint8_edges_are_a_shift_of_128(in_dtype, out_dtype, in_zp, out_zp):
    """Same scale, zero points 128 apart: LiteRT's XOR-0x80 fast path; the general path gives the same bytes."""
    graph = requantize_graph((1, 256), in_dtype, in_zp, out_dtype, out_zp, 0.0078, 1.0)
    x = np.arange(256).astype(in_dtype).reshape(1, 256)
    assert numba_equals_litert(graph, x) == 256
    assert Runtime(graph).run(x).astype(int).tolist() == [(x.astype(int) + out_zp - in_zp).tolist()[0]]


# ------------------------------------------------------------ whole models with float / uint8 edges


@pytest.mark.parametrize("out_dtype", ["float32", "uint8"])
@pytest.mark.parametrize("batch", [1, 5])
def test_float_in_float_out_end_to_end(out_dtype, batch):
    """Runtime(graph).run(float_array) -> float32 (or uint8), identical to LiteRT on every element."""
    b = GraphBuilder(np.random.default_rng(7), (1, 8, 8, 1), scale=1 / 255, zero_point=-128)
    b.conv2d(4, 3, 3, act="RELU").pool("MAX_POOL_2D").flatten().fully_connected(5)
    graph = float_edges(b, out_dtype)
    x = np.random.default_rng(batch).uniform(-0.2, 1.2, size=(batch, 8, 8, 1)).astype(np.float32)
    y = Runtime(graph).run(x)
    assert y.dtype == np.dtype(out_dtype) and y.shape == (batch, 5)
    numba_equals_litert(graph, x)
    naive_equals_numba(graph, x)


def test_uint8_in_uint8_out_like_the_converter():
    b = GraphBuilder(np.random.default_rng(3), (1, 6, 6, 2), scale=0.0078, zero_point=0).conv2d(3, 3, 3)
    tensors, ops = list(b.tensors), list(b.ops)
    x8, y8 = tensors[b.input], tensors[b.x]
    tensors += [Tensor("x_u8", x8.shape, "uint8", x8.scale, x8.zero_point + 128),
                Tensor("y_u8", y8.shape, "uint8", y8.scale, y8.zero_point + 128)]  # fmt: skip
    n = len(tensors)
    graph = Int8Graph(tensors, [Op("QUANTIZE", [n - 2], [b.input])] + ops + [Op("QUANTIZE", [b.x], [n - 1])],
                      [n - 2], [n - 1]).validate()  # fmt: skip
    x = random_batch(graph, 3, seed=0)
    assert x.dtype == np.uint8 and numba_equals_litert(graph, x) == 3 * 4 * 4 * 3


# ------------------------------------------------------------ refusals


def test_refusals_name_the_op():
    x = activation("x", (1, 4), "float32")
    int16 = Int8Graph([x, Tensor("q16", (1, 4), "int16", [0.1], [0]), activation("q", (1, 4))],
                      [Op("QUANTIZE", [0], [1]), Op("QUANTIZE", [1], [2])], [0], [2])  # fmt: skip
    with pytest.raises(UnsupportedOpError, match=r"op 0 \(QUANTIZE\).*int8 or uint8"):
        prepare_graph(int16)
    per_channel = Tensor("q", (1, 4), "int8", [0.1, 0.2, 0.3, 0.4], [0, 0, 0, 0], 1)
    with pytest.raises(UnsupportedOpError, match="per channel"):
        prepare_graph(single_op("QUANTIZE", x, per_channel))
    with pytest.raises(ModelError, match="QUANTIZE.*too large"):  # in_s / out_s needs a shift above 31
        prepare_graph(requantize_graph((1, 4), "int8", 0, "int8", 0, 1.0, 2.0**40))
    with pytest.raises(ModelError, match="shape"):
        prepare_graph(single_op("QUANTIZE", x, activation("q", (1, 5))))


# ------------------------------------------------------------ C (gcc) and ONNX (onnxruntime) == LiteRT


def test_exports_equal_litert_on_the_example_and_float_edges():
    graph = example_graph(np.random.default_rng(0))
    assert exports_equal_litert(graph, random_batch(graph, 3, seed=4)) == 3 * 4 * 4 * 3
    b = GraphBuilder(np.random.default_rng(7), (1, 8, 8, 1), scale=1 / 255, zero_point=-128)
    graph = float_edges(b.conv2d(4, 3, 3, act="RELU").pool("MAX_POOL_2D").flatten().fully_connected(5))
    x = np.random.default_rng(1).uniform(-0.2, 1.2, size=(4, 8, 8, 1)).astype(np.float32)
    assert exports_equal_litert(graph, x) == 20


@pytest.mark.parametrize("zero_point", [-128, -5, 0, 7, 127])
def test_exports_quantize_ties_and_extremes_like_litert(zero_point):
    """Halves, float32 neighbours, and quotients outside int32 (inf, NaN, 3e9): C, ONNX and LiteRT agree."""
    values = tricky_floats(np.random.default_rng(zero_point + 200), 0.0123, 60)
    values = np.concatenate([values, np.array([np.inf, -np.inf, np.nan, 3e9, -3e9], np.float32)])
    graph = affine_graph((1, values.size), 0.0123, zero_point)
    assert exports_equal_litert(graph, np.stack([values, values[::-1]])) == 2 * values.size


@pytest.mark.parametrize("in_dtype,out_dtype", [("int8", "int8"), ("uint8", "int8"), ("int8", "uint8"),
                                                ("uint8", "uint8")])  # fmt: skip
def test_exports_requantize_like_litert(in_dtype, out_dtype):
    for k, ratio in enumerate([1.0, 0.37, 2.9]):
        graph = requantize_graph((1, 256), in_dtype, _zp(-9 + 40 * k, in_dtype), out_dtype, _zp(17 - 30 * k, out_dtype),
                                 0.02, ratio)  # fmt: skip
        x = np.arange(256).astype(in_dtype).reshape(1, 256)
        assert exports_equal_litert(graph, np.concatenate([x, x[:, ::-1]])) == 512
