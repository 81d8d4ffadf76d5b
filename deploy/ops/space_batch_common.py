"""What SPACE_TO_BATCH_ND and BATCH_TO_SPACE_ND share: the constant block shape and pads/crops, the checks.

Both take a rank-3 (NHC) or rank-4 (NHWC) int8 input, a constant int32
block_shape [spatial dims] and a constant int32 [spatial dims, 2] of paddings
(S2B) or crops (B2S); input and output must share scale and zero point (LiteRT
checks both). Neither has options: the converter writes no options table.
The batch changes: S2B's output holds block_h * block_w rows per input row
(Keras 3 writes a dilated convolution as S2B -> CONV_2D -> B2S), so the
static batch of tensors between the two is block_h * block_w, not 1.
"""

from __future__ import annotations

import numpy as np

from edgecnn.deploy.export.c_source import CSource, c_block
from edgecnn.errors import ShapeError, UnsupportedOpError


def version(graph, op) -> int:
    """3 for a rank-3 input, else 2 (int8; op_version.cc)."""
    return 3 if len(graph.tensors[op.inputs[0]].shape) != 4 else 2


MIN_RUNTIME = {2: "1.14.0", 3: "2.3.0"}


def prepare_blocks(ctx, amounts_role: str):
    """(input, output, (block_h, block_w), [[top, bottom], [left, right]]) with 3-D inputs as width 1."""
    x = ctx.activation(ctx.tensor(0, "input"), "input")
    output = ctx.activation(ctx.output(), "output")
    rank = len(x.shape)
    if rank not in (3, 4):
        raise ctx.fail(f"input {x.name} has rank {rank}; LiteRT takes NHC or NHWC", UnsupportedOpError)
    if not np.array_equal(x.scale, output.scale) or ctx.zero_point(x) != ctx.zero_point(output):
        raise ctx.fail(f"input {x.name} and output {output.name} must share scale and zero point")
    spatial = rank - 2
    block_tensor, amounts_tensor = ctx.tensor(1, "block_shape"), ctx.tensor(2, amounts_role)
    expected = ((block_tensor, "block_shape", (spatial,)), (amounts_tensor, amounts_role, (spatial, 2)))
    for tensor, role, shape in expected:
        if tensor.dtype != "int32":
            raise ctx.fail(f"{role} {tensor.name} is {tensor.dtype}; LiteRT reads int32", UnsupportedOpError)
        if tuple(tensor.shape) != shape:
            raise ctx.fail(f"{role} {tensor.name} has shape {tensor.shape}; a rank-{rank} input needs {shape}",
                           ShapeError)  # fmt: skip
    block = ctx.constant(block_tensor, "block_shape", "int32", 1).astype(np.int64).tolist()
    amounts = ctx.constant(amounts_tensor, amounts_role, "int32", 2).astype(np.int64).reshape(spatial, 2).tolist()
    if any(b <= 0 for b in block):
        raise ctx.fail(f"block_shape {block} must be positive", ShapeError)
    if any(v < 0 for pair in amounts for v in pair):
        raise ctx.fail(f"{amounts_role} {amounts} must be non-negative", ShapeError)
    if spatial == 1:
        block, amounts = block + [1], amounts + [[0, 0]]
    return x, output, tuple(block), amounts


def spatial_dims(shape) -> tuple[int, int]:
    """(height, width) of an NHWC shape, width 1 for NHC."""
    return (shape[1], shape[2]) if len(shape) == 4 else (shape[1], 1)


def with_spatial(shape, batch: int, height: int, width: int) -> tuple:
    return (batch, height, width, shape[-1]) if len(shape) == 4 else (batch, height, shape[-1])


def restore_block_batches(graph):
    """Give the tensors between SPACE_TO_BATCH_ND and BATCH_TO_SPACE_ND their real static batch; returns graph.

    The TensorFlow converter records a dynamic batch as 1 everywhere, also
    after SPACE_TO_BATCH_ND, where one image is block_h * block_w rows (LiteRT
    recomputes shapes when it loads a model, so the file still runs there).
    edgecnn's shapes are static: each tensor's batch is rows per image. This
    multiplies the recorded batch of S2B's output, and of every activation
    computed from it up to the BATCH_TO_SPACE_ND that folds it back, by
    prod(block_shape) when the file recorded the input's batch there.
    Files edgecnn writes already have the real batch and are left alone.
    A `.tflite` reader calls this once, after building the graph.
    """
    from edgecnn.deploy.ops import REGISTRY
    from edgecnn.deploy.ops.base import ACTIVATION, ANY

    factors: dict[int, int] = {}  # tensor index -> rows per recorded row
    for op in graph.ops:
        opdef = REGISTRY.get(op.kind)
        if op.kind == "SPACE_TO_BATCH_ND" and len(op.inputs) == 3 and graph.tensors[op.inputs[1]].is_constant:
            x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
            blocks = int(np.prod(graph.tensors[op.inputs[1]].data, dtype=np.int64))
            inherited = factors.get(op.inputs[0], 1)
            if blocks > 1 and x.shape and y.shape and y.shape[0] == x.shape[0]:  # recorded without the blocks
                factors[op.outputs[0]] = inherited * blocks
            continue
        if opdef is None:
            continue
        fed = [factors[t] for pos, t in enumerate(op.inputs)
               if t in factors and opdef.operand(pos).kind in (ACTIVATION, ANY)]  # fmt: skip
        if not fed:
            continue
        factor = max(fed)
        if op.kind == "BATCH_TO_SPACE_ND":
            blocks = int(np.prod(graph.tensors[op.inputs[1]].data, dtype=np.int64)) if len(op.inputs) > 1 else 1
            factor = factor // blocks if blocks > 0 and factor % blocks == 0 else 1
            if factor <= 1:
                continue
        for t in op.outputs:
            factors[t] = factor
    for t, factor in factors.items():
        tensor = graph.tensors[t]
        if factor > 1 and tensor.shape:
            tensor.shape = (tensor.shape[0] * factor,) + tuple(tensor.shape[1:])
    return graph


