"""BATCH_TO_SPACE_ND: batch rows back into blocks of space, then cropped (int8 copy).

Input [B, H, W, C] with B a multiple of block_h * block_w; output
[B / (block_h * block_w), H * block_h - crops, W * block_w - crops, C]; input
row r lands at offset r / (B / blocks) of its block (reference_ops::BatchToSpaceND).
Kernel: deploy/runtime/spatial_ops.py.
"""

from __future__ import annotations

from edgecnn.deploy.ops.base import ACTIVATION, CONSTANT, OpDef, Operand, Prepared
from edgecnn.deploy.ops.space_batch_common import (C_BLOCKS, MIN_RUNTIME, c_batch_to_space, onnx_batch_to_space,
                                                  prepare_blocks, spatial_dims, version, with_spatial)  # fmt: skip
from edgecnn.deploy.runtime import spatial_naive
from edgecnn.deploy.runtime.spatial_params import BatchToSpaceParams
from edgecnn.errors import ShapeError


def _prepare(ctx) -> Prepared:
    x, output, (block_h, block_w), ((top, bottom), (left, right)) = prepare_blocks(ctx, "crops")
    batch = x.shape[0]
    if batch % (block_h * block_w):
        raise ctx.fail(f"the input batch {batch} is not a multiple of the block {block_h}x{block_w}; a converter "
                       "file may record 1 where the batch is block_h * block_w", ShapeError)  # fmt: skip
    height, width = spatial_dims(x.shape)
    out_h, out_w = height * block_h - top - bottom, width * block_w - left - right
    if out_h <= 0 or out_w <= 0:
        raise ctx.fail(f"the crops leave an empty {out_h}x{out_w} output", ShapeError)
    out_batch = batch // (block_h * block_w)
    ctx.check_output_shape(output, with_spatial(x.shape, out_batch, out_h, out_w))
    return Prepared(BatchToSpaceParams(block_h, block_w, top, left, out_batch), (ctx.op.inputs[0],))


OP = OpDef(
    name="BATCH_TO_SPACE_ND",
    operands=(Operand("input", ACTIVATION), Operand("block_shape", CONSTANT), Operand("crops", CONSTANT)),
    version=version,
    min_runtime=MIN_RUNTIME,
    prepare=_prepare,
    kernel="edgecnn.deploy.runtime.spatial_ops:batch_to_space_nd",
    naive=spatial_naive.batch_to_space_nd,
    c=c_batch_to_space,
    c_blocks=C_BLOCKS,
    onnx=onnx_batch_to_space,
)
