"""QUANTIZE and DEQUANTIZE: the float32 / uint8 edges of an int8 graph, bit-exact with LiteRT BUILTIN_REF.

Three element-wise kernels, each on any shape (flat data in, flat data out):

- affine_quantize (float32 -> int8/uint8, reference_ops::AffineQuantize):
  q = clamp(roundf(x / scale) + zero_point), the division in float32 and the
  rounding half away from zero on the float32 quotient (rules.quantize_input
  is the same rule in numpy; the naive reference uses it). Where the rounded
  quotient is outside int32 (|x / scale| >= 2^31, inf, NaN) C's cast is
  undefined; the kernel gives what LiteRT gives on x86-64 (measured:
  qmax when the zero point is negative, else qmin), where quantize_input clips.
- requantize (int8/uint8 -> int8/uint8, reference_ops::Requantize):
  q = clamp(MultiplyByQuantizedMultiplier(x - in_zp, M, shift) + out_zp).
  The reference's XOR-0x80 fast path (same scale, zero points 128 apart) gives
  the same bytes as this general path, so there is one path.
- dequantize (int8/uint8 -> float32, reference_integer_ops::Dequantize):
  y = float32(double(scale) * (q - zp)). The product of a float32 and an
  integer below 2^9 has at most 33 significant bits, so it is exact in
  double and the one rounding is the float32 cast: the same bits as a float32
  multiply (the ONNX lowering's; the C lowering spells the double form).

These are the only runtime kernels that see a float: the graph's edges are
float by definition. Each float step is cast to float32 explicitly, so Numba
never carries a float64 intermediate into a rounding decision.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from edgecnn.deploy.runtime.fixedpoint import multiply_by_quantized_multiplier
from edgecnn.deploy.runtime.quantize_params import AffineQuantizeParams, DequantizeParams, RequantizeParams


@njit(cache=True)
def _round_half_away_f32(v):
    """C roundf on a float32: nearest integer, halves away from zero (floor and the fraction are exact)."""
    a = np.float32(abs(v))
    r = np.float32(np.floor(a))
    if np.float32(a - r) >= np.float32(0.5):
        r = np.float32(r + np.float32(1.0))
    return r if v >= 0 else np.float32(-r)


@njit(cache=True)
def affine_quantize(params, input_shape, input_data, output_shape, output_data):
    """float32 -> int8/uint8, element-wise: clamp(int32(roundf(x / scale)) + zero_point)."""
    scale = np.float32(params.scale)
    zero_point = params.zero_point
    if input_data.size != output_data.size:
        raise ValueError("QUANTIZE: input and output sizes differ")
    for i in range(input_data.size):
        quotient = np.float32(np.float32(input_data[i]) / scale)  # float32 division, as in C
        rounded = _round_half_away_f32(quotient)
        if not (rounded >= np.float32(-2147483648.0) and rounded < np.float32(2147483648.0)):  # also NaN
            # Outside int32, C's cast is undefined; LiteRT on x86-64 gets INT32_MIN (cvttss2si), and
            # INT32_MIN + zero_point wraps to a huge positive value when the zero point is negative.
            value = params.quantized_max if zero_point < 0 else params.quantized_min
        else:
            value = np.int64(rounded) + zero_point  # |value| <= 2^31 + 255: int64, no wrap
            if value < params.quantized_min:
                value = params.quantized_min
            elif value > params.quantized_max:
                value = params.quantized_max
        output_data[i] = value


@njit(cache=True)
def requantize(params, input_shape, input_data, output_shape, output_data):
    """int8/uint8 -> int8/uint8, element-wise: clamp(MBQM(x - in_zp, M, shift) + out_zp)."""
    if input_data.size != output_data.size:
        raise ValueError("QUANTIZE: input and output sizes differ")
    for i in range(input_data.size):
        x = np.int64(input_data[i]) + params.input_offset  # in [-510, 510]: no int32 overflow before the shift
        value = multiply_by_quantized_multiplier(x, params.output_multiplier, params.output_shift)
        value += params.output_offset
        if value < params.quantized_min:
            value = params.quantized_min
        elif value > params.quantized_max:
            value = params.quantized_max
        output_data[i] = value


def quantize(params, input_shape, input_data, output_shape, output_data):
    """QUANTIZE: float32 input -> affine_quantize; int8/uint8 input -> requantize (chosen by prepare)."""
    if isinstance(params, AffineQuantizeParams):
        affine_quantize(params, input_shape, input_data, output_shape, output_data)
    else:
        requantize(params, input_shape, input_data, output_shape, output_data)


__all__ = ["AffineQuantizeParams", "RequantizeParams", "DequantizeParams", "affine_quantize", "requantize", "quantize",
           "dequantize"]


@njit(cache=True)
def dequantize(params, input_shape, input_data, output_shape, output_data):
    """int8/uint8 -> float32, element-wise: float32(double(scale) * (q - zero_point)), exact before the cast."""
    scale = np.float64(params.scale)
    if input_data.size != output_data.size:
        raise ValueError("DEQUANTIZE: input and output sizes differ")
    for i in range(input_data.size):
        output_data[i] = np.float32(scale * np.float64(np.int64(input_data[i]) - params.zero_point))
