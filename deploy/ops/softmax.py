"""SOFTMAX: int8 in, int8 out at 1/256 and -128, gemmlowp fixed point (docs/int8.md 3)."""

from __future__ import annotations

import math

import numpy as np

from edgecnn.deploy.export.c_source import CSource, c_block
from edgecnn.deploy.ops.base import ACTIVATION, OpDef, Operand, Prepared, options_builder, same_shape_unary
from edgecnn.deploy.runtime import naive
from edgecnn.deploy.runtime.params import SoftmaxParams
from edgecnn.errors import QuantizationError, ShapeError
from edgecnn.int8.rules import quantize_multiplier

# The exporters' longest row: below 8192 terms of at most 2^19 the Q12.19 sum stays under 2^32, so TFLite's
# int32 sum, read as uint32 by its clz, equals the exact sum. Any row whose sum reaches 2^28 makes TFLite's
# final shift exceed 31, where it aborts (runtime: ValueError; C: invoke returns -1; ONNX: the run fails).
MAX_DEPTH = 8191


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


# ---------------------------------------------------------------- C

_C_DEPS = ("from_u32", "saturate", "srdhm", "rdbpot", "exp_on_negative_values", "one_over_one_plus_x")
C_BLOCKS = {"softmax": c_block(_C_DEPS, r"""
/* SOFTMAX over the last axis (TFLite reference Softmax, int8 out with scale 1/256, zero point -128).
   d = q - max(row); for d >= diff_min: e = exp(SRDHM(d * 2^left_shift, multiplier) as Q5.26) in Q0.31,
   sum += e / 2^12 (Q12.19; each term <= 2^19 and rows are under 8192, so the sum is below 2^32 and exact in
   uint32_t, which is also how TFLite's clz reads its int32 sum).
   1/sum = one_over_one_plus_x((sum << h) - 2^31) * 2^-(12 - h), h = leading zeros of sum;
   out = RoundingDivideByPOT(SRDHM(1/sum, e), (12 - h) + 23) - 128; d < diff_min gives -128.
   Returns -1 where TFLite aborts: a row too long for the final shift. */
typedef struct {
    int rows, depth;
    int32_t input_multiplier, input_left_shift, diff_min;
} ec_softmax_params;

static int32_t ec_softmax_exp(const ec_softmax_params *p, int32_t diff)
{
    const int32_t scaled_diff = ec_srdhm(ec_from_u32((uint32_t)diff << p->input_left_shift), p->input_multiplier);
    return ec_exp_on_negative_values_q5(scaled_diff);
}

static int ec_softmax(const ec_softmax_params *p, const int8_t *input, int8_t *output)
{
    int row, c;
    for (row = 0; row < p->rows; ++row) {
        const int8_t *x = input + (size_t)row * p->depth;
        int8_t *y = output + (size_t)row * p->depth;
        int32_t max_in_row = -128, shifted_scale, exponent;
        int headroom;
        uint32_t sum_of_exps = 0, sum_bits;
        for (c = 0; c < p->depth; ++c)
            if (x[c] > max_in_row) max_in_row = x[c];
        for (c = 0; c < p->depth; ++c) {
            const int32_t diff = x[c] - max_in_row;
            if (diff >= p->diff_min) sum_of_exps += (uint32_t)ec_rdbpot(ec_softmax_exp(p, diff), 12);
        }
        /* sum_of_exps >= 2^19 (the row's maximum contributes exp(0)), so 0 <= headroom <= 12. */
        sum_bits = sum_of_exps;
        headroom = 0;
        while (!(sum_bits & 0x80000000u)) {
            sum_bits <<= 1;
            ++headroom;
        }
        shifted_scale = ec_one_over_one_plus_x(ec_from_u32(sum_bits - 0x80000000u));
        exponent = (12 - headroom) + 31 - 8;
        if (exponent > 31) return -1;
        for (c = 0; c < p->depth; ++c) {
            const int32_t diff = x[c] - max_in_row;
            if (diff >= p->diff_min) {
                const int32_t unsat = ec_rdbpot(ec_srdhm(shifted_scale, ec_softmax_exp(p, diff)), (int)exponent);
                y[c] = ec_saturate((int64_t)unsat - 128, -128, 127);
            } else {
                y[c] = -128;
            }
        }
    }
    return 0;
}
""")}


def _check_depth(fail, step, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise fail(step, f"rows of {depth} values are too long for the int8 softmax's exported Q12.19 sum "
                         f"(at most {MAX_DEPTH})")


def _c(emit, step) -> CSource:
    p, name = step.params, emit.prefix(step)
    depth = emit.shape(step.inputs[0])[-1]
    _check_depth(emit.fail, step, depth)
    fields = [
        ("rows", emit.size(step.inputs[0]) // depth), ("depth", depth), ("input_multiplier", p.input_multiplier),
        ("input_left_shift", p.input_left_shift), ("diff_min", p.diff_min),
    ]  # fmt: skip
    data = emit.struct("ec_softmax_params", f"{name}_params", fields)
    return CSource(f"if (ec_softmax(&{name}_params, @IN0@, @OUT0@) != 0) return -1;", data, ("softmax",))


# ---------------------------------------------------------------- ONNX


def _onnx(lw, step) -> None:
    from edgecnn.deploy.export.onnx_softmax import lower_softmax

    depth = lw.shape(step.inputs[0])[-1]
    _check_depth(lw.fail, step, depth)
    lw.set(step.outputs[0], lower_softmax(lw.b, lw.nhwc(step.inputs[0]), step.params))


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
    c=_c,
    c_blocks=C_BLOCKS,
    onnx=_onnx,
)
