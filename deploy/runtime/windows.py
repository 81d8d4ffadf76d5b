"""Per-image building blocks shared by conv_2d and depthwise_conv_2d.

TFLite's reference loops run (out_y, out_x, out_channel, filter_y, filter_x,
in_channel) with the short in_channel loop innermost. Numba only vectorizes
long unit-stride loops, so the kernels keep TFLite's arithmetic but lay the
work out per image as a matrix product:

1. `fill_padded_planes`: (input + input_offset) as int32 planes [channel][y][x],
   with zeros where the window hangs over the edge. A zero there adds
   w * 0 = 0, exactly what skipping an outside tap does in TFLite.
2. `gather_taps`: the taps matrix [tap][pixel], one row per
   (filter_y, filter_x, in_channel), one column per (out_y, out_x), for a
   band of output rows small enough that the matrix stays in cache
   (`band_rows`; a LeNet-5 layer fits in one band).
3. `accumulate`: acc[pixel] += w[tap] * taps[tap][pixel], pixels innermost.
4. `requantize`: bias -> MultiplyByQuantizedMultiplier -> output offset -> clamp -> int8.
5. `store_nhwc`: channel planes back to NHWC.

Every sum is the same set of int32 terms as in TFLite, only added in
another order; int32 addition wraps the same way in any order.

Trap: Numba adds a negative-index wraparound test to every index of a signed
type, which stops LLVM vectorizing the inner loops (about 2x slower here).
The inner loops therefore index with np.uint64 values, built only from
quantities already known to be >= 0.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from edgecnn.deploy.runtime.fixedpoint import multiply_by_quantized_multiplier, wrap_int32

_U = np.uint64
TAPS_BUDGET = 65536  # int32 entries of one taps matrix (256 kB)


@njit(cache=True)
def band_rows(taps_per_filter, out_h, out_w):
    """Output rows per band so that taps_per_filter x rows x out_w stays within TAPS_BUDGET (at least 1)."""
    return max(1, min(out_h, TAPS_BUDGET // max(1, taps_per_filter * out_w)))


@njit(cache=True)
def plane_extent(in_size, out_size, pad_before, filter_size, stride, dilation):
    """Length of one padded plane axis: it holds the image and every tap any output reads."""
    return max(pad_before + in_size, (out_size - 1) * stride + (filter_size - 1) * dilation + 1)


@njit(cache=True)
def fill_padded_planes(input_data, start, height, width, depth, input_offset, pad_top, pad_left, plane_h, plane_w,
                       planes):  # fmt: skip
    """planes[c][pad_top + y][pad_left + x] = input[y, x, c] + input_offset; zero elsewhere.

    Range: int8 + offset with |offset| <= 128, so |value| <= 255.
    """
    planes[:] = 0
    for y in range(height):
        for x in range(width):
            src = _U(start + (y * width + x) * depth)
            for c in range(depth):
                dst = _U((c * plane_h + pad_top + y) * plane_w + pad_left + x)
                planes[dst] = np.int32(input_data[src + _U(c)]) + input_offset


@njit(cache=True)
def gather_taps(
    planes, plane_h, plane_w, first_channel, channels, filter_h, filter_w,
    stride_h, stride_w, dilation_h, dilation_w, first_out_y, out_rows, out_w, taps,
):  # fmt: skip
    """taps[(filter_y*filter_w + filter_x)*channels + c][(out_y - first_out_y)*out_w + out_x] = what that tap reads.

    Covers output rows first_out_y .. first_out_y + out_rows - 1.
    """
    pixels = out_rows * out_w
    for filter_y in range(filter_h):
        for filter_x in range(filter_w):
            for c in range(channels):
                row = (filter_y * filter_w + filter_x) * channels + c
                for band_y in range(out_rows):
                    out_y = first_out_y + band_y
                    src = _U(((first_channel + c) * plane_h + out_y * stride_h + filter_y * dilation_h) * plane_w
                             + filter_x * dilation_w)
                    dst = _U(row * pixels + band_y * out_w)
                    if stride_w == 1:  # a contiguous copy, which LLVM vectorizes
                        for out_x in range(out_w):
                            taps[dst + _U(out_x)] = planes[src + _U(out_x)]
                    else:
                        for out_x in range(out_w):
                            taps[dst + _U(out_x)] = planes[src + _U(out_x * stride_w)]


@njit(cache=True)
def accumulate(acc, taps, weights, weight_start, weight_step, tap_count, pixels):
    """acc[p] = sum over t of weights[weight_start + t*weight_step] * taps[t][p], in int32.

    Overflow: |w| <= 128 and |tap| <= 255, so each product is below 2^15 and
    the int32 sum is exact for up to 2^16 taps (LeNet-5's conv2 has 150).
    Beyond that it wraps, like TFLite's int32 accumulator. Four taps per pass
    keep acc loads/stores at a quarter.
    """
    acc[:pixels] = 0
    t = 0
    while t + 4 <= tap_count:
        w0 = np.int32(weights[_U(weight_start + t * weight_step)])
        w1 = np.int32(weights[_U(weight_start + (t + 1) * weight_step)])
        w2 = np.int32(weights[_U(weight_start + (t + 2) * weight_step)])
        w3 = np.int32(weights[_U(weight_start + (t + 3) * weight_step)])
        r0 = _U(t * pixels)
        r1 = r0 + _U(pixels)
        r2 = r1 + _U(pixels)
        r3 = r2 + _U(pixels)
        for p in range(pixels):
            q = _U(p)
            acc[q] += w0 * taps[r0 + q] + w1 * taps[r1 + q] + w2 * taps[r2 + q] + w3 * taps[r3 + q]
        t += 4
    while t < tap_count:
        w0 = np.int32(weights[_U(weight_start + t * weight_step)])
        r0 = _U(t * pixels)
        for p in range(pixels):
            q = _U(p)
            acc[q] += w0 * taps[r0 + q]
        t += 1


@njit(cache=True)
def requantize(acc, pixels, bias, multiplier, shift, output_offset, act_min, act_max, out, out_start):
    """out[out_start + p] = int8(clamp(MBQM(acc[p] + bias) + output_offset)): TFLite's tail, in its order.

    The bias add wraps in int32 like TFLite's. MBQM's result is an int32;
    adding the int8-range offset cannot overflow int64, and the clamp to
    [act_min, act_max] within [-128, 127] makes the int8 cast exact.
    """
    for p in range(pixels):
        v = multiply_by_quantized_multiplier(wrap_int32(np.int64(acc[_U(p)]) + bias), multiplier, shift)
        v += output_offset
        v = min(max(v, act_min), act_max)
        out[_U(out_start + p)] = v


@njit(cache=True)
def store_nhwc(planes, channels, pixels, output_data, start):
    """output[start + p*channels + c] = planes[c*pixels + p] (channel planes -> NHWC)."""
    for p in range(pixels):
        dst = _U(start + p * channels)
        for c in range(channels):
            output_data[dst + _U(c)] = planes[_U(c * pixels + p)]
