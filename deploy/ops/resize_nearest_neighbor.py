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

from edgecnn.deploy.export.c_source import CSource, c_block
from edgecnn.deploy.ops.base import ACTIVATION, CONSTANT, OpDef, Operand, Prepared
from edgecnn.deploy.ops.resize_common import flag, options_codec, prepare_resize
from edgecnn.deploy.runtime import spatial_naive
from edgecnn.deploy.runtime.spatial_params import ResizeNearestParams

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


# ---------------------------------------------------------------- C and ONNX lowerings

C_BLOCKS = {
    "resize_nearest": c_block((), r"""
/* RESIZE_NEAREST_NEIGHBOR, int8: output[b][y][x][:] = input[b][in_y[y]][in_x[x]][:], the source rows and
   columns computed once at export (GetNearestNeighbor's float32 arithmetic, in numpy). */
typedef struct {
    int32_t batches, in_h, in_w, depth, out_h, out_w;
    const int32_t *in_y, *in_x;
} ec_resize_nearest_params;

static void ec_resize_nearest(const ec_resize_nearest_params *p, const int8_t *input, int8_t *output)
{
    int32_t b, y, x, c;
    for (b = 0; b < p->batches; ++b) {
        for (y = 0; y < p->out_h; ++y) {
            for (x = 0; x < p->out_w; ++x) {
                const int8_t *src = input + ((b * p->in_h + p->in_y[y]) * p->in_w + p->in_x[x]) * p->depth;
                int8_t *dst = output + ((b * p->out_h + y) * p->out_w + x) * p->depth;
                for (c = 0; c < p->depth; ++c) dst[c] = src[c];
            }
        }
    }
}
"""),
}


def _c(emit, step) -> CSource:
    p = step.params
    batch, in_h, in_w, depth = emit.shape(step.inputs[0])
    _, out_h, out_w, _ = emit.shape(step.outputs[0])
    prefix = emit.prefix(step)
    data = (emit.array("int32_t", f"{prefix}_in_y", p.in_y) + emit.array("int32_t", f"{prefix}_in_x", p.in_x)
            + emit.struct("ec_resize_nearest_params", f"{prefix}_params", [
                ("batches", batch), ("in_h", in_h), ("in_w", in_w), ("depth", depth), ("out_h", out_h),
                ("out_w", out_w), ("in_y", f"{prefix}_in_y"), ("in_x", f"{prefix}_in_x")]))  # fmt: skip
    return CSource(f"ec_resize_nearest(&{prefix}_params, @IN0@, @OUT0@);", data, ("resize_nearest",),
                   4 * (out_h + out_w))  # fmt: skip


def _onnx(lw, step) -> None:
    """Two Gathers on the NHWC input: rows by in_y (axis 1), then columns by in_x (axis 2)."""
    b, p = lw.b, step.params
    rows = b.node("Gather", [lw.nhwc(step.inputs[0]), b.const(p.in_y, np.int64, "in_y")], "rows", axis=1)
    lw.set(step.outputs[0], b.node("Gather", [rows, b.const(p.in_x, np.int64, "in_x")], "nearest", axis=2))


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
    c=_c,
    c_blocks=C_BLOCKS,
    onnx=_onnx,
)
