"""What ADD, SUB and MUL share: operand checks, broadcasting, prepare, the options codec, C and ONNX.

Each input may be computed or a constant (the converter writes ADD and MUL
with constant tensors, even rank-0 ones). The output shape is the numpy
broadcast of the two static shapes. The runtime holds N images of an
activation as N times its first dimension, so prepare insists that every
computed input has the output's rank and first dimension, and that a
constant is 1 along that first dimension (or does not reach it), and that at
least one input is computed. LiteRT's kernels take up to six dimensions.
"""

from __future__ import annotations

import numpy as np

from edgecnn.deploy.export.c_source import CSource, c_block
from edgecnn.deploy.ops.base import FUSED_CODES, Prepared, decode_activation, options_builder
from edgecnn.deploy.runtime.elementwise_params import MAX_RANK, OP_MUL, OP_SUB, BinaryParams, padded_dims
from edgecnn.errors import QuantizationError, ShapeError, UnsupportedOpError
from edgecnn.int8.rules import quantize_multiplier

ADD_SUB_LEFT_SHIFT = 20  # int8 inputs: 255 << 20 < 2^28, so two of them still add up inside an int32


def quantized_operand(ctx, position: int, role: str):
    """An int8 input, computed or constant, with one valid scale and zero point."""
    tensor = ctx.tensor(position, role)
    if not tensor.is_constant:
        return ctx.activation(tensor, role)
    if tensor.dtype != "int8":
        raise ctx.fail(f"{role} {tensor.name} is {tensor.dtype}, not int8", UnsupportedOpError)
    ctx.scale(tensor)
    ctx.zero_point(tensor)
    ctx.constant(tensor, role, "int8", None)  # data and shape agree
    return tensor


def broadcast_plan(ctx, input1, input2, output) -> dict:
    """The static broadcast of two inputs, checked against the output and the runtime's batch layout.

    Returns the shape fields of `BinaryParams`.
    """
    shapes = (tuple(input1.shape), tuple(input2.shape))
    try:
        expected = tuple(int(d) for d in np.broadcast_shapes(*shapes))
    except ValueError:
        raise ctx.fail(f"inputs of shapes {shapes[0]} and {shapes[1]} do not broadcast", ShapeError) from None
    ctx.check_output_shape(output, expected)
    rank = len(expected)
    if not 1 <= rank <= MAX_RANK:
        raise ctx.fail(f"output {output.name} has rank {rank}; {ctx.op.kind} takes 1 to {MAX_RANK} dimensions",
                       ShapeError)  # fmt: skip
    if input1.is_constant and input2.is_constant:
        raise ctx.fail("both inputs are constants; the result is a constant (fold it before deploying)",
                       UnsupportedOpError)  # fmt: skip
    for tensor in (input1, input2):
        shape = tuple(tensor.shape)
        if not tensor.is_constant and (len(shape) != rank or shape[0] != expected[0]):
            raise ctx.fail(f"computed input {tensor.name} {shape} must have the output's rank and first "
                           f"dimension {expected}", UnsupportedOpError)  # fmt: skip
        if tensor.is_constant and len(shape) == rank and shape[0] != 1:
            raise ctx.fail(f"constant input {tensor.name} {shape} must be 1 along the batch dimension",
                           UnsupportedOpError)  # fmt: skip
    return {
        "input1_dims": padded_dims(input1.shape),
        "input2_dims": padded_dims(input2.shape),
        "output_dims": padded_dims(expected),
        "batch_axis": MAX_RANK - rank,
        "input1_batched": int(not input1.is_constant),
        "input2_batched": int(not input2.is_constant),
    }


def multiplier(ctx, real: float, what: str) -> tuple[int, int]:
    """quantize_multiplier, its refusals naming the op."""
    try:
        return quantize_multiplier(real)
    except QuantizationError as e:
        raise ctx.fail(f"{what}: {e}") from None


def _operands(ctx):
    input1 = quantized_operand(ctx, 0, "input1")
    input2 = quantized_operand(ctx, 1, "input2")
    output = ctx.activation(ctx.output(), "output")
    return input1, input2, output, broadcast_plan(ctx, input1, input2, output)


