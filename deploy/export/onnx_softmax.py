"""SOFTMAX in exact integer ONNX ops: TFLite's gemmlowp fixed point (docs/int8.md section 3), per row.

Every element's exp depends only on d = q - max(row), one of 256 values, so
the Q0.31 exps and their Q12.19 sum terms are 256-entry tables built with
the runtime's own fixed-point functions and read with Gather. The rest is
per-row int64 arithmetic written out as the runtime does it:
- h = clz32(sum) = 32 - (number of k in 0..31 with sum >= 2^k);
- scale = one_over_one_plus_x(sum * 2^h - 2^31): Newton-Raphson with SRDHM and
  saturating doublings (Clip to int32), as in fixedpoint.py;
- out = RDBPOT(SRDHM(scale, e), 35 - h) - 128, clamped to int8.

Rows of any length up to softmax.MAX_DEPTH: the int64 sum is exact. Where
the sum reaches 2^28, TFLite's final shift (35 - h) exceeds 31 and TFLite
aborts; here the divisor is read from a table of the valid shifts only
(2^23 .. 2^31), so that Gather's index is out of bounds and onnxruntime
fails the run with "indices element out of data bounds": no wrong output.
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto

from edgecnn.deploy.export.onnx_builder import INT32_MAX, INT32_MIN, OnnxGraphBuilder
from edgecnn.deploy.runtime.fixedpoint import (
    exp_on_negative_values,
    multiply_by_quantized_multiplier_greater_than_one,
    rounding_divide_by_pot,
)

_SHIFTS = np.arange(23, 32)  # TFLite's final RoundingDivideByPOT exponents that do not abort: (12 - h) + 23, h >= 4


def exp_tables(params) -> tuple[np.ndarray, np.ndarray]:
    """(Q0.31 exp, its Q12.19 sum term) for d = -255..0, index d + 255; 0 below diff_min."""
    exps = np.zeros(256, np.int64)
    for d in range(-255, 1):
        if d >= params.diff_min:
            scaled = multiply_by_quantized_multiplier_greater_than_one(d, params.input_multiplier,
                                                                       params.input_left_shift)  # fmt: skip
            exps[d + 255] = exp_on_negative_values(scaled, 5)
    terms = np.array([rounding_divide_by_pot(int(e), 12) for e in exps], np.int64)
    return exps, terms


def _srdhm(b: OnnxGraphBuilder, x: str, y: str) -> str:
    """SRDHM on int64 values in int32 range: floor((x*y + 2^30) / 2^31); never both INT32_MIN here."""
    rounded = b.node("Add", [b.node("Mul", [x, y]), b.const(2**30, np.int64)])
    return b.floor_div(rounded, b.const(2**31, np.int64))


def _saturating_doubling(b: OnnxGraphBuilder, x: str, exponent: int) -> str:
    shifted = b.node("Mul", [x, b.const(2**exponent, np.int64)])
    return b.node("Clip", [shifted, b.const(INT32_MIN, np.int64), b.const(INT32_MAX, np.int64)], "saturate")


def _one_over_one_plus_x(b: OnnxGraphBuilder, a: str) -> str:
    """fixedpoint.one_over_one_plus_x_for_x_in_0_1 for a in [0, 2^31)."""
    # rounding_half_sum(a, INT32_MAX) with a >= 0: (a + 2^31 - 1 + 1) // 2.
    half_denominator = b.node("Div", [b.node("Add", [a, b.const(2**31, np.int64)]), b.const(2, np.int64)])
    x = b.node("Add", [b.const(1515870810, np.int64), _srdhm(b, half_denominator, b.const(-1010580540, np.int64))])
    for _ in range(3):
        one_minus = b.node("Sub", [b.const(1 << 29, np.int64), _srdhm(b, half_denominator, x)])
        x = b.node("Add", [x, _saturating_doubling(b, _srdhm(b, x, one_minus), 2)])
    return _saturating_doubling(b, x, 1)


def lower_softmax(b: OnnxGraphBuilder, x: str, params) -> str:
    """int8 softmax over the last axis of x (NHWC order); returns the int8 result."""
    exps, terms = exp_tables(params)
    wide = b.cast(x, TensorProto.INT64)
    row_max = b.node("ReduceMax", [wide], "row_max", axes=[-1], keepdims=1)
    index_ = b.node("Add", [b.node("Sub", [wide, row_max], "diff"), b.const(255, np.int64)], "diff_index")
    exp = b.node("Gather", [b.const(exps, np.int64, "exp_table"), index_], "exp")
    total = b.node("ReduceSum", [b.node("Gather", [b.const(terms, np.int64, "exp_term_table"), index_]),
                                 b.const([-1], np.int64)], "sum_of_exps", keepdims=1)  # fmt: skip
    # clz32 = 32 - (number of k in 0..31 with sum >= 2^k): the sum is at least 2^19 (the row maximum's
    # term) and below 2^32 (rows of at most MAX_DEPTH terms of at most 2^19), so 0 <= h <= 12.
    powers = b.const(2 ** np.arange(32, dtype=np.int64), np.int64, "pow2")
    bits = b.node("ReduceSum", [b.cast(b.node("GreaterOrEqual", [b.node("Unsqueeze", [total, b.const([-1], np.int64)]),
                                                                 powers]), TensorProto.INT64),
                                b.const([-1], np.int64)], "bit_length", keepdims=0)  # fmt: skip
    headroom = b.node("Sub", [b.const(32, np.int64), bits], "clz")
    normalised = b.node("Sub", [b.node("Mul", [total, b.node("Gather", [powers, headroom])]),
                                b.const(2**31, np.int64)], "sum_minus_one")  # fmt: skip
    scale = _one_over_one_plus_x(b, normalised)
    # exponent = (12 - h) + 31 - 8 = 35 - h; the table holds 2^23 .. 2^31 at index 12 - h, so h < 4
    # (TFLite aborts) indexes past its end and onnxruntime refuses the run.
    divisor = b.node("Gather", [b.const(2**_SHIFTS, np.int64, "pow2_exponent"),
                                b.node("Sub", [b.const(12, np.int64), headroom], "exponent_index")])  # fmt: skip
    half = b.node("Div", [divisor, b.const(2, np.int64)])
    out = b.divide_round_half_away(_srdhm(b, scale, exp), divisor, half)
    out = b.node("Sub", [out, b.const(128, np.int64)])
    return b.clip_to_int8(out, -128, 127, np.int64)
