"""QUANTIZE: float32 -> int8/uint8 (AffineQuantize), or int8/uint8 -> int8/uint8 (Requantize).

The TensorFlow converter writes it at a model's float or uint8 input (and
int8 -> uint8 at a uint8 output), without an options table. Per-channel and
int16/int4 outputs are not supported. Kernels: deploy/runtime/quantize_ops.py.
"""

from __future__ import annotations

import numpy as np

from edgecnn.deploy.export.c_source import CSource, c_block
from edgecnn.deploy.ops.base import ACTIVATION, OpDef, Operand, Prepared
from edgecnn.deploy.runtime import quantize_naive
from edgecnn.deploy.runtime.quantize_params import AffineQuantizeParams, RequantizeParams
from edgecnn.errors import UnsupportedOpError

_QUANTIZED = ("int8", "uint8")


def _range(dtype: str) -> tuple[int, int]:
    info = np.iinfo(dtype)
    return int(info.min), int(info.max)


def _per_tensor(ctx, tensor, role: str) -> None:
    if tensor.scale.size > 1:
        raise ctx.fail(f"{role} {tensor.name} is quantized per channel; edgecnn supports per-tensor QUANTIZE only",
                       UnsupportedOpError)  # fmt: skip


def _prepare(ctx) -> Prepared:
    x = ctx.tensor(0, "input")
    output = ctx.output()
    if output.dtype not in _QUANTIZED:
        raise ctx.fail(f"output {output.name} is {output.dtype}; edgecnn quantizes to int8 or uint8",
                       UnsupportedOpError)  # fmt: skip
    if x.dtype not in ("float32",) + _QUANTIZED:
        raise ctx.fail(f"input {x.name} is {x.dtype}; edgecnn quantizes float32, int8 or uint8", UnsupportedOpError)
    _per_tensor(ctx, output, "output")
    if x.dtype != "float32":
        _per_tensor(ctx, x, "input")
    ctx.activation(x, "input", x.dtype)
    ctx.activation(output, "output", output.dtype)
    ctx.check_output_shape(output, x.shape)
    qmin, qmax = _range(output.dtype)
    out_zp = ctx.zero_point(output, qmin, qmax)
    if x.dtype == "float32":
        # The kernel divides by float32(scale): keep the float32 value, exactly, as a Python float.
        params = AffineQuantizeParams(float(np.float32(output.scale[0])), out_zp, qmin, qmax)
    else:
        in_zp = ctx.zero_point(x, *_range(x.dtype))
        # effective = double(in_s) / double(out_s), as quantize.cc computes it.
        multiplier, shift = ctx.multipliers([ctx.scale(x) / ctx.scale(output)])
        params = RequantizeParams(-in_zp, int(multiplier[0]), int(shift[0]), out_zp, qmin, qmax)
    return Prepared(params, (ctx.op.inputs[0],))


# ---------------------------------------------------------------- C and ONNX lowerings

C_BLOCKS = {
    "affine_quantize": c_block((), r"""
/* QUANTIZE float32 -> int8/uint8 (TFLite AffineQuantize): clamp(roundf(x / scale) + zero_point, qmin, qmax).
   The division is float32 (x86-64 and ARM evaluate float in float); the rounding, halves away from zero, is
   done on the float32 quotient without libm: trunc of |q| < 2^31 is exact, and so is |q| - trunc(|q|).
   Outside int32 (|q| >= 2^31, inf, NaN) TFLite's cast is undefined; this returns what LiteRT gives on
   x86-64 (INT32_MIN, plus a negative zero point wrapping to a huge positive value). 2.5 -> 3, -2.5 -> -3. */
static int32_t ec_affine_quantize_one(float x, float scale, int32_t zero_point, int32_t qmin, int32_t qmax)
{
    const float q = x / scale;
    const float a = q < 0.0f ? -q : q;
    int64_t r, v;
    if (!(a < 2147483648.0f)) return zero_point < 0 ? qmax : qmin;
    r = (int64_t)a;
    if (a - (float)r >= 0.5f) r += 1;
    v = (q < 0.0f ? -r : r) + zero_point;
    return (int32_t)(v < qmin ? qmin : (v > qmax ? qmax : v));
}
"""),
    "quantize_to_int8": c_block(("affine_quantize",), r"""
static void ec_quantize_to_int8(const float *x, int8_t *y, int32_t n, float scale, int32_t zero_point)
{
    int32_t i;
    for (i = 0; i < n; ++i) y[i] = (int8_t)ec_affine_quantize_one(x[i], scale, zero_point, -128, 127);
}
"""),
    "quantize_to_uint8": c_block(("affine_quantize",), r"""
static void ec_quantize_to_uint8(const float *x, uint8_t *y, int32_t n, float scale, int32_t zero_point)
{
    int32_t i;
    for (i = 0; i < n; ++i) y[i] = (uint8_t)ec_affine_quantize_one(x[i], scale, zero_point, 0, 255);
}
"""),
    "requantize_8bit": c_block(("mbqm",), r"""
/* QUANTIZE int8/uint8 -> int8/uint8 (TFLite Requantize): clamp(MBQM(x - in_zp, M, shift) + out_zp).
   x - in_zp is within [-510, 510]. LiteRT's XOR-0x80 fast path (same scale, zero points 128 apart)
   gives the same bytes as this general path. */
typedef struct {
    int32_t input_offset, multiplier, shift, output_offset, qmin, qmax;
    int input_unsigned, output_unsigned;
} ec_requantize_8bit_params;

static void ec_requantize_8bit(const ec_requantize_8bit_params *p, const void *input, void *output, int32_t n)
{
    int32_t i;
    for (i = 0; i < n; ++i) {
        const int32_t x = p->input_unsigned ? (int32_t)((const uint8_t *)input)[i]
                                            : (int32_t)((const int8_t *)input)[i];
        int64_t v = (int64_t)ec_mbqm(x + p->input_offset, p->multiplier, p->shift) + p->output_offset;
        v = v < p->qmin ? p->qmin : (v > p->qmax ? p->qmax : v);
        if (p->output_unsigned) ((uint8_t *)output)[i] = (uint8_t)v;
        else ((int8_t *)output)[i] = (int8_t)v;
    }
}
"""),
}


