"""FULLY_CONNECTED: int8 dense layer, per-tensor or per-channel weights, either rescale (docs/int8.md 3)."""

from __future__ import annotations

import numpy as np

from edgecnn.deploy.export.c_source import CSource, c_block
from edgecnn.deploy.ops.base import (
    ACTIVATION, CONSTANT, FUSED_CODES, OPTIONAL, OpDef, Operand, Prepared, decode_activation, options_builder,
)  # fmt: skip
from edgecnn.deploy.runtime import naive
from edgecnn.deploy.runtime.params import RESCALE_FLOAT, RESCALE_INTEGER, FullyConnectedParams
from edgecnn.errors import QuantizationError, ShapeError, UnsupportedOpError
from edgecnn.int8.rules import quantize_multiplier

FC_RESCALE_MODES = {"float": RESCALE_FLOAT, "integer": RESCALE_INTEGER}
_NO_BIAS = np.zeros(0, dtype=np.int32)


def _decode(o) -> dict:
    if o is None:
        return {"fused_activation_function": "NONE", "keep_num_dims": False}
    if o.WeightsFormat() != 0:
        raise UnsupportedOpError("FULLY_CONNECTED with shuffled weights is not supported")
    return {"fused_activation_function": decode_activation(o.FusedActivationFunction()),
            "keep_num_dims": bool(o.KeepNumDims())}  # fmt: skip


def _encode(b, o, graph, op) -> int:
    start, end, add = options_builder("FullyConnectedOptions")
    start(b)
    add(b, "FusedActivationFunction", FUSED_CODES[o.get("fused_activation_function", "NONE")])
    add(b, "KeepNumDims", bool(o.get("keep_num_dims", False)))
    return end(b)


def _version(graph, op) -> int:
    """4; 5 with keep_num_dims; 6 with exactly two inputs (no bias slot at all)."""
    if len(op.inputs) == 2:
        return 6
    return 5 if op.options.get("keep_num_dims", False) else 4


