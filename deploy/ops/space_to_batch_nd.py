"""SPACE_TO_BATCH_ND: zero-point padding, then each block offset of space becomes a batch row (int8 copy).

Output [b * block_h * block_w, (H + pads) / block_h, (W + pads) / block_w, C],
batch row (shift_h * block_w + shift_w) * B + b, padding filled with the
zero point (reference_ops::SpaceToBatchND). Kernel: deploy/runtime/spatial_ops.py.
"""

from __future__ import annotations

from edgecnn.deploy.ops.base import ACTIVATION, CONSTANT, OpDef, Operand, Prepared
from edgecnn.deploy.ops.space_batch_common import (C_BLOCKS, MIN_RUNTIME, c_space_to_batch, onnx_space_to_batch,
                                                  prepare_blocks, spatial_dims, version, with_spatial)  # fmt: skip
from edgecnn.deploy.runtime import spatial_naive
from edgecnn.deploy.runtime.spatial_params import SpaceToBatchParams
from edgecnn.errors import ShapeError


def _prepare(ctx) -> Prepared:
    x, output, (block_h, block_w), ((top, bottom), (left, right)) = prepare_blocks(ctx, "paddings")
    height, width = spatial_dims(x.shape)
    padded_h, padded_w = height + top + bottom, width + left + right
    if padded_h % block_h or padded_w % block_w:
        raise ctx.fail(f"the padded size {padded_h}x{padded_w} is not a multiple of the block {block_h}x{block_w}",
                       ShapeError)  # fmt: skip
    batch = x.shape[0]
    expected = with_spatial(x.shape, batch * block_h * block_w, padded_h // block_h, padded_w // block_w)
    if output.shape[0] == batch and block_h * block_w > 1 and tuple(output.shape[1:]) == expected[1:]:
        raise ctx.fail(f"output {output.name} records batch {batch}, but holds {block_h * block_w} rows per input "
                       "row (a TensorFlow converter file: space_batch_common.restore_block_batches fixes it)",
                       ShapeError)  # fmt: skip
    ctx.check_output_shape(output, expected)
    params = SpaceToBatchParams(block_h, block_w, top, left, ctx.zero_point(output), batch)
    return Prepared(params, (ctx.op.inputs[0],))


OP = OpDef(
    name="SPACE_TO_BATCH_ND",
    operands=(Operand("input", ACTIVATION), Operand("block_shape", CONSTANT), Operand("paddings", CONSTANT)),
    version=version,
    min_runtime=MIN_RUNTIME,
    prepare=_prepare,
    kernel="edgecnn.deploy.runtime.spatial_ops:space_to_batch_nd",
    naive=spatial_naive.space_to_batch_nd,
    c=c_space_to_batch,
    c_blocks=C_BLOCKS,
    onnx=onnx_space_to_batch,
)
