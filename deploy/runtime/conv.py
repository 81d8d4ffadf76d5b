"""CONV_2D, int8 per-channel (TFLite reference_integer_ops::ConvPerChannel).

For each output (b, out_y, out_x, out_channel), with group = out_channel // filters_per_group:
    acc = sum over (filter_y, filter_x, in_channel) of
          filter[out_channel, filter_y, filter_x, in_channel]
          * (input[b, in_y, in_x, group*filter_in + in_channel] + input_offset)
    in_y = out_y*stride_h - pad_top + filter_y*dilation_h (likewise in_x); taps
    outside the image add nothing. Then + bias, MultiplyByQuantizedMultiplier
    (per channel), + output_offset, clamp, int8.
The loop layout is explained in `windows.py`; the sums are TFLite's.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from edgecnn.deploy.runtime.windows import (
    accumulate,
    band_rows,
    fill_padded_planes,
    gather_taps,
    plane_extent,
    requantize,
    store_nhwc,
)

_IMAGES_PER_TASK = 8


@njit(parallel=True, cache=True)
def conv_2d(params, input_shape, input_data, filter_shape, filter_data, bias_shape, bias_data,
            output_shape, output_data):  # fmt: skip
    """Shapes: input NHWC, filter OHWI, bias [O], output NHWC; data are flat C-order arrays."""
    # Unpack params.
    input_offset = params.input_offset
    output_offset = params.output_offset
    stride_h, stride_w = params.stride_height, params.stride_width
    dilation_h, dilation_w = params.dilation_height, params.dilation_width
    pad_top, pad_left = params.padding_top, params.padding_left
    output_multiplier, output_shift = params.output_multiplier, params.output_shift
    act_min, act_max = params.activation_min, params.activation_max

    # Check shapes.
    batches, input_h, input_w, input_depth = input_shape
    output_depth, filter_h, filter_w, filter_input_depth = filter_shape
    out_batches, output_h, output_w, out_depth = output_shape
    if out_batches != batches or out_depth != output_depth:
        raise ValueError("conv_2d: output shape does not match the input batch and filter count")
    if filter_input_depth <= 0 or input_depth % filter_input_depth != 0:
        raise ValueError("conv_2d: input depth is not a multiple of the filter depth")
    groups = input_depth // filter_input_depth
    if output_depth % groups != 0:
        raise ValueError("conv_2d: output depth is not a multiple of the group count")
    filters_per_group = output_depth // groups
    if bias_shape[0] != output_depth or bias_data.size != output_depth:
        raise ValueError("conv_2d: bias needs one int32 per output channel")
    if output_multiplier.size != output_depth or output_shift.size != output_depth:
        raise ValueError("conv_2d: params need one multiplier and shift per output channel")
    if (input_data.size != batches * input_h * input_w * input_depth
            or filter_data.size != output_depth * filter_h * filter_w * filter_input_depth
            or output_data.size != batches * output_h * output_w * output_depth):  # fmt: skip
        raise ValueError("conv_2d: a data buffer does not match its shape")

    plane_h = plane_extent(input_h, output_h, pad_top, filter_h, stride_h, dilation_h)
    plane_w = plane_extent(input_w, output_w, pad_left, filter_w, stride_w, dilation_w)
    taps_per_filter = filter_h * filter_w * filter_input_depth
    pixels = output_h * output_w

    # Loops: a few images per task (scratch is allocated once per task: a fresh ~100 kB
    # per image costs more than conv1's arithmetic); per image, band of output rows,
    # group and out_channel, the (filter_y, filter_x, in_channel) taps over the band's pixels.
    rows_per_band = band_rows(taps_per_filter, output_h, output_w)
    for task in prange((batches + _IMAGES_PER_TASK - 1) // _IMAGES_PER_TASK):
        planes = np.empty(input_depth * plane_h * plane_w, np.int32)
        taps = np.empty(taps_per_filter * rows_per_band * output_w, np.int32)
        acc = np.empty(rows_per_band * output_w, np.int32)
        result = np.empty(output_depth * pixels, np.int8)
        for batch in range(task * _IMAGES_PER_TASK, min(batches, (task + 1) * _IMAGES_PER_TASK)):
            fill_padded_planes(input_data, batch * input_h * input_w * input_depth, input_h, input_w, input_depth,
                               input_offset, pad_top, pad_left, plane_h, plane_w, planes)
            for first_out_y in range(0, output_h, rows_per_band):
                band = min(rows_per_band, output_h - first_out_y) * output_w
                for group in range(groups):
                    gather_taps(planes, plane_h, plane_w, group * filter_input_depth, filter_input_depth, filter_h,
                                filter_w, stride_h, stride_w, dilation_h, dilation_w, first_out_y, band // output_w,
                                output_w, taps)
                    for out_channel in range(group * filters_per_group, (group + 1) * filters_per_group):
                        accumulate(acc, taps, filter_data, out_channel * taps_per_filter, 1, taps_per_filter, band)
                        # Bias -> requantize -> output offset -> clamp -> cast.
                        requantize(acc, band, bias_data[out_channel], output_multiplier[out_channel],
                                   output_shift[out_channel], output_offset, act_min, act_max, result,
                                   out_channel * pixels + first_out_y * output_w)
            store_nhwc(result, output_depth, pixels, output_data, batch * pixels * output_depth)
