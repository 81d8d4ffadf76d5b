"""Params records of QUANTIZE and DEQUANTIZE (kernels: quantize_ops.py).

Kept apart from the kernels so that the op registry, the `.tflite` reader and
the exporters, which build and read these records, never import Numba (the
light device install has none).
"""

from __future__ import annotations

from typing import NamedTuple


class AffineQuantizeParams(NamedTuple):
    """float32 -> int8/uint8: the output's float32 scale (as a Python float) and zero point, and the type's range."""

    scale: float
    zero_point: int
    quantized_min: int
    quantized_max: int


class RequantizeParams(NamedTuple):
    """int8/uint8 -> int8/uint8: real multiplier in_s / out_s = multiplier * 2^(shift - 31)."""

    input_offset: int  # -input zero point
    output_multiplier: int
    output_shift: int
    output_offset: int  # +output zero point
    quantized_min: int
    quantized_max: int


class DequantizeParams(NamedTuple):
    """int8/uint8 -> float32: the input's float32 scale (as a Python float) and zero point."""

    scale: float
    zero_point: int
