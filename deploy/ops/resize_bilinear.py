"""RESIZE_BILINEAR: int8 bilinear interpolation in 10-bit fixed point (reference_ops::ResizeBilinearInteger).

Per axis: scale_10 = (1024 * in + out / 2) / out (align_corners: (1024 * (in - 1)
+ (out - 1) / 2) / (out - 1)); source position s = i * scale_10, or
i * scale_10 + scale_10 / 2 - 512 with half_pixel_centers; lower = max(s / 1024, 0)
and upper = min((s + 1023) / 1024, in - 1), C's truncating division; the weight
of the upper tap is f = s - 1024 * lower. Prepare builds (lower, upper, f) once
per output row and column; the kernel sums the four taps in int64 and divides
by 2^20 rounding half away from zero (the default, double-rounding build).
LiteRT refuses align_corners with half_pixel_centers, and so does edgecnn.
"""

from __future__ import annotations

import numpy as np

from edgecnn.deploy.ops.base import ACTIVATION, CONSTANT, OpDef, Operand, Prepared
from edgecnn.deploy.ops.resize_common import flag, options_codec, prepare_resize
from edgecnn.deploy.runtime import spatial_naive
from edgecnn.deploy.runtime.spatial_ops import ResizeBilinearParams
from edgecnn.errors import ShapeError

_decode, _encode = options_codec("ResizeBilinearOptions")


def _trunc_div(a: np.ndarray, b: int) -> np.ndarray:
    return np.sign(a) * (np.abs(a) // b)


def interpolation_table(in_size: int, out_size: int, align_corners: bool, half_pixel_centers: bool):
    """(lower, upper, fraction) int32 arrays of length out_size, as ComputeInterpolationValuesInteger."""
    if align_corners and out_size > 1:
        scale_10 = (1024 * (in_size - 1) + (out_size - 1) // 2) // (out_size - 1)
    else:
        scale_10 = (1024 * in_size + out_size // 2) // out_size
    i = np.arange(out_size, dtype=np.int64)
    scaled = i * scale_10 + (scale_10 // 2 - 512 if half_pixel_centers else 0)  # < 2^31: sizes <= 2^20
    lower = np.maximum(_trunc_div(scaled, 1024), 0)
    upper = np.minimum(_trunc_div(scaled + 1023, 1024), in_size - 1)
    return lower.astype(np.int32), upper.astype(np.int32), (scaled - 1024 * lower).astype(np.int32)


def _prepare(ctx) -> Prepared:
    x, output, in_h, in_w, out_h, out_w = prepare_resize(ctx)
    align, half = flag(ctx, "align_corners"), flag(ctx, "half_pixel_centers")
    if align and half:
        raise ctx.fail("half_pixel_centers needs align_corners False (LiteRT refuses both)")
    y0, y1, fy = interpolation_table(in_h, out_h, align, half)
    x0, x1, fx = interpolation_table(in_w, out_w, align, half)
    # The reference caps only the upper tap: a lower tap past the input would read out of bounds.
    if y0.max() > in_h - 1 or x0.max() > in_w - 1:
        raise ctx.fail(f"resizing {in_h}x{in_w} to {out_h}x{out_w} makes LiteRT's int8 reference read past "
                       "the input (its 10-bit scale rounds up too far)", ShapeError)  # fmt: skip
    return Prepared(ResizeBilinearParams(y0, y1, fy, x0, x1, fx, align, half), (ctx.op.inputs[0],))


def _version(graph, op) -> int:
    """3 with half_pixel_centers, else 2 (int8; op_version.cc)."""
    return 3 if op.options.get("half_pixel_centers") else 2


OP = OpDef(
    name="RESIZE_BILINEAR",
    operands=(Operand("input", ACTIVATION), Operand("size", CONSTANT)),
    options_table="ResizeBilinearOptions",
    decode=_decode,
    encode=_encode,
    options_required=False,
    version=_version,
    min_runtime={2: "1.14.0", 3: "2.2.0"},
    prepare=_prepare,
    kernel="edgecnn.deploy.runtime.spatial_ops:resize_bilinear",
    naive=spatial_naive.resize_bilinear,
)
