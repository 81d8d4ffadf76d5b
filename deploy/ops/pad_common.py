"""What PAD and PADV2 share: the constant [rank, 2] paddings, the output shape, the version.

LiteRT (`kernels/pad.cc`) copies the int8 values unchanged (no rescaling,
whatever the input and output qparams) and fills the border with the output
zero point (PAD) or with PADV2's constant, which must share the output's
scale and zero point. edgecnn refuses padding of dimension 0, the batch.
"""

from __future__ import annotations

import numpy as np

from edgecnn.deploy.export.c_source import CSource, c_block
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


# ---------------------------------------------------------------- C and ONNX lowerings

C_BLOCKS = {"pad": c_block((), r"""
/* PAD / PADV2: the output filled with pad_value, then each innermost input row copied into its place.
   before[d] values of padding precede dimension d; output_strides are the output's row-major strides. */
typedef struct {
    int rank;
    const int32_t *input_dims;
    const int32_t *output_strides;
    const int32_t *before;
    int32_t input_size, output_size;
    int32_t pad_value;
} ec_pad_params;

static void ec_pad(const ec_pad_params *p, const int8_t *input, int8_t *output)
{
    int32_t index[8]; /* zeroed by a loop: an initializer may become a memset call (no libc) */
    int zero;
    for (zero = 0; zero < 8; ++zero) index[zero] = 0;
    const int32_t row = p->input_dims[p->rank - 1];
    int32_t i, r, start;
    int d;
    for (i = 0; i < p->output_size; ++i) output[i] = (int8_t)p->pad_value;
    if (row == 0) return;
    for (r = 0; r < p->input_size / row; ++r) {
        start = p->before[p->rank - 1];
        for (d = 0; d < p->rank - 1; ++d) start += (index[d] + p->before[d]) * p->output_strides[d];
        for (i = 0; i < row; ++i) output[start + i] = input[r * row + i];
        for (d = p->rank - 2; d >= 0; --d) {
            if (++index[d] < p->input_dims[d]) break;
            index[d] = 0;
        }
    }
}
""")}


def c_pad(emit, step) -> CSource:
    p = step.params
    x, y = step.inputs[0], step.outputs[0]
    dims, out_dims = emit.shape(x), emit.shape(y)
    strides = [1] * len(out_dims)
    for d in range(len(out_dims) - 2, -1, -1):
        strides[d] = strides[d + 1] * out_dims[d + 1]
    prefix = emit.prefix(step)
    data = (emit.array("int32_t", f"{prefix}_dims", dims) + emit.array("int32_t", f"{prefix}_strides", strides)
            + emit.array("int32_t", f"{prefix}_before", p.before)
            + emit.struct("ec_pad_params", f"{prefix}_params", [
                ("rank", len(dims)), ("input_dims", f"{prefix}_dims"), ("output_strides", f"{prefix}_strides"),
                ("before", f"{prefix}_before"), ("input_size", emit.size(x)), ("output_size", emit.size(y)),
                ("pad_value", p.pad_value)]))  # fmt: skip
    return CSource(f"ec_pad(&{prefix}_params, @IN0@, @OUT0@);", data, ("pad",), 12 * len(dims))


def onnx_pad(lw, step) -> None:
    """ONNX Pad (constant mode) with the int8 pad value, in whichever layout the input exists."""
    p = step.params
    x = step.inputs[0]
    value, layout = lw.any_layout(x)
    before, after = [int(v) for v in p.before], [int(v) for v in p.after]
    if layout == "NCHW":
        order = [0, 3, 1, 2]  # NCHW position i holds NHWC dimension order[i]
        before, after = [before[d] for d in order], [after[d] for d in order]
    widths = lw.b.const(before + after, np.int64, "pads")
    padded = lw.b.node("Pad", [value, widths, lw.b.const(p.pad_value, np.int8, "pad_value")], "pad", mode="constant")
    lw.set(step.outputs[0], padded, layout)
