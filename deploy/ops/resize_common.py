"""What RESIZE_NEAREST_NEIGHBOR and RESIZE_BILINEAR share: the options codec and the size checks.

Both take an NHWC int8 input and a constant int32 size [new_height,
new_width] (LiteRT makes the output dynamic for a computed size; edgecnn
refuses that), copy the input's quantization (no rescaling: LiteRT checks
no qparams), and keep batch and depth.
"""

from __future__ import annotations

from edgecnn.deploy.ops.base import options_builder
from edgecnn.errors import ShapeError, UnsupportedOpError

MAX_SIZE = 2**20  # 1024 * size stays far inside int32 in the 10-bit bilinear arithmetic


def options_codec(table: str):
    """(decode, encode) for ResizeBilinearOptions / ResizeNearestNeighborOptions (align_corners, half_pixel_centers)."""

    def decode(o) -> dict:
        if o is None:
            return {"align_corners": False, "half_pixel_centers": False}
        return {"align_corners": bool(o.AlignCorners()), "half_pixel_centers": bool(o.HalfPixelCenters())}

    def encode(b, o, graph, op) -> int:
        start, end, add = options_builder(table)
        start(b)
        add(b, "AlignCorners", bool(o.get("align_corners", False)))
        add(b, "HalfPixelCenters", bool(o.get("half_pixel_centers", False)))
        return end(b)

    return decode, encode


def flag(ctx, name: str) -> bool:
    value = ctx.op.options.get(name, False)
    if not isinstance(value, (bool, int)) or int(value) not in (0, 1):
        raise ctx.fail(f"option {name} must be a boolean, got {value!r}")
    return bool(value)


def prepare_resize(ctx):
    """(input, output, in_h, in_w, out_h, out_w) after LiteRT's load-time checks."""
    x = ctx.activation(ctx.tensor(0, "input"), "input")
    output = ctx.activation(ctx.output(), "output")
    if len(x.shape) != 4:
        raise ctx.fail(f"input {x.name} must be NHWC, has shape {x.shape}", ShapeError)
    size_tensor = ctx.tensor(1, "size")
    if size_tensor.dtype != "int32":
        raise ctx.fail(f"size {size_tensor.name} is {size_tensor.dtype}; LiteRT needs int32", UnsupportedOpError)
    size = ctx.constant(size_tensor, "size", "int32", 1)
    if size.size != 2:
        raise ctx.fail(f"size {size_tensor.name} must hold 2 values (new_height, new_width), has {size.size}",
                       ShapeError)  # fmt: skip
    out_h, out_w = int(size[0]), int(size[1])
    if not (0 < out_h <= MAX_SIZE and 0 < out_w <= MAX_SIZE):
        raise ctx.fail(f"size {[out_h, out_w]} must be positive (and at most {MAX_SIZE})", ShapeError)
    batch, in_h, in_w, depth = x.shape
    if not (0 < in_h <= MAX_SIZE and 0 < in_w <= MAX_SIZE):
        raise ctx.fail(f"input {x.name} has an empty or huge spatial size {x.shape}", ShapeError)
    ctx.check_output_shape(output, (batch, out_h, out_w, depth))
    return x, output, in_h, in_w, out_h, out_w
