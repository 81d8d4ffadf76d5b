"""SOFTMAX, int8 in, int8 out (scale 1/256, zero point -128): gemmlowp fixed point (docs/int8.md section 3).

Per row (the last axis), with d = q - max(row):
- d >= diff_min: r = SRDHM(d * 2^left_shift, multiplier) is beta*in_s*d in Q5.26;
  e = exp_on_negative_values(r) in Q0.31; sum += RoundingDivideByPOT(e, 12) (Q12.19).
- 1/sum: h = clz(sum); scale = one_over_one_plus_x((sum << h) - 2^31), and the
  true reciprocal is scale * 2^-(12 - h).
- out = clamp(RoundingDivideByPOT(SRDHM(scale, e), (12 - h) + 23) - 128); d < diff_min gives -128.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from edgecnn.deploy.runtime.fixedpoint import (
    exp_on_negative_values,
    get_reciprocal,
    multiply_by_quantized_multiplier_greater_than_one,
    rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul,
)

_SCALED_DIFF_INTEGER_BITS = 5
_ACCUMULATION_INTEGER_BITS = 12


@njit(cache=True)
def _softmax_row(input_data, output_data, start, depth, input_multiplier, input_left_shift, diff_min):
    max_in_row = -128
    for c in range(depth):
        max_in_row = max(max_in_row, np.int64(input_data[start + c]))
    # Overflow: each term is at most 2^31 / 2^12 = 2^19, so the Q12.19 sum is
    # exact for rows of up to 4096 entries (TFLite's int32 sum wraps beyond).
    sum_of_exps = 0
    for c in range(depth):
        diff = np.int64(input_data[start + c]) - max_in_row
        if diff >= diff_min:
            scaled_diff = multiply_by_quantized_multiplier_greater_than_one(diff, input_multiplier, input_left_shift)
            exp_value = exp_on_negative_values(scaled_diff, _SCALED_DIFF_INTEGER_BITS)
            sum_of_exps += rounding_divide_by_pot(exp_value, _ACCUMULATION_INTEGER_BITS)  # Q0.31 -> Q12.19
    shifted_scale, num_bits_over_unit = get_reciprocal(sum_of_exps, _ACCUMULATION_INTEGER_BITS)
    exponent = num_bits_over_unit + 31 - 8
    if exponent < 0 or exponent > 31:  # TFLite aborts here too (rows of more than ~512 equal maxima)
        raise ValueError("softmax: row too long for the Q12.19 sum")
    for c in range(depth):
        diff = np.int64(input_data[start + c]) - max_in_row
        if diff >= diff_min:
            scaled_diff = multiply_by_quantized_multiplier_greater_than_one(diff, input_multiplier, input_left_shift)
            exp_value = exp_on_negative_values(scaled_diff, _SCALED_DIFF_INTEGER_BITS)
            unsat = rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted_scale, exp_value), exponent)
            output_data[start + c] = min(max(unsat - 128, -128), 127)
        else:
            output_data[start + c] = -128


@njit(parallel=True, cache=True)
def softmax(params, input_shape, input_data, output_shape, output_data):
    """Softmax over the last axis of any shape; data flat."""
    # Unpack params.
    input_multiplier = params.input_multiplier
    input_left_shift = params.input_left_shift
    diff_min = params.diff_min
    # Check shapes.
    depth = input_shape[len(input_shape) - 1]
    if depth <= 0 or input_data.size % depth != 0 or output_data.size != input_data.size:
        raise ValueError("softmax: data sizes do not match the shape")
    rows = input_data.size // depth
    # Loops: one row per task.
    for row in prange(rows):
        _softmax_row(input_data, output_data, row * depth, depth, input_multiplier, input_left_shift, diff_min)
