"""CONCATENATION, PAD and PADV2, int8: byte copies, no arithmetic (LiteRT `concatenation.cc`, `pad.cc`).

CONCATENATION takes any number of inputs, and Numba cannot index a tuple
of differently shaped arrays, so `concatenation` is a thin Python loop over
the inputs that calls one compiled slab copy per input. Neither op touches
dimension 0 (prepare refuses it), so the run-time shapes, N images deep,
need no special case.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True)
def _copy_slabs(input_data, output_data, outer, slab, output_slab, offset):
    """output[o * output_slab + offset : ... + slab] = input[o * slab : (o + 1) * slab] for each outer o."""
    for o in range(outer):
        output_data[o * output_slab + offset : o * output_slab + offset + slab] = input_data[o * slab : (o + 1) * slab]


def concatenation(params, *operands) -> None:
    """operands: (shape, flat data) per input, then (shape, flat data) of the output."""
    # Unpack params.
    axis = params.axis
    *pairs, output_shape, output_data = operands
    shapes, inputs = pairs[0::2], pairs[1::2]
    # Check shapes: every input matches the output outside the axis, and the axis adds up.
    outer = math.prod(output_shape[:axis])  # the dimensions before the axis, batch included
    output_slab = math.prod(output_shape[axis:])  # one outer row of the output
    if output_data.size != outer * output_slab:
        raise ValueError("concatenation: output data does not match its shape")
    along = 0
    for shape, data in zip(shapes, inputs):
        if len(shape) != len(output_shape) or any(a != b for d, (a, b) in enumerate(zip(shape, output_shape))
                                                  if d != axis):  # fmt: skip
            raise ValueError(f"concatenation: input shape {tuple(shape)} does not fit output {tuple(output_shape)}")
        if data.size != math.prod(shape):
            raise ValueError("concatenation: input data does not match its shape")
        along += shape[axis]
    if along != output_shape[axis]:
        raise ValueError(f"concatenation: inputs give {along} along axis {axis}, the output has {output_shape[axis]}")
    # Loops: each input fills its columns of every outer row.
    offset = 0
    for shape, data in zip(shapes, inputs):
        slab = math.prod(shape[axis:])
        _copy_slabs(data, output_data, outer, slab, output_slab, offset)
        offset += slab


@njit(cache=True)
def pad(params, input_shape, input_data, output_shape, output_data):
    """Fill with pad_value, then copy each contiguous input run to its place in the output.

    A run spans the last padded dimension and every unpadded one after it: those
    inner dimensions have the same strides in the input and the output, so
    ZeroPadding2D (H and W padded, C not) copies W * C bytes at a time.
    """
    # Unpack params.
    before, after, pad_value = params.before, params.after, params.pad_value
    # Check shapes.
    rank = len(input_shape)
    if before.size != rank or after.size != rank or len(output_shape) != rank:
        raise ValueError("pad: params, input and output have different ranks")
    for d in range(rank):
        if output_shape[d] != input_shape[d] + before[d] + after[d]:
            raise ValueError("pad: output shape is not the padded input shape")
    if input_data.size != np.prod(np.array(input_shape)) or output_data.size != np.prod(np.array(output_shape)):
        raise ValueError("pad: data does not match its shape")
    # Output strides, row-major; the run's outermost dimension k.
    out_strides = np.ones(rank, np.int64)
    for d in range(rank - 2, -1, -1):
        out_strides[d] = out_strides[d + 1] * output_shape[d + 1]
    k = 0
    for d in range(rank):
        if before[d] != 0 or after[d] != 0:
            k = d
    run = 1
    for d in range(k, rank):
        run *= input_shape[d]
    # Loops: the border first, then each run in place.
    output_data[:] = pad_value
    if run == 0:
        return
    index = np.zeros(rank, np.int64)  # coordinates of the current run in dimensions 0 .. k-1
    for r in range(input_data.size // run):
        start = before[k] * out_strides[k]
        for d in range(k):
            start += (index[d] + before[d]) * out_strides[d]
        output_data[start : start + run] = input_data[r * run : (r + 1) * run]
        d = k - 1  # odometer step over dimensions 0 .. k-1
        while d >= 0:
            index[d] += 1
            if index[d] < input_shape[d]:
                break
            index[d] = 0
            d -= 1


padv2 = pad  # PADV2's constant is params.pad_value already
