"""RESIZE_NEAREST_NEIGHBOR: int8 copy from the nearest source pixel (reference_ops::ResizeNearestNeighbor).

GetNearestNeighbor works in float32: scale = in / out (or (in - 1) / (out - 1)
with align_corners), v = (i + 0.5 if half_pixel_centers else i) * scale, the
source index roundf(v) with align_corners, else floor(v), capped at in - 1
(and at 0 from below with half_pixel_centers). Prepare evaluates that once per
output row and column with numpy float32 scalars; the kernel gathers.
LiteRT accepts align_corners together with half_pixel_centers here (unlike
bilinear), and so does edgecnn.
"""

from __future__ import annotations

import math

import numpy as np

from edgecnn.deploy.ops.base import ACTIVATION, CONSTANT, OpDef, Operand, Prepared
from edgecnn.deploy.ops.resize_common import flag, options_codec, prepare_resize
from edgecnn.deploy.runtime import spatial_naive
from edgecnn.deploy.runtime.spatial_ops import ResizeNearestParams

_decode, _encode = options_codec("ResizeNearestNeighborOptions")


def source_indices(in_size: int, out_size: int, align_corners: bool, half_pixel_centers: bool) -> np.ndarray:
    """int32 [out_size]: the source index of each output index, in float32 as GetNearestNeighbor computes it."""
    f32 = np.float32
    if align_corners and out_size > 1:
        scale = f32(f32(in_size - 1) / f32(out_size - 1))
    else:
        scale = f32(f32(in_size) / f32(out_size))
    offset = f32(0.5) if half_pixel_centers else f32(0.0)
    indices = np.empty(out_size, dtype=np.int32)
    for i in range(out_size):
        value = float(f32(f32(f32(i) + offset) * scale))
        if align_corners:  # TfLiteRound: halves away from zero (value >= 0 here)
            index = math.floor(value) + (1 if value - math.floor(value) >= 0.5 else 0)
        else:
            index = math.floor(value)
        index = min(index, in_size - 1)
        indices[i] = max(index, 0) if half_pixel_centers else index
    return indices


def _prepare(ctx) -> Prepared:
    x, output, in_h, in_w, out_h, out_w = prepare_resize(ctx)
    align, half = flag(ctx, "align_corners"), flag(ctx, "half_pixel_centers")
    params = ResizeNearestParams(source_indices(in_h, out_h, align, half), source_indices(in_w, out_w, align, half),
                                 align, half)  # fmt: skip
    return Prepared(params, (ctx.op.inputs[0],))


def _version(graph, op) -> int:
    """3 with align_corners or half_pixel_centers, else 2 (int8; op_version.cc)."""
    return 3 if op.options.get("align_corners") or op.options.get("half_pixel_centers") else 2


OP = OpDef(
    name="RESIZE_NEAREST_NEIGHBOR",
    operands=(Operand("input", ACTIVATION), Operand("size", CONSTANT)),
    options_table="ResizeNearestNeighborOptions",
    decode=_decode,
    encode=_encode,
    options_required=False,
    version=_version,
    min_runtime={2: "1.14.0", 3: "2.3.0"},
    prepare=_prepare,
    kernel="edgecnn.deploy.runtime.spatial_ops:resize_nearest_neighbor",
    naive=spatial_naive.resize_nearest_neighbor,
)
