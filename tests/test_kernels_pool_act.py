"""Pooling, LOGISTIC/TANH tables, SOFTMAX and RESHAPE (Numba) against references and docs/int8.md."""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from edgecnn.int8.graph import Int8Graph, Op, Tensor
from edgecnn.deploy.runtime import naive
from edgecnn.deploy.runtime.activations import logistic, tanh
from edgecnn.deploy.runtime.lookup import logistic_table, tanh_table
from edgecnn.int8.padding import compute_padding
from edgecnn.deploy.runtime.params import LookupTableParams, PoolParams, ReshapeParams
from edgecnn.deploy.runtime.pooling import average_pool_2d, divide_rounding_half_away, max_pool_2d
from edgecnn.deploy.runtime.prepare import prepare_op
from edgecnn.deploy.runtime.reshape import reshape
from edgecnn.deploy.runtime.softmax import softmax

f32 = np.float32

# --- pooling ---------------------------------------------------------------------------------


@st.composite
def pool_case(draw):
    padding = draw(st.sampled_from(["SAME", "VALID"]))
    dims = []
    for _ in range(2):
        size, k, stride = draw(st.integers(1, 9)), draw(st.integers(1, 4)), draw(st.integers(1, 3))
        out, before, _ = compute_padding(padding, size, k, stride)
        assume(out >= 1)
        dims.append((size, k, stride, out, before))
    lo = draw(st.integers(-128, 127))
    hi = draw(st.integers(lo, 127))
    (h, kh, sh, oh, pt), (w, kw, sw, ow, pl) = dims
    return PoolParams(sh, sw, kh, kw, pt, pl, lo, hi), (h, w), (oh, ow)


@pytest.mark.parametrize(
    "kernel, reference", [(max_pool_2d, naive.max_pool_2d), (average_pool_2d, naive.average_pool_2d)]
)
@settings(max_examples=60, deadline=None)
@given(case=pool_case(), batches=st.integers(1, 3), depth=st.integers(1, 5), seed=st.integers(0, 2**32 - 1))
def test_pooling_matches_naive(kernel, reference, case, batches, depth, seed):
    params, (h, w), (oh, ow) = case
    x = np.random.default_rng(seed).integers(-128, 128, (batches, h, w, depth), dtype=np.int8)
    out_shape = (batches, oh, ow, depth)
    out = np.full(out_shape, 99, dtype=np.int8)
    kernel(params, x.shape, x.ravel(), out_shape, out.ravel())
    np.testing.assert_array_equal(out, reference(params, x.shape, x.ravel(), out_shape))


def test_average_rounding_examples_from_int8_md():
    assert [divide_rounding_half_away(s, n) for s, n in ((-7, 2), (-5, 4), (-6, 4), (7, 2))] == [-4, -1, -2, 4]
    # Through the kernel: a 2x2 window of [-1, -2, -1, -2] sums to -6 over 4 -> -2 (not -1).
    params = PoolParams(2, 2, 2, 2, 0, 0, -128, 127)
    x = np.array([-1, -2, -1, -2], np.int8)
    out = np.zeros(1, np.int8)
    average_pool_2d(params, (1, 2, 2, 1), x, (1, 1, 1, 1), out)
    assert out[0] == -2


def test_pool_ignores_padding_in_max_and_count():
    # SAME 3x3 stride 1 on a 2x2 image of -100s: padding must not become 0 (max) nor count (average).
    _, pad, _ = compute_padding("SAME", 2, 3, 1)
    params = PoolParams(1, 1, 3, 3, pad, pad, -128, 127)
    x = np.full(4, -100, np.int8)
    for kernel in (max_pool_2d, average_pool_2d):
        out = np.zeros(4, np.int8)
        kernel(params, (1, 2, 2, 1), x, (1, 2, 2, 1), out)
        assert out.tolist() == [-100] * 4


# --- LOGISTIC / TANH ---------------------------------------------------------------------------


def test_table_examples_from_int8_md():
    lg = logistic_table(f32(0.1), 3, f32(1 / 256), -128)
    th = tanh_table(f32(0.1), 3, f32(1 / 128), 0)
    assert (lg[13 + 128], th[13 + 128]) == (59, 97)
    assert (lg[-7 + 128], th[-7 + 128]) == (-59, -97)
    assert lg[127 + 128] == 127


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(["LOGISTIC", "TANH"]), st.floats(1e-3, 1.0), st.integers(-128, 127), st.floats(1e-3, 0.1),
       st.integers(-128, 127))  # fmt: skip
