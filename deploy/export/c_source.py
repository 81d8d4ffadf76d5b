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


_block("dsp", (), r"""
/* Word access and, where the Cortex-M DSP extension is there (__ARM_FEATURE_DSP: M4, M7, M33 with DSP) and
   EDGECNN_NO_DSP is not defined, its SIMD instructions (EC_DSP). ec_load32/ec_store32 move 4 int8 values
   as one little-endian word whatever the host (gcc merges the byte accesses into one LDR/STR, unaligned
   access being allowed on the Cortex-M3/M4/M7). SXTB16 sign-extends bytes 0 and 2 (with ROR #8: bytes 1
   and 3) into two 16-bit lanes; SXTAB16 also adds them to the lanes of its first operand; SMLAD adds
   both lane products to the accumulator, SMLABB / SMLATT the bottom / top lanes' product; all wrap
   modulo 2^32 like uint32_t (they only set the Q flag). */
/* EC_INLINE: inlined at every call even where gcc's size heuristics would not (a kernel inlined once per
   constant mode, so that the mode's tests vanish). */
/* EC_NOINLINE: a function of its own, so that gcc neither merges it with its siblings (one per mode) nor
   makes the mode a variable again. */
#if defined(__GNUC__)
#define EC_INLINE __attribute__((always_inline)) static inline
#define EC_NOINLINE __attribute__((noinline)) static
#else
#define EC_INLINE static inline
#define EC_NOINLINE static
#endif

static inline uint32_t ec_load32(const int8_t *p)
{
    return (uint32_t)(uint8_t)p[0] | ((uint32_t)(uint8_t)p[1] << 8) | ((uint32_t)(uint8_t)p[2] << 16)
           | ((uint32_t)(uint8_t)p[3] << 24);
}

static inline void ec_store32(int8_t *p, uint32_t v)
{
    p[0] = (int8_t)(uint8_t)v;
    p[1] = (int8_t)(uint8_t)(v >> 8);
    p[2] = (int8_t)(uint8_t)(v >> 16);
    p[3] = (int8_t)(uint8_t)(v >> 24);
}

/* The signed 16-bit lane of a word (top: bits 16-31, else bits 0-15), as weights pre-arranged in lanes
   are stored. */
static inline int32_t ec_lane16(uint32_t word, int top)
{
#if defined(__GNUC__)
    return top ? (int32_t)word >> 16 : (int16_t)word; /* GCC and Clang: conversions modulo 2^n, >> arithmetic */
#else
    const uint32_t lane = (top ? word >> 16 : word) & 0xFFFFu;
    return (int32_t)(lane & 0x7FFFu) - (int32_t)(lane & 0x8000u);
#endif
}

#if defined(__ARM_FEATURE_DSP) && !defined(EDGECNN_NO_DSP)
#define EC_DSP 1
static inline uint32_t ec_sxtb16(uint32_t x)
{
    uint32_t r;
    __asm__("sxtb16 %0, %1" : "=r"(r) : "r"(x));
    return r;
}

static inline uint32_t ec_sxtb16_ror8(uint32_t x)
{
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}

static inline uint32_t ec_sxtab16(uint32_t a, uint32_t x)
{
    uint32_t r;
    __asm__("sxtab16 %0, %1, %2" : "=r"(r) : "r"(a), "r"(x));
    return r;
}

static inline uint32_t ec_sxtab16_ror8(uint32_t a, uint32_t x)
{
    uint32_t r;
    __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(a), "r"(x));
    return r;
}

static inline uint32_t ec_smlad(uint32_t a, uint32_t b, uint32_t acc)
{
    __asm__("smlad %0, %1, %2, %0" : "+r"(acc) : "r"(a), "r"(b));
    return acc;
}

static inline uint32_t ec_smlabb(uint32_t a, uint32_t b, uint32_t acc)
{
    __asm__("smlabb %0, %1, %2, %0" : "+r"(acc) : "r"(a), "r"(b));
    return acc;
}

static inline uint32_t ec_smlatt(uint32_t a, uint32_t b, uint32_t acc)
{
    __asm__("smlatt %0, %1, %2, %0" : "+r"(acc) : "r"(a), "r"(b));
    return acc;
}
#endif

/* Bytes 0 and 2 (ec_lanes02) or 1 and 3 (ec_lanes13) of v sign-extended into two 16-bit lanes (SXTB16), and
   acc + the two lane products of a and b (SMLAD), modulo 2^32; portable where EC_DSP is not defined. */
static inline uint32_t ec_lanes02(uint32_t v)
{
#ifdef EC_DSP
    return ec_sxtb16(v);
#else
    return (uint32_t)(uint16_t)(int16_t)(int8_t)(uint8_t)v | (uint32_t)(uint16_t)(int16_t)(int8_t)(uint8_t)(v >> 16) << 16;
#endif
}

static inline uint32_t ec_lanes13(uint32_t v)
{
#ifdef EC_DSP
    return ec_sxtb16_ror8(v);
#else
    return ec_lanes02(v >> 8 | v << 24);
#endif
}

static inline uint32_t ec_dual_mac(uint32_t a, uint32_t b, uint32_t acc)
{
#ifdef EC_DSP
    return ec_smlad(a, b, acc);
#else
    return acc + (uint32_t)(ec_lane16(a, 0) * ec_lane16(b, 0)) + (uint32_t)(ec_lane16(a, 1) * ec_lane16(b, 1));
#endif
}
""")

