"""LEAKY_RELU on int8: one multiplier for inputs at or above the zero point, alpha's below (QuantizeLeakyRelu)."""

from __future__ import annotations

import numpy as np

from edgecnn.deploy.ops.base import ACTIVATION, OpDef, Operand, Prepared, options_builder, same_shape_unary
from edgecnn.deploy.runtime import naive_elementwise
from edgecnn.deploy.runtime.elementwise_params import LeakyReluParams
from edgecnn.errors import QuantizationError
from edgecnn.int8.rules import quantize_multiplier


def _decode(o) -> dict:
    return {"alpha": float(np.float32(o.Alpha()))}


def _encode(b, o, graph, op) -> int:
    start, end, add = options_builder("LeakyReluOptions")
    start(b)
    add(b, "Alpha", float(np.float32(o.get("alpha", 0.2))))
    return end(b)


def _prepare(ctx) -> Prepared:
    """Multipliers of float32(in_s / out_s) and float32(in_s * alpha / out_s), as LeakyReluPrepare computes them."""
    x, output = same_shape_unary(ctx)
    alpha = np.float32(ctx.option("alpha", 0.2))
    if not np.isfinite(alpha):
        raise ctx.fail(f"alpha must be finite, got {float(alpha)}")
    in_s, out_s = np.float32(x.scale[0]), np.float32(output.scale[0])
    try:
        identity_m, identity_shift = quantize_multiplier(float(in_s / out_s))
        alpha_m, alpha_shift = quantize_multiplier(float(in_s * alpha / out_s))
    except QuantizationError as e:
        raise ctx.fail(str(e)) from None
    if alpha_m == -(2**31):  # |M| = 2^31 is no int32 (LiteRT's own negation would overflow)
        raise ctx.fail(f"alpha {float(alpha)} gives a multiplier of exactly -2^31, which LiteRT cannot negate")
    params = LeakyReluParams(ctx.zero_point(x), ctx.zero_point(output), identity_m, identity_shift,
                             abs(alpha_m), alpha_shift, int(alpha_m < 0))  # fmt: skip
    return Prepared(params, (ctx.op.inputs[0],))


OP = OpDef(
    name="LEAKY_RELU",
    operands=(Operand("input", ACTIVATION),),
    options_table="LeakyReluOptions",
    decode=_decode,
    encode=_encode,
    version=lambda graph, op: 1,  # int8 (op_version.cc: only int16 is version 2)
    min_runtime={1: "1.13.1"},
    prepare=_prepare,
    kernel="edgecnn.deploy.runtime.activation_ops:leaky_relu",
    naive=naive_elementwise.leaky_relu,
)
