"""The C99 text of the exported kernels: fixed-point primitives, params structs and one function per op.

Each block is (dependencies, C text). `c.py` emits only the blocks a model
needs, dependencies first, because gcc -Wall rejects an unused static
function. The arithmetic mirrors edgecnn.deploy.runtime (fixedpoint.py and
the kernels) line for line; docs/INT8.md is the specification.

Portability traps, each handled once, here:
- int32 overflow is undefined in C, but TFLite's int32 accumulators wrap.
  Sums therefore run in uint32_t (defined to wrap) and come back through
  ec_from_u32.
- `>>` of a negative value is implementation-defined: ec_shr is a floor shift.
- `<<` of a negative value is undefined: shifts go through uint32_t.
- int32_t is two's complement by definition (C99 7.18.1.1), so `&` on a
  negative int32_t sees the bits TFLite sees.
"""

from __future__ import annotations

BLOCKS: dict[str, tuple[tuple[str, ...], str]] = {}


def _block(name: str, deps: tuple[str, ...], text: str) -> None:
    BLOCKS[name] = (deps, text.strip("\n") + "\n")


_block("from_u32", (), r"""
/* u modulo 2^32 as an int32_t: what TFLite's int32 accumulator holds after it wraps. */
static int32_t ec_from_u32(uint32_t u)
{
    return u > 0x7FFFFFFFu ? -(int32_t)(~u) - 1 : (int32_t)u;
}
""")

_block("shr", (), r"""
/* floor(x / 2^n), 0 <= n <= 62: an arithmetic right shift whatever the compiler does with a negative >>. */
static int64_t ec_shr(int64_t x, int n)
{
    return x >= 0 ? x >> n : ~(~x >> n);
}
""")

_block("saturate", (), r"""
/* v clamped to the fused-activation range [lo, hi], a subrange of int8. */
static int8_t ec_saturate(int64_t v, int32_t lo, int32_t hi)
{
    return (int8_t)(v < lo ? lo : (v > hi ? hi : v));
}
""")

_block("srdhm", ("shr",), r"""
/* gemmlowp SaturatingRoundingDoublingHighMul: (a*b + 2^30) >> 31 in int64, ties toward +inf.
   Saturates only for INT32_MIN * INT32_MIN. (1000, 1518500250) -> 707; (-3, 2^30) -> -1. */
static int32_t ec_srdhm(int32_t a, int32_t b)
{
    if (a == INT32_MIN && b == INT32_MIN) return INT32_MAX;
    return (int32_t)ec_shr((int64_t)a * b + ((int64_t)1 << 30), 31);
}
""")

_block("rdbpot", ("shr",), r"""
/* gemmlowp RoundingDivideByPOT: x / 2^e for 0 <= e <= 31, ties away from zero. (-5, 1) -> -3; (-5, 2) -> -1. */
static int32_t ec_rdbpot(int32_t x, int e)
{
    const int32_t mask = (int32_t)(((int64_t)1 << e) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (int32_t)ec_shr(x, e) + (remainder > threshold ? 1 : 0);
}
""")

_block("mbqm", ("from_u32", "srdhm", "rdbpot"), r"""
/* TFLite MultiplyByQuantizedMultiplier, default double rounding: SRDHM(x * 2^left, M), then
   RoundingDivideByPOT by right. x * 2^left wraps like TFLite's int32. (250, 1099511562, -8) -> 1. */
static int32_t ec_mbqm(int32_t x, int32_t multiplier, int32_t shift)
{
    const int left = shift > 0 ? (int)shift : 0;
    const int right = shift > 0 ? 0 : (int)-shift;
    return ec_rdbpot(ec_srdhm(ec_from_u32((uint32_t)x << left), multiplier), right);
}
""")