_block("dot_s8", ("dsp",), r"""
/* sum of a[i] * b[i] for int8 a and b, modulo 2^32 (what TFLite's wrapping int32 accumulator holds; the
   order of the terms does not matter modulo 2^32). With EC_DSP four products per SXTB16/SMLAD step;
   the portable loop gives the same sum. |a[i] * b[i]| <= 2^14. */
#ifdef EC_DSP
static uint32_t ec_smlad_bytes(uint32_t a, uint32_t b, uint32_t acc)
{
    acc = ec_smlad(ec_sxtb16(a), ec_sxtb16(b), acc);
    return ec_smlad(ec_sxtb16_ror8(a), ec_sxtb16_ror8(b), acc);
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

_block("channel_out", ("from_u32", "shr", "mbqm", "dsp"), r"""
/* A conv output channel's tail, precomputed at export time. bias: what the sum starts from (CONV_2D:
   bias + input_offset * sum of the filter's weights, modulo 2^32; DEPTHWISE_CONV_2D: the bias).
   round and post give TFLite's two roundings (SaturatingRoundingDoublingHighMul, then RoundingDivideByPOT
   by r = -shift) as one: for 1 <= r <= 31 and multiplier >= 0,
   RDBPOT(SRDHM(x, M), r) = (x * M + 2^30 + 2^(30 + r) - (x < 0 ? 2^31 : 0)) >> (31 + r) (floors; the
   nested floors merge, and x < 0 stands for SRDHM(x, M) < 0 since both give 0 where they differ), i.e.
   one SMLAL and the high word shifted by post = r - 1 (docs/mcu.md). The same value is
   (floor((2x * M + 2^31) / 2^32) + 2^(r - 1) - (x < 0)) >> r (multiply the numerator and the divisor by 2
   and take out the multiple of 2^32): one SMMLAR of 2x (needs |x| < 2^29, checked at export time from the
   weights and the bias) with half = 2^(r - 1), ec_channel_out_q. The op's `mode` says which one every
   channel takes: 0 TFLite's steps one by one (ec_mbqm), 1 the SMLAL, 2 the SMMLAR, 3 the SMMLAR with the
   clamp [-128, 127] (one SSAT), the output offset inside half (half = 2^(r - 1) + offset * 2^r, r <= 22,
   so that no sum leaves int32) and the accumulator summed as 2x (weights and bias doubled: no shift). */
typedef struct {
    int64_t round;      /* 2^30 + 2^(30 + r) */
    int32_t bias;
    int32_t multiplier;
    int32_t half;       /* 2^(r - 1) (+ output offset * 2^r in mode 3); next to multiplier: one LDRD */
    int32_t right;      /* r */
    int32_t shift;      /* TFLite's: left shift if > 0, right shift r = -shift if < 0 */
    int32_t post;       /* r - 1 */
} ec_channel;

static inline int8_t ec_channel_out_fast(uint32_t acc, const ec_channel *ch, int32_t offset, int32_t lo, int32_t hi)
{
    const int32_t x = ec_from_u32(acc);
    const int64_t s = (int64_t)x * ch->multiplier + ch->round - (x < 0 ? ((int64_t)1 << 31) : 0);
#if defined(__GNUC__)
    const int32_t v = ((int32_t)(s >> 32) >> ch->post) + offset; /* >> of a negative value: arithmetic in GCC */
#else
    const int32_t v = (int32_t)ec_shr(s, 32 + ch->post) + offset;
#endif
    return (int8_t)(v < lo ? lo : (v > hi ? hi : v));
}

/* |x| < 2^29 (so 2x, and the sum before the last shift, fit in int32). full (mode 3): acc is 2x already
   (the weights and bias doubled at export time), the clamp [-128, 127] and the output offset inside half. */
static inline int8_t ec_channel_out_q(uint32_t acc, const ec_channel *ch, int32_t offset, int32_t lo, int32_t hi,
                                      int full)
{
    const uint32_t x2 = full ? acc : acc << 1;
    int32_t t, v;
#ifdef EC_DSP
    __asm__("smmlar %0, %1, %2, %3" : "=r"(t) : "r"(x2), "r"(ch->multiplier), "r"(ch->half));
#else
    t = (int32_t)ec_shr((int64_t)ec_from_u32(x2) * ch->multiplier + ((int64_t)1 << 31), 32) + ch->half;
#endif
#if defined(__GNUC__)
    v = (t + (ec_from_u32(x2) >> 31)) >> ch->right; /* >> of a negative value: arithmetic in GCC and Clang */
#else
    v = (int32_t)ec_shr(t + (ec_from_u32(x2) < 0 ? -1 : 0), ch->right);
#endif
    if (full) { /* half holds the output offset too: (t + offset * 2^r) >> r = (t >> r) + offset */
#ifdef EC_DSP
        __asm__("ssat %0, #8, %1" : "=r"(v) : "r"(v));
        return (int8_t)v;
#else
        return (int8_t)(v < -128 ? -128 : (v > 127 ? 127 : v));
#endif
    }
    v += offset;
    return (int8_t)(v < lo ? lo : (v > hi ? hi : v));
}

/* mode: see above; a constant where the kernels call this, so only one branch stays. */
static inline int8_t ec_channel_out(uint32_t acc, const ec_channel *ch, int mode, int32_t offset, int32_t lo,
                                    int32_t hi)
{
    int32_t v;
    if (mode >= 2) return ec_channel_out_q(acc, ch, offset, lo, hi, mode == 3);
    if (mode == 1) return ec_channel_out_fast(acc, ch, offset, lo, hi);
    v = ec_mbqm(ec_from_u32(acc), ch->multiplier, ch->shift) + offset;
    return (int8_t)(v < lo ? lo : (v > hi ? hi : v));
}
""")

_block("dot_2x2", ("dsp",), r"""
/* Two filters x two patches in one pass (CMSIS-NN's 2x2 blocking): n int8 taps (a multiple of 4) per patch,
   x = 4-byte chunks of patch 0 and patch 1 alternating (2n bytes). The weights are arranged at export time (conv_filter_pairs) as
   16-bit lanes in the order SXTB16 gives the patch bytes: per 4 taps, filter 0's (w0, w2) and (w1, w3),
   then filter 1's, zero weights padding n. acc[2f + k] starts at bias f and gets sum w_f[i] * x_k[i],
   modulo 2^32 in any order. With EC_DSP: 16 MACs in 2 LDR + 4 SXTB16 of the patches, 4 weight words
   and 8 SMLAD. */
static inline void ec_dot_2x2(const uint32_t *w, const int8_t *x, int n, uint32_t bias0, uint32_t bias1,
                              uint32_t acc[4])
{
    uint32_t a00 = bias0, a01 = bias0, a10 = bias1, a11 = bias1;
    const int8_t *const end = x + 2 * n;
#ifdef EC_DSP
    for (; x < end; x += 8, w += 4) {
        const uint32_t x0 = ec_load32(x), x1 = ec_load32(x + 4);
        const uint32_t x0e = ec_sxtb16(x0), x0o = ec_sxtb16_ror8(x0), x1e = ec_sxtb16(x1), x1o = ec_sxtb16_ror8(x1);
        a00 = ec_smlad(w[1], x0o, ec_smlad(w[0], x0e, a00));
        a01 = ec_smlad(w[1], x1o, ec_smlad(w[0], x1e, a01));
        a10 = ec_smlad(w[3], x0o, ec_smlad(w[2], x0e, a10));
        a11 = ec_smlad(w[3], x1o, ec_smlad(w[2], x1e, a11));
    }
#else
    for (; x < end; x += 8, w += 4) { /* taps 0, 2 in words 0 and 2, taps 1, 3 in words 1 and 3 */
        const int32_t p0 = x[0], p1 = x[1], p2 = x[2], p3 = x[3];
        const int32_t q0 = x[4], q1 = x[5], q2 = x[6], q3 = x[7];
        int32_t v0 = ec_lane16(w[0], 0), v1 = ec_lane16(w[1], 0), v2 = ec_lane16(w[0], 1), v3 = ec_lane16(w[1], 1);
        a00 += (uint32_t)(v0 * p0) + (uint32_t)(v1 * p1) + (uint32_t)(v2 * p2) + (uint32_t)(v3 * p3);
        a01 += (uint32_t)(v0 * q0) + (uint32_t)(v1 * q1) + (uint32_t)(v2 * q2) + (uint32_t)(v3 * q3);
        v0 = ec_lane16(w[2], 0);
        v1 = ec_lane16(w[3], 0);
        v2 = ec_lane16(w[2], 1);
        v3 = ec_lane16(w[3], 1);
        a10 += (uint32_t)(v0 * p0) + (uint32_t)(v1 * p1) + (uint32_t)(v2 * p2) + (uint32_t)(v3 * p3);
        a11 += (uint32_t)(v0 * q0) + (uint32_t)(v1 * q1) + (uint32_t)(v2 * q2) + (uint32_t)(v3 * q3);
    }
#endif
    acc[0] = a00;
    acc[1] = a01;
    acc[2] = a10;
    acc[3] = a11;
}
""")

_block("dot_2x2_q15", ("dsp",), r"""
/* ec_dot_2x2 on a patch already in 16-bit lanes: per 4 taps the words (x0[0], x0[2]), (x0[1], x0[3]),
   (x1[0], x1[2]), (x1[1], x1[3]) of patch 0 and patch 1 (ec_lanes02 / ec_lanes13 of their bytes), n taps a
   multiple of 4, weights as for ec_dot_2x2. With EC_DSP 16 MACs in 4 LDRD and 8 SMLAD. */
static inline void ec_dot_2x2_q15(const uint32_t *w, const uint32_t *x, int n, uint32_t bias0, uint32_t bias1,
                                  uint32_t acc[4])
{
    uint32_t a00 = bias0, a01 = bias0, a10 = bias1, a11 = bias1;
    const uint32_t *const end = x + n;
#if defined(EC_DSP) && defined(__OPTIMIZE__) && defined(__GNUC__)
    /* The same loop in 14 instructions (gcc's own took 17): post-incremented LDRDs. 13 registers. */
    if (x < end) {
        uint32_t w0, w1, w2, w3, xa, xb;
        __asm__("1:\n\t"
                "ldrd %[w0], %[w1], [%[w]], #8\n\t"
                "ldrd %[xa], %[xb], [%[x]], #8\n\t"
                "smlad %[a00], %[w0], %[xa], %[a00]\n\t"
                "smlad %[a00], %[w1], %[xb], %[a00]\n\t"
                "ldrd %[w2], %[w3], [%[w]], #8\n\t"
                "smlad %[a10], %[w2], %[xa], %[a10]\n\t"
                "smlad %[a10], %[w3], %[xb], %[a10]\n\t"
                "ldrd %[xa], %[xb], [%[x]], #8\n\t"
                "smlad %[a01], %[w0], %[xa], %[a01]\n\t"
                "smlad %[a01], %[w1], %[xb], %[a01]\n\t"
                "smlad %[a11], %[w2], %[xa], %[a11]\n\t"
                "smlad %[a11], %[w3], %[xb], %[a11]\n\t"
                "cmp %[x], %[end]\n\t"
                "bne 1b"
                : [a00] "+r"(a00), [a01] "+r"(a01), [a10] "+r"(a10), [a11] "+r"(a11), [w] "+r"(w), [x] "+r"(x),
                  [w0] "=&r"(w0), [w1] "=&r"(w1), [w2] "=&r"(w2), [w3] "=&r"(w3), [xa] "=&r"(xa), [xb] "=&r"(xb)
                : [end] "r"(end)
                : "cc", "memory");
    }
#else
    for (; x < end; x += 4, w += 4) {
        const uint32_t x0e = x[0], x0o = x[1], x1e = x[2], x1o = x[3], w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3];
        a00 = ec_dual_mac(w1, x0o, ec_dual_mac(w0, x0e, a00));
        a01 = ec_dual_mac(w1, x1o, ec_dual_mac(w0, x1e, a01));
        a10 = ec_dual_mac(w3, x0o, ec_dual_mac(w2, x0e, a10));
        a11 = ec_dual_mac(w3, x1o, ec_dual_mac(w2, x1e, a11));
    }
#endif
    acc[0] = a00;
    acc[1] = a01;
    acc[2] = a10;
    acc[3] = a11;
}
""")

_block("dot_4x1", ("dsp",), r"""
/* Four rows of weights x one int8 vector x of n values in one pass (FULLY_CONNECTED): the weights arranged
   at export time (fc_lanes) as 16-bit lanes in SXTB16's order, per 4 values and row two words
   (w0 | w2 << 16), (w1 | w3 << 16), zero weights past n. sums[r] = sum w_r[i] * x[i] modulo 2^32. With
   EC_DSP each word of x is loaded and sign-extended once for four rows: 16 MACs in 1 LDR, 2 SXTB16, 8 weight
   words and 8 SMLAD. A last partial word of x is read byte by byte (x has exactly n bytes). */