# ---------------------------------------------------------------- C and ONNX lowerings

C_BLOCKS = {
    "space_to_batch": c_block((), r"""
/* SPACE_TO_BATCH_ND, int8, one image: output row (shift_h * block_w + shift_w) * batch + b holds the
   padded input's pixels (out_y * block_h + shift_h, out_x * block_w + shift_w); padding is pad_value. */
typedef struct {
    int32_t batch, in_h, in_w, depth, out_h, out_w, block_h, block_w, pad_top, pad_left, pad_value;
} ec_space_to_batch_params;

static void ec_space_to_batch(const ec_space_to_batch_params *p, const int8_t *input, int8_t *output)
{
    int32_t out_b, y, x, c;
    for (out_b = 0; out_b < p->batch * p->block_h * p->block_w; ++out_b) {
        const int32_t b = out_b % p->batch, shift = out_b / p->batch;
        const int32_t shift_h = shift / p->block_w, shift_w = shift % p->block_w;
        for (y = 0; y < p->out_h; ++y) {
            const int32_t in_y = y * p->block_h + shift_h - p->pad_top;
            for (x = 0; x < p->out_w; ++x) {
                const int32_t in_x = x * p->block_w + shift_w - p->pad_left;
                int8_t *dst = output + ((out_b * p->out_h + y) * p->out_w + x) * p->depth;
                if (in_y >= 0 && in_y < p->in_h && in_x >= 0 && in_x < p->in_w) {
                    const int8_t *src = input + ((b * p->in_h + in_y) * p->in_w + in_x) * p->depth;
                    for (c = 0; c < p->depth; ++c) dst[c] = src[c];
                } else {
                    for (c = 0; c < p->depth; ++c) dst[c] = (int8_t)p->pad_value;
                }
            }
        }
    }
}
"""),
    "batch_to_space": c_block((), r"""
/* BATCH_TO_SPACE_ND, int8, one image: input row r goes to block offset r / batch of output row r % batch,
   pixel (in_y * block_h + offset / block_w - crop_top, in_x * block_w + offset % block_w - crop_left). */
typedef struct {
    int32_t batch, in_h, in_w, depth, out_h, out_w, block_h, block_w, crop_top, crop_left;
} ec_batch_to_space_params;

static void ec_batch_to_space(const ec_batch_to_space_params *p, const int8_t *input, int8_t *output)
{
    int32_t in_b, y, x, c;
    for (in_b = 0; in_b < p->batch * p->block_h * p->block_w; ++in_b) {
        const int32_t b = in_b % p->batch, offset = in_b / p->batch;
        for (y = 0; y < p->in_h; ++y) {
            const int32_t out_y = y * p->block_h + offset / p->block_w - p->crop_top;
            if (out_y < 0 || out_y >= p->out_h) continue;
            for (x = 0; x < p->in_w; ++x) {
                const int32_t out_x = x * p->block_w + offset % p->block_w - p->crop_left;
                const int8_t *src;
                int8_t *dst;
                if (out_x < 0 || out_x >= p->out_w) continue;
                src = input + ((in_b * p->in_h + y) * p->in_w + x) * p->depth;
                dst = output + ((b * p->out_h + out_y) * p->out_w + out_x) * p->depth;
                for (c = 0; c < p->depth; ++c) dst[c] = src[c];
            }
        }
    }
}
"""),
}


def _dims(shape) -> tuple[int, int, int, int]:
    return (shape[0], shape[1], shape[2], shape[3]) if len(shape) == 4 else (shape[0], shape[1], 1, shape[2])