_block("requantize", ("mbqm", "saturate"), r"""
/* A conv output's tail, in TFLite's order: (wrapped) acc + bias -> rescale -> + output offset -> clamp -> int8. */
static int8_t ec_requantize(uint32_t acc, int32_t bias, int32_t multiplier, int32_t shift,
                            int32_t output_offset, int32_t act_min, int32_t act_max)
{
    const int32_t total = ec_from_u32(acc + (uint32_t)bias);
    return ec_saturate((int64_t)ec_mbqm(total, multiplier, shift) + output_offset, act_min, act_max);
}
""")

_block("round_half_away", (), r"""
/* (int32_t)round(v): halves away from zero, saturating outside int32 as edgecnn's runtime does.
   |v| - floor(|v|) is exact in binary64, so the 0.5 test adds no rounding of its own. */
static int32_t ec_round_half_away(double v)
{
    const double a = v < 0 ? -v : v;
    int64_t r;
    if (a >= 2147483648.0) return v < 0 ? INT32_MIN : INT32_MAX;
    r = (int64_t)a;
    if (a - (double)r >= 0.5) r += 1;
    if (v < 0) r = -r;
    return r > INT32_MAX ? INT32_MAX : (int32_t)r;
}
""")

_block("conv_params", (), r"""
/* CONV_2D and DEPTHWISE_CONV_2D. Offsets follow TFLite: input_offset = -input zero point,
   output_offset = +output zero point. Multipliers and shifts are per output channel. */
typedef struct {
    int input_h, input_w, input_depth;
    int output_h, output_w, output_depth;
    int filter_h, filter_w, filter_depth;
    int stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_left;
    int32_t input_offset, output_offset, act_min, act_max;
    const int8_t *filter;      /* conv [out][h][w][filter_depth]; depthwise [1][h][w][out] */
    const int32_t *bias;       /* [out], or NULL */
    const int32_t *multiplier; /* [out] */
    const int32_t *shift;      /* [out] */
} ec_conv_params;
""")

_block("conv_2d", ("conv_params", "requantize"), r"""
/* CONV_2D (TFLite reference_integer_ops::ConvPerChannel), grouped when input_depth > filter_depth.
   Per output pixel and group, the window is copied once into patch[(filter_y*filter_w + filter_x)*filter_depth
   + in_channel] as x + input_offset, with 0 for taps outside the image (w * 0 adds nothing, the same as TFLite
   skipping them); each filter is then one contiguous dot product with the patch (OHWI has the same order).
   Overflow: |w| <= 128 and |x + input_offset| <= 255, so each product is below 2^16 and fits an int;
   the sum runs in uint32_t, which wraps exactly like TFLite's int32 accumulator. */
static void ec_conv_2d(const ec_conv_params *p, const int8_t *input, int8_t *output, int16_t *patch)
{
    const int groups = p->input_depth / p->filter_depth;
    const int filters_per_group = p->output_depth / groups;
    const int taps = p->filter_h * p->filter_w * p->filter_depth;
    int out_y, out_x, group, out_channel, filter_y, filter_x, in_channel, t;
    for (out_y = 0; out_y < p->output_h; ++out_y) {
        const int in_y_origin = out_y * p->stride_h - p->pad_top;
        for (out_x = 0; out_x < p->output_w; ++out_x) {
            const int in_x_origin = out_x * p->stride_w - p->pad_left;
            int8_t *out = output + ((size_t)out_y * p->output_w + out_x) * p->output_depth;
            for (group = 0; group < groups; ++group) {
                int16_t *tap = patch;
                for (filter_y = 0; filter_y < p->filter_h; ++filter_y) {
                    const int in_y = in_y_origin + p->dilation_h * filter_y;
                    for (filter_x = 0; filter_x < p->filter_w; ++filter_x) {
                        const int in_x = in_x_origin + p->dilation_w * filter_x;
                        const int8_t *x;
                        if (in_y < 0 || in_y >= p->input_h || in_x < 0 || in_x >= p->input_w) {
                            for (in_channel = 0; in_channel < p->filter_depth; ++in_channel) *tap++ = 0;
                            continue;
                        }
                        x = input + ((size_t)in_y * p->input_w + in_x) * p->input_depth + group * p->filter_depth;
                        for (in_channel = 0; in_channel < p->filter_depth; ++in_channel)
                            *tap++ = (int16_t)(x[in_channel] + p->input_offset);
                    }
                }
                for (out_channel = group * filters_per_group; out_channel < (group + 1) * filters_per_group;
                     ++out_channel) {
                    const int8_t *w = p->filter + (size_t)out_channel * taps;
                    uint32_t acc = 0;
                    for (t = 0; t < taps; ++t) acc += (uint32_t)(w[t] * patch[t]);
                    out[out_channel] = ec_requantize(acc, p->bias ? p->bias[out_channel] : 0,
                                                     p->multiplier[out_channel], p->shift[out_channel],
                                                     p->output_offset, p->act_min, p->act_max);
                }
            }
        }
    }
}
""")

