"""SOFTMAX: int8 in, int8 out at 1/256 and -128, gemmlowp fixed point (INT8.md 3)."""

from __future__ import annotations

import math

import numpy as np

from edgecnn.deploy.ops.base import ACTIVATION, OpDef, Operand, Prepared, options_builder, same_shape_unary
from edgecnn.deploy.runtime import naive
from edgecnn.deploy.runtime.params import SoftmaxParams
from edgecnn.errors import QuantizationError, ShapeError
from edgecnn.int8.rules import quantize_multiplier


def _encode(b, o, graph, op) -> int:
    start, end, add = options_builder("SoftmaxOptions")
    start(b)
    add(b, "Beta", float(o.get("beta", 1.0)))
    return end(b)


def _prepare(ctx) -> Prepared:
    x, output = same_shape_unary(ctx)
    if len(x.shape) < 1:
        raise ctx.fail("input must have at least one dimension", ShapeError)
    if ctx.zero_point(output) != -128:
        raise ctx.fail(f"output {output.name} must have zero point -128, has {ctx.zero_point(output)}")
    out_s = np.float32(output.scale[0])
    if abs(out_s - np.float32(1.0 / 256)) > np.float32(0.001) * np.float32(1.0 / 256):
        raise ctx.fail(f"output {output.name} must have scale 1/256 (within 0.1%), has {float(out_s)}")
    beta = float(np.float32(ctx.op.options.get("beta", 1.0)))
    # beta * in_s * 2^26 (Q5.26 differences), capped at 2^31 - 1 (PreprocessSoftmaxScaling).
    real = min(beta * ctx.scale(x) * 2.0**26, 2.0**31 - 1.0)
    if not real > 1.0:
        raise ctx.fail(f"beta * input scale = {beta * ctx.scale(x)} is too small for the int8 softmax")
    try:
        multiplier, left_shift = quantize_multiplier(real)
    except QuantizationError as e:
        raise ctx.fail(str(e)) from None
    # CalculateInputRadius(5, left_shift): the largest |diff| whose shifted value still fits an int32.
    diff_min = -math.floor(31.0 * 2.0**26 / 2.0**left_shift)
    return Prepared(SoftmaxParams(multiplier, left_shift, diff_min), (ctx.op.inputs[0],))


OP = OpDef(
    name="SOFTMAX",
    operands=(Operand("input", ACTIVATION),),
    options_table="SoftmaxOptions",
    decode=lambda o: {"beta": float(o.Beta())},
    encode=_encode,
    version=lambda graph, op: 2,
    min_runtime={2: "1.14.0"},
    prepare=_prepare,
    kernel="edgecnn.deploy.runtime.softmax:softmax",
    naive=naive.softmax,
)
