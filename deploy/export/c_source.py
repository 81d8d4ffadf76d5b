"""The C99 exporter's shared text: fixed-point primitives, and what an op's C hook returns.

An op's own kernel lives in its op module (`deploy/ops/<op>.py`, a dict
`C_BLOCKS` given to `OpDef(c_blocks=...)`); the primitives several ops use
live here. Each block is (dependencies, C text). `c.py` emits only the
blocks a model needs, dependencies first, because gcc -Wall rejects an
unused static function. The arithmetic mirrors edgecnn.deploy.runtime
(fixedpoint.py and the kernels) line for line; docs/int8.md is the
specification. This module imports nothing, so op modules may import it.

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

from dataclasses import dataclass


@dataclass(frozen=True)
class CSource:
    """What an op's C hook gives the exporter for one op (see docs/ops.md).

    call: the statement(s) inside `<name>_invoke`, with placeholders the
      exporter replaces by pointer expressions of the tensors' C types:
      @IN0@, @IN1@, ... for the op's run-time inputs (`step.inputs`, in
      order; a constant fed as an input becomes a `static const` array),
      @OUT0@, ... for `step.outputs`, and @SCRATCH@ for the shared scratch
      buffer (a `void *`, 8-byte aligned, `scratch_bytes` long). A call may
      `return -1;` where TFLite aborts at run time.
    data: constant arrays and the params struct, at file scope; names start
      with `emit.prefix(step)` so two ops never clash.
    blocks: names of the C kernel blocks the call uses (an op module's
      `C_BLOCKS` or this module's `BLOCKS`); their dependencies come along.
    constant_bytes: bytes of constant data (reported in the header).
    scratch_bytes: bytes of scratch the call needs while it runs.
    in_place: k when the call is correct with @OUT0@ starting at @INk@'s first byte (the kernel reads
      every input element before writing over it); the planner then lets the output take the input's
      bytes where the input dies at this op (docs/export.md, "Arena plan"). None: never overlap.
    """

    call: str
    data: str = ""
    blocks: tuple[str, ...] = ()
    constant_bytes: int = 0
    scratch_bytes: int = 0
    in_place: int | None = None
    in_place_offset: int = 0  # in place with @OUT0@ starting this many bytes before @INk@ (a 3x3 conv: one row + one pixel)
    in_place_call: str = ""  # when the planner did put @OUT0@ on @INk@: this call instead (with its blocks, scratch)
    in_place_blocks: tuple[str, ...] = ()
    in_place_scratch: int = 0


def c_block(deps: tuple[str, ...], text: str) -> tuple[tuple[str, ...], str]:
    """One entry of a `C_BLOCKS` dict: (dependency names, C text with one trailing newline)."""
    return tuple(deps), text.strip("\n") + "\n"


def per_image(call: str, images: int, in_size: int, out_size: int) -> str:
    """`call` (one image: @IN0@ -> @OUT0@) once per image of a tensor whose shape[0] is `images`.

    Activations have a batch of 1 at graph level except between SPACE_TO_BATCH_ND and
    BATCH_TO_SPACE_ND, where the blocks of one image are its batch; kernels that work on one
    image (conv, pool) step through them here.
    """
    if images == 1:
        return call
    call = call.replace("@IN0@", f"@IN0@ + (size_t)ec_image * {in_size}")
    call = call.replace("@OUT0@", f"@OUT0@ + (size_t)ec_image * {out_size}")
    return f"{{\n    int ec_image;\n    for (ec_image = 0; ec_image < {images}; ++ec_image) {call}\n}}"


def lookup_source(emit, step, table) -> CSource:
    """The C of an int8 -> int8 element-wise op given as its 256-entry table (LOGISTIC, TANH, ...)."""
    name = f"{emit.prefix(step)}_table"
    return CSource(f"ec_lookup({name}, @IN0@, @OUT0@, {emit.size(step.inputs[0])});",
                   emit.array("int8_t", name, table), ("lookup",), 256, in_place=0)


def copy_source(emit, step) -> CSource:
    """The C of an op that copies its input's bytes unchanged (RESHAPE, ...), whatever the element type."""
    t = step.inputs[0]
    if emit.c_type(t) == "int8_t":
        return CSource(f"ec_copy(@IN0@, @OUT0@, {emit.size(t)});", blocks=("copy",), in_place=0)
    nbytes = emit.size(t) * {"uint8_t": 1, "int16_t": 2, "int32_t": 4, "float": 4, "int64_t": 8}[emit.c_type(t)]
    return CSource(f"ec_copy((const int8_t *)(const void *)@IN0@, (int8_t *)(void *)@OUT0@, {nbytes});",
                   blocks=("copy",), in_place=0)


BLOCKS: dict[str, tuple[tuple[str, ...], str]] = {}


def _block(name: str, deps: tuple[str, ...], text: str) -> None:
    BLOCKS[name] = c_block(deps, text)


_block("from_u32", (), r"""
/* u modulo 2^32 as an int32_t: what TFLite's int32 accumulator holds after it wraps. */
static int32_t ec_from_u32(uint32_t u)
{
#if defined(__GNUC__)
    return (int32_t)u; /* GCC and Clang document this conversion as modulo 2^32 */
#else
    return u > 0x7FFFFFFFu ? -(int32_t)(~u) - 1 : (int32_t)u;
#endif
}
""")

