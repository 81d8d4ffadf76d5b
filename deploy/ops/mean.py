"""MEAN: int8 average over constant axes (global average pooling is axes [1, 2]).

LiteRT's reference kernel (`reduce.cc` EvalMean -> `reference/reduce.h`
QuantizedMeanOrSum) sums the raw int8 values in an int32, subtracts
input_zero_point * count, and rescales by in_scale / out_scale / count in
one MultiplyByQuantizedMultiplier. The 1/count is folded into the Q0.31
multiplier of QuantizeMultiplier(in_scale / out_scale) here, at prepare
time, exactly as the kernel does it (`mean_multiplier`).
"""

from __future__ import annotations

import math

import numpy as np

from edgecnn.deploy.export.c_source import c_block
from edgecnn.deploy.ops.base import ACTIVATION, CONSTANT, OpDef, Operand, Prepared
from edgecnn.deploy.ops.reduce_common import C_BLOCKS as REDUCE_BLOCKS
from edgecnn.deploy.ops.reduce_common import c_reduce, decode_reducer, encode_reducer, onnx_reduce, reduced_axes
from edgecnn.deploy.runtime import naive_reduce_copy as naive
from edgecnn.deploy.runtime.reduce_copy_params import ReduceParams


def mean_multiplier(multiplier: int, shift: int, count: int) -> tuple[int, int]:
    """(multiplier, shift) of QuantizeMultiplier(in_s / out_s) with 1/count folded in, as QuantizedMeanOrSum does.

    k = floor(log2(count)), capped at 32 and at 31 + shift (so the final right
    shift stays <= 31); multiplier' = floor(multiplier * 2^k / count) < 2^31;
    shift' = shift - k.

    >>> mean_multiplier(1 << 30, 1, 9)  # in_s == out_s over a 3x3 window: floor(2^30 * 8 / 9), 1 - 3
    (954437176, -2)
    >>> mean_multiplier(1 << 30, 1, 1)
    (1073741824, 1)
    """
    if count <= 0:
        raise ValueError("count must be positive")
    k = min(count.bit_length() - 1, 32, 31 + shift)
    return (multiplier << k) // count, shift - k


def _prepare(ctx) -> Prepared:
    x = ctx.activation(ctx.tensor(0, "input"), "input")
    output = ctx.activation(ctx.output(), "output")
    reduced, _ = reduced_axes(ctx, x)
    count = math.prod(d for d, r in zip(x.shape, reduced) if r)
    if count == 0:
        raise ctx.fail(f"input {x.name} is empty along the reduced axes")
    base_multiplier, base_shift = ctx.multipliers([float(x.scale[0]) / float(output.scale[0])])
    multiplier, shift = mean_multiplier(int(base_multiplier[0]), int(base_shift[0]), count)
    params = ReduceParams(reduced, count, ctx.zero_point(x), ctx.zero_point(output), multiplier, shift)
    return Prepared(params, (ctx.op.inputs[0],))


C_BLOCKS = {**REDUCE_BLOCKS, "mean": c_block(("reduce_params", "from_u32", "mbqm", "saturate"), r"""
/* MEAN (QuantizedMeanOrSum): each output is the sum of its inputs, minus input_zero_point * count, rescaled by
   multiplier/shift (in_scale / out_scale / count, folded at export time), plus output_zero_point, clamped.
   The sums run in uint32_t, which wraps exactly like TFLite's int32 accumulator; so does the subtraction. */
static void ec_mean(const ec_reduce_params *p, const int8_t *input, int8_t *output, uint32_t *sums)
{
    int32_t index[8]; /* zeroed by a loop: an initializer may become a memset call (no libc) */
    int zero;
    for (zero = 0; zero < 8; ++zero) index[zero] = 0;
    int32_t i, at = 0;
    const uint32_t zero_sum = (uint32_t)((int64_t)p->input_zero_point * p->count);
    for (i = 0; i < p->output_size; ++i) sums[i] = 0;
    for (i = 0; i < p->input_size; ++i) {
        sums[at] += (uint32_t)input[i];
        at += ec_reduce_step(p, index);
    }
    for (i = 0; i < p->output_size; ++i) {
        const int32_t shifted = ec_from_u32(sums[i] - zero_sum);
        output[i] = ec_saturate((int64_t)ec_mbqm(shifted, p->multiplier, p->shift) + p->output_zero_point,
                                -128, 127);
    }
}
""")}


def _onnx(lw, step) -> None:
    """ReduceSum in int64, then the same int32 wrap, rescale and clamp as the kernel (onnx_builder)."""
    p = step.params
    total, layout = onnx_reduce(lw, step, "ReduceSum")
    b = lw.b
    shifted = b.wrap_int32(b.node("Sub", [b.wrap_int32(total), b.const(p.input_zero_point * p.count, np.int64)]))
    scaled = b.multiply_by_quantized_multiplier(shifted, np.array([p.multiplier]), np.array([p.shift]), (1,))
    lw.set(step.outputs[0], b.output_stage(scaled, p.output_zero_point, -128, 127), layout)


OP = OpDef(
    name="MEAN",
    operands=(Operand("input", ACTIVATION), Operand("axis", CONSTANT)),
    options_table="ReducerOptions",
    decode=decode_reducer,
    encode=encode_reducer,
    options_required=False,
    version=lambda graph, op: 2,  # int8 (op_version.cc)
    min_runtime={2: "1.14.0"},
    prepare=_prepare,
    kernel="edgecnn.deploy.runtime.reduce:mean",
    naive=naive.mean,
    c=lambda emit, step: c_reduce(emit, step, "mean", scratch=True),
    c_blocks=C_BLOCKS,
    onnx=_onnx,
)
