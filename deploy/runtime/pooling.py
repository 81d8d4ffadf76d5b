"""MAX_POOL_2D and AVERAGE_POOL_2D, int8 (TFLite reference_integer_ops pooling).

No rescaling: the window is clipped to the image (padding positions are
ignored), then the result is clamped to the fused-activation range. TFLite
checks only in debug builds that input and output qparams agree, so a
mismatch is silently ignored here too.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

_U = np.uint64  # unsigned indices: no negative-index wraparound test in the inner loops


@njit(cache=True)
def _check_pool_shapes(input_shape, input_data, output_shape, output_data):
    batches, _, _, depth = input_shape
    out_batches, _, _, out_depth = output_shape
    if out_batches != batches or out_depth != depth:
        raise ValueError("pool: output batch/depth differ from the input's")
    if input_data.size != input_shape[0] * input_shape[1] * input_shape[2] * input_shape[3]:
        raise ValueError("pool: input data does not match its shape")
    if output_data.size != output_shape[0] * output_shape[1] * output_shape[2] * output_shape[3]:
        raise ValueError("pool: output data does not match its shape")


@njit(cache=True)
def divide_rounding_half_away(total, count):
    """TFLite's average: (total ± count/2) / count with C's truncating division, i.e. ties away from zero.

    >>> [divide_rounding_half_away.py_func(s, n) for s, n in ((-7, 2), (-5, 4), (-6, 4), (7, 2), (0, 3))]
    [-4, -1, -2, 4, 0]
    """
    if total > 0:
        return (total + count // 2) // count
    return -((count // 2 - total) // count)


@njit(parallel=True, cache=True)
def max_pool_2d(params, input_shape, input_data, output_shape, output_data):
    """Shapes NHWC, data flat. Output = clamp(max over the clipped window, starting from -128)."""
    # Unpack params.
    stride_h, stride_w = params.stride_height, params.stride_width
    filter_h, filter_w = params.filter_height, params.filter_width
    pad_top, pad_left = params.padding_top, params.padding_left
    act_min, act_max = params.activation_min, params.activation_max
    # Check shapes.
    _check_pool_shapes(input_shape, input_data, output_shape, output_data)
    batches, input_h, input_w, depth = input_shape
    _, output_h, output_w, _ = output_shape
    # Loops: batch, out_y, out_x, then the clipped window; channels innermost because
    # they are contiguous in NHWC (a max does not depend on the order it is taken in).
    for batch in prange(batches):
        values = np.empty(depth, np.int32)
        for out_y in range(output_h):
            in_y_origin = out_y * stride_h - pad_top
            filter_y_start = max(0, -in_y_origin)
            filter_y_end = min(filter_h, input_h - in_y_origin)
            for out_x in range(output_w):
                in_x_origin = out_x * stride_w - pad_left
                filter_x_start = max(0, -in_x_origin)
                filter_x_end = min(filter_w, input_w - in_x_origin)
                values[:] = -128
                for filter_y in range(filter_y_start, filter_y_end):
                    row = (batch * input_h + in_y_origin + filter_y) * input_w
                    for filter_x in range(filter_x_start, filter_x_end):
                        src = _U((row + in_x_origin + filter_x) * depth)
                        for channel in range(depth):
                            values[channel] = max(values[channel], np.int32(input_data[src + _U(channel)]))
                out_base = _U(((batch * output_h + out_y) * output_w + out_x) * depth)
                for channel in range(depth):
                    output_data[out_base + _U(channel)] = min(max(values[channel], act_min), act_max)


@njit(parallel=True, cache=True)
def average_pool_2d(params, input_shape, input_data, output_shape, output_data):
    """Shapes NHWC, data flat. Output = clamp(round(sum of raw int8 / in-bounds count)), ties away from zero."""
    # Unpack params.
    stride_h, stride_w = params.stride_height, params.stride_width
    filter_h, filter_w = params.filter_height, params.filter_width
    pad_top, pad_left = params.padding_top, params.padding_left
    act_min, act_max = params.activation_min, params.activation_max
    # Check shapes.
    _check_pool_shapes(input_shape, input_data, output_shape, output_data)
    batches, input_h, input_w, depth = input_shape
    _, output_h, output_w, _ = output_shape
    # TFLite fails on an empty window; the first and last windows are the ones that can be.
    if (pad_top >= filter_h or (output_h - 1) * stride_h - pad_top >= input_h
            or pad_left >= filter_w or (output_w - 1) * stride_w - pad_left >= input_w):  # fmt: skip
        raise ValueError("average_pool_2d: a window lies entirely in the padding")
    # Loops: as max_pool_2d; integer sums do not depend on their order either.
    for batch in prange(batches):
        totals = np.empty(depth, np.int32)
        for out_y in range(output_h):
            in_y_origin = out_y * stride_h - pad_top
            filter_y_start = max(0, -in_y_origin)
            filter_y_end = min(filter_h, input_h - in_y_origin)
            for out_x in range(output_w):
                in_x_origin = out_x * stride_w - pad_left
                filter_x_start = max(0, -in_x_origin)
                filter_x_end = min(filter_w, input_w - in_x_origin)
                count = (filter_y_end - filter_y_start) * (filter_x_end - filter_x_start)
                # Overflow: filter_h*filter_w raw int8 values; int32 is exact below 2^24 taps.
                totals[:] = 0
                for filter_y in range(filter_y_start, filter_y_end):
                    row = (batch * input_h + in_y_origin + filter_y) * input_w
                    for filter_x in range(filter_x_start, filter_x_end):
                        src = _U((row + in_x_origin + filter_x) * depth)
                        for channel in range(depth):
                            totals[channel] += input_data[src + _U(channel)]
                out_base = _U(((batch * output_h + out_y) * output_w + out_x) * depth)
                for channel in range(depth):
                    value = divide_rounding_half_away(np.int64(totals[channel]), count)
                    output_data[out_base + _U(channel)] = min(max(value, act_min), act_max)