def prepare_add_sub(ctx, op: int) -> Prepared:
    """ADD / SUB (add.cc, sub.cc Prepare, 8-bit path): three multipliers from float64 ratios of the scales.

    Inputs go to a scale 2^20 finer than twice the larger input scale (each
    multiplier <= 1/2); the output multiplier twice_max / (2^20 * s_out) must
    be below 1: LiteRT aborts otherwise (QuantizeMultiplierSmallerThanOneExp).
    """
    input1, input2, output, plan = _operands(ctx)
    s1, s2, s_out = ctx.scale(input1), ctx.scale(input2), ctx.scale(output)
    twice_max = 2.0 * max(s1, s2)
    real_output = twice_max / (float(2**ADD_SUB_LEFT_SHIFT) * s_out)
    out_m, out_shift = multiplier(ctx, real_output, "output multiplier") if real_output < 1.0 else (0, 1)
    if out_shift > 0:  # >= 1, or so close below 1 that it rounds up to 2^31 * 2^-31
        raise ctx.fail(f"output scale {s_out} is too small for inputs at scales {s1} and {s2}: "
                       f"2 * max(input scales) / (2^20 * output scale) = {real_output} must be below 1")  # fmt: skip
    m1, shift1 = multiplier(ctx, s1 / twice_max, "input1 multiplier")
    m2, shift2 = multiplier(ctx, s2 / twice_max, "input2 multiplier")
    act_min, act_max = ctx.fused_range(output)
    params = BinaryParams(op, -ctx.zero_point(input1), -ctx.zero_point(input2), ctx.zero_point(output),
                          ADD_SUB_LEFT_SHIFT, m1, shift1, m2, shift2, out_m, out_shift, act_min, act_max,
                          **plan)  # fmt: skip
    return Prepared(params, (ctx.op.inputs[0], ctx.op.inputs[1]))


def prepare_mul(ctx) -> Prepared:
    """MUL (mul.cc Prepare): one multiplier, s1 * s2 / s_out computed in float32 as TFLite does."""
    input1, input2, output, plan = _operands(ctx)
    s1, s2, s_out = (np.float32(t.scale[0]) for t in (input1, input2, output))
    out_m, out_shift = multiplier(ctx, float(s1 * s2 / s_out), "output multiplier")
    act_min, act_max = ctx.fused_range(output)
    params = BinaryParams(OP_MUL, -ctx.zero_point(input1), -ctx.zero_point(input2), ctx.zero_point(output),
                          0, 0, 0, 0, 0, out_m, out_shift, act_min, act_max, **plan)  # fmt: skip
    return Prepared(params, (ctx.op.inputs[0], ctx.op.inputs[1]))


def needs_broadcast(graph, op) -> bool:
    return tuple(graph.tensors[op.inputs[0]].shape) != tuple(graph.tensors[op.inputs[1]].shape)


# --- options codec --------------------------------------------------------------------------------


def decode_add_sub(o) -> dict:
    """AddOptions / SubOptions: the fused activation; pot_scale_int16 (int16 only) is kept for the round trip."""
    return {"fused_activation_function": decode_activation(o.FusedActivationFunction()),
            "pot_scale_int16": bool(o.PotScaleInt16())}  # fmt: skip


def encoder(table: str, pot_scale: bool):
    def encode(b, o, graph, op) -> int:
        start, end, add = options_builder(table)
        start(b)
        add(b, "FusedActivationFunction", FUSED_CODES[o.get("fused_activation_function", "NONE")])
        if pot_scale:
            add(b, "PotScaleInt16", bool(o.get("pot_scale_int16", True)))
        return end(b)

    return encode


# --- C ---------------------------------------------------------------------------------------------

