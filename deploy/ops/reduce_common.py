"""What MEAN and REDUCE_MAX share: ReducerOptions, the constant axis input and the output shape.

LiteRT resolves the axes as `reduce.cc` does: negative axes count from the
end, duplicates collapse, and the output keeps a 1 in each reduced dimension
(keep_dims) or drops it. edgecnn also refuses axis 0: it is the batch, which
the runtime, C and ONNX back ends run image by image.
"""

from __future__ import annotations

import numpy as np

from edgecnn.deploy.export.c_source import CSource, c_block
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


# ---------------------------------------------------------------- C and ONNX lowerings

C_MAX_RANK = 8  # the odometer's coordinate array in the C kernels

C_BLOCKS = {
    "reduce_params": c_block((), r"""
/* MEAN / REDUCE_MAX: the input's shape and, per input dimension, the step in the flat output when that
   coordinate grows by one (0 for a reduced dimension: all its elements land on the same output). */
typedef struct {
    int rank;
    const int32_t *input_dims;
    const int32_t *output_steps;
    int32_t input_size, output_size, count;
    int32_t input_zero_point, output_zero_point, multiplier, shift;
} ec_reduce_params;

/* Advance the row-major coordinates index[] by one input element; returns the change of the output position. */
static int32_t ec_reduce_step(const ec_reduce_params *p, int32_t *index)
{
    int32_t delta = 0;
    int d;
    for (d = p->rank - 1; d >= 0; --d) {
        ++index[d];
        delta += p->output_steps[d];
        if (index[d] < p->input_dims[d]) break;
        delta -= p->output_steps[d] * p->input_dims[d];
        index[d] = 0;
    }
    return delta;
}
"""),
}


def c_reduce(emit, step, block: str, scratch: bool):
    """The CSource of MEAN (block "mean": ec_mean, a uint32 sum per output in scratch) or REDUCE_MAX."""
    p = step.params
    x, y = step.inputs[0], step.outputs[0]
    dims = emit.shape(x)
    if len(dims) > C_MAX_RANK:
        raise emit.fail(step, f"the C kernel reduces tensors of rank <= {C_MAX_RANK}, not {len(dims)}")
    steps, size = [0] * len(dims), 1
    for d in range(len(dims) - 1, -1, -1):
        if not p.reduced[d]:
            steps[d], size = size, size * dims[d]
    prefix = emit.prefix(step)
    data = (emit.array("int32_t", f"{prefix}_dims", dims) + emit.array("int32_t", f"{prefix}_steps", steps)
            + emit.struct("ec_reduce_params", f"{prefix}_params", [
                ("rank", len(dims)), ("input_dims", f"{prefix}_dims"), ("output_steps", f"{prefix}_steps"),
                ("input_size", emit.size(x)), ("output_size", emit.size(y)), ("count", p.count),
                ("input_zero_point", p.input_zero_point), ("output_zero_point", p.output_zero_point),
                ("multiplier", p.multiplier), ("shift", p.shift)]))  # fmt: skip
    if scratch:
        call = f"ec_{block}(&{prefix}_params, @IN0@, @OUT0@, (uint32_t *)@SCRATCH@);"
        return CSource(call, data, (block,), 8 * len(dims), 4 * emit.size(y))
    return CSource(f"ec_{block}(&{prefix}_params, @IN0@, @OUT0@);", data, (block,), 8 * len(dims))


def onnx_reduce(lw, step, reduce_op: str):
    """(int64 value, layout) of ReduceSum / ReduceMax of the op's input over its axes, in either layout.

    The input is read in whichever layout it exists; an NCHW input stays NCHW when the kept
    dimensions come out in TFLite's order (always with keep_dims, and for global pooling).
    No axes means no reduction (ONNX would reduce every axis).
    """
    import onnx

    p = step.params
    x = step.inputs[0]
    keep = int(bool(lw.graph.ops[step.index].options.get("keep_dims", False)))
    reduced = [d for d in range(len(p.reduced)) if p.reduced[d]]
    value, layout = lw.any_layout(x)
    if not reduced:
        return lw.b.cast(value, onnx.TensorProto.INT64), layout
    if layout == "NCHW":
        order = [0, 3, 1, 2]  # NCHW position i holds NHWC dimension order[i]
        kept = [d for d in order if d not in reduced]
        if keep or kept == sorted(kept):
            axes = sorted(order.index(d) for d in reduced)
        else:
            value, layout, axes = lw.nhwc(x), "NHWC", reduced
    else:
        axes = reduced
    wide = lw.b.cast(value, onnx.TensorProto.INT64)
    if reduce_op == "ReduceSum":  # opset 13+: axes are an input
        out = lw.b.node("ReduceSum", [wide, lw.b.const(axes, "int64", "axes")], "sum", keepdims=keep)
    else:  # ReduceMax takes them as an attribute until opset 18
        out = lw.b.node(reduce_op, [wide], "max", axes=axes, keepdims=keep)
    return out, layout if keep else "NHWC"