/* 4 values of x (the word v) into the four sums */
static inline void ec_dot_4x1_step(const uint32_t *w, uint32_t v, uint32_t *a0, uint32_t *a1, uint32_t *a2,
                                   uint32_t *a3)
{
#ifdef EC_DSP
    const uint32_t xe = ec_sxtb16(v), xo = ec_sxtb16_ror8(v);
    *a0 = ec_smlad(w[1], xo, ec_smlad(w[0], xe, *a0));
    *a1 = ec_smlad(w[3], xo, ec_smlad(w[2], xe, *a1));
    *a2 = ec_smlad(w[5], xo, ec_smlad(w[4], xe, *a2));
    *a3 = ec_smlad(w[7], xo, ec_smlad(w[6], xe, *a3));
#else
    const int32_t x0 = (int32_t)((v & 0xFFu) ^ 0x80u) - 128, x1 = (int32_t)(((v >> 8) & 0xFFu) ^ 0x80u) - 128,
                  x2 = (int32_t)(((v >> 16) & 0xFFu) ^ 0x80u) - 128, x3 = (int32_t)((v >> 24) ^ 0x80u) - 128;
    *a0 += (uint32_t)(ec_lane16(w[0], 0) * x0 + ec_lane16(w[1], 0) * x1 + ec_lane16(w[0], 1) * x2
                      + ec_lane16(w[1], 1) * x3);
    *a1 += (uint32_t)(ec_lane16(w[2], 0) * x0 + ec_lane16(w[3], 0) * x1 + ec_lane16(w[2], 1) * x2
                      + ec_lane16(w[3], 1) * x3);
    *a2 += (uint32_t)(ec_lane16(w[4], 0) * x0 + ec_lane16(w[5], 0) * x1 + ec_lane16(w[4], 1) * x2
                      + ec_lane16(w[5], 1) * x3);
    *a3 += (uint32_t)(ec_lane16(w[6], 0) * x0 + ec_lane16(w[7], 0) * x1 + ec_lane16(w[6], 1) * x2
                      + ec_lane16(w[7], 1) * x3);
#endif
}

