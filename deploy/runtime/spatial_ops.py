"""RESIZE_NEAREST_NEIGHBOR, RESIZE_BILINEAR, SPACE_TO_BATCH_ND, BATCH_TO_SPACE_ND: int8 data movement.

No kernel here rescales: the outputs carry the input's quantization.

- Resizes read index tables that prepare builds once per axis, in numpy, with
  the reference's own arithmetic (float32 for nearest neighbour,
  GetNearestNeighbor; 10-bit fixed point for int8 bilinear,
  ResizeBilinearInteger), so the kernels and the C code stay integer-only.
  Bilinear: out = trunc((sum of 4 taps * weights + ±2^19) / 2^20), the
  weights (1024 - f, f) per axis, f = the 10-bit fraction of the source row.
- SPACE_TO_BATCH_ND / BATCH_TO_SPACE_ND move blocks between space and batch
  exactly as the reference orders them (batch row = block offset * batch + b),
  but per image: tensor t holds N images as N * t.shape[0] rows, so image n
  owns rows [n * t.shape[0], (n + 1) * t.shape[0]) on both sides, and a batch
  of N images gives what N separate runs give. (LiteRT run on N images orders
  the middle rows (block offset, image) instead; S2B -> CONV_2D -> B2S, the
  Keras 3 dilated convolution, gives the same outputs either way.)
  A rank-3 tensor (N, H, C) is (N, H, 1, C) with a block width of 1.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from edgecnn.deploy.runtime.spatial_params import (BatchToSpaceParams, ResizeBilinearParams, ResizeNearestParams,
                                                    SpaceToBatchParams)

__all__ = ["BatchToSpaceParams", "ResizeBilinearParams", "ResizeNearestParams", "SpaceToBatchParams"]


@njit(cache=True)
def _nhwc(shape, size):
    """(batch, height, width, depth) of an NHWC or NHC (width 1) tensor with `size` elements."""
    batch, height, depth = shape[0], shape[1], shape[-1]
    width = size // (batch * height * depth) if batch * height * depth > 0 else 1
    return batch, height, width, depth


@njit(cache=True)
def resize_nearest_neighbor(params, input_shape, input_data, output_shape, output_data):
    """output[b, y, x, c] = input[b, in_y[y], in_x[x], c]."""
    batches, in_h, in_w, depth = _nhwc(input_shape, input_data.size)
    out_b, out_h, out_w, out_d = _nhwc(output_shape, output_data.size)
    if out_b != batches or out_d != depth or params.in_y.size != out_h or params.in_x.size != out_w:
        raise ValueError("RESIZE_NEAREST_NEIGHBOR: shapes do not match the prepared tables")
    for b in range(batches):
        for out_y in range(out_h):
            src_row = (b * in_h + params.in_y[out_y]) * in_w
            dst_row = (b * out_h + out_y) * out_w
            for out_x in range(out_w):
                src = (src_row + params.in_x[out_x]) * depth
                dst = (dst_row + out_x) * depth
                for c in range(depth):
                    output_data[dst + c] = input_data[src + c]


@njit(cache=True)
def resize_bilinear(params, input_shape, input_data, output_shape, output_data):
    """int8 bilinear in 10-bit fixed point (ResizeBilinearInteger), double rounding's default branch."""
    batches, in_h, in_w, depth = _nhwc(input_shape, input_data.size)
    out_b, out_h, out_w, out_d = _nhwc(output_shape, output_data.size)
    if out_b != batches or out_d != depth or params.y0.size != out_h or params.x0.size != out_w:
        raise ValueError("RESIZE_BILINEAR: shapes do not match the prepared tables")
    for b in range(batches):
        for out_y in range(out_h):
            fy = np.int64(params.y_frac[out_y])
            row0 = (b * in_h + params.y0[out_y]) * in_w
            row1 = (b * in_h + params.y1[out_y]) * in_w
            for out_x in range(out_w):
                fx = np.int64(params.x_frac[out_x])
                x0, x1 = params.x0[out_x], params.x1[out_x]
                w00 = (1024 - fy) * (1024 - fx)  # the four weights sum to 2^20; |each| < 2^21
                w10 = fy * (1024 - fx)
                w01 = (1024 - fy) * fx
                w11 = fy * fx
                dst = ((b * out_h + out_y) * out_w + out_x) * depth
                for c in range(depth):
                    # |acc| <= 128 * 4 * 2^21 < 2^31, held in int64 as the reference does
                    acc = (np.int64(input_data[(row0 + x0) * depth + c]) * w00
                           + np.int64(input_data[(row1 + x0) * depth + c]) * w10
                           + np.int64(input_data[(row0 + x1) * depth + c]) * w01
                           + np.int64(input_data[(row1 + x1) * depth + c]) * w11)  # fmt: skip
                    acc += 524288 if acc > 0 else -524288  # +-2^19, then C's truncating / 2^20
                    output_data[dst + c] = acc >> 20 if acc >= 0 else -((-acc) >> 20)


