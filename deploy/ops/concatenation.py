"""CONCATENATION: joins tensors along an axis.

Shape values (int32/int64 constants) are folded by the reader (`fold`).
Int8 activations are copied: LiteRT's `concatenation.cc` Prepare insists that
every int8 input has the output's scale and zero point (no rescaling; the
ConcatenationWithScaling path is uint8-only) and that the fused activation
is NONE, and the TF converter writes exactly that. edgecnn refuses the rest
the way LiteRT does, and refuses axis 0 (the batch).
"""

from __future__ import annotations

import math

import numpy as np

from edgecnn.deploy.export.c_source import CSource, c_block
from edgecnn.deploy.ops.base import ANY, FUSED_CODES, OpDef, Operand, Prepared, decode_activation, options_builder
from edgecnn.deploy.runtime import naive_reduce_copy as naive
from edgecnn.deploy.runtime.reduce_copy_params import ConcatenationParams
from edgecnn.errors import ShapeError, UnsupportedOpError


def _decode(o) -> dict:
    return {"axis": o.Axis(), "fused_activation_function": decode_activation(o.FusedActivationFunction())}


def _encode(b, o, graph, op) -> int:
    start, end, add = options_builder("ConcatenationOptions")
    start(b)
    add(b, "Axis", int(o["axis"]))
    add(b, "FusedActivationFunction", FUSED_CODES[o.get("fused_activation_function", "NONE")])
    return end(b)


def fold(values, options):
    if options["fused_activation_function"] != "NONE" or not values or values[0].ndim == 0:
        raise UnsupportedOpError("CONCATENATION of shape values with an activation or of scalars")
    return [np.concatenate(values, axis=int(options["axis"]))]


def _prepare(ctx) -> Prepared:
    output = ctx.activation(ctx.output(), "output")
    inputs = [ctx.activation(ctx.tensor(i, f"input {i}"), f"input {i}") for i in range(len(ctx.op.inputs))]
    rank = len(output.shape)
    axis = ctx.int_option("axis")
    if not -rank <= axis < rank:
        raise ctx.fail(f"axis {axis} is out of range for rank {rank}", ShapeError)
    axis %= rank
    if axis == 0:
        raise ctx.fail("concatenating along dimension 0 (the batch) is not supported", UnsupportedOpError)
    if ctx.op.options.get("fused_activation_function", "NONE") != "NONE":
        raise ctx.fail("LiteRT refuses a fused activation on CONCATENATION", UnsupportedOpError)
    out_scale, out_zp = np.float32(output.scale[0]), ctx.zero_point(output)
    along = 0
    for t in inputs:
        if len(t.shape) != rank or any(a != b for d, (a, b) in enumerate(zip(t.shape, output.shape)) if d != axis):
            raise ctx.fail(f"input {t.name} has shape {t.shape}, which does not fit output {output.shape} "
                           f"along axis {axis}", ShapeError)  # fmt: skip
        if np.float32(t.scale[0]) != out_scale or ctx.zero_point(t) != out_zp:
            raise ctx.fail(f"input {t.name} (scale {float(t.scale[0])}, zero point {ctx.zero_point(t)}) must share "
                           f"the output's scale {float(out_scale)} and zero point {out_zp}: LiteRT's int8 "
                           "CONCATENATION does not rescale")  # fmt: skip
        along += t.shape[axis]
    ctx.check_output_shape(output, output.shape[:axis] + (along,) + output.shape[axis + 1 :])
    return Prepared(ConcatenationParams(axis), tuple(ctx.op.inputs))


C_BLOCKS = {"concatenation": c_block((), r"""
/* CONCATENATION: each of the `outer` rows of the output (the dimensions before the axis) takes `slab`
   bytes of one input at column `offset`; called once per input. */
static void ec_concatenation(const int8_t *input, int8_t *output, size_t outer, size_t slab, size_t output_slab,
                             size_t offset)
{
    size_t o, i;
    for (o = 0; o < outer; ++o)
        for (i = 0; i < slab; ++i) output[o * output_slab + offset + i] = input[o * slab + i];
}
""")}


def _c(emit, step) -> CSource:
    axis = step.params.axis
    out_shape = emit.shape(step.outputs[0])
    outer, output_slab = math.prod(out_shape[:axis]), math.prod(out_shape[axis:])
    calls, offset = [], 0
    for k, t in enumerate(step.inputs):
        slab = math.prod(emit.shape(t)[axis:])
        calls.append(f"ec_concatenation(@IN{k}@, @OUT0@, {outer}, {slab}, {output_slab}, {offset});")
        offset += slab
    return CSource("\n".join(calls), blocks=("concatenation",))


def _onnx(lw, step) -> None:
    """ONNX Concat, in NCHW when every input already is (rank 4), else in TFLite's layout."""
    axis = step.params.axis
    views = [lw.any_layout(t) for t in step.inputs]
    if all(layout == "NCHW" for _, layout in views):
        values, layout, axis = [v for v, _ in views], "NCHW", [0, 3, 1, 2].index(axis)
    else:
        values, layout = [lw.nhwc(t) for t in step.inputs], "NHWC"
    lw.set(step.outputs[0], lw.b.node("Concat", values, "concat", axis=axis), layout)


OP = OpDef(
    name="CONCATENATION",
    operands=(Operand("values", ANY),),
    variadic=True,
    options_table="ConcatenationOptions",
    decode=_decode,
    encode=_encode,
    version=lambda graph, op: 2 if graph.tensors[op.inputs[0]].dtype == "int8" else 1,  # op_version.cc
    min_runtime={1: "1.5.0", 2: "1.14.0"},
    prepare=_prepare,
    kernel="edgecnn.deploy.runtime.copy_ops:concatenation",
    naive=naive.concatenation,
    fold=fold,
    c=_c,
    c_blocks=C_BLOCKS,
    onnx=_onnx,
)
