"""HARD_SWISH on int8: x * relu6(x + 3) / 6 in gemmlowp int16 fixed point (reference_ops::HardSwish)."""

from __future__ import annotations

import numpy as np

from edgecnn.deploy.export.c_source import CSource, c_block
from edgecnn.deploy.ops.base import ACTIVATION, OpDef, Operand, Prepared, same_shape_unary
from edgecnn.deploy.runtime import naive_elementwise
from edgecnn.deploy.runtime.elementwise_params import HardSwishParams
from edgecnn.errors import QuantizationError
from edgecnn.int8.rules import quantize_multiplier

_F32 = np.float32


def downscale_to_int16(multiplier: int) -> int:
    """A Q0.31 multiplier rounded to Q0.15 (DownScaleInt32ToInt16Multiplier), saturating near 1.

    >>> downscale_to_int16(1518500250), downscale_to_int16(2**31 - 1), downscale_to_int16(0)
    (23170, 32767, 0)
    """
    if multiplier >= 2**31 - 1 - 2**15:
        return 2**15 - 1
    return (multiplier + 2**15) >> 16


def _prepare(ctx) -> Prepared:
    """HardSwishPrepare: every scale ratio in float32, each quantized in Q0.31 then rounded to Q0.15."""
    x, output = same_shape_unary(ctx)
    hires_input_scale = _F32(1.0 / 128.0) * _F32(x.scale[0])  # the input shifted left 7 bits
    reluish_scale = _F32(3.0) / _F32(32768.0)  # 3.0 becomes 32768
    try:
        out_m, out_exponent = quantize_multiplier(float(hires_input_scale / _F32(output.scale[0])))
        reluish_m, reluish_exponent = quantize_multiplier(float(hires_input_scale / reluish_scale))
    except QuantizationError as e:
        raise ctx.fail(str(e)) from None
    if out_exponent > 0:  # LiteRT refuses this at load time
        raise ctx.fail(f"output scale {float(output.scale[0])} is too small for input scale {float(x.scale[0])}: "
                       "input scale / 128 / output scale must be below 1")  # fmt: skip
    params = HardSwishParams(ctx.zero_point(x), ctx.zero_point(output), downscale_to_int16(out_m), out_exponent,
                             downscale_to_int16(reluish_m), reluish_exponent)  # fmt: skip
    return Prepared(params, (ctx.op.inputs[0],))


C_BLOCKS = {"hard_swish": c_block(("shr", "saturate"), r"""
/* HARD_SWISH on int8 (reference_ops::HardSwish): gemmlowp int16 fixed point, each value kept in an int16
   range inside int32_t, products of two int16 values (< 2^30) in int32_t. */
typedef struct {
    int32_t input_zero_point, output_zero_point;
    int32_t output_multiplier, output_exponent, reluish_multiplier, reluish_exponent;
} ec_hard_swish_params;

/* x modulo 2^16 as an int16 value (what storing into an int16_t does in practice). */
static int32_t ec_wrap_int16(int32_t x)
{
    const int32_t low = (int32_t)((uint32_t)x & 0xFFFFu);
    return low > 32767 ? low - 65536 : low;
}

/* gemmlowp int16 SaturatingRoundingDoublingHighMul: (a*b + nudge) / 2^15, C's truncating division. */
static int32_t ec_srdhm_int16(int32_t a, int32_t b)
{
    const int32_t product = a * b;
    if (a == -32768 && b == -32768) return 32767;
    return (product + (product >= 0 ? 16384 : 1 - 16384)) / 32768;
}

/* a*b / 2^15 truncated toward zero (ARM SQDMULH), saturating only for -32768 * -32768. */
static int32_t ec_sdhm_int16(int32_t a, int32_t b)
{
    if (a == -32768 && b == -32768) return 32767;
    return (a * b) / 32768;
}

/* x * 2^e clamped to int16, 0 <= e < 31. */
static int32_t ec_saturating_left_shift_int16(int32_t x, int e)
{
    const int64_t v = (int64_t)x * ((int64_t)1 << e);
    return v < -32768 ? -32768 : (v > 32767 ? 32767 : (int32_t)v);
}

/* gemmlowp RoundingDivideByPOT on an int16, 0 <= e <= 31: its mask 2^e - 1 is an int16 too, so from
   e = 16 on it is -1 and the result is the sign (1 for x >= 0, -1 below), as TFLite computes. */
static int32_t ec_rdbpot_int16(int32_t x, int e)
{
    const int32_t mask = ec_wrap_int16((int32_t)(((int64_t)1 << e) - 1));
    const int32_t remainder = x & mask;
    const int32_t threshold = (int32_t)ec_shr(mask, 1) + (x < 0 ? 1 : 0);
    return (int32_t)ec_shr(x, e) + (remainder > threshold ? 1 : 0);
}

static void ec_hard_swish(const ec_hard_swish_params *p, const int8_t *input, int8_t *output, size_t size)
{
    const int32_t exponent = p->reluish_exponent;
    size_t i;
    for (i = 0; i < size; ++i) {
        const int32_t hires = ((int32_t)input[i] - p->input_zero_point) * 128; /* |.| <= 32640 */
        const int32_t on_output_scale = ec_srdhm_int16(hires, p->output_multiplier);
        int32_t reluish = hires, value;
        if (exponent > 0) reluish = ec_saturating_left_shift_int16(reluish, (int)exponent - 1);
        reluish = ec_srdhm_int16(reluish, p->reluish_multiplier);
        if (exponent > 0) reluish = ec_saturating_left_shift_int16(reluish, 1);
        if (exponent < 0) reluish = ec_rdbpot_int16(reluish, (int)-exponent);
        reluish = (reluish + 32768) / 2; /* [-1, 1] -> [0, 1], never negative */
        value = ec_rdbpot_int16(ec_sdhm_int16(reluish, on_output_scale), (int)-p->output_exponent);
        output[i] = ec_saturate(ec_wrap_int16(value + p->output_zero_point), -128, 127);
    }
}
""")}