def c_space_to_batch(emit, step) -> CSource:
    p = step.params
    batch, in_h, in_w, depth = _dims(emit.shape(step.inputs[0]))
    _, out_h, out_w, _ = _dims(emit.shape(step.outputs[0]))
    name = f"{emit.prefix(step)}_params"
    data = emit.struct("ec_space_to_batch_params", name, [
        ("batch", batch), ("in_h", in_h), ("in_w", in_w), ("depth", depth), ("out_h", out_h), ("out_w", out_w),
        ("block_h", p.block_height), ("block_w", p.block_width), ("pad_top", p.pad_top), ("pad_left", p.pad_left),
        ("pad_value", p.pad_value)])  # fmt: skip
    return CSource(f"ec_space_to_batch(&{name}, @IN0@, @OUT0@);", data, ("space_to_batch",), 44)


def c_batch_to_space(emit, step) -> CSource:
    p = step.params
    _, in_h, in_w, depth = _dims(emit.shape(step.inputs[0]))
    batch, out_h, out_w, _ = _dims(emit.shape(step.outputs[0]))
    name = f"{emit.prefix(step)}_params"
    data = emit.struct("ec_batch_to_space_params", name, [
        ("batch", batch), ("in_h", in_h), ("in_w", in_w), ("depth", depth), ("out_h", out_h), ("out_w", out_w),
        ("block_h", p.block_height), ("block_w", p.block_width), ("crop_top", p.crop_top),
        ("crop_left", p.crop_left)])  # fmt: skip
    return CSource(f"ec_batch_to_space(&{name}, @IN0@, @OUT0@);", data, ("batch_to_space",), 40)


def _as_4d(lw, step, t: int) -> str:
    """Tensor t in NHWC, a rank-3 NHC one as NH1C."""
    value = lw.nhwc(t)
    if len(lw.shape(t)) == 4:
        return value
    return lw.b.node("Unsqueeze", [value, lw.b.const([2], np.int64, "axis_w")], "nh1c")


def _set_from_4d(lw, step, value: str) -> None:
    t = step.outputs[0]
    if len(lw.shape(t)) == 3:
        value = lw.b.node("Squeeze", [value, lw.b.const([2], np.int64, "axis_w")], "nhc")
    lw.set(t, value)


def onnx_space_to_batch(lw, step) -> None:
    """Pad with the zero point, then (N, B, H/bh, bh, W/bw, bw, C) -> (N, bh, bw, B, H/bh, W/bw, C), per image."""
    b, p = lw.b, step.params
    x = _as_4d(lw, step, step.inputs[0])
    _, in_h, in_w, depth = _dims(lw.shape(step.inputs[0]))
    _, out_h, out_w, _ = _dims(lw.shape(step.outputs[0]))
    pad_bottom = out_h * p.block_height - in_h - p.pad_top
    pad_right = out_w * p.block_width - in_w - p.pad_left
    widths = b.const([0, p.pad_top, p.pad_left, 0, 0, pad_bottom, pad_right, 0], np.int64, "pads")
    padded = b.node("Pad", [x, widths, b.const(p.pad_value, np.int8, "pad_value")], "pad", mode="constant")
    split = b.node("Reshape", [padded, b.const([-1, p.input_batch, out_h, p.block_height, out_w, p.block_width, depth],
                                               np.int64, "blocks")], "blocks")  # fmt: skip
    moved = b.node("Transpose", [split], "to_batch", perm=[0, 3, 5, 1, 2, 4, 6])
    rows = b.node("Reshape", [moved, b.const([-1, out_h, out_w, depth], np.int64, "shape")], "space_to_batch")
    _set_from_4d(lw, step, rows)


def onnx_batch_to_space(lw, step) -> None:
    """(N, bh, bw, B, H, W, C) -> (N, B, H, bh, W, bw, C) -> (N*B, H*bh, W*bw, C), then the crops, per image."""
    b, p = lw.b, step.params
    x = _as_4d(lw, step, step.inputs[0])
    _, in_h, in_w, depth = _dims(lw.shape(step.inputs[0]))
    _, out_h, out_w, _ = _dims(lw.shape(step.outputs[0]))
    split = b.node("Reshape", [x, b.const([-1, p.block_height, p.block_width, p.output_batch, in_h, in_w, depth],
                                          np.int64, "blocks")], "blocks")  # fmt: skip
    moved = b.node("Transpose", [split], "to_space", perm=[0, 3, 4, 1, 5, 2, 6])
    full = b.node("Reshape", [moved, b.const([-1, in_h * p.block_height, in_w * p.block_width, depth], np.int64,
                                             "shape")], "batch_to_space")  # fmt: skip
    cropped = b.node("Slice", [full, b.const([p.crop_top, p.crop_left], np.int64, "starts"),
                               b.const([p.crop_top + out_h, p.crop_left + out_w], np.int64, "ends"),
                               b.const([1, 2], np.int64, "axes")], "crop")  # fmt: skip
    _set_from_4d(lw, step, cropped)
