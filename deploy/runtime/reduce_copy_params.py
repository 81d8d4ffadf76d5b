"""Frozen params of MEAN, REDUCE_MAX, CONCATENATION, PAD and PADV2.

Numba-free on purpose: the registry's prepare steps, the naive references
and the C / ONNX lowerings read these records without loading Numba; the
kernels in `reduce.py` and `copy_ops.py` take them as typed tuples.

None of these ops touches dimension 0 (edgecnn's batch: a tensor holds N
images as N * shape[0] rows at run time), so each kernel works on the
run-time shapes directly.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class ReduceParams(NamedTuple):
    """MEAN and REDUCE_MAX over the dimensions flagged in `reduced`.

    MEAN: output = clamp(MultiplyByQuantizedMultiplier(sum - input_zero_point * count,
    multiplier, shift) + output_zero_point), where multiplier/shift already
    fold in 1/count (QuantizedMeanOrSum's own fixed-point path).
    REDUCE_MAX: input and output share their qparams; the multiplier fields are unused.
    """

    reduced: np.ndarray  # int64 [input rank]: 1 for a reduced dimension, 0 for a kept one
    count: int  # elements summed into each output (product of the reduced dims)
    input_zero_point: int
    output_zero_point: int
    multiplier: int  # Q0.31, in_scale / out_scale / count
    shift: int  # > 0: left shift; >= -31


class ConcatenationParams(NamedTuple):
    """CONCATENATION of int8 tensors that share the output's qparams: a copy, slab by slab."""

    axis: int  # resolved, in [1, rank)


class PadParams(NamedTuple):
    """PAD / PADV2: before[d] and after[d] values of `pad_value` around each dimension d."""

    before: np.ndarray  # int64 [rank], before[0] == after[0] == 0 (the batch is never padded)
    after: np.ndarray  # int64 [rank]
    pad_value: int  # the output zero point (PAD) or the constant (PADV2)