def test_tables_match_per_entry_float32(kind, in_scale, in_zp, out_scale, out_zp):
    build = logistic_table if kind == "LOGISTIC" else tanh_table
    table = build(f32(in_scale), in_zp, f32(out_scale), out_zp)
    expected = [naive.lookup_entry(kind, v, in_scale, in_zp, out_scale, out_zp) for v in range(-128, 128)]
    assert table.dtype == np.int8 and table.tolist() == expected


@pytest.mark.parametrize("kernel, build", [(logistic, logistic_table), (tanh, tanh_table)])
def test_lookup_kernels(kernel, build):
    params = LookupTableParams(build(f32(0.05), -10, f32(1 / 256), -128))
    x = np.arange(-128, 128, dtype=np.int8).reshape(4, 64)
    out = np.zeros_like(x)
    kernel(params, x.shape, x.ravel(), out.shape, out.ravel())
    np.testing.assert_array_equal(out.ravel(), params.table)  # input v lands on entry v + 128
    np.testing.assert_array_equal(out, naive.logistic(params, x.shape, x.ravel(), x.shape))


# --- SOFTMAX -----------------------------------------------------------------------------------


def softmax_graph(depth, in_scale, in_zp, beta, out_scale=1 / 256, out_zp=-128):
    tensors = [
        Tensor("x", (1, depth), "int8", f32(in_scale), in_zp),
        Tensor("y", (1, depth), "int8", f32(out_scale), out_zp),
    ]
    return Int8Graph(tensors, [Op("SOFTMAX", [0], [1], {"beta": beta})], [0], [1])


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 24), st.integers(1, 6), st.floats(0.005, 0.5), st.integers(-128, 127), st.floats(0.25, 4.0),
       st.integers(0, 2**32 - 1))  # fmt: skip
def test_softmax_matches_naive_and_float(depth, rows, in_scale, in_zp, beta, seed):
    params = prepare_op(softmax_graph(depth, in_scale, in_zp, beta), 0).params
    x = np.random.default_rng(seed).integers(-128, 128, (rows, depth), dtype=np.int8)
    out = np.full(x.shape, 99, dtype=np.int8)
    softmax(params, x.shape, x.ravel(), x.shape, out.ravel())
    np.testing.assert_array_equal(out, naive.softmax(params, x.shape, x.ravel(), x.shape))
    # Against float64: beta * in_s * (q - max) -> softmax -> * 256 - 128, within one step.
    logits = float(beta) * float(f32(in_scale)) * x.astype(np.float64)
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    assert np.max(np.abs(out - np.clip(np.round(p * 256 - 128), -128, 127))) <= 1


def test_softmax_params_follow_tflite():
    # in_s = 1/16, beta = 1: multiplier 2^26/16 = 2^22 -> (2^30, 23); diff_min = -floor(31 * 2^26 / 2^23) = -248.
    params = prepare_op(softmax_graph(10, 1 / 16, 0, 1.0), 0).params
    assert (params.input_multiplier, params.input_left_shift, params.diff_min) == (2**30, 23, -248)


def test_softmax_uniform_and_dominant_rows():
    params = prepare_op(softmax_graph(4, 0.1, 0, 1.0), 0).params
    x = np.array([[5, 5, 5, 5], [127, -128, -128, -128]], np.int8)
    out = np.zeros_like(x)
    softmax(params, x.shape, x.ravel(), x.shape, out.ravel())
    assert out[0].tolist() == [-64] * 4  # 1/4 -> 64/256 -> 64 - 128
    assert out[1].tolist() == [127, -128, -128, -128]  # 1.0 saturates at 255/256; e^-25.5 -> 0


# --- RESHAPE ----------------------------------------------------------------------------------


def test_reshape_copies_bytes():
    x = np.arange(-50, 50, dtype=np.int8)
    out = np.zeros(100, np.int8)
    reshape(ReshapeParams(), (4, 5, 5, 1), x, (4, 25), out)
    np.testing.assert_array_equal(out, x)
    with pytest.raises(ValueError):
        reshape(ReshapeParams(), (4, 25), x, (4, 24), np.zeros(96, np.int8))