def _prepare(ctx) -> Prepared:
    if ctx.fc_rescale not in FC_RESCALE_MODES:
        raise ValueError(f"fc_rescale must be one of {sorted(FC_RESCALE_MODES)}, got {ctx.fc_rescale!r}")
    x = ctx.activation(ctx.tensor(0, "input"), "input")
    output = ctx.activation(ctx.output(), "output")
    weights = ctx.tensor(1, "filter")
    filter_data = ctx.constant(weights, "filter", "int8", 2)
    units, depth = weights.shape
    size = int(np.prod(x.shape))
    if depth <= 0 or size % depth != 0:
        raise ctx.fail(f"input {x.name} {x.shape} does not flatten into rows of {depth}", ShapeError)
    bias = ctx.optional(2)
    bias_data = ctx.bias(bias, units) if bias is not None else _NO_BIAS
    if ctx.op.options.get("keep_num_dims", False):
        if x.shape[-1] != depth:
            raise ctx.fail(f"keep_num_dims needs the input's last dimension to be {depth}", ShapeError)
        expected = tuple(x.shape[:-1]) + (units,)
    else:
        expected = (size // depth, units)
    ctx.check_output_shape(output, expected)

    in_s, out_s = ctx.scale(x), ctx.scale(output)
    if weights.scale.size > 1:
        if weights.quantized_dimension != 0 or weights.scale.size != units:
            raise ctx.fail(f"per-channel weights {weights.name} need quantized_dimension 0 and {units} scales, "
                           f"have {weights.quantized_dimension} and {weights.scale.size}")  # fmt: skip
        effective = in_s * ctx.weight_scales(weights, units) / out_s
        multiplier, shift = ctx.multipliers(effective)
        weights_offset = 0  # TFLite ignores a per-channel weights zero point
    else:
        w_s = float(ctx.weight_scales(weights, 1)[0])
        if bias is not None:
            if bias.scale.size != 1:
                raise ctx.fail(f"bias {bias.name} of per-tensor weights needs one scale, has {bias.scale.size}")
            bias_s = float(bias.scale[0])
            if not abs(in_s * w_s - bias_s) / out_s <= 0.02:
                raise ctx.fail(f"bias scale {bias_s} is not input scale x weight scale ({in_s * w_s}) "
                               "within 2% of the output scale (TFLite refuses this)")  # fmt: skip
        effective = np.full(units, in_s * w_s / out_s)
        # The older integer path rounds in_s * w_s to float32 before dividing (GetQuantizedConvolutionMultipler).
        try:
            m, s = quantize_multiplier(float(np.float32(in_s) * np.float32(w_s)) / out_s)
        except QuantizationError as e:
            raise ctx.fail(str(e)) from None
        multiplier, shift = np.full(units, m, dtype=np.int32), np.full(units, s, dtype=np.int32)
        weights_offset = -ctx.zero_point(weights)
    act_min, act_max = ctx.fused_range(output)
    params = FullyConnectedParams(
        input_offset=-ctx.zero_point(x),
        weights_offset=weights_offset,
        output_offset=ctx.zero_point(output),
        rescale=FC_RESCALE_MODES[ctx.fc_rescale],
        output_multiplier=multiplier,
        output_shift=shift,
        effective_scale=np.ascontiguousarray(effective, dtype=np.float64),
        activation_min=act_min,
        activation_max=act_max,
    )
    constants = ((tuple(weights.shape), filter_data), ((bias_data.size,), bias_data))
    return Prepared(params, (ctx.op.inputs[0],), constants)


# ---------------------------------------------------------------- C

# Two rescale modes, one text each; a model uses one (fc_rescale), so both define the same names.
_FC_TEXT = r"""
/* FULLY_CONNECTED (TFLite reference_integer_ops::FullyConnected / FullyConnectedPerChannel), @MODE@.
   The input is flattened to [rows][depth]; weights_offset is -weights zero point (0 for per-channel weights).
   The sum of (w + weights_offset) * (x + input_offset) is computed modulo 2^32 (what TFLite's wrapping int32
   accumulator holds) as sum(w * x) + input_offset * filter_sum[unit] + weights_offset * (sum(x) + depth *
   input_offset), all in uint32_t: the int8 dot product is then the only per-weight work (ec_dot_4x1: four
   units per pass over the input). */
typedef struct {
    int rows, depth, units;
    int32_t input_offset, weights_offset, output_offset, act_min, act_max;
    const uint32_t *lanes; /* the weights as fc_lanes arranges them for ec_dot_4x1 */
    const int32_t *bias;  /* [units], or NULL */
    const int32_t *filter_sum; /* [units]: sum of each unit's weights */
    @FIELDS@
} ec_fc_params;

static void ec_fully_connected(const ec_fc_params *p, const int8_t *input, int8_t *output)
{
    /* the params in locals: an int8_t store may alias *p, which gcc would otherwise load again per unit */
    const int rows = p->rows, depth = p->depth, units = p->units;
    const int32_t input_offset = p->input_offset, output_offset = p->output_offset;
    const int32_t act_min = p->act_min, act_max = p->act_max;
    const int32_t *const filter_sum = p->filter_sum, *const bias = p->bias;
    const size_t quad_words = (size_t)((depth + 3) & ~3) * 2; /* lanes of four units */
    int row, unit, k, d;
    for (row = 0; row < rows; ++row) {
        const int8_t *x = input + (size_t)row * depth;
        int8_t *out = output + (size_t)row * units;
        uint32_t x_sum = 0, row_term;
        for (d = 0; d < depth; ++d) x_sum += (uint32_t)x[d];
        row_term = (uint32_t)p->weights_offset * (x_sum + (uint32_t)depth * (uint32_t)input_offset);
        for (unit = 0; unit < units; unit += 4) {
            uint32_t sums[4];
            ec_dot_4x1(p->lanes + (size_t)(unit / 4) * quad_words, x, depth, sums);
            for (k = 0; k < 4 && unit + k < units; ++k) {
                const uint32_t acc = sums[k] + (uint32_t)input_offset * (uint32_t)filter_sum[unit + k] + row_term;
                const int32_t total = ec_from_u32(acc + (uint32_t)(bias ? bias[unit + k] : 0));
                out[unit + k] = ec_saturate((int64_t)@RESCALE@ + output_offset, act_min, act_max);
            }
        }
    }
}
"""




def _fc_text(mode: str, fields: str, rescale: str) -> str:
    return _FC_TEXT.replace("@MODE@", mode).replace("@FIELDS@", fields).replace("@RESCALE@", rescale)


_DOUBLE_CHECK = r"""#include <float.h>
/* FULLY_CONNECTED rescales in IEEE binary64, as TFLite does: a 32-bit `double` would round
   differently (use fc_rescale="integer" for such targets, matching older TFLite runtimes). */
#if DBL_MANT_DIG < 53
#error "this model needs a 64-bit double"
#endif
"""

_EXACT_SCALE = r"""
/* round_half_away((double)x * s), saturated to int32, for the binary64 s = mantissa * 2^exponent
   (mantissa < 2^53), with no floating point: the double product is x * mantissa rounded to 53 significant
   bits, ties to even (IEEE), then to an integer, ties away from zero; both roundings are done here on the
   exact 85-bit product held as hi:lo, built from 32 x 32 -> 64-bit multiplies. Bit-exact with the binary64
   path for every int32 x and every finite s >= 0 (tests/test_export_c_integer_only.py checks ties). */
static int ec_bit_length64(uint64_t v)
{
    int n = 0;
    if (v >> 32) { v >>= 32; n += 32; }
    if (v >> 16) { v >>= 16; n += 16; }
    if (v >> 8) { v >>= 8; n += 8; }
    if (v >> 4) { v >>= 4; n += 4; }
    if (v >> 2) { v >>= 2; n += 2; }
    if (v >> 1) { v >>= 1; n += 1; }
    return n + (int)v;
}

static int32_t ec_exact_scale_slow(int32_t x, uint32_t a, uint64_t mantissa, int exponent)
{
    const uint64_t p0 = (uint64_t)a * (uint32_t)(mantissa & 0xFFFFFFFFu); /* < 2^63 */
    const uint64_t p1 = (uint64_t)a * (uint32_t)(mantissa >> 32);         /* < 2^52 */
    const uint64_t lo = p0 + (p1 << 32);
    const uint64_t hi = (p1 >> 32) + (lo < p0 ? 1u : 0u); /* the product is hi * 2^64 + lo < 2^84 */
    const int bits = hi ? 64 + ec_bit_length64(hi) : ec_bit_length64(lo);
    uint64_t q = lo, magnitude;
    int e = exponent;
    if (bits == 0) return 0;
    if (bits > 53) { /* round to 53 significant bits, ties to even: what the binary64 multiply does */
        const int sh = bits - 53; /* 1..31 */
        const uint64_t rest = lo & ((((uint64_t)1) << sh) - 1u), half = ((uint64_t)1) << (sh - 1);
        q = (lo >> sh) | (hi << (64 - sh));
        if (rest > half || (rest == half && (q & 1u))) ++q;
        e += sh;
    }
    /* round_half_away(q * 2^e) on the magnitude, then the sign; |result| >= 2^31 saturates */
    if (e >= 0) {
        if (e >= 31 || q >= (((uint64_t)1) << (31 - e))) return x < 0 ? INT32_MIN : INT32_MAX;
        magnitude = q << e;
    } else if (-e > 55) {
        magnitude = 0; /* q <= 2^53, so q * 2^e < 1/2 */
    } else {
        magnitude = (q >> -e) + ((q >> (-e - 1)) & 1u);
    }
    if (magnitude >= ((uint64_t)1 << 31)) return x < 0 ? INT32_MIN : INT32_MAX;
    return x < 0 ? -(int32_t)magnitude : (int32_t)magnitude;
}

static int32_t ec_exact_scale(int32_t x, uint64_t mantissa, int exponent)
{
    const uint32_t a = x < 0 ? (uint32_t)0 - (uint32_t)x : (uint32_t)x; /* |x| <= 2^31 */
    const int s2 = -exponent - 21;
    if (s2 >= 24 && s2 <= 62) {
        /* Fast path, one 32 x 32 -> 64 multiply: with P = a * mantissa and the result's magnitude
           floor(R(P) * 2^exponent + 1/2) (R: the 53-bit rounding), p = a * (mantissa >> 21) has
           p <= P / 2^21 < p + 2^31, and R moves P / 2^21 by at most 2^(s2 - 23) while the result is below
           2^31 (P < 2^(52 + s2) then). So if both ends of that interval round to the same k < 2^31, k is
           the answer; otherwise (a half-integer within reach, or saturation) the exact path decides. */
        const uint64_t p = (uint64_t)a * (uint32_t)(mantissa >> 21); /* < 2^63 */
        const uint64_t half = (uint64_t)1 << (s2 - 1), slack = (uint64_t)1 << (s2 - 23);
        const uint64_t low = (p + half - slack) >> s2, high = (p + half + slack + ((uint64_t)1 << 31)) >> s2;
        if (low == high && high < ((uint64_t)1 << 31)) return x < 0 ? -(int32_t)high : (int32_t)high;
    }
    return ec_exact_scale_slow(x, a, mantissa, exponent);
}
"""


def scale_parts(scale: float) -> tuple[int, int]:
    """(mantissa, exponent) with scale == mantissa * 2**exponent exactly, mantissa < 2**53 (0 for 0)."""
    import math

    if scale == 0:
        return 0, 0
    if not math.isfinite(scale) or scale < 0:
        raise ValueError(f"effective scale {scale!r} is not a finite non-negative number")
    fraction, exponent = math.frexp(scale)
    return int(fraction * 2**53), exponent - 53


C_BLOCKS = {
    "fully_connected_float": c_block(("from_u32", "saturate", "round_half_away", "dot_4x1"), _DOUBLE_CHECK + _fc_text(
        "current LiteRT reference rescale:\n   round_half_away(acc * effective_scale) in binary64, the one place "
        "where TFLite itself leaves integers",
        "const double *effective_scale; /* [units]: in_s * w_s / out_s, computed in binary64 */",
        "ec_round_half_away((double)total * p->effective_scale[unit + k])")),
    "fully_connected_exact": c_block(("from_u32", "saturate", "exact_scale", "dot_4x1"), _fc_text(
        "current LiteRT reference rescale\n   without floating point (--integer-only): the same "
        "round_half_away(double(acc) * effective_scale), done exactly in integers",
        "const uint64_t *scale_mantissa; /* [units]: effective_scale = mantissa * 2^exponent */\n"
        "    const int16_t *scale_exponent;  /* [units] */",
        "ec_exact_scale(total, p->scale_mantissa[unit + k], p->scale_exponent[unit + k])")),
    "exact_scale": c_block((), _EXACT_SCALE),
    "fully_connected_integer": c_block(("from_u32", "saturate", "mbqm", "dot_4x1"), _fc_text(
        "integer rescale (LiteRT <= 1.2.0,\n   tflite-runtime 2.14): MultiplyByQuantizedMultiplier per unit",
        "const int32_t *multiplier, *shift; /* [units] */",
        "ec_mbqm(total, p->multiplier[unit + k], p->shift[unit + k])")),
}


def fc_lanes(filter_data, units: int, depth: int):
    """FULLY_CONNECTED's weights as ec_dot_4x1 reads them: units in fours (zero units complete the last),
    per 4 inputs (w0..w3) and unit 8 bytes, (w0 | w2 << 16) and (w1 | w3 << 16), 16-bit lanes in SXTB16's
    order; the inputs padded to a multiple of 4 with zero weights."""
    w = np.asarray(filter_data, dtype=np.int64).reshape(units, depth)
    depth4, quads = -(-depth // 4) * 4, -(-units // 4)
    padded = np.zeros((quads * 4, depth4), dtype=np.int64)
    padded[:units, :depth] = w
    from edgecnn.deploy.ops.conv_common import lane_words

    return lane_words(padded.reshape(quads, 4, depth4 // 4, 4).transpose(0, 2, 1, 3))  # [quad][chunk][unit][4]


def _c(emit, step) -> CSource:
    p, name = step.params, emit.prefix(step)
    (filter_shape, filter_data), (_, bias_data) = step.constants
    units, depth = filter_shape
    rows = emit.size(step.inputs[0]) // depth
    lanes = fc_lanes(filter_data, units, depth)
    data = emit.array("uint32_t", f"{name}_lanes", lanes)
    if bias_data.size:
        data += emit.array("int32_t", f"{name}_bias", bias_data)
    fields = [
        ("rows", rows), ("depth", depth), ("units", units),
        ("input_offset", p.input_offset), ("weights_offset", p.weights_offset), ("output_offset", p.output_offset),
        ("act_min", p.activation_min), ("act_max", p.activation_max),
        ("lanes", f"{name}_lanes"), ("bias", f"{name}_bias" if bias_data.size else "NULL"),
        ("filter_sum", f"{name}_filter_sum"),
    ]  # fmt: skip
    data += emit.array("int32_t", f"{name}_filter_sum",
                       np.asarray(filter_data, dtype=np.int64).reshape(units, depth).sum(axis=1))
    if p.rescale == RESCALE_FLOAT and getattr(emit, "integer_only", False):
        parts = [scale_parts(float(s)) for s in p.effective_scale]
        data += emit.array("uint64_t", f"{name}_scale_mantissa", [m for m, _ in parts])
        data += emit.array("int16_t", f"{name}_scale_exponent", [e for _, e in parts])
        fields += [("scale_mantissa", f"{name}_scale_mantissa"), ("scale_exponent", f"{name}_scale_exponent")]
        block = "fully_connected_exact"
    elif p.rescale == RESCALE_FLOAT:
        data += emit.array("double", f"{name}_effective_scale", p.effective_scale)
        fields.append(("effective_scale", f"{name}_effective_scale"))
        block = "fully_connected_float"
    else:
        data += emit.array("int32_t", f"{name}_multiplier", p.output_multiplier)
        data += emit.array("int32_t", f"{name}_shift", p.output_shift)
        fields += [("multiplier", f"{name}_multiplier"), ("shift", f"{name}_shift")]
        block = "fully_connected_integer"
    data += emit.struct("ec_fc_params", f"{name}_params", fields)
    nbytes = lanes.nbytes + 4 * bias_data.size + 12 * units
    return CSource(f"ec_fully_connected(&{name}_params, @IN0@, @OUT0@);", data, (block,), nbytes)


# ---------------------------------------------------------------- ONNX


def _onnx(lw, step) -> None:
    """MatMulInteger in uint8 x uint8 (onnx_builder.py says why), + bias, then either rescale: "float" is
    TFLite's float64 acc * scale rounded half away from zero, which Mul, Abs, Floor and Sign reproduce
    exactly (each IEEE op rounds once, as in C); "integer" is MultiplyByQuantizedMultiplier in int64."""
    from onnx import TensorProto

    from edgecnn.deploy.export.onnx_builder import INT32_MAX, INT32_MIN

    b, p = lw.b, step.params
    (filter_shape, filter_data), (_, bias) = step.constants
    units, depth = filter_shape
    rows = b.node("Reshape", [lw.nhwc(step.inputs[0]), b.const([-1, depth], np.int64, "shape")], "rows")
    x = b.int8_to_uint8(rows)
    in_zp_u8 = b.const(-p.input_offset + 128, np.uint8, "input_zp_u8")
    w = b.const(filter_data.reshape(units, depth).T.astype(np.int16) + 128, np.uint8, "weights_u8")
    w_zp_u8 = b.const(-p.weights_offset + 128, np.uint8, "weights_zp_u8")
    acc = b.node("MatMulInteger", [x, w, in_zp_u8, w_zp_u8], "matmul")
    if bias.size:
        acc = b.node("Add", [acc, b.const(bias, np.int32, "bias")], "plus_bias")
    if p.rescale == RESCALE_FLOAT:
        # TFLite >= 2.20: (int32) round(double(acc) * effective_scale), clamped to int32 before the cast.
        product = b.node("Mul", [b.cast(acc, TensorProto.DOUBLE),
                                 b.const(p.effective_scale, np.float64, "effective_scale")])  # fmt: skip
        rounded = b.round_half_away_double(product)
        rounded = b.node("Clip", [rounded, b.const(INT32_MIN, np.float64), b.const(INT32_MAX, np.float64)],
                         "clamp_int32")  # fmt: skip
        scaled = b.cast(rounded, TensorProto.INT64)
    else:
        scaled = b.multiply_by_quantized_multiplier(b.cast(acc, TensorProto.INT64), p.output_multiplier,
                                                    p.output_shift, (units,))  # fmt: skip
    out = b.output_stage(scaled, p.output_offset, p.activation_min, p.activation_max)
    if len(lw.shape(step.outputs[0])) != 2:  # keep_num_dims
        out = lw.reshape_to(out, step.outputs[0])
    lw.set(step.outputs[0], out)


OP = OpDef(
    name="FULLY_CONNECTED",
    operands=(Operand("input", ACTIVATION), Operand("filter", CONSTANT), Operand("bias", OPTIONAL)),
    options_table="FullyConnectedOptions",
    decode=_decode,
    encode=_encode,
    options_required=False,
    version=_version,
    min_runtime={4: "1.14.0", 5: "2.0.0", 6: "2.1.0"},
    prepare=_prepare,
    kernel="edgecnn.deploy.runtime.fully_connected:fully_connected",
    naive=naive.fully_connected,
    c=_c,
    c_blocks=C_BLOCKS,
    onnx=_onnx,
)
