"""TANH: a 256-entry table built in float32 (docs/int8.md 3); the output params are not checked by LiteRT."""

import numpy as np

from edgecnn.deploy.export.c_source import lookup_source
from edgecnn.deploy.ops.base import ACTIVATION, OpDef, Operand, Prepared, same_shape_unary
from edgecnn.deploy.runtime import naive
from edgecnn.deploy.runtime.lookup import tanh_table
from edgecnn.deploy.runtime.params import LookupTableParams


def _prepare(ctx) -> Prepared:
    x, output = same_shape_unary(ctx)
    table = tanh_table(np.float32(x.scale[0]), ctx.zero_point(x), np.float32(output.scale[0]), ctx.zero_point(output))
    return Prepared(LookupTableParams(table), (ctx.op.inputs[0],))



def _onnx(lw, step) -> None:
    x, layout = lw.any_layout(step.inputs[0])
    lw.set(step.outputs[0], lw.b.lookup_int8(x, step.params.table, "tanh"), layout)


OP = OpDef(
    name="TANH",
    operands=(Operand("input", ACTIVATION),),
    version=lambda graph, op: 2,
    min_runtime={2: "1.14.0"},
    prepare=_prepare,
    kernel="edgecnn.deploy.runtime.activations:tanh",
    naive=naive.tanh,
    c=lambda emit, step: lookup_source(emit, step, step.params.table),
    onnx=_onnx,
)