C_BLOCKS = {"binary": c_block(("mbqm", "saturate"), r"""
/* ADD, SUB and MUL on int8 with broadcasting (TFLite reference_integer_ops add.h / mul.h, reference_ops sub.h).
   dims: the output's shape right-aligned into six dimensions; strides1/strides2: each input's element
   strides along them, 0 where the input is broadcast. op: 0 ADD, 1 SUB, 2 MUL.
   Overflow: |q + offset| <= 255. ADD/SUB shift that left by 20 (< 2^28) and scale it by a multiplier
   <= 1/2, so the sum of two stays below 2^29. MUL's product is below 2^16; its multiplier's left
   shift wraps inside ec_mbqm like TFLite's int32. */
typedef struct {
    int32_t op;
    int32_t input1_offset, input2_offset, output_offset, left_shift;
    int32_t input1_multiplier, input1_shift, input2_multiplier, input2_shift;
    int32_t output_multiplier, output_shift, act_min, act_max;
    int32_t dims[6];
    uint32_t strides1[6], strides2[6];
} ec_binary_params;

static int8_t ec_binary_element(const ec_binary_params *p, int8_t x, int8_t y)
{
    const int32_t a = p->input1_offset + x;
    const int32_t b = p->input2_offset + y;
    int32_t raw;
    if (p->op == 2) {
        raw = ec_mbqm(a * b, p->output_multiplier, p->output_shift);
    } else {
        const int32_t scale = (int32_t)1 << p->left_shift;
        const int32_t scaled_a = ec_mbqm(a * scale, p->input1_multiplier, p->input1_shift);
        const int32_t scaled_b = ec_mbqm(b * scale, p->input2_multiplier, p->input2_shift);
        raw = ec_mbqm(p->op == 1 ? scaled_a - scaled_b : scaled_a + scaled_b, p->output_multiplier,
                      p->output_shift);
    }
    return ec_saturate((int64_t)raw + p->output_offset, p->act_min, p->act_max);
}

/* Walks the output in order with an odometer over the six dimensions; each input's offset moves by its
   stride and jumps back by stride * dim when a dimension wraps. */
static void ec_binary(const ec_binary_params *p, const int8_t *input1, const int8_t *input2, int8_t *output)
{
    int32_t count[6]; /* zeroed by the loop below: an initializer may become a memset call (no libc) */
    size_t offset1 = 0, offset2 = 0, o, total = 1;
    int axis;
    for (axis = 0; axis < 6; ++axis) {
        count[axis] = 0;
        total *= (size_t)p->dims[axis];
    }
    for (o = 0; o < total; ++o) {
        output[o] = ec_binary_element(p, input1[offset1], input2[offset2]);
        for (axis = 5; axis >= 0; --axis) {
            offset1 += p->strides1[axis];
            offset2 += p->strides2[axis];
            if (++count[axis] < p->dims[axis]) break;
            offset1 -= (size_t)p->strides1[axis] * (size_t)p->dims[axis];
            offset2 -= (size_t)p->strides2[axis] * (size_t)p->dims[axis];
            count[axis] = 0;
        }
    }
}
""")}


C_BLOCKS["add_tables"] = c_block(("channel_out",), r"""
/* ADD and SUB of two int8 tensors of the output's shape (no broadcasting). TFLite rescales each input
   alone before the sum, so that rescaled value depends on the input byte only: export time tabulates
   it (table1[q + 128] = MultiplyByQuantizedMultiplier((q + input1_offset) * 2^left_shift, M1, s1);
   table2 likewise, negated for SUB; |values| < 2^28, so the sum stays below 2^29 as in ec_binary), and
   each element costs two lookups and the output's rescale (ec_channel_out: one multiply when
   1 <= -output_shift <= 31), + output offset, clamp. Element i is read before output[i] is written. */
typedef struct {
    const int32_t *table1, *table2; /* [256] */
    ec_channel output;              /* the output's multiplier and shift (bias 0) */
    int32_t fast, output_offset, act_min, act_max;
    uint32_t size;
} ec_add_tables_params;

static void ec_add_tables(const ec_add_tables_params *p, const int8_t *input1, const int8_t *input2, int8_t *output)
{
    const int32_t *const table1 = p->table1 + 128, *const table2 = p->table2 + 128;
    const int32_t offset = p->output_offset, act_min = p->act_min, act_max = p->act_max;
    const uint32_t size = p->size;
    uint32_t i;
    if (p->fast) {
        for (i = 0; i < size; ++i)
            output[i] = ec_channel_out_fast((uint32_t)(table1[input1[i]] + table2[input2[i]]), &p->output, offset,
                                            act_min, act_max);
    } else {
        for (i = 0; i < size; ++i)
            output[i] = ec_channel_out((uint32_t)(table1[input1[i]] + table2[input2[i]]), &p->output, 0, offset,
                                       act_min, act_max);
    }
}
""")


def _c_add_tables(emit, step, name: str) -> CSource:
    """ADD / SUB without broadcasting: each input's rescale tabulated (ec_add_tables)."""
    from edgecnn.deploy.ops.conv_common import channel_table
    from edgecnn.deploy.runtime.naive import multiply_by_quantized_multiplier as mbqm

    p = step.params
    q = range(-128, 128)
    sign = -1 if p.op == OP_SUB else 1
    table1 = [mbqm((v + p.input1_offset) * 2**p.left_shift, p.input1_multiplier, p.input1_shift) for v in q]
    table2 = [sign * mbqm((v + p.input2_offset) * 2**p.left_shift, p.input2_multiplier, p.input2_shift) for v in q]
    row, fast = channel_table(emit, "unused", [0], [p.output_multiplier], [p.output_shift])
    output = row.split("{\n", 1)[1].split("\n}", 1)[0].strip().rstrip(",")
    data = emit.array("int32_t", f"{name}_table1", table1) + emit.array("int32_t", f"{name}_table2", table2)
    data += emit.struct("ec_add_tables_params", f"{name}_params", [
        ("table1", f"{name}_table1"), ("table2", f"{name}_table2"), ("output", output), ("fast", int(fast)),
        ("output_offset", p.output_offset), ("act_min", p.activation_min), ("act_max", p.activation_max),
        ("size", emit.size(step.outputs[0])),
    ])  # fmt: skip
    return CSource(f"ec_add_tables(&{name}_params, @IN0@, @IN1@, @OUT0@);", data, ("add_tables",), 2 * 1024,
                   in_place=0)


