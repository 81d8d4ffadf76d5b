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

from edgecnn.deploy.export.c_source import CSource, c_block
from edgecnn.deploy.ops.base import ACTIVATION, CONSTANT, OpDef, Operand, Prepared
from edgecnn.deploy.ops.resize_common import flag, options_codec, prepare_resize
from edgecnn.deploy.runtime import spatial_naive
from edgecnn.deploy.runtime.spatial_params import ResizeBilinearParams
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


# ---------------------------------------------------------------- C and ONNX lowerings

C_BLOCKS = {
    "resize_bilinear": c_block((), r"""
/* RESIZE_BILINEAR, int8 (TFLite ResizeBilinearInteger): four taps weighted in 10-bit fixed point,
   (1024 - fy)(1024 - fx), fy(1024 - fx), (1024 - fy)fx, fy*fx (they sum to 2^20), then
   (acc +- 2^19) / 2^20 with C's truncating division. |acc| <= 128 * 4 * 2^21: int64 by the reference. */
typedef struct {
    int32_t batches, in_h, in_w, depth, out_h, out_w;
    const int32_t *y0, *y1, *fy, *x0, *x1, *fx;
} ec_resize_bilinear_params;

static void ec_resize_bilinear(const ec_resize_bilinear_params *p, const int8_t *input, int8_t *output)
{
    int32_t b, y, x, c;
    for (b = 0; b < p->batches; ++b) {
        for (y = 0; y < p->out_h; ++y) {
            const int64_t fy = p->fy[y];
            const int8_t *row0 = input + (b * p->in_h + p->y0[y]) * p->in_w * p->depth;
            const int8_t *row1 = input + (b * p->in_h + p->y1[y]) * p->in_w * p->depth;
            for (x = 0; x < p->out_w; ++x) {
                const int64_t fx = p->fx[x];
                const int32_t c0 = p->x0[x] * p->depth, c1 = p->x1[x] * p->depth;
                int8_t *dst = output + ((b * p->out_h + y) * p->out_w + x) * p->depth;
                for (c = 0; c < p->depth; ++c) {
                    int64_t acc = row0[c0 + c] * (1024 - fy) * (1024 - fx) + row1[c0 + c] * fy * (1024 - fx)
                                + row0[c1 + c] * (1024 - fy) * fx + row1[c1 + c] * fy * fx;
                    acc += acc > 0 ? (1 << 19) : -(1 << 19);
                    dst[c] = (int8_t)(acc / (1 << 20));
                }
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
    names = ("y0", "y1", "fy", "x0", "x1", "fx")
    tables = (p.y0, p.y1, p.y_frac, p.x0, p.x1, p.x_frac)
    data = "".join(emit.array("int32_t", f"{prefix}_{n}", t) for n, t in zip(names, tables))
    data += emit.struct("ec_resize_bilinear_params", f"{prefix}_params", [
        ("batches", batch), ("in_h", in_h), ("in_w", in_w), ("depth", depth), ("out_h", out_h), ("out_w", out_w),
        *[(n, f"{prefix}_{n}") for n in names]])  # fmt: skip
    return CSource(f"ec_resize_bilinear(&{prefix}_params, @IN0@, @OUT0@);", data, ("resize_bilinear",),
                   12 * (out_h + out_w))  # fmt: skip


def _onnx(lw, step) -> None:
    """Gather the four taps in NHWC, weight them in int64, and divide by 2^20 rounding half away from zero."""
    from onnx import TensorProto

    b, p = lw.b, step.params
    x = lw.nhwc(step.inputs[0])
    fy = p.y_frac.astype(np.int64).reshape(1, -1, 1, 1)
    fx = p.x_frac.astype(np.int64).reshape(1, 1, -1, 1)
    rows = {k: b.node("Gather", [x, b.const(v, np.int64, k)], "rows", axis=1) for k, v in (("y0", p.y0), ("y1", p.y1))}
    total = None
    for row, col, weight in (("y0", p.x0, (1024 - fy) * (1024 - fx)), ("y1", p.x0, fy * (1024 - fx)),
                             ("y0", p.x1, (1024 - fy) * fx), ("y1", p.x1, fy * fx)):  # fmt: skip
        tap = b.cast(b.node("Gather", [rows[row], b.const(col, np.int64, "cols")], "tap", axis=2), TensorProto.INT64)
        term = b.node("Mul", [tap, b.const(weight, np.int64, "weight")], "weighted")
        total = term if total is None else b.node("Add", [total, term], "sum")
    # (total +- 2^19) / 2^20, truncating: sign(t) * ((|t| + 2^19) // 2^20) is the same for t != 0, and 0 for 0.
    rounded = b.divide_round_half_away(total, b.const(2**20, np.int64, "two20"), b.const(2**19, np.int64, "two19"))
    lw.set(step.outputs[0], b.cast(rounded, TensorProto.INT8))


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
    c=_c,
    c_blocks=C_BLOCKS,
    onnx=_onnx,
)
