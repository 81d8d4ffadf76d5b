"""RELU on int8: requantize to the output's own qparams, then clamp at the output's zero (QuantizedReluX)."""

from __future__ import annotations

import numpy as np

from edgecnn.deploy.ops.base import ACTIVATION, OpDef, Operand, Prepared, same_shape_unary
from edgecnn.deploy.runtime import naive_elementwise
from edgecnn.deploy.runtime.elementwise_params import RequantizeClampParams
from edgecnn.errors import QuantizationError
from edgecnn.int8.rules import activation_range, quantize_multiplier


def prepare_requantize_clamp(ctx, activation: str) -> Prepared:
    """RELU / RELU6 (ReluPrepare): multiplier of float32(in_s / out_s); range as a fused activation's."""
    x, output = same_shape_unary(ctx)
    in_s, out_s = np.float32(x.scale[0]), np.float32(output.scale[0])
    out_zp = ctx.zero_point(output)
    try:
        multiplier, shift = quantize_multiplier(float(in_s / out_s))  # TFLite divides in float32
        act_min, act_max = activation_range(activation, out_s, out_zp)
    except QuantizationError as e:
        raise ctx.fail(str(e)) from None
    params = RequantizeClampParams(ctx.zero_point(x), out_zp, multiplier, shift, act_min, act_max)
    return Prepared(params, (ctx.op.inputs[0],))


OP = OpDef(
    name="RELU",
    operands=(Operand("input", ACTIVATION),),
    version=lambda graph, op: 2,  # int8 (op_version.cc)
    min_runtime={2: "2.1.0"},
    prepare=lambda ctx: prepare_requantize_clamp(ctx, "RELU"),
    kernel="edgecnn.deploy.runtime.activation_ops:requantize_clamp",
    naive=naive_elementwise.requantize_clamp,
)
