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
    for tensor, role, shape in ((block_tensor, "block_shape", (spatial,)), (amounts_tensor, amounts_role, (spatial, 2))):
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