_block("depthwise_conv_2d", ("conv_params", "requantize"), r"""
/* DEPTHWISE_CONV_2D (TFLite reference_integer_ops::DepthwiseConvPerChannel): output channel
   m + in_channel * depth_multiplier reads only its input channel. Overflow as in ec_conv_2d. */
static void ec_depthwise_conv_2d(const ec_conv_params *p, const int8_t *input, int8_t *output)
{
    const int depth_multiplier = p->output_depth / p->input_depth;
    int out_y, out_x, in_channel, m, filter_y, filter_x;
    for (out_y = 0; out_y < p->output_h; ++out_y) {
        const int in_y_origin = out_y * p->stride_h - p->pad_top;
        for (out_x = 0; out_x < p->output_w; ++out_x) {
            const int in_x_origin = out_x * p->stride_w - p->pad_left;
            int8_t *out = output + ((size_t)out_y * p->output_w + out_x) * p->output_depth;
            for (in_channel = 0; in_channel < p->input_depth; ++in_channel) {
                for (m = 0; m < depth_multiplier; ++m) {
                    const int out_channel = m + in_channel * depth_multiplier;
                    uint32_t acc = 0;
                    for (filter_y = 0; filter_y < p->filter_h; ++filter_y) {
                        const int in_y = in_y_origin + p->dilation_h * filter_y;
                        if (in_y < 0 || in_y >= p->input_h) continue;
                        for (filter_x = 0; filter_x < p->filter_w; ++filter_x) {
                            const int in_x = in_x_origin + p->dilation_w * filter_x;
                            int32_t x, w;
                            if (in_x < 0 || in_x >= p->input_w) continue;
                            x = input[((size_t)in_y * p->input_w + in_x) * p->input_depth + in_channel];
                            w = p->filter[((size_t)filter_y * p->filter_w + filter_x) * p->output_depth + out_channel];
                            acc += (uint32_t)(w * (x + p->input_offset));
                        }
                    }
                    out[out_channel] = ec_requantize(acc, p->bias ? p->bias[out_channel] : 0,
                                                     p->multiplier[out_channel], p->shift[out_channel],
                                                     p->output_offset, p->act_min, p->act_max);
                }
            }
        }
    }
}
""")

# FULLY_CONNECTED comes in two rescale modes; `c.py` picks one text per model.
_FC_TEXT = r"""
/* FULLY_CONNECTED (TFLite reference_integer_ops::FullyConnected / FullyConnectedPerChannel), @MODE@.
   The input is flattened to [rows][depth]; weights_offset is -weights zero point (0 for per-channel weights).
   Overflow: |w + weights_offset| <= 255 and |x + input_offset| <= 255, so each product is below 2^16;
   the sum runs in uint32_t, which wraps like TFLite's int32 accumulator. */
typedef struct {
    int rows, depth, units;
    int32_t input_offset, weights_offset, output_offset, act_min, act_max;
    const int8_t *filter; /* [units][depth] */
    const int32_t *bias;  /* [units], or NULL */
    @FIELDS@
} ec_fc_params;

static void ec_fully_connected(const ec_fc_params *p, const int8_t *input, int8_t *output)
{
    int row, unit, d;
    for (row = 0; row < p->rows; ++row) {
        const int8_t *x = input + (size_t)row * p->depth;
        for (unit = 0; unit < p->units; ++unit) {
            const int8_t *w = p->filter + (size_t)unit * p->depth;
            uint32_t acc = 0;
            int32_t total;
            for (d = 0; d < p->depth; ++d)
                acc += (uint32_t)((w[d] + p->weights_offset) * (x[d] + p->input_offset));
            total = ec_from_u32(acc + (uint32_t)(p->bias ? p->bias[unit] : 0));
            output[(size_t)row * p->units + unit] =
                ec_saturate((int64_t)@RESCALE@ + p->output_offset, p->act_min, p->act_max);
        }
    }
}
"""


