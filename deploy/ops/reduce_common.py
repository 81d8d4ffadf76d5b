"""What MEAN and REDUCE_MAX share: ReducerOptions, the constant axis input and the output shape.

LiteRT resolves the axes as `reduce.cc` does: negative axes count from the
end, duplicates collapse, and the output keeps a 1 in each reduced dimension
(keep_dims) or drops it. edgecnn also refuses axis 0: it is the batch, which
the runtime, C and ONNX back ends run image by image.
"""

from __future__ import annotations

import numpy as np

from edgecnn.deploy.ops.base import options_builder
from edgecnn.errors import ShapeError, UnsupportedOpError


def decode_reducer(o) -> dict:
    # A missing table is TFLite's zero-initialised TfLiteReducerParams: keep_dims false.
    return {"keep_dims": bool(o.KeepDims()) if o is not None else False}


def encode_reducer(b, o, graph, op) -> int:
    start, end, add = options_builder("ReducerOptions")
    start(b)
    add(b, "KeepDims", bool(o.get("keep_dims", False)))
    return end(b)


def reduced_axes(ctx, x) -> tuple[np.ndarray, tuple[int, ...]]:
    """(int64 mask of reduced dims, output shape) of a reduction of `x`, checked against the graph's output."""
    rank = len(x.shape)
    axis_tensor = ctx.tensor(1, "axis")
    if axis_tensor.dtype != "int32":
        raise ctx.fail(f"axis {axis_tensor.name} is {axis_tensor.dtype}; LiteRT takes int32 axes", UnsupportedOpError)
    if len(axis_tensor.shape) > 1:
        raise ctx.fail(f"axis {axis_tensor.name} has shape {axis_tensor.shape}; expected a vector", ShapeError)
    axes = ctx.constant(axis_tensor, "axis", "int32", None)
    reduced = np.zeros(rank, np.int64)
    for a in axes.tolist():
        if not -rank <= a < rank:
            raise ctx.fail(f"axis {a} is out of range for the rank-{rank} input {x.name}", ShapeError)
        reduced[a % rank] = 1
    if rank == 0 or reduced[0]:
        raise ctx.fail(f"reducing over dimension 0 of {x.name} (the batch) is not supported", UnsupportedOpError)
    if ctx.op.options.get("keep_dims", False):
        shape = tuple(1 if r else d for d, r in zip(x.shape, reduced))
    else:
        shape = tuple(d for d, r in zip(x.shape, reduced) if not r)
    ctx.check_output_shape(ctx.output(), shape)
    return reduced, shape