def _broadcast_strides(dims: np.ndarray, output_dims: np.ndarray) -> list[int]:
    """Element strides of a row-major tensor of `dims` read along `output_dims`: 0 where it is broadcast."""
    strides, step = [0] * MAX_RANK, 1
    for axis in range(MAX_RANK - 1, -1, -1):
        strides[axis] = 0 if dims[axis] == 1 and output_dims[axis] != 1 else step
        step *= int(dims[axis])
    return strides


def c_binary(emit, step) -> CSource:
    """The params struct (static batch-1 shapes) and the call of ec_binary (ec_add_tables for ADD and SUB
    without broadcasting)."""
    p, name = step.params, emit.prefix(step)
    if p.op != OP_MUL and all(list(map(int, dims)) == list(map(int, p.output_dims))
                              for dims in (p.input1_dims, p.input2_dims)):  # fmt: skip
        return _c_add_tables(emit, step, name)

    def c_array(values) -> str:
        return "{" + ", ".join(str(int(v)) for v in values) + "}"

    fields = [
        ("op", p.op), ("input1_offset", p.input1_offset), ("input2_offset", p.input2_offset),
        ("output_offset", p.output_offset), ("left_shift", p.left_shift),
        ("input1_multiplier", p.input1_multiplier), ("input1_shift", p.input1_shift),
        ("input2_multiplier", p.input2_multiplier), ("input2_shift", p.input2_shift),
        ("output_multiplier", p.output_multiplier), ("output_shift", p.output_shift),
        ("act_min", p.activation_min), ("act_max", p.activation_max),
        ("dims", c_array(p.output_dims)),
        ("strides1", c_array(_broadcast_strides(p.input1_dims, p.output_dims))),
        ("strides2", c_array(_broadcast_strides(p.input2_dims, p.output_dims))),
    ]  # fmt: skip
    data = emit.struct("ec_binary_params", f"{name}_params", fields)
    # ec_binary reads element o of an input that has the output's shape just before writing output[o],
    # so the output may take that input's bytes (ADD into the shortcut buffer).
    same = [k for k, dims in enumerate((p.input1_dims, p.input2_dims))
            if list(map(int, dims)) == list(map(int, p.output_dims))]  # fmt: skip
    return CSource(f"ec_binary(&{name}_params, @IN0@, @IN1@, @OUT0@);", data, ("binary",),
                   in_place=same[0] if same else None)


# --- ONNX ------------------------------------------------------------------------------------------


def onnx_binary(lw, step) -> None:
    """int64 arithmetic in TFLite's order on both inputs in TFLite's layout; ONNX broadcasts like numpy."""
    from onnx import TensorProto

    b, p = lw.b, step.params

    def offset_input(t: int, offset: int) -> str:
        wide = b.cast(lw.nhwc(t), TensorProto.INT64)
        return b.node("Add", [wide, b.const(offset, np.int64, "input_offset")], "offset")

    def rescale(x: str, multiplier: int, shift: int) -> str:
        return b.multiply_by_quantized_multiplier(x, np.array(multiplier), np.array(shift), ())

    a = offset_input(step.inputs[0], p.input1_offset)
    c = offset_input(step.inputs[1], p.input2_offset)
    if p.op == OP_MUL:
        total = b.node("Mul", [a, c], "product")  # |.| < 2^16
    else:
        scale = b.const(2**p.left_shift, np.int64, "left_shift")
        scaled_a = rescale(b.node("Mul", [a, scale], "shl"), p.input1_multiplier, p.input1_shift)
        scaled_c = rescale(b.node("Mul", [c, scale], "shl"), p.input2_multiplier, p.input2_shift)
        total = b.node("Sub" if p.op == OP_SUB else "Add", [scaled_a, scaled_c], "total")
    raw = rescale(total, p.output_multiplier, p.output_shift)
    lw.set(step.outputs[0], b.output_stage(raw, p.output_offset, p.activation_min, p.activation_max), "NHWC")