def _c(emit, step) -> CSource:
    from edgecnn.deploy.export.c import float_literal

    p = step.params
    x, y = step.inputs[0], step.outputs[0]
    n = emit.size(x)
    if isinstance(p, AffineQuantizeParams):
        target = "uint8" if p.quantized_min == 0 else "int8"
        return CSource(f"ec_quantize_to_{target}(@IN0@, @OUT0@, {n}, {float_literal(p.scale)}, {p.zero_point});",
                       blocks=(f"quantize_to_{target}",))  # fmt: skip
    name = f"{emit.prefix(step)}_params"
    data = emit.struct("ec_requantize_8bit_params", name, [
        ("input_offset", p.input_offset), ("multiplier", p.output_multiplier), ("shift", p.output_shift),
        ("output_offset", p.output_offset), ("qmin", p.quantized_min), ("qmax", p.quantized_max),
        ("input_unsigned", int(emit.c_type(x) == "uint8_t")), ("output_unsigned", int(emit.c_type(y) == "uint8_t"))])
    return CSource(f"ec_requantize_8bit(&{name}, @IN0@, @OUT0@, {n});", data, ("requantize_8bit",), 32)


def _onnx(lw, step) -> None:
    from onnx import TensorProto

    b, p = lw.b, step.params
    x, layout = lw.any_layout(step.inputs[0])
    out_type = TensorProto.UINT8 if p.quantized_min == 0 else TensorProto.INT8
    if isinstance(p, AffineQuantizeParams):
        # float32 division, then C's roundf on the (exactly widened) float32 quotient, in double.
        quotient = b.node("Div", [x, b.const(np.float32(p.scale), np.float32, "scale")], "quotient")
        rounded = b.round_half_away_double(b.cast(quotient, TensorProto.DOUBLE))
        inside = b.node("And", [b.node("GreaterOrEqual", [rounded, b.const(-(2.0**31), np.float64)]),
                                b.node("Less", [rounded, b.const(2.0**31, np.float64)])], "inside_int32")
        shifted = b.node("Add", [rounded, b.const(float(p.zero_point), np.float64, "zero_point")])
        clamped = b.node("Clip", [shifted, b.const(float(p.quantized_min), np.float64),
                                  b.const(float(p.quantized_max), np.float64)], "clamp")  # fmt: skip
        # Outside int32 (and NaN) LiteRT on x86-64 gives INT32_MIN + zero point: qmax if it wraps, else qmin.
        fallback = float(p.quantized_max if p.zero_point < 0 else p.quantized_min)
        value = b.node("Where", [inside, clamped, b.const(fallback, np.float64, "outside_int32")], "quantized")
    else:
        wide = b.node("Add", [b.cast(x, TensorProto.INT64), b.const(p.input_offset, np.int64, "input_offset")])
        scaled = b.multiply_by_quantized_multiplier(wide, np.array([p.output_multiplier]), np.array([p.output_shift]),
                                                    ())  # fmt: skip
        shifted = b.node("Add", [scaled, b.const(p.output_offset, np.int64, "output_zp")], "plus_zp")
        value = b.node("Clip", [shifted, b.const(p.quantized_min, np.int64), b.const(p.quantized_max, np.int64)],
                       "clamp")  # fmt: skip
    lw.set(step.outputs[0], b.cast(value, out_type), layout)


def _version(graph, op) -> int:
    """1 for per-tensor int8/uint8 outputs (op_version.cc: 2 is int16, 3 per-channel, 4 int4)."""
    return 1


OP = OpDef(
    name="QUANTIZE",
    operands=(Operand("input", ACTIVATION),),
    version=_version,
    min_runtime={1: "1.14.0"},
    prepare=_prepare,
    kernel="edgecnn.deploy.runtime.quantize_ops:quantize",
    naive=quantize_naive.quantize,
    c=_c,
    c_blocks=C_BLOCKS,
    onnx=_onnx,
)
