"""Frozen params of ADD, SUB, MUL, RELU, RELU6, LEAKY_RELU and HARD_SWISH.

Numba-free on purpose: the registry's prepare steps, the naive references
and the C / ONNX lowerings read these records without loading Numba; the
kernels in `elementwise.py` and `activation_ops.py` take them as typed tuples.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

MAX_RANK = 6  # BroadcastAdd6DSlow / BroadcastSubCommon / BroadcastMul6DSlow handle up to six dimensions

OP_ADD, OP_SUB, OP_MUL = 0, 1, 2


class BinaryParams(NamedTuple):
    """ADD, SUB or MUL on int8 (TFLite's ArithmeticParams, 8-bit path).

    Offsets follow TFLite: input offsets are -zero_point, the output offset
    is +zero_point. Multipliers are Q0.31 with shift > 0 meaning a left
    shift; MUL uses only output_multiplier/output_shift.
    """

    op: int  # OP_ADD, OP_SUB or OP_MUL
    input1_offset: int
    input2_offset: int
    output_offset: int
    left_shift: int  # ADD/SUB: 20 (both inputs shifted before their multipliers)
    input1_multiplier: int
    input1_shift: int  # ADD/SUB: <= 0
    input2_multiplier: int
    input2_shift: int  # ADD/SUB: <= 0
    output_multiplier: int
    output_shift: int  # ADD/SUB: <= 0; MUL: any
    activation_min: int
    activation_max: int
    input1_dims: np.ndarray  # int64[6]: static shape, right-aligned, padded with ones
    input2_dims: np.ndarray  # int64[6]
    output_dims: np.ndarray  # int64[6]
    batch_axis: int  # the padded axis that holds the output's batch (6 - output rank)
    input1_batched: int  # 1 when input 1 is fed at run time (its batch axis holds the images), 0 for a constant
    input2_batched: int


def padded_dims(shape) -> np.ndarray:
    """A static shape right-aligned into six dimensions, padded with ones (the params' layout).

    >>> padded_dims((3, 4)).tolist(), padded_dims(()).tolist()
    ([1, 1, 1, 1, 3, 4], [1, 1, 1, 1, 1, 1])
    """
    dims = np.ones(MAX_RANK, dtype=np.int64)
    if len(shape):
        dims[MAX_RANK - len(shape):] = shape
    return dims


class RequantizeClampParams(NamedTuple):
    """RELU and RELU6: requantize to the output scale, then clamp (TFLite's ReluParams)."""

    input_zero_point: int
    output_zero_point: int
    multiplier: int  # Q0.31 of float32(in_s / out_s)
    shift: int
    activation_min: int
    activation_max: int


class LeakyReluParams(NamedTuple):
    input_zero_point: int
    output_zero_point: int
    identity_multiplier: int  # Q0.31 of float32(in_s / out_s)
    identity_shift: int
    alpha_multiplier: int  # Q0.31 of |float32(in_s * alpha / out_s)|
    alpha_shift: int
    alpha_negative: int  # 1: negate after rescaling by |alpha|'s multiplier


class HardSwishParams(NamedTuple):
    """TFLite's HardSwishParams: two Q15 multipliers, each with a power-of-two exponent."""

    input_zero_point: int
    output_zero_point: int
    output_multiplier: int  # Q15 of in_s / 128 / out_s
    output_exponent: int  # <= 0
    reluish_multiplier: int  # Q15 of (in_s / 128) / (3 / 32768)
    reluish_exponent: int
