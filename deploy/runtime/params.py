"""Frozen params records: everything a kernel needs besides its tensors, computed once.

`prepare.py` builds one record per op from the Int8Graph's float32 scales;
kernels read plain ints and int arrays from it, never a scale. The one
exception is `FullyConnectedParams.effective_scale` (float64), because the
current TFLite reference FULLY_CONNECTED itself rescales in float64.

Records are `typing.NamedTuple`s: immutable, and Numba passes them into
`@njit` kernels as typed tuples. Offsets follow TFLite's sign convention:
input_offset = -input_zero_point, output_offset = +output_zero_point, so a
kernel computes (q + input_offset) and adds output_offset.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

# FullyConnectedParams.rescale values.
RESCALE_INTEGER = 0  # MultiplyByQuantizedMultiplier (LiteRT <= 1.2.0, tflite-runtime 2.14)
RESCALE_FLOAT = 1  # float64 acc * effective_scale, rounded half away (LiteRT >= 1.3.0)


class ConvParams(NamedTuple):
    """CONV_2D and DEPTHWISE_CONV_2D (TFLite's ConvParams / DepthwiseParams).

    Groups and the depth multiplier come from the tensor shapes, as in TFLite.
    output_multiplier/output_shift are per output channel: real multiplier
    = multiplier * 2^(shift - 31), shift > 0 meaning a left shift.
    """

    input_offset: int
    output_offset: int
    stride_height: int
    stride_width: int
    dilation_height: int
    dilation_width: int
    padding_top: int
    padding_left: int
    output_multiplier: np.ndarray  # int32 [out_channels]
    output_shift: np.ndarray  # int32 [out_channels]
    activation_min: int
    activation_max: int


class FullyConnectedParams(NamedTuple):
    """FULLY_CONNECTED in either rescale mode (docs/int8.md section 3).

    weights_offset is -weights_zero_point for per-tensor weights and 0 for
    per-channel ones (TFLite ignores a per-channel zero point). Both rescale
    forms are stored per unit so one kernel serves per-tensor and per-channel.
    """

    input_offset: int
    weights_offset: int
    output_offset: int
    rescale: int  # RESCALE_INTEGER or RESCALE_FLOAT
    output_multiplier: np.ndarray  # int32 [units]   (RESCALE_INTEGER)
    output_shift: np.ndarray  # int32 [units]        (RESCALE_INTEGER)
    effective_scale: np.ndarray  # float64 [units]   (RESCALE_FLOAT)
    activation_min: int
    activation_max: int


class PoolParams(NamedTuple):
    """MAX_POOL_2D and AVERAGE_POOL_2D: no rescaling, only the window and the clamp."""

    stride_height: int
    stride_width: int
    filter_height: int
    filter_width: int
    padding_top: int
    padding_left: int
    activation_min: int
    activation_max: int


class LookupTableParams(NamedTuple):
    """LOGISTIC and TANH: output = table[input + 128], built in float32 at prepare time."""

    table: np.ndarray  # int8 [256]


class SoftmaxParams(NamedTuple):
    """SOFTMAX (int8 in, int8 out with scale 1/256, zero point -128).

    input_multiplier/input_left_shift turn an int8 difference into Q5.26
    (beta * input_scale * 2^26); diffs below diff_min (<= 0) output -128.
    """

    input_multiplier: int
    input_left_shift: int
    diff_min: int


class ReshapeParams(NamedTuple):
    """RESHAPE copies bytes: nothing to configure."""
