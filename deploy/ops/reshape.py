"""RESHAPE: copies bytes, ignores quantization params (TFLite does too).

A shape given as a second input (the converter's Flatten) is folded into
`new_shape` by the reader, the batch as -1, so the IR has one input.
"""

from __future__ import annotations

import numpy as np

from edgecnn.deploy.export.c_source import copy_source
from edgecnn.deploy.ops.base import ACTIVATION, OPTIONAL, OpDef, Operand, Prepared, int32_vector, options_builder
from edgecnn.deploy.runtime import naive
from edgecnn.deploy.runtime.params import ReshapeParams
from edgecnn.errors import ShapeError


def _decode(o) -> dict:
    if o is None:
        return {}
    arr = o.NewShapeAsNumpy()
    return {"new_shape": [] if isinstance(arr, int) else [int(v) for v in arr]}


def _encode(b, o, graph, op) -> int:
    # Written in options only (one input): no extra tensor or buffer, and
    # every runtime since 1.5 reads it. A -1 batch keeps it resizable.
    new_shape = int32_vector(b, o["new_shape"])
    start, end, add = options_builder("ReshapeOptions")
    start(b)
    add(b, "NewShape", new_shape)
    return end(b)


def _prepare(ctx) -> Prepared:
    x = ctx.tensor(0, "input")
    output = ctx.output()
    if x.dtype != output.dtype:
        raise ctx.fail(f"input is {x.dtype} but output is {output.dtype}", ShapeError)
    if x.is_constant:
        ctx.activation(x, "input")  # refuses a constant input with one message
    if int(np.prod(x.shape)) != int(np.prod(output.shape)):
        raise ctx.fail(f"cannot reshape {x.shape} into {output.shape}", ShapeError)
    return Prepared(ReshapeParams(), (ctx.op.inputs[0],))



def _onnx(lw, step) -> None:
    lw.set(step.outputs[0], lw.reshape_to(lw.nhwc(step.inputs[0]), step.outputs[0]))


OP = OpDef(
    name="RESHAPE",
    operands=(Operand("input", ACTIVATION), Operand("shape", OPTIONAL)),
    options_table="ReshapeOptions",
    decode=_decode,
    encode=_encode,
    options_required=False,
    version=lambda graph, op: 1,
    min_runtime={1: "1.5.0"},
    prepare=_prepare,
    kernel="edgecnn.deploy.runtime.reshape:reshape",
    naive=naive.reshape,
    c=copy_source,
    onnx=_onnx,
)