static void ec_dot_4x1(const uint32_t *w, const int8_t *x, int n, uint32_t sums[4])
{
    uint32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0, v;
    int i = 0, k;
    for (; i + 4 <= n; i += 4, w += 8) ec_dot_4x1_step(w, ec_load32(x + i), &a0, &a1, &a2, &a3);
    if (i < n) { /* a last partial word, zero-extended (its weights past n are 0) */
        for (v = 0, k = n - i - 1; k >= 0; --k) v = (v << 8) | (uint8_t)x[i + k];
        ec_dot_4x1_step(w, v, &a0, &a1, &a2, &a3);
    }
    sums[0] = a0;
    sums[1] = a1;
    sums[2] = a2;
    sums[3] = a3;
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
        const uint32_t x02 = ec_sxtb16(x), x13 = ec_sxtb16_ror8(x);
        acc0 = ec_smlad(ec_sxtb16_ror8(w0), x13, ec_smlad(ec_sxtb16(w0), x02, acc0));
        acc1 = ec_smlad(ec_sxtb16_ror8(w1), x13, ec_smlad(ec_sxtb16(w1), x02, acc1));
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

_block("copy", ("dsp",), r"""
/* size bytes from input to output (RESHAPE; a graph output that is a graph input; a caller's input into the
   model's own buffer); nothing when the planner put both at the same bytes. Four bytes at a time (one LDR
   and one STR on a Cortex-M). */
static void ec_copy(const int8_t *input, int8_t *output, size_t size)
{
    size_t i = 0;
    if (input == output) return;
    for (; i + 4 <= size; i += 4) ec_store32(output + i, ec_load32(input + i));
    for (; i < size; ++i) output[i] = input[i];
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