_block("shr", (), r"""
/* floor(x / 2^n), 0 <= n <= 62: an arithmetic right shift whatever the compiler does with a negative >>. */
static int64_t ec_shr(int64_t x, int n)
{
#if defined(__GNUC__)
    return x >> n; /* GCC and Clang document >> of a negative value as arithmetic (sign-extending) */
#else
    return x >= 0 ? x >> n : ~(~x >> n);
#endif
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
    const int32_t mask = (int32_t)(((uint32_t)1 << e) - 1u); /* e <= 31 */
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
#if defined(__GNUC__)
    return (x >> e) + (remainder > threshold ? 1 : 0); /* >> of a negative int32: arithmetic in GCC and Clang */
#else
    return (int32_t)ec_shr(x, e) + (remainder > threshold ? 1 : 0);
#endif
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







_block("dot_s8", (), r"""
/* sum of a[i] * b[i] for int8 a and b, modulo 2^32 (what TFLite's wrapping int32 accumulator holds; the
   order of the terms does not matter modulo 2^32). Where the Cortex-M DSP extension is there (and
   EDGECNN_NO_DSP is not defined), four products per step: SXTB16 sign-extends bytes 0 and 2 (and, with
   ROR #8, bytes 1 and 3) into two 16-bit lanes, and SMLAD adds both lane products to the accumulator
   (wrapping like uint32_t). The portable loop gives the same sum. |a[i] * b[i]| <= 2^14. */
#if defined(__ARM_FEATURE_DSP) && !defined(EDGECNN_NO_DSP)
#define EC_DSP 1
static uint32_t ec_load32(const int8_t *p)
{
    /* gcc merges these four byte loads into one (unaligned-capable) LDR on the Cortex-M3/M4/M7 */
    return (uint32_t)(uint8_t)p[0] | ((uint32_t)(uint8_t)p[1] << 8) | ((uint32_t)(uint8_t)p[2] << 16)
           | ((uint32_t)(uint8_t)p[3] << 24);
}

static uint32_t ec_smlad_bytes(uint32_t a, uint32_t b, uint32_t acc)
{
    uint32_t a02, a13, b02, b13;
    __asm__("sxtb16 %0, %1" : "=r"(a02) : "r"(a));
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(a13) : "r"(a));
    __asm__("sxtb16 %0, %1" : "=r"(b02) : "r"(b));
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(b13) : "r"(b));
    __asm__("smlad %0, %1, %2, %0" : "+r"(acc) : "r"(a02), "r"(b02));
    __asm__("smlad %0, %1, %2, %0" : "+r"(acc) : "r"(a13), "r"(b13));
    return acc;
}
#endif

static uint32_t ec_dot_s8(const int8_t *a, const int8_t *b, int n)
{
    uint32_t acc = 0;
    int i = 0;
#ifdef EC_DSP
    for (; i + 8 <= n; i += 8) {
        acc = ec_smlad_bytes(ec_load32(a + i), ec_load32(b + i), acc);
        acc = ec_smlad_bytes(ec_load32(a + i + 4), ec_load32(b + i + 4), acc);
    }
    for (; i + 4 <= n; i += 4) acc = ec_smlad_bytes(ec_load32(a + i), ec_load32(b + i), acc);
#endif
    for (; i < n; ++i) acc += (uint32_t)(a[i] * b[i]);
    return acc;
}

""")

_block("dot_s8_x2", ("dot_s8",), r"""
/* ec_dot_s8 of two rows a0, a1 with one b: each word of b is loaded and sign-extended once for both. */
static void ec_dot_s8_x2(const int8_t *a0, const int8_t *a1, const int8_t *b, int n, uint32_t *sum0, uint32_t *sum1)
{
    uint32_t acc0 = 0, acc1 = 0;
    int i = 0;
#ifdef EC_DSP
    for (; i + 4 <= n; i += 4) {
        const uint32_t x = ec_load32(b + i), w0 = ec_load32(a0 + i), w1 = ec_load32(a1 + i);
        uint32_t x02, x13, w02, w13;
        __asm__("sxtb16 %0, %1" : "=r"(x02) : "r"(x));
        __asm__("sxtb16 %0, %1, ror #8" : "=r"(x13) : "r"(x));
        __asm__("sxtb16 %0, %1" : "=r"(w02) : "r"(w0));
        __asm__("sxtb16 %0, %1, ror #8" : "=r"(w13) : "r"(w0));
        __asm__("smlad %0, %1, %2, %0" : "+r"(acc0) : "r"(w02), "r"(x02));
        __asm__("smlad %0, %1, %2, %0" : "+r"(acc0) : "r"(w13), "r"(x13));
        __asm__("sxtb16 %0, %1" : "=r"(w02) : "r"(w1));
        __asm__("sxtb16 %0, %1, ror #8" : "=r"(w13) : "r"(w1));
        __asm__("smlad %0, %1, %2, %0" : "+r"(acc1) : "r"(w02), "r"(x02));
        __asm__("smlad %0, %1, %2, %0" : "+r"(acc1) : "r"(w13), "r"(x13));
    }
#endif
    for (; i < n; ++i) {
        acc0 += (uint32_t)(a0[i] * b[i]);
        acc1 += (uint32_t)(a1[i] * b[i]);
    }
    *sum0 = acc0;
    *sum1 = acc1;
}
""")

_block("lookup", (), r"""
/* output[i] = table[input[i] + 128]: int8 element-wise ops whose value depends on the input byte alone
   (LOGISTIC and TANH build the table in float32 at load time, as TFLite does), so no floating point here. */
static void ec_lookup(const int8_t table[256], const int8_t *input, int8_t *output, size_t size)
{
    size_t i;
    for (i = 0; i < size; ++i) output[i] = table[input[i] + 128];
}
""")

_block("copy", (), r"""
/* size bytes from input to output (RESHAPE; a graph output that is a graph input); nothing when the
   planner put both at the same bytes. */
static void ec_copy(const int8_t *input, int8_t *output, size_t size)
{
    size_t i;
    if (input == output) return;
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
