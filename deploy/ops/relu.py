"""RELU on int8: requantize to the output's own qparams, then clamp at the output's zero (QuantizedReluX)."""

from __future__ import annotations

import numpy as np

from edgecnn.deploy.export.c_source import CSource, c_block
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


C_BLOCKS = {"requantize_clamp": c_block(("mbqm", "saturate"), r"""
/* RELU and RELU6 on int8 (activations.cc QuantizedReluX -> ReluX): the input requantized to the output's
   scale, zp_out + MBQM(q - zp_in), clamped to [act_min, act_max]. |q - zp_in| <= 255; a left shift of the
   multiplier wraps inside ec_mbqm like TFLite's int32. */
typedef struct {
    int32_t input_zero_point, output_zero_point, multiplier, shift, act_min, act_max;
} ec_requantize_clamp_params;

static void ec_requantize_clamp(const ec_requantize_clamp_params *p, const int8_t *input, int8_t *output,
                                size_t size)
{
    size_t i;
    for (i = 0; i < size; ++i) {
        const int32_t scaled = ec_mbqm((int32_t)input[i] - p->input_zero_point, p->multiplier, p->shift);
        output[i] = ec_saturate((int64_t)p->output_zero_point + scaled, p->act_min, p->act_max);
    }
}
""")}


def c_requantize_clamp(emit, step) -> CSource:
    p, name = step.params, emit.prefix(step)
    fields = [("input_zero_point", p.input_zero_point), ("output_zero_point", p.output_zero_point),
              ("multiplier", p.multiplier), ("shift", p.shift), ("act_min", p.activation_min),
              ("act_max", p.activation_max)]  # fmt: skip
    data = emit.struct("ec_requantize_clamp_params", f"{name}_params", fields)
    call = f"ec_requantize_clamp(&{name}_params, @IN0@, @OUT0@, {emit.size(step.inputs[0])});"
    return CSource(call, data, ("requantize_clamp",))


def onnx_requantize_clamp(lw, step) -> None:
    """int64: zp_out + MBQM(q - zp_in), clamped; element-wise, so in whichever layout the input has."""
    from onnx import TensorProto

    b, p = lw.b, step.params
    x, layout = lw.any_layout(step.inputs[0])
    d = b.node("Sub", [b.cast(x, TensorProto.INT64), b.const(p.input_zero_point, np.int64, "input_zp")], "minus_zp")
    scaled = b.multiply_by_quantized_multiplier(d, np.array(p.multiplier), np.array(p.shift), ())
    lw.set(step.outputs[0], b.output_stage(scaled, p.output_zero_point, p.activation_min, p.activation_max), layout)


OP = OpDef(
    name="RELU",
    operands=(Operand("input", ACTIVATION),),
    version=lambda graph, op: 2,  # int8 (op_version.cc)
    min_runtime={2: "2.1.0"},
    prepare=lambda ctx: prepare_requantize_clamp(ctx, "RELU"),
    kernel="edgecnn.deploy.runtime.activation_ops:requantize_clamp",
    naive=naive_elementwise.requantize_clamp,
    c=c_requantize_clamp,
    c_blocks=C_BLOCKS,
    onnx=onnx_requantize_clamp,
)