def _fc_text(mode: str, fields: str, rescale: str) -> str:
    return _FC_TEXT.replace("@MODE@", mode).replace("@FIELDS@", fields).replace("@RESCALE@", rescale)


_block("fully_connected_float", ("from_u32", "saturate", "round_half_away"), _fc_text(
    "current LiteRT reference rescale:\n   round_half_away(acc * effective_scale) in binary64, the one place "
    "where TFLite itself leaves integers",
    "const double *effective_scale; /* [units]: in_s * w_s / out_s, computed in binary64 */",
    "ec_round_half_away((double)total * p->effective_scale[unit])"))
_block("fully_connected_integer", ("from_u32", "saturate", "mbqm"), _fc_text(
    "integer rescale (LiteRT <= 1.2.0,\n   tflite-runtime 2.14): MultiplyByQuantizedMultiplier per unit",
    "const int32_t *multiplier, *shift; /* [units] */",
    "ec_mbqm(total, p->multiplier[unit], p->shift[unit])"))

_block("pool_params", (), r"""
/* MAX_POOL_2D and AVERAGE_POOL_2D: no rescaling, only the window (clipped to the image) and the clamp. */
typedef struct {
    int input_h, input_w, depth, output_h, output_w;
    int filter_h, filter_w, stride_h, stride_w, pad_top, pad_left;
    int32_t act_min, act_max;
} ec_pool_params;
""")

_block("max_pool_2d", ("pool_params", "saturate"), r"""
/* MAX_POOL_2D: the largest raw int8 in the clipped window, starting from -128, then the clamp. */
static void ec_max_pool_2d(const ec_pool_params *p, const int8_t *input, int8_t *output)
{
    int out_y, out_x, channel, filter_y, filter_x;
    for (out_y = 0; out_y < p->output_h; ++out_y) {
        const int in_y_origin = out_y * p->stride_h - p->pad_top;
        const int y_start = in_y_origin < 0 ? -in_y_origin : 0;
        const int y_end = p->filter_h < p->input_h - in_y_origin ? p->filter_h : p->input_h - in_y_origin;
        for (out_x = 0; out_x < p->output_w; ++out_x) {
            const int in_x_origin = out_x * p->stride_w - p->pad_left;
            const int x_start = in_x_origin < 0 ? -in_x_origin : 0;
            const int x_end = p->filter_w < p->input_w - in_x_origin ? p->filter_w : p->input_w - in_x_origin;
            for (channel = 0; channel < p->depth; ++channel) {
                int32_t max = -128;
                for (filter_y = y_start; filter_y < y_end; ++filter_y) {
                    for (filter_x = x_start; filter_x < x_end; ++filter_x) {
                        const size_t at = ((size_t)(in_y_origin + filter_y) * p->input_w + (in_x_origin + filter_x))
                                          * p->depth + channel;
                        if (input[at] > max) max = input[at];
                    }
                }
                output[((size_t)out_y * p->output_w + out_x) * p->depth + channel] =
                    ec_saturate(max, p->act_min, p->act_max);
            }
        }
    }
}
""")

