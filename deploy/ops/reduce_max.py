"""REDUCE_MAX: int8 maximum over constant axes (global max pooling is axes [1, 2]).

No rescaling: LiteRT's `reduce.cc` EvalType insists that input and output
share scale and zero point, and takes the plain maximum of the int8 values.
"""

from __future__ import annotations

import numpy as np

from edgecnn.deploy.export.c_source import c_block
from edgecnn.deploy.ops.base import ACTIVATION, CONSTANT, OpDef, Operand, Prepared
from edgecnn.deploy.ops.reduce_common import C_BLOCKS as REDUCE_BLOCKS
from edgecnn.deploy.ops.reduce_common import c_reduce, decode_reducer, encode_reducer, onnx_reduce, reduced_axes
from edgecnn.deploy.runtime import naive_reduce_copy as naive
from edgecnn.deploy.runtime.reduce_copy_params import ReduceParams


def _prepare(ctx) -> Prepared:
    x = ctx.activation(ctx.tensor(0, "input"), "input")
    output = ctx.activation(ctx.output(), "output")
    reduced, _ = reduced_axes(ctx, x)
    if np.float32(x.scale[0]) != np.float32(output.scale[0]) or ctx.zero_point(x) != ctx.zero_point(output):
        raise ctx.fail(f"input {x.name} and output {output.name} must share scale and zero point "
                       f"(LiteRT's int8 REDUCE_MAX does not rescale)")  # fmt: skip
    count = int(np.prod([d for d, r in zip(x.shape, reduced) if r], dtype=np.int64))
    if count == 0:
        raise ctx.fail(f"input {x.name} is empty along the reduced axes")
    zp = ctx.zero_point(x)
    return Prepared(ReduceParams(reduced, count, zp, zp, 0, 0), (ctx.op.inputs[0],))


C_BLOCKS = {**REDUCE_BLOCKS, "reduce_max": c_block(("reduce_params",), r"""
/* REDUCE_MAX: each output is the largest int8 reduced into it, starting from -128 (no rescaling). */
static void ec_reduce_max(const ec_reduce_params *p, const int8_t *input, int8_t *output)
{
    int32_t index[8]; /* zeroed by a loop: an initializer may become a memset call (no libc) */
    int zero;
    for (zero = 0; zero < 8; ++zero) index[zero] = 0;
    int32_t i, at = 0;
    for (i = 0; i < p->output_size; ++i) output[i] = -128;
    for (i = 0; i < p->input_size; ++i) {
        if (input[i] > output[at]) output[at] = input[i];
        at += ec_reduce_step(p, index);
    }
}
""")}


def _onnx(lw, step) -> None:
    import onnx

    maximum, layout = onnx_reduce(lw, step, "ReduceMax")
    lw.set(step.outputs[0], lw.b.cast(maximum, onnx.TensorProto.INT8), layout)


OP = OpDef(
    name="REDUCE_MAX",
    operands=(Operand("input", ACTIVATION), Operand("axis", CONSTANT)),
    options_table="ReducerOptions",
    decode=decode_reducer,
    encode=encode_reducer,
    options_required=False,
    version=lambda graph, op: 2,  # int8 (op_version.cc)
    min_runtime={2: "1.14.0"},
    prepare=_prepare,
    kernel="edgecnn.deploy.runtime.reduce:reduce_max",
    naive=naive.reduce_max,
    c=lambda emit, step: c_reduce(emit, step, "reduce_max", scratch=False),
    c_blocks=C_BLOCKS,
    onnx=_onnx,
)
