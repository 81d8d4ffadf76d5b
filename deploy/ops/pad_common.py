"""What PAD and PADV2 share: the constant [rank, 2] paddings, the output shape, the version.

LiteRT (`kernels/pad.cc`) copies the int8 values unchanged (no rescaling,
whatever the input and output qparams) and fills the border with the output
zero point (PAD) or with PADV2's constant, which must share the output's
scale and zero point. edgecnn refuses padding of dimension 0, the batch.
"""

from __future__ import annotations

import numpy as np

from edgecnn.deploy.ops.base import Prepared, options_builder
from edgecnn.deploy.runtime.reduce_copy_params import PadParams
from edgecnn.errors import ShapeError, UnsupportedOpError

MAX_RANK = 5  # reference_ops::PadKernelMaxDimensionCount


def version(graph, op) -> int:
    """4 above rank 4, else 2 for int8 (op_version.cc)."""
    return 4 if len(graph.tensors[op.inputs[0]].shape) > 4 else 2


MIN_RUNTIME = {2: "1.14.0", 4: "2.6.0"}


def empty_options(table: str):
    """(decode, encode) of PadOptions / PadV2Options, tables without fields."""

    def encode(b, o, graph, op) -> int:
        start, end, _ = options_builder(table)
        start(b)
        return end(b)

    return (lambda o: {}), encode


def prepare_pad(ctx, pad_value=None) -> Prepared:
    """PadParams for input 0 padded by the constant input 1; pad_value None means the output zero point."""
    x = ctx.activation(ctx.tensor(0, "input"), "input")
    output = ctx.activation(ctx.output(), "output")
    rank = len(x.shape)
    if not 1 <= rank <= MAX_RANK:
        raise ctx.fail(f"input {x.name} has rank {rank}; LiteRT pads ranks 1 to {MAX_RANK}", UnsupportedOpError)
    paddings_tensor = ctx.tensor(1, "paddings")
    if paddings_tensor.dtype not in ("int32", "int64"):
        raise ctx.fail(f"paddings {paddings_tensor.name} are {paddings_tensor.dtype}; expected int32 or int64",
                       UnsupportedOpError)  # fmt: skip
    paddings = ctx.constant(paddings_tensor, "paddings", paddings_tensor.dtype, 2).astype(np.int64)
    if tuple(paddings_tensor.shape) != (rank, 2):
        raise ctx.fail(f"paddings {paddings_tensor.name} have shape {paddings_tensor.shape}; the rank-{rank} "
                       f"input needs ({rank}, 2)", ShapeError)  # fmt: skip
    paddings = paddings.reshape(rank, 2)
    if np.any(paddings < 0) or np.any(paddings > 2**31 - 1):
        raise ctx.fail(f"paddings {paddings.tolist()} must be non-negative int32 values", ShapeError)
    if np.any(paddings[0] != 0):
        raise ctx.fail(f"padding dimension 0 of {x.name} (the batch) is not supported", UnsupportedOpError)
    before, after = np.ascontiguousarray(paddings[:, 0]), np.ascontiguousarray(paddings[:, 1])
    ctx.check_output_shape(output, tuple(int(d + b + a) for d, b, a in zip(x.shape, before, after)))
    if pad_value is None:
        pad_value = ctx.zero_point(output)
    return Prepared(PadParams(before, after, int(pad_value)), (ctx.op.inputs[0],))
