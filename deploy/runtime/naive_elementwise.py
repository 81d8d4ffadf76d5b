"""Plain-Python references for ADD, SUB, MUL, RELU, RELU6, LEAKY_RELU and HARD_SWISH.

Slow and obvious on purpose, like `naive.py` (whose exact-fraction int32
primitives they use): Python ints, rounding written from its definition,
numpy broadcasting on the run-time shapes the kernel is given (not the
params' static shapes the Numba kernel reads). They share no arithmetic with
`elementwise.py` or `activation_ops.py`, only the params records.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from edgecnn.deploy.runtime.naive import clamp, multiply_by_quantized_multiplier, rounding_divide_by_pot

INT16_MIN, INT16_MAX = -(2**15), 2**15 - 1


# --- ADD / SUB / MUL ----------------------------------------------------------------------------


def _broadcast(shape1, data1, shape2, data2, output_shape):
    a = np.asarray(data1).reshape(shape1)
    b = np.asarray(data2).reshape(shape2)
    if np.broadcast_shapes(a.shape, b.shape) != tuple(output_shape):
        raise ValueError(f"{a.shape} and {b.shape} do not broadcast to {tuple(output_shape)}")
    a, b = np.broadcast_arrays(a, b)
    return a.astype(np.int64).ravel().tolist(), b.astype(np.int64).ravel().tolist()


def _add_or_sub(params, x: int, y: int, sign: int) -> int:
    # Both inputs on a scale 2^20 finer than twice the larger input scale, then added.
    a = multiply_by_quantized_multiplier((x + params.input1_offset) * 2**params.left_shift,
                                         params.input1_multiplier, params.input1_shift)  # fmt: skip
    b = multiply_by_quantized_multiplier((y + params.input2_offset) * 2**params.left_shift,
                                         params.input2_multiplier, params.input2_shift)  # fmt: skip
    return multiply_by_quantized_multiplier(a + sign * b, params.output_multiplier, params.output_shift)


def _mul(params, x: int, y: int) -> int:
    product = (x + params.input1_offset) * (y + params.input2_offset)
    return multiply_by_quantized_multiplier(product, params.output_multiplier, params.output_shift)


def _binary(element, params, shape1, data1, shape2, data2, output_shape):
    xs, ys = _broadcast(shape1, data1, shape2, data2, output_shape)
    values = [clamp(element(x, y) + params.output_offset, params.activation_min, params.activation_max)
              for x, y in zip(xs, ys)]  # fmt: skip
    return np.array(values, dtype=np.int8).reshape(output_shape)


def add(params, input1_shape, input1_data, input2_shape, input2_data, output_shape):
    return _binary(lambda x, y: _add_or_sub(params, x, y, +1), params, input1_shape, input1_data, input2_shape,
                   input2_data, output_shape)  # fmt: skip


def sub(params, input1_shape, input1_data, input2_shape, input2_data, output_shape):
    return _binary(lambda x, y: _add_or_sub(params, x, y, -1), params, input1_shape, input1_data, input2_shape,
                   input2_data, output_shape)  # fmt: skip


def mul(params, input1_shape, input1_data, input2_shape, input2_data, output_shape):
    return _binary(lambda x, y: _mul(params, x, y), params, input1_shape, input1_data, input2_shape, input2_data,
                   output_shape)  # fmt: skip


# --- RELU / RELU6 / LEAKY_RELU -------------------------------------------------------------------


def _unary(function, input_data, output_shape):
    values = [function(int(q)) for q in np.asarray(input_data).ravel().tolist()]
    return np.array(values, dtype=np.int8).reshape(output_shape)


def requantize_clamp(params, input_shape, input_data, output_shape):
    """RELU and RELU6: zp_out + MBQM(q - zp_in), clamped to the activation range."""

    def one(q):
        value = params.output_zero_point + multiply_by_quantized_multiplier(
            q - params.input_zero_point, params.multiplier, params.shift)
        return clamp(value, params.activation_min, params.activation_max)

    return _unary(one, input_data, output_shape)


def leaky_relu(params, input_shape, input_data, output_shape):
    """Identity multiplier for q >= zp, alpha's (sign applied after rounding |alpha|'s) below."""

    def one(q):
        d = q - params.input_zero_point
        if d >= 0:
            scaled = multiply_by_quantized_multiplier(d, params.identity_multiplier, params.identity_shift)
        else:
            scaled = multiply_by_quantized_multiplier(d, params.alpha_multiplier, params.alpha_shift)
            scaled = -scaled if params.alpha_negative else scaled
        return clamp(params.output_zero_point + scaled, -128, 127)

    return _unary(one, input_data, output_shape)


# --- HARD_SWISH: gemmlowp's int16 fixed point, from the definitions ----------------------------


def wrap_int16(x: int) -> int:
    return (x + 2**15) % 2**16 - 2**15


def srdhm16(a: int, b: int) -> int:
    """Nearest integer to a*b / 2^15, ties up; -32768 * -32768 saturates to 32767."""
    if a == b == INT16_MIN:
        return INT16_MAX
    return math.floor(Fraction(a * b, 2**15) + Fraction(1, 2))


def sdhm16(a: int, b: int) -> int:
    """a*b / 2^15 truncated toward zero (ARM SQDMULH); -32768 * -32768 saturates to 32767."""
    if a == b == INT16_MIN:
        return INT16_MAX
    return int(Fraction(a * b, 2**15))  # int() of a Fraction truncates toward zero


def saturating_left_shift16(x: int, exponent: int) -> int:
    return clamp(x * 2**exponent, INT16_MIN, INT16_MAX)


def rounding_divide_by_pot16(x: int, exponent: int) -> int:
    """gemmlowp's RoundingDivideByPOT on int16 lanes: x / 2^e to nearest, ties away from zero, for e <= 15.

    For e >= 16 its mask 2^e - 1 no longer fits an int16 and becomes -1, and
    the function then returns the sign: 1 for x >= 0, -1 below.
    """
    if exponent >= 16:
        return 1 if x >= 0 else -1
    return rounding_divide_by_pot(x, exponent)


def hard_swish(params, input_shape, input_data, output_shape):
    """x * relu6(x + 3) / 6 in int16 fixed point (reference_ops::HardSwish), one value at a time."""

    def one(q):
        hires = (q - params.input_zero_point) * 2**7  # |.| <= 255 * 128 = 32640: an int16
        on_output_scale = srdhm16(hires, params.output_multiplier)
        reluish = hires
        exponent = params.reluish_exponent
        if exponent > 0:
            reluish = saturating_left_shift16(reluish, exponent - 1)
        reluish = srdhm16(reluish, params.reluish_multiplier)
        if exponent > 0:
            reluish = saturating_left_shift16(reluish, 1)
        if exponent < 0:
            reluish = rounding_divide_by_pot16(reluish, -exponent)
        reluish = (reluish + 2**15) // 2  # [-1, 1] -> [0, 1]
        value = rounding_divide_by_pot16(sdhm16(reluish, on_output_scale), -params.output_exponent)
        return clamp(wrap_int16(value + params.output_zero_point), -128, 127)

    return _unary(one, input_data, output_shape)
