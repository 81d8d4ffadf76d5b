"""DEPTHWISE_CONV_2D, int8 per-channel (TFLite reference_integer_ops::DepthwiseConvPerChannel).

Output channel out_channel = m + in_channel*depth_multiplier reads only its
own input channel; depth_multiplier = output depth / input depth (from the
shapes, as TFLite does). Filter [1, H, W, out_channels]; bias optional
(pass an empty array). Otherwise the arithmetic of conv_2d.
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
def depthwise_conv_2d(params, input_shape, input_data, filter_shape, filter_data, bias_shape, bias_data,
                      output_shape, output_data):  # fmt: skip
    """Shapes: input NHWC, filter [1, H, W, O], bias [O] or [0], output NHWC; data flat C-order."""
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
    filter_batch, filter_h, filter_w, output_depth = filter_shape
    out_batches, output_h, output_w, out_depth = output_shape
    if filter_batch != 1:
        raise ValueError("depthwise_conv_2d: filter must be [1, H, W, O]")
    if out_batches != batches or out_depth != output_depth:
        raise ValueError("depthwise_conv_2d: output shape does not match the input batch and filter")
    if input_depth <= 0 or output_depth % input_depth != 0:
        raise ValueError("depthwise_conv_2d: output depth is not a multiple of the input depth")
    depth_multiplier = output_depth // input_depth
    has_bias = bias_data.size > 0
    if has_bias and (bias_shape[0] != output_depth or bias_data.size != output_depth):
        raise ValueError("depthwise_conv_2d: bias needs one int32 per output channel")
    if output_multiplier.size != output_depth or output_shift.size != output_depth:
        raise ValueError("depthwise_conv_2d: params need one multiplier and shift per output channel")
    if (input_data.size != batches * input_h * input_w * input_depth
            or filter_data.size != filter_h * filter_w * output_depth
            or output_data.size != batches * output_h * output_w * output_depth):  # fmt: skip
        raise ValueError("depthwise_conv_2d: a data buffer does not match its shape")

    plane_h = plane_extent(input_h, output_h, pad_top, filter_h, stride_h, dilation_h)
    plane_w = plane_extent(input_w, output_w, pad_left, filter_w, stride_w, dilation_w)
    taps_per_filter = filter_h * filter_w
    pixels = output_h * output_w

    # Loops: a few images per task (scratch allocated once per task); per image, band of
    # output rows and in_channel, the (filter_y, filter_x) taps, then each multiplier m.
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
                for in_channel in range(input_depth):
                    gather_taps(planes, plane_h, plane_w, in_channel, 1, filter_h, filter_w, stride_h, stride_w,
                                dilation_h, dilation_w, first_out_y, band // output_w, output_w, taps)
                    for m in range(depth_multiplier):
                        out_channel = m + in_channel * depth_multiplier
                        # filter[0, filter_y, filter_x, out_channel] sits at (filter_y*W + filter_x)*O + out_channel.
                        accumulate(acc, taps, filter_data, out_channel, output_depth, taps_per_filter, band)
                        bias = bias_data[out_channel] if has_bias else 0
                        # Bias -> requantize -> output offset -> clamp -> cast.
                        requantize(acc, band, bias, output_multiplier[out_channel], output_shift[out_channel],
                                   output_offset, act_min, act_max, result,
                                   out_channel * pixels + first_out_y * output_w)
            store_nhwc(result, output_depth, pixels, output_data, batch * pixels * output_depth)
