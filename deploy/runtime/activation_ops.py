"""RELU, RELU6, LEAKY_RELU and HARD_SWISH, int8 in and out, each tensor with its own qparams.

- RELU / RELU6 (activations.cc QuantizedReluX -> ReluX): the input is
  requantized to the output scale, zp_out + MBQM(q - zp_in, M, shift), then
  clamped to [max(-128, zp_out), 127] or [.., min(127, Qz(6))].
- LEAKY_RELU (reference_ops::QuantizeLeakyRelu): the same with two
  multipliers, in_s/out_s for q >= zp_in and alpha*in_s/out_s below. A
  negative alpha is applied as -MBQM(d, |M|): the sign after rounding.
- HARD_SWISH (reference_ops::HardSwish): x * relu6(x + 3) / 6 in gemmlowp
  int16 fixed point. The input difference, shifted left 7 bits, is rescaled
  twice: to the output scale (Q15 multiplier) and to a "reluish" scale on
  which 3.0 is 32768 (Q15 multiplier and an exponent, saturating), mapped
  from [-1, 1] to [0, 1] and multiplied in, truncating.

The int16 helpers below mirror gemmlowp's int16 lanes; each keeps its value
in an int16 range, so no int64 intermediate can overflow.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from edgecnn.deploy.runtime.fixedpoint import multiply_by_quantized_multiplier

INT16_MIN, INT16_MAX = -32768, 32767


# --- RELU / RELU6 / LEAKY_RELU -------------------------------------------------------------------


def requantize_clamp(params, input_shape, input_data, output_shape, output_data):
    """RELU and RELU6, element-wise (any shape); plain Python, so no rank compiles anew (see elementwise.binary)."""
    _requantize_clamp(params, input_data, output_data)


@njit(parallel=True, cache=True)
def _requantize_clamp(params, input_data, output_data):
    zp_in, zp_out = params.input_zero_point, params.output_zero_point
    multiplier, shift = params.multiplier, params.shift
    act_min, act_max = params.activation_min, params.activation_max
    if input_data.size != output_data.size:
        raise ValueError("relu: input and output sizes differ")
    for i in prange(input_data.size):
        # |q - zp| <= 255; a left shift of the multiplier wraps like TFLite's int32 code.
        value = zp_out + multiply_by_quantized_multiplier(np.int64(input_data[i]) - zp_in, multiplier, shift)
        output_data[i] = min(max(value, act_min), act_max)


def leaky_relu(params, input_shape, input_data, output_shape, output_data):
    """LEAKY_RELU, element-wise (any shape); plain Python, so no rank compiles anew (see elementwise.binary)."""
    _leaky_relu(params, input_data, output_data)


@njit(parallel=True, cache=True)
def _leaky_relu(params, input_data, output_data):
    zp_in, zp_out = params.input_zero_point, params.output_zero_point
    if input_data.size != output_data.size:
        raise ValueError("leaky_relu: input and output sizes differ")
    for i in prange(input_data.size):
        d = np.int64(input_data[i]) - zp_in  # in [-255, 255]
        if d >= 0:
            scaled = multiply_by_quantized_multiplier(d, params.identity_multiplier, params.identity_shift)
        else:
            scaled = multiply_by_quantized_multiplier(d, params.alpha_multiplier, params.alpha_shift)
            if params.alpha_negative:
                scaled = -scaled
        output_data[i] = min(max(zp_out + scaled, -128), 127)


# --- HARD_SWISH ----------------------------------------------------------------------------------


@njit(cache=True)
def wrap_int16(x):
    """x modulo 2^16 as a signed int16 (C's conversion to int16_t in practice).

    >>> wrap_int16.py_func(32768), wrap_int16.py_func(-32769), wrap_int16.py_func(-5)
    (-32768, 32767, -5)
    """
    return ((x + 32768) & 0xFFFF) - 32768


@njit(cache=True)
def saturating_rounding_doubling_high_mul_int16(a, b):
    """gemmlowp's int16 SRDHM: (a*b + nudge) / 2^15 truncated, nudge = 2^14 or 1 - 2^14 by the product's sign.

    That is a*b / 2^15 rounded to nearest with ties toward +inf; only
    -32768 * -32768 saturates (to 32767).

    >>> f = saturating_rounding_doubling_high_mul_int16.py_func
    >>> f(3, 16384), f(-3, 16384), f(-1, 16384), f(-32768, -32768), f(32640, 32767)
    (2, -1, 0, 32767, 32639)
    """
    if a == INT16_MIN and b == INT16_MIN:
        return INT16_MAX
    product = a * b  # |.| <= 2^30
    nudge = 16384 if product >= 0 else 1 - 16384
    total = product + nudge
    return total // 32768 if total >= 0 else -((-total) // 32768)  # C's truncating division


@njit(cache=True)
def saturating_doubling_high_mul_int16(a, b):
    """a*b / 2^15 truncated toward zero (ARM SQDMULH); -32768 * -32768 saturates to 32767.

    >>> f = saturating_doubling_high_mul_int16.py_func
    >>> f(3, 16384), f(-3, 16384), f(16384, 16384), f(-32768, -32768)
    (1, -1, 8192, 32767)
    """
    if a == INT16_MIN and b == INT16_MIN:
        return INT16_MAX
    product = a * b
    return product // 32768 if product >= 0 else -((-product) // 32768)


@njit(cache=True)
def saturating_left_shift_int16(x, exponent):
    """x * 2^exponent clamped to int16 (reference hard_swish.h SaturatingLeftShift), 0 <= exponent < 31.

    >>> f = saturating_left_shift_int16.py_func
    >>> f(100, 3), f(5000, 3), f(-5000, 3)
    (800, 32767, -32768)
    """
    return min(max(x * (1 << exponent), INT16_MIN), INT16_MAX)


@njit(cache=True)
def rounding_divide_by_pot_int16(x, exponent):
    """gemmlowp's RoundingDivideByPOT on an int16: x / 2^e to nearest, ties away from zero, 0 <= e <= 31.

    Its mask 2^e - 1 is an int16: from e = 16 on it is -1, which leaves the
    sign (1 for x >= 0, -1 below) as the result, as TFLite computes.

    >>> f = rounding_divide_by_pot_int16.py_func
    >>> f(5, 1), f(-5, 1), f(-6, 2), f(32767, 15), f(0, 16), f(-7, 20)
    (3, -3, -2, 1, 1, -1)
    """
    mask = wrap_int16((1 << exponent) - 1)
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


@njit(cache=True)
def hard_swish_value(params, q):
    """One int8 output of HARD_SWISH from a raw int8 input."""
    hires = (q - params.input_zero_point) * 128  # |q - zp| <= 255, so |hires| <= 32640: an int16
    on_output_scale = saturating_rounding_doubling_high_mul_int16(hires, params.output_multiplier)
    # The reluish value: the input on a scale where 3.0 is 32768, saturating at +-1.
    exponent = params.reluish_exponent
    reluish = hires
    if exponent > 0:  # shift all but the last bit first, so that saturation happens in the last step only
        reluish = saturating_left_shift_int16(reluish, exponent - 1)
    reluish = saturating_rounding_doubling_high_mul_int16(reluish, params.reluish_multiplier)
    if exponent > 0:
        reluish = saturating_left_shift_int16(reluish, 1)
    if exponent < 0:
        reluish = rounding_divide_by_pot_int16(reluish, -exponent)
    reluish = (reluish + 32768) >> 1  # [-1, 1] -> [0, 1]: 0..32767
    preshift = saturating_doubling_high_mul_int16(reluish, on_output_scale)
    value = rounding_divide_by_pot_int16(preshift, -params.output_exponent)
    value = wrap_int16(value + params.output_zero_point)  # TFLite adds the zero point in int16
    return min(max(value, -128), 127)


def hard_swish(params, input_shape, input_data, output_shape, output_data):
    """HARD_SWISH, element-wise (any shape); plain Python, so no rank compiles anew (see elementwise.binary)."""
    _hard_swish(params, input_data, output_data)


@njit(parallel=True, cache=True)
def _hard_swish(params, input_data, output_data):
    if input_data.size != output_data.size:
        raise ValueError("hard_swish: input and output sizes differ")
    for i in prange(input_data.size):
        output_data[i] = hard_swish_value(params, np.int64(input_data[i]))
