"""LOGISTIC: a 256-entry table built in float32 (docs/int8.md 3); the output scale must be exactly 1/256."""

import numpy as np

from edgecnn.deploy.export.c_source import lookup_source
from edgecnn.deploy.ops.base import ACTIVATION, OpDef, Operand, Prepared, same_shape_unary
from edgecnn.deploy.runtime import naive
from edgecnn.deploy.runtime.lookup import logistic_table
from edgecnn.deploy.runtime.params import LookupTableParams


def _prepare(ctx) -> Prepared:
    x, output = same_shape_unary(ctx)
    out_s = np.float32(output.scale[0])
    if float(out_s) != 1.0 / 256:  # LiteRT checks the scale exactly, and not the zero point
        raise ctx.fail(f"output {output.name} must have scale exactly 1/256, has {float(out_s)}")
    table = logistic_table(np.float32(x.scale[0]), ctx.zero_point(x), out_s, ctx.zero_point(output))
    return Prepared(LookupTableParams(table), (ctx.op.inputs[0],))



def _onnx(lw, step) -> None:
    x, layout = lw.any_layout(step.inputs[0])
    lw.set(step.outputs[0], lw.b.lookup_int8(x, step.params.table, "logistic"), layout)


OP = OpDef(
    name="LOGISTIC",
    operands=(Operand("input", ACTIVATION),),
    version=lambda graph, op: 2,
    min_runtime={2: "1.14.0"},
    prepare=_prepare,
    kernel="edgecnn.deploy.runtime.activations:logistic",
    naive=naive.logistic,
    c=lambda emit, step: lookup_source(emit, step, step.params.table),
    onnx=_onnx,
)