_block("average_pool_2d", ("pool_params", "saturate"), r"""
/* AVERAGE_POOL_2D: the sum of raw int8 over the clipped window divided by its size, ties away from zero
   (C99 division truncates toward zero). The window always holds a pixel: SAME padding is under a kernel. */
static void ec_average_pool_2d(const ec_pool_params *p, const int8_t *input, int8_t *output)
{
    int out_y, out_x, channel, filter_y, filter_x;
    for (out_y = 0; out_y < p->output_h; ++out_y) {
        const int in_y_origin = out_y * p->stride_h - p->pad_top;
        const int y_start = in_y_origin < 0 ? -in_y_origin : 0;
        const int y_end = p->filter_h < p->input_h - in_y_origin ? p->filter_h : p->input_h - in_y_origin;
        for (out_x = 0; out_x < p->output_w; ++out_x) {
            const int in_x_origin = out_x * p->stride_w - p->pad_left;
            const int x_start = in_x_origin < 0 ? -in_x_origin : 0;
            const int x_end = p->filter_w < p->input_w - in_x_origin ? p->filter_w : p->input_w - in_x_origin;
            const int32_t count = (int32_t)(y_end - y_start) * (x_end - x_start);
            for (channel = 0; channel < p->depth; ++channel) {
                int32_t sum = 0, average;
                for (filter_y = y_start; filter_y < y_end; ++filter_y) {
                    for (filter_x = x_start; filter_x < x_end; ++filter_x) {
                        sum += input[((size_t)(in_y_origin + filter_y) * p->input_w + (in_x_origin + filter_x))
                                     * p->depth + channel];
                    }
                }
                average = sum > 0 ? (sum + count / 2) / count : (sum - count / 2) / count;
                output[((size_t)out_y * p->output_w + out_x) * p->depth + channel] =
                    ec_saturate(average, p->act_min, p->act_max);
            }
        }
    }
}
""")

_block("lookup", (), r"""
/* LOGISTIC and TANH: TFLite's int8 kernels look up a 256-entry table built in float32 at load time;
   the exporter built the same table, so no floating point is left here. */
static void ec_lookup(const int8_t table[256], const int8_t *input, int8_t *output, size_t size)
{
    size_t i;
    for (i = 0; i < size; ++i) output[i] = table[input[i] + 128];
}
""")

_block("copy", (), r"""
/* RESHAPE copies the bytes and ignores the quantization parameters. */
static void ec_copy(const int8_t *input, int8_t *output, size_t size)
{
    size_t i;
    for (i = 0; i < size; ++i) output[i] = input[i];
}
""")

_block("saturating_left_shift", (), r"""
/* x * 2^e for 0 <= e < 31, saturated to int32 (gemmlowp SaturatingRoundingMultiplyByPOT, e > 0). */
static int32_t ec_saturating_left_shift(int32_t x, int e)
{
    const int32_t threshold = (int32_t)(((int64_t)1 << (31 - e)) - 1);
    if (x > threshold) return INT32_MAX;
    if (x < -threshold) return INT32_MIN;
    return x * ((int32_t)1 << e);
}
""")

