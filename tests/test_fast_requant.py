"""vnni.requantize16 (16 int32 lanes, the int64 products in each lane pair's own 64 bits) == the scalar reference.

The reference is fast_conv.requantize_one, itself proved and tested equal to TFLite's two
roundings (tests/test_fast_kernels.py); around it, the int32 wrap of acc + bias and of the
left shift, the output zero point (int32 add) and the clamp, lane by lane; vectors with and
without left shifts, clamps to -128..127 and narrower (the four loop variants vnni._variants picks).
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numba import njit

from edgecnn.deploy.runtime.fast_conv import requant_constants, requantize_one, wrap32
from edgecnn.deploy.runtime.plan import requant_vectors
from edgecnn.deploy.runtime.vnni import requantize16

SENTINEL = 77


@njit(cache=True)
def _run(c, bias, rqv, out, count, zp, lo, hi):
    requantize16(c, bias, rqv, out, count, zp, lo, hi)


def reference(c, bias, multipliers, shifts, zp, lo, hi):
    out = []
    for acc, b, m, s in zip(c.tolist(), bias.tolist(), multipliers, shifts):
        v = wrap32(requantize_one.py_func(wrap32(acc + b), *requant_constants(m, s)) + zp)
        out.append(min(max(v, lo), hi))
    return np.asarray(out, np.int8)


def _int32(draw, wide):
    if wide:
        return draw(st.one_of(st.sampled_from([0, 1, -1, 2**31 - 1, -(2**31), 2**30, -(2**30)]),
                              st.integers(-(2**31), 2**31 - 1)))  # fmt: skip
    return draw(st.integers(-50000, 50000))


@st.composite
def requant_case(draw):
    count = draw(st.integers(1, 70))
    wide = draw(st.booleans())
    c = np.asarray([_int32(draw, wide) for _ in range(count)], np.int64)
    bias = np.asarray([draw(st.integers(-(2**31), 2**31 - 1)) if wide else draw(st.integers(-3000, 3000))
                       for _ in range(count)], np.int64)  # fmt: skip
    multipliers = [draw(st.one_of(st.sampled_from([2**30, 2**31 - 1]), st.integers(2**30, 2**31 - 1)))
                   for _ in range(count)]  # fmt: skip
    top = draw(st.sampled_from([8, 0]))  # both sides of zero, or none left (the loops' no-shift variant)
    shifts = [draw(st.integers(-31, top)) for _ in range(count)]
    zp = draw(st.one_of(st.sampled_from([-128, 127, 0]), st.integers(-128, 127)))
    lo, hi = draw(st.sampled_from([(-128, 127), (zp, 127), (max(zp, -128), min(zp + 6, 127))]))
    return c, bias, multipliers, shifts, zp, lo, hi


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=requant_case())
def test_requantize16_equals_requantize_one(case):
    c, bias, multipliers, shifts, zp, lo, hi = case
    count = c.size
    padded = -(-count // 16) * 16
    c32 = np.zeros(padded, np.int32)
    c32[:count] = c
    b32 = np.zeros(padded, np.int32)
    b32[:count] = bias
    out = np.full(padded + 16, SENTINEL, np.int8)
    _run(c32, b32, requant_vectors(multipliers, shifts), out, count, zp, lo, hi)
    np.testing.assert_array_equal(out[:count], reference(c, bias, multipliers, shifts, zp, lo, hi))
    assert (out[count:] == SENTINEL).all(), "wrote past count"


def test_requantize16_dense_shift_grid():
    """Every shift -31..8 with accumulators at the rounding ties and the int32 extremes, 16-lane groups."""
    rng = np.random.default_rng(1)
    edges = [0, 1, -1, 2, -2, 3, -3, 250, -250, 2**31 - 1, -(2**31), 2**30, -(2**30), 2**24 + 1, -(2**24) - 1]
    for shift in range(-31, 9):
        c = np.asarray(edges + rng.integers(-(2**31), 2**31, 33).tolist() + rng.integers(-4096, 4097, 48).tolist())
        multipliers = [2**30, 2**31 - 1, 1099511562] * 32
        multipliers = multipliers[: c.size]
        shifts = [shift] * c.size
        bias = np.zeros(c.size, np.int64)
        out = np.zeros(c.size, np.int8)
        _run(c.astype(np.int32), bias.astype(np.int32), requant_vectors(multipliers, shifts), out, c.size, 3, -128,
             127)  # fmt: skip
        np.testing.assert_array_equal(out, reference(c, bias, multipliers, shifts, 3, -128, 127))
