"""Plain-Python references for the resize and space/batch ops, sharing no code with spatial_ops.py.

Each recomputes what the reference kernels compute from the shapes and the
options alone (the Numba kernels read tables prepare built): float32 numpy
scalars for GetNearestNeighbor, Python ints with C's truncating division for
ResizeBilinearInteger, and TFLite's own batch order for SpaceToBatchND /
BatchToSpaceND applied to each image separately (rows per image = the
tensors' static batch). Same arguments as the kernels without the output
data; each returns the output array.
"""

from __future__ import annotations

import math

import numpy as np

f32 = np.float32


def _c_div(a: int, b: int) -> int:
    """C's integer division: truncates toward zero."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def _as_nhwc(data, shape) -> np.ndarray:
    shape = tuple(shape)
    if len(shape) == 3:
        shape = (shape[0], shape[1], 1, shape[2])
    return np.asarray(data).reshape(shape)


def _nearest(i: int, in_size: int, out_size: int, align_corners: bool, half_pixel: bool) -> int:
    if align_corners and out_size > 1:
        scale = f32(in_size - 1) / f32(out_size - 1)
    else:
        scale = f32(in_size) / f32(out_size)
    v = (f32(i) + f32(0.5 if half_pixel else 0.0)) * scale  # float32 throughout, as in C
    if align_corners:
        a = abs(float(v))
        index = int(math.copysign(math.floor(a) + (1 if a - math.floor(a) >= 0.5 else 0), float(v)))
    else:
        index = math.floor(float(v))
    index = min(index, in_size - 1)
    return max(0, index) if half_pixel else index


def resize_nearest_neighbor(params, input_shape, input_data, output_shape):
    x = _as_nhwc(input_data, input_shape)
    batches, in_h, in_w, depth = x.shape
    _, out_h, out_w, _ = output_shape
    out = np.zeros((batches, out_h, out_w, depth), dtype=x.dtype)
    for y in range(out_h):
        iy = _nearest(y, in_h, out_h, params.align_corners, params.half_pixel_centers)
        for xx in range(out_w):
            ix = _nearest(xx, in_w, out_w, params.align_corners, params.half_pixel_centers)
            out[:, y, xx, :] = x[:, iy, ix, :]
    return out.reshape(output_shape)


def _scale_10(in_size: int, out_size: int, align_corners: bool) -> int:
    if align_corners and out_size > 1:
        return (1024 * (in_size - 1) + (out_size - 1) // 2) // (out_size - 1)
    return (1024 * in_size + out_size // 2) // out_size


def _bilinear_axis(i: int, scale_10: int, half_pixel: bool, in_size: int):
    scaled = i * scale_10 + scale_10 // 2 - 512 if half_pixel else i * scale_10
    lower = max(_c_div(scaled, 1024), 0)
    upper = min(_c_div(scaled + 1023, 1024), in_size - 1)
    return scaled, lower, upper


def resize_bilinear(params, input_shape, input_data, output_shape):
    x = _as_nhwc(input_data, input_shape).astype(np.int64).tolist()
    batches, in_h, in_w = len(x), len(x[0]), len(x[0][0])
    _, out_h, out_w, depth = output_shape
    sy = _scale_10(in_h, out_h, params.align_corners)
    sx = _scale_10(in_w, out_w, params.align_corners)
    out = np.zeros((batches, out_h, out_w, depth), dtype=np.int8)
    for b in range(batches):
        for y in range(out_h):
            in_y, y0, y1 = _bilinear_axis(y, sy, params.half_pixel_centers, in_h)
            for xx in range(out_w):
                in_x, x0, x1 = _bilinear_axis(xx, sx, params.half_pixel_centers, in_w)
                dy, dx = in_y - 1024 * y0, in_x - 1024 * x0
                for c in range(depth):
                    total = (x[b][y0][x0][c] * (1024 - dy) * (1024 - dx) + x[b][y1][x0][c] * dy * (1024 - dx)
                             + x[b][y0][x1][c] * (1024 - dy) * dx + x[b][y1][x1][c] * dy * dx)  # fmt: skip
                    out[b, y, xx, c] = _c_div(total + (2**19 if total > 0 else -(2**19)), 2**20)
    return out.reshape(output_shape)


def space_to_batch_nd(params, input_shape, input_data, output_shape):
    x = _as_nhwc(input_data, input_shape)
    oshape = tuple(output_shape) if len(output_shape) == 4 else (output_shape[0], output_shape[1], 1, output_shape[2])
    out = np.empty(oshape, dtype=x.dtype)
    per_in, bh, bw = params.input_batch, params.block_height, params.block_width
    per_out = per_in * bh * bw
    _, in_h, in_w, _ = x.shape
    for n in range(x.shape[0] // per_in):
        image, result = x[n * per_in:(n + 1) * per_in], out[n * per_out:(n + 1) * per_out]
        for out_b in range(per_out):  # TFLite's order within one image: out_b = (block offset) * batch + b
            b, offset = out_b % per_in, out_b // per_in
            for oy in range(oshape[1]):
                for ox in range(oshape[2]):
                    iy = oy * bh + offset // bw - params.pad_top
                    ix = ox * bw + offset % bw - params.pad_left
                    inside = 0 <= iy < in_h and 0 <= ix < in_w
                    result[out_b, oy, ox, :] = image[b, iy, ix, :] if inside else params.pad_value
    return out.reshape(output_shape)


def batch_to_space_nd(params, input_shape, input_data, output_shape):
    x = _as_nhwc(input_data, input_shape)
    oshape = tuple(output_shape) if len(output_shape) == 4 else (output_shape[0], output_shape[1], 1, output_shape[2])
    out = np.zeros(oshape, dtype=x.dtype)
    per_out, bh, bw = params.output_batch, params.block_height, params.block_width
    per_in = per_out * bh * bw
    _, in_h, in_w, _ = x.shape
    for n in range(oshape[0] // per_out):
        image, result = x[n * per_in:(n + 1) * per_in], out[n * per_out:(n + 1) * per_out]
        for in_b in range(per_in):
            b, offset = in_b % per_out, in_b // per_out
            for iy in range(in_h):
                oy = iy * bh + offset // bw - params.crop_top
                for ix in range(in_w):
                    ox = ix * bw + offset % bw - params.crop_left
                    if 0 <= oy < oshape[1] and 0 <= ox < oshape[2]:
                        result[b, oy, ox, :] = image[in_b, iy, ix, :]
    return out.reshape(output_shape)