@njit(cache=True)
def space_to_batch_nd(params, input_shape, input_data, output_shape, output_data):
    """Zero-padded blocks of each image's space -> that image's batch rows (SpaceToBatchND, per image)."""
    in_rows, in_h, in_w, depth = _nhwc(input_shape, input_data.size)
    out_rows, out_h, out_w, out_d = _nhwc(output_shape, output_data.size)
    per_image_in = params.input_batch
    per_image_out = per_image_in * params.block_height * params.block_width
    if per_image_in <= 0 or in_rows % per_image_in != 0 or out_d != depth:
        raise ValueError("SPACE_TO_BATCH_ND: the input rows are not whole images")
    images = in_rows // per_image_in
    if out_rows != images * per_image_out:
        raise ValueError("SPACE_TO_BATCH_ND: the output rows do not match the input images")
    for n in range(images):
        for out_b in range(per_image_out):
            b = out_b % per_image_in
            shift_h = (out_b // per_image_in) // params.block_width
            shift_w = (out_b // per_image_in) % params.block_width
            src_image = n * per_image_in + b
            dst_image = n * per_image_out + out_b
            for out_y in range(out_h):
                in_y = out_y * params.block_height + shift_h - params.pad_top
                for out_x in range(out_w):
                    in_x = out_x * params.block_width + shift_w - params.pad_left
                    dst = ((dst_image * out_h + out_y) * out_w + out_x) * depth
                    if 0 <= in_y < in_h and 0 <= in_x < in_w:
                        src = ((src_image * in_h + in_y) * in_w + in_x) * depth
                        for c in range(depth):
                            output_data[dst + c] = input_data[src + c]
                    else:
                        for c in range(depth):
                            output_data[dst + c] = params.pad_value


@njit(cache=True)
def batch_to_space_nd(params, input_shape, input_data, output_shape, output_data):
    """Each image's batch rows -> blocks of its space, cropped (BatchToSpaceND, per image)."""
    in_rows, in_h, in_w, depth = _nhwc(input_shape, input_data.size)
    out_rows, out_h, out_w, out_d = _nhwc(output_shape, output_data.size)
    per_image_out = params.output_batch
    per_image_in = per_image_out * params.block_height * params.block_width
    if per_image_out <= 0 or out_rows % per_image_out != 0 or out_d != depth:
        raise ValueError("BATCH_TO_SPACE_ND: the output rows are not whole images")
    images = out_rows // per_image_out
    if in_rows != images * per_image_in:
        raise ValueError("BATCH_TO_SPACE_ND: the input rows do not match the output images")
    for n in range(images):
        for in_b in range(per_image_in):
            out_b = in_b % per_image_out
            offset = in_b // per_image_out
            src_image = n * per_image_in + in_b
            dst_image = n * per_image_out + out_b
            for in_y in range(in_h):
                out_y = in_y * params.block_height + offset // params.block_width - params.crop_top
                if out_y < 0 or out_y >= out_h:
                    continue
                for in_x in range(in_w):
                    out_x = in_x * params.block_width + offset % params.block_width - params.crop_left
                    if out_x < 0 or out_x >= out_w:
                        continue
                    src = ((src_image * in_h + in_y) * in_w + in_x) * depth
                    dst = ((dst_image * out_h + out_y) * out_w + out_x) * depth
                    for c in range(depth):
                        output_data[dst + c] = input_data[src + c]
