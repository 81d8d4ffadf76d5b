"""LEAKY_RELU on int8: one multiplier for inputs at or above the zero point, alpha's below (QuantizeLeakyRelu)."""

from __future__ import annotations

import numpy as np

from edgecnn.deploy.export.c_source import CSource, c_block
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
    add(b, "Alpha", float(np.float32(o["alpha"])))  # no default: TFLite's is 0.0, Keras' 0.2 or 0.3
    return end(b)


def _prepare(ctx) -> Prepared:
    """Multipliers of float32(in_s / out_s) and float32(in_s * alpha / out_s), as LeakyReluPrepare computes them."""
    x, output = same_shape_unary(ctx)
    alpha = np.float32(ctx.option("alpha"))
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


C_BLOCKS = {"leaky_relu": c_block(("mbqm", "saturate"), r"""
/* LEAKY_RELU on int8 (reference_ops::QuantizeLeakyRelu): d = q - zp_in, rescaled by the identity multiplier
   when d >= 0 and by |alpha|'s below (negated afterwards for a negative alpha), plus zp_out, clamped.
   |d| <= 255; the sum is formed in int64, so negating any int32 is safe. */
typedef struct {
    int32_t input_zero_point, output_zero_point, identity_multiplier, identity_shift;
    int32_t alpha_multiplier, alpha_shift, alpha_negative;
} ec_leaky_relu_params;

static void ec_leaky_relu(const ec_leaky_relu_params *p, const int8_t *input, int8_t *output, size_t size)
{
    size_t i;
    for (i = 0; i < size; ++i) {
        const int32_t d = (int32_t)input[i] - p->input_zero_point;
        int64_t scaled;
        if (d >= 0) {
            scaled = ec_mbqm(d, p->identity_multiplier, p->identity_shift);
        } else {
            scaled = ec_mbqm(d, p->alpha_multiplier, p->alpha_shift);
            if (p->alpha_negative) scaled = -scaled;
        }
        output[i] = ec_saturate(p->output_zero_point + scaled, -128, 127);
    }
}
""")}


def _c(emit, step) -> CSource:
    p, name = step.params, emit.prefix(step)
    fields = [(field, getattr(p, field)) for field in p._fields]
    data = emit.struct("ec_leaky_relu_params", f"{name}_params", fields)
    return CSource(f"ec_leaky_relu(&{name}_params, @IN0@, @OUT0@, {emit.size(step.inputs[0])});", data,
                   ("leaky_relu",))  # fmt: skip


def _onnx(lw, step) -> None:
    """int64: both rescalings, then Where(d >= 0); element-wise, so in whichever layout the input has."""
    from onnx import TensorProto

    b, p = lw.b, step.params
    x, layout = lw.any_layout(step.inputs[0])
    d = b.node("Sub", [b.cast(x, TensorProto.INT64), b.const(p.input_zero_point, np.int64, "input_zp")], "minus_zp")
    identity = b.multiply_by_quantized_multiplier(d, np.array(p.identity_multiplier), np.array(p.identity_shift), ())
    alpha = b.multiply_by_quantized_multiplier(d, np.array(p.alpha_multiplier), np.array(p.alpha_shift), ())
    if p.alpha_negative:
        alpha = b.node("Neg", [alpha], "negate")
    non_negative = b.node("GreaterOrEqual", [d, b.const(0, np.int64)], "non_negative")
    scaled = b.node("Where", [non_negative, identity, alpha], "leaky")
    lw.set(step.outputs[0], b.output_stage(scaled, p.output_zero_point, -128, 127), layout)


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
    c=_c,
    c_blocks=C_BLOCKS,
    onnx=_onnx,
)
