"""MEAN and REDUCE_MAX, int8 (LiteRT `reduce.cc`, `reference/reduce.h`).

Both walk the input once in row-major order and add (or max) each value into
the output element its kept coordinates select; `reduced` in the params says
which dimensions collapse. Dimension 0 is never reduced (prepare refuses it),
so the run-time shapes, N images deep, need no special case.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from edgecnn.deploy.runtime.fixedpoint import multiply_by_quantized_multiplier, wrap_int32


@njit(cache=True)
def _reduced_strides(reduced, input_shape, output_data):
    """Per input dimension, the step in the flat output when its coordinate grows by one (0 if reduced).

    The flat output is the kept dimensions in order, with or without keep_dims' 1s.
    """
    rank = len(input_shape)
    if reduced.size != rank:
        raise ValueError("reduce: params and input have different ranks")
    strides = np.zeros(rank, np.int64)
    step = 1
    for d in range(rank - 1, -1, -1):
        if reduced[d] == 0:
            strides[d] = step
            step *= input_shape[d]
    if output_data.size != step:
        raise ValueError("reduce: output size does not match the kept dimensions")
    return strides


@njit(cache=True)
def _walk(input_shape, input_data, strides, accumulators, take_max):
    """accumulators[out] = sum (or max) of the input elements that reduce into out, in row-major order."""
    rank = len(input_shape)
    index = np.zeros(rank, np.int64)
    out = 0
    for i in range(input_data.size):
        v = np.int64(input_data[i])
        if take_max:
            if v > accumulators[out]:
                accumulators[out] = v
        else:
            accumulators[out] += v
        # Odometer step: advance the last coordinate, carry into the earlier ones.
        d = rank - 1
        while d >= 0:
            index[d] += 1
            out += strides[d]
            if index[d] < input_shape[d]:
                break
            out -= strides[d] * input_shape[d]
            index[d] = 0
            d -= 1


@njit(cache=True)
def mean(params, input_shape, input_data, output_shape, output_data):
    """output = clamp(MBQM(sum - zp_in * count, multiplier, shift) + zp_out), multiplier holding 1/count."""
    # Unpack params.
    reduced, count = params.reduced, params.count
    input_zero_point, output_zero_point = params.input_zero_point, params.output_zero_point
    multiplier, shift = params.multiplier, params.shift
    # Check shapes.
    if input_data.size != np.prod(np.array(input_shape)):
        raise ValueError("mean: input data does not match its shape")
    strides = _reduced_strides(reduced, input_shape, output_data)
    # Loops. The sums are int64 here; TFLite's int32 accumulator wraps instead, which only
    # matters past 2^24 summed int8 values, and wrap_int32 below reproduces it exactly.
    sums = np.zeros(output_data.size, np.int64)
    _walk(input_shape, input_data, strides, sums, False)
    # Requantize: (sum - zp * count) is formed in int64 and cast to int32, as in QuantizedMeanOrSum.
    for o in range(output_data.size):
        shifted = wrap_int32(wrap_int32(sums[o]) - input_zero_point * count)
        value = multiply_by_quantized_multiplier(shifted, multiplier, shift) + output_zero_point
        output_data[o] = min(max(value, -128), 127)


@njit(cache=True)
def reduce_max(params, input_shape, input_data, output_shape, output_data):
    """output = max of the int8 values reduced into it (input and output share qparams)."""
    # Unpack params.
    reduced = params.reduced
    # Check shapes.
    if input_data.size != np.prod(np.array(input_shape)):
        raise ValueError("reduce_max: input data does not match its shape")
    strides = _reduced_strides(reduced, input_shape, output_data)
    # Loops: the maximum starts at int8's lowest value, as TFLite's does.
    maxima = np.full(output_data.size, -128, np.int64)
    _walk(input_shape, input_data, strides, maxima, True)
    for o in range(output_data.size):
        output_data[o] = maxima[o]