_block("exp_on_negative_values", ("srdhm", "rdbpot", "saturating_left_shift"), r"""
/* gemmlowp exp_on_interval_between_negative_one_quarter_and_0_excl: exp(a) for a Q0.31 a in [-1/4, 0),
   a 4th-order Taylor expansion around -1/8; every product an SRDHM, every halving a RoundingDivideByPOT. */
static int32_t ec_exp_on_quarter_interval(int32_t a)
{
    const int32_t constant_term = 1895147668;    /* exp(-1/8) in Q0.31 */
    const int32_t constant_1_over_3 = 715827883; /* 1/3 in Q0.31 */
    const int32_t x = a + ((int32_t)1 << 28);
    const int32_t x2 = ec_srdhm(x, x);
    const int32_t x3 = ec_srdhm(x2, x);
    const int32_t x4 = ec_srdhm(x2, x2);
    const int32_t x4_over_4 = ec_rdbpot(x4, 2);
    const int32_t poly = ec_rdbpot(ec_srdhm(x4_over_4 + x3, constant_1_over_3) + x2, 1);
    return constant_term + ec_srdhm(constant_term, x + poly);
}

/* gemmlowp exp_on_negative_values for a Q5.26 a <= 0; result Q0.31. a = (a mod 1/4 - 1/4) - r: the first
   part goes to the Taylor step, then each set bit 2^k of r (k = -2..4) multiplies by exp(-2^k).
   exp(0) is INT32_MAX, since 1 is not representable. */
static int32_t ec_exp_on_negative_values_q5(int32_t a)
{
    static const int32_t exp_of_minus_power_of_two[7] = {
        1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242
    };
    const int32_t one_quarter = (int32_t)1 << 24;
    const int32_t a_mod_quarter_minus_one_quarter = (a & (one_quarter - 1)) - one_quarter;
    const int32_t remainder = a_mod_quarter_minus_one_quarter - a;
    int32_t result = ec_exp_on_quarter_interval(ec_saturating_left_shift(a_mod_quarter_minus_one_quarter, 5));
    int i;
    for (i = 0; i < 7; ++i)
        if (remainder & ((int32_t)1 << (24 + i))) result = ec_srdhm(result, exp_of_minus_power_of_two[i]);
    return a == 0 ? INT32_MAX : result;
}
""")

_block("one_over_one_plus_x", ("srdhm", "saturating_left_shift"), r"""
/* gemmlowp RoundingHalfSum: (a + b) / 2, ties away from zero. */
static int32_t ec_rounding_half_sum(int32_t a, int32_t b)
{
    const int64_t sum = (int64_t)a + b;
    return (int32_t)((sum >= 0 ? sum + 1 : sum - 1) / 2);
}

/* gemmlowp one_over_one_plus_x_for_x_in_0_1: 1 / (1 + x) for a Q0.31 x in [0, 1), in Q0.31.
   Newton-Raphson on d = (1 + x) / 2 from 48/17 - 32/17 d, three steps in Q2.29, then x / 2 as Q0.31. */
static int32_t ec_one_over_one_plus_x(int32_t a)
{
    const int32_t half_denominator = ec_rounding_half_sum(a, INT32_MAX);
    const int32_t constant_48_over_17 = 1515870810;      /* Q2.29 */
    const int32_t constant_neg_32_over_17 = -1010580540; /* Q2.29 */
    int32_t x = constant_48_over_17 + ec_srdhm(half_denominator, constant_neg_32_over_17);
    int i;
    for (i = 0; i < 3; ++i) {
        const int32_t one_minus_half_denominator_times_x = ((int32_t)1 << 29) - ec_srdhm(half_denominator, x);
        x = x + ec_saturating_left_shift(ec_srdhm(x, one_minus_half_denominator_times_x), 2);
    }
    return ec_saturating_left_shift(x, 1);
}
""")

_block("softmax", ("from_u32", "saturate", "srdhm", "rdbpot", "exp_on_negative_values", "one_over_one_plus_x"), r"""
/* SOFTMAX over the last axis (TFLite reference Softmax, int8 out with scale 1/256, zero point -128).
   d = q - max(row); for d >= diff_min: e = exp(SRDHM(d * 2^left_shift, multiplier) as Q5.26) in Q0.31,
   sum += e / 2^12 (Q12.19; each term <= 2^19 and rows are under 4096, so the int32 sum is exact).
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
        int32_t max_in_row = -128, sum_of_exps = 0, shifted_scale, exponent;
        int headroom;
        uint32_t sum_bits;
        for (c = 0; c < p->depth; ++c)
            if (x[c] > max_in_row) max_in_row = x[c];
        for (c = 0; c < p->depth; ++c) {
            const int32_t diff = x[c] - max_in_row;
            if (diff >= p->diff_min) sum_of_exps += ec_rdbpot(ec_softmax_exp(p, diff), 12);
        }
        /* sum_of_exps >= 2^19 (the row's maximum contributes exp(0)), so 0 < headroom <= 12. */
        sum_bits = (uint32_t)sum_of_exps;
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
""")