def _c(emit, step) -> CSource:
    p, name = step.params, emit.prefix(step)
    data = emit.struct("ec_hard_swish_params", f"{name}_params", [(f, getattr(p, f)) for f in p._fields])
    return CSource(f"ec_hard_swish(&{name}_params, @IN0@, @OUT0@, {emit.size(step.inputs[0])});", data,
                   ("hard_swish",))  # fmt: skip


def _onnx(lw, step) -> None:
    """The int16 pipeline in int64 ops; every branch on an exponent is decided here, at export time.

    The multipliers are >= 0 and the reluish value is >= 0 where it multiplies,
    so none of the int16 products hits its one saturating case (-32768 * -32768).
    """
    from onnx import TensorProto

    b, p = lw.b, step.params
    i64 = np.int64

    def const(v):
        return b.const(v, i64)

    def srdhm16(x, multiplier):  # floor((x * M + 2^14) / 2^15)
        return b.floor_div(b.node("Add", [b.node("Mul", [x, const(multiplier)]), const(2**14)]), const(2**15))

    def saturating_left_shift16(x, e):
        return b.node("Clip", [b.node("Mul", [x, const(2**e)]), const(-(2**15)), const(2**15 - 1)], "saturate")

    def rounding_divide16(x, e):
        if e == 0:
            return x
        if e >= 16:  # the int16 mask is -1: the sign, with 0 counted as positive
            return b.node("Where", [b.node("GreaterOrEqual", [x, const(0)]), const(1), const(-1)], "sign")
        return b.divide_round_half_away(x, const(2**e), const(2 ** (e - 1)))

    x, layout = lw.any_layout(step.inputs[0])
    d = b.node("Sub", [b.cast(x, TensorProto.INT64), const(p.input_zero_point)], "minus_zp")
    hires = b.node("Mul", [d, const(128)], "hires")
    on_output_scale = srdhm16(hires, p.output_multiplier)
    reluish = hires
    if p.reluish_exponent > 0:
        reluish = saturating_left_shift16(reluish, p.reluish_exponent - 1)
    reluish = srdhm16(reluish, p.reluish_multiplier)
    if p.reluish_exponent > 0:
        reluish = saturating_left_shift16(reluish, 1)
    if p.reluish_exponent < 0:
        reluish = rounding_divide16(reluish, -p.reluish_exponent)
    reluish = b.node("Div", [b.node("Add", [reluish, const(2**15)]), const(2)], "to_unit")  # >= 0: exact floor
    preshift = b.node("Div", [b.node("Mul", [reluish, on_output_scale]), const(2**15)], "sdhm")  # truncates
    value = b.node("Add", [rounding_divide16(preshift, -p.output_exponent), const(p.output_zero_point)], "plus_zp")
    wrapped = b.node("Sub", [b.node("Mod", [b.node("Add", [value, const(2**15)]), const(2**16)], fmod=0),
                             const(2**15)], "wrap_int16")  # fmt: skip
    lw.set(step.outputs[0], b.clip_to_int8(wrapped, -128, 127, i64), layout)


OP = OpDef(
    name="HARD_SWISH",
    operands=(Operand("input", ACTIVATION),),
    version=lambda graph, op: 1,
    min_runtime={1: "1.15.0"},
    prepare=_prepare,
    kernel="edgecnn.deploy.runtime.activation_ops:hard_swish",
    naive=naive_elementwise.hard_swish,
    c=_c,
    c_blocks=C_BLOCKS,
    onnx=_onnx,
)
