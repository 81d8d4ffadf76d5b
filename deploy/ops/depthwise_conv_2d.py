"""DEPTHWISE_CONV_2D: int8 per-channel depthwise convolution (DepthwiseConvPerChannel)."""

from edgecnn.deploy.ops.base import ACTIVATION, CONSTANT, OPTIONAL, OpDef, Operand
from edgecnn.deploy.export.c_source import c_block
from edgecnn.deploy.ops.conv_common import C_PARAMS, c_conv, decode_conv, encode_conv, onnx_conv, prepare_conv
from edgecnn.deploy.runtime import naive


def _encode(b, o, graph, op):
    if "depth_multiplier" in o:
        multiplier = int(o["depth_multiplier"])
    else:  # the kernel reads it from the filter shape anyway
        multiplier = graph.tensors[op.inputs[1]].shape[3] // graph.tensors[op.inputs[0]].shape[3]
    return encode_conv(b, o, "DepthwiseConv2DOptions", depth_multiplier=multiplier)


C_BLOCKS = {**C_PARAMS, "depthwise_taps": c_block(("conv_params",), r"""
/* The filter taps of a depthwise window that fall inside the image, as [lo, hi) along one axis:
   origin + tap * dilation in [0, size). */
static void ec_depthwise_taps(int origin, int dilation, int taps, int size, int *lo, int *hi)
{
    *lo = origin < 0 ? (-origin + dilation - 1) / dilation : 0;
    *hi = size - origin <= 0 ? 0 : (size - origin + dilation - 1) / dilation;
    if (*hi > taps) *hi = taps;
    if (*lo > *hi) *lo = *hi;
}
"""), "depthwise_row": c_block(("conv_params", "dsp", "depthwise_taps"), r"""
/* The weight of channel c at tap t (filter_y*filter_w + filter_x) in depthwise_pairs' words: channels in
   groups of four, each group's taps in order, each tap two words (w[c], w[c+2]) and (w[c+1], w[c+3]) as
   16-bit lanes (bottom, top): what SMLABB / SMLATT multiply with SXTAB16's lanes of four input bytes. */
static inline int32_t ec_depthwise_weight(const uint32_t *pairs, int taps, int c, int t)
{
    return ec_lane16(pairs[((size_t)(c >> 2) * (size_t)taps + (size_t)t) * 2 + (size_t)(c & 1)], c & 2);
}

#ifdef EC_DSP
/* One tap of four channels: xv holds their four input bytes, w their two weight words. */
static inline void ec_depthwise_tap(uint32_t xv, const uint32_t *w, uint32_t offset2, uint32_t *a0, uint32_t *a1,
                                    uint32_t *a2, uint32_t *a3)
{
    const uint32_t x02 = ec_sxtab16(offset2, xv), x13 = ec_sxtab16_ror8(offset2, xv);
    *a0 = ec_smlabb(w[0], x02, *a0);
    *a2 = ec_smlatt(w[0], x02, *a2);
    *a1 = ec_smlabb(w[1], x13, *a1);
    *a3 = ec_smlatt(w[1], x13, *a3);
}

/* Every group of four channels (quads of them) of one output pixel: x points at the pixel's first tap
   inside the image in filter row 0's input row (rows[filter_y] + first, filter rows [y_lo, y_hi)), n taps
   per row from tap x_lo. A row of three taps (3x3, dilation 1) is unrolled. Inlined once per
   requantization mode (a constant). */
EC_INLINE void ec_depthwise_quads(const ec_conv_params *p, const int8_t *const *rows, int y_lo, int y_hi,
                                size_t first, int x_lo, int n, int8_t *out, uint32_t offset2, int mode)
{
    const int depth = p->input_depth, filter_w = p->filter_w, taps = p->filter_h * p->filter_w;
    const size_t x_step = (size_t)p->dilation_w * (size_t)depth;
    const int32_t output_offset = p->output_offset, act_min = p->act_min, act_max = p->act_max;
    const int three = n == 3 && x_step == (size_t)depth;
    const uint32_t *group = p->pairs;
    const ec_channel *ch = p->channel;
    int c, filter_y;
    for (c = 0; c + 4 <= depth; c += 4, ch += 4, group += 2 * taps) {
        uint32_t a0 = (uint32_t)ch[0].bias, a1 = (uint32_t)ch[1].bias, a2 = (uint32_t)ch[2].bias,
                 a3 = (uint32_t)ch[3].bias;
        int8_t r0, r1, r2, r3;
        for (filter_y = y_lo; filter_y < y_hi; ++filter_y) {
            const int8_t *x = rows[filter_y] + first + c;
            const uint32_t *w = group + (size_t)(filter_y * filter_w + x_lo) * 2;
            int k;
            if (three) {
                ec_depthwise_tap(ec_load32(x), w, offset2, &a0, &a1, &a2, &a3);
                ec_depthwise_tap(ec_load32(x + depth), w + 2, offset2, &a0, &a1, &a2, &a3);
                ec_depthwise_tap(ec_load32(x + 2 * depth), w + 4, offset2, &a0, &a1, &a2, &a3);
                continue;
            }
            for (k = 0; k < n; ++k, x += x_step, w += 2) ec_depthwise_tap(ec_load32(x), w, offset2, &a0, &a1, &a2, &a3);
        }
        /* all four before any store: an int8_t store may alias ch, which would be reloaded */
        r0 = ec_channel_out(a0, ch, mode, output_offset, act_min, act_max);
        r1 = ec_channel_out(a1, ch + 1, mode, output_offset, act_min, act_max);
        r2 = ec_channel_out(a2, ch + 2, mode, output_offset, act_min, act_max);
        r3 = ec_channel_out(a3, ch + 3, mode, output_offset, act_min, act_max);
        out[c] = r0;
        out[c + 1] = r1;
        out[c + 2] = r2;
        out[c + 3] = r3;
    }
}

/* n (a constant) taps of four channels, the input pixels depth bytes apart */
EC_INLINE void ec_depthwise_row_taps(const int8_t *in, int depth, const uint32_t *w, int n, uint32_t offset2,
                                     uint32_t *a0, uint32_t *a1, uint32_t *a2, uint32_t *a3)
{
#if defined(__OPTIMIZE__) && defined(__GNUC__)
    /* The same in 8 instructions per tap (gcc's own spilled); 11 registers. */
    uint32_t xv, t, w0, w1;
#define EC_DW_TAP(address) \
    "ldr %[xv], " address "\n\t" \
    "ldrd %[w0], %[w1], [%[w]], #8\n\t" \
    "sxtab16 %[t], %[o], %[xv]\n\t" \
    "sxtab16 %[xv], %[o], %[xv], ror #8\n\t" \
    "smlabb %[a0], %[w0], %[t], %[a0]\n\t" \
    "smlatt %[a2], %[w0], %[t], %[a2]\n\t" \
    "smlabb %[a1], %[w1], %[xv], %[a1]\n\t" \
    "smlatt %[a3], %[w1], %[xv], %[a3]\n\t"
    if (n == 3)
        __asm__(EC_DW_TAP("[%[x]]") EC_DW_TAP("[%[x], %[d]]") EC_DW_TAP("[%[x], %[d], lsl #1]")
                : [a0] "+r"(*a0), [a1] "+r"(*a1), [a2] "+r"(*a2), [a3] "+r"(*a3), [w] "+r"(w), [xv] "=&r"(xv),
                  [t] "=&r"(t), [w0] "=&r"(w0), [w1] "=&r"(w1)
                : [x] "r"(in), [d] "r"(depth), [o] "r"(offset2)
                : "memory");
    else
        __asm__(EC_DW_TAP("[%[x]]") EC_DW_TAP("[%[x], %[d]]")
                : [a0] "+r"(*a0), [a1] "+r"(*a1), [a2] "+r"(*a2), [a3] "+r"(*a3), [w] "+r"(w), [xv] "=&r"(xv),
                  [t] "=&r"(t), [w0] "=&r"(w0), [w1] "=&r"(w1)
                : [x] "r"(in), [d] "r"(depth), [o] "r"(offset2)
                : "memory");
#undef EC_DW_TAP
#else
    ec_depthwise_tap(ec_load32(in), w, offset2, a0, a1, a2, a3);
    ec_depthwise_tap(ec_load32(in + depth), w + 2, offset2, a0, a1, a2, a3);
    if (n == 3) ec_depthwise_tap(ec_load32(in + 2 * depth), w + 4, offset2, a0, a1, a2, a3);
#endif
}

/* ec_depthwise_quads for a 3x3 filter (dilation 1) in mode 3, n = 3 or 2 (a constant) taps per row from tap
   x_lo, ny rows from filter row y_lo: x[k] is the pixel's first tap inside the image in filter row y_lo + k's
   input row. Three full rows are unrolled. */
EC_INLINE void ec_depthwise_quads3_body(const ec_conv_params *p, const int8_t *const *x, int y_lo, int ny, int x_lo,
                                        int n, int8_t *out, uint32_t offset2)
{
    const int depth = p->input_depth;
    const int32_t output_offset = p->output_offset;
    const uint32_t *group = p->pairs + (size_t)(y_lo * 3 + x_lo) * 2;
    const ec_channel *ch = p->channel;
    int c, k;
    for (c = 0; c < depth; c += 4, ch += 4, group += 18) {
        uint32_t a0 = (uint32_t)ch[0].bias, a1 = (uint32_t)ch[1].bias, a2 = (uint32_t)ch[2].bias,
                 a3 = (uint32_t)ch[3].bias;
        const uint32_t *w = group;
        int8_t r0, r1, r2, r3;
        if (ny == 3) { /* unrolled */
            ec_depthwise_row_taps(x[0] + c, depth, w, n, offset2, &a0, &a1, &a2, &a3);
            ec_depthwise_row_taps(x[1] + c, depth, w + 6, n, offset2, &a0, &a1, &a2, &a3);
            ec_depthwise_row_taps(x[2] + c, depth, w + 12, n, offset2, &a0, &a1, &a2, &a3);
        } else
            for (k = 0; k < ny; ++k, w += 6) ec_depthwise_row_taps(x[k] + c, depth, w, n, offset2, &a0, &a1, &a2, &a3);
        r0 = ec_channel_out(a0, ch, 3, output_offset, -128, 127);
        r1 = ec_channel_out(a1, ch + 1, 3, output_offset, -128, 127);
        r2 = ec_channel_out(a2, ch + 2, 3, output_offset, -128, 127);
        r3 = ec_channel_out(a3, ch + 3, 3, output_offset, -128, 127);
        out[c] = r0;
        out[c + 1] = r1;
        out[c + 2] = r2;
        out[c + 3] = r3;
    }
}

EC_NOINLINE void ec_depthwise_quads3(const ec_conv_params *p, const int8_t *const *x, int y_lo, int ny, int8_t *out,
                                     uint32_t offset2)
{
    ec_depthwise_quads3_body(p, x, y_lo, ny, 0, 3, out, offset2);
}

EC_NOINLINE void ec_depthwise_quads2(const ec_conv_params *p, const int8_t *const *x, int y_lo, int ny, int x_lo,
                                     int8_t *out, uint32_t offset2)
{
    ec_depthwise_quads3_body(p, x, y_lo, ny, x_lo, 2, out, offset2);
}

#if defined(__GNUC__) && defined(__thumb2__)
/* A run of output pixels whose 3x3 windows lie inside the image (mode 3, channels a multiple of 4), in
   assembly: per group of four channels the biases, nine taps (LDR, LDRD, two SXTAB16, SMLABB/SMLATT x4 each),
   four outputs (SMMLAR of the doubled sum, add of the sign, asr, SSAT) and four byte stores; the weights are read in
   order (depthwise_pairs: [group][tap][2 words]). A local symbol. ec_channel: bias 8, multiplier 12,
   half 16, right 20, 32 bytes each. */
#define EC_DW_ASM 1
typedef struct {
    const int8_t *x[3];      /* 0, 4, 8: the first pixel's first tap in each window row's input row */
    int8_t *out;             /* 12 */
    int32_t depth;           /* 16 */
    uint32_t offset2;        /* 20: the input offset in both 16-bit lanes */
    int32_t pixels;          /* 24: >= 1 */
    int32_t step;            /* 28: bytes between two pixels' windows (stride_w * depth) */
    const uint32_t *pairs;   /* 32 */
    const ec_channel *channel; /* 36 */
} ec_dw_run;
void ec_dw3x3_run_m3(const ec_dw_run *run);
#define EC_DW_TAP(x) \
    "    ldr r12, " x "\n" \
    "    ldrd r11, r1, [r0], #8\n" \
    "    sxtab16 lr, r8, r12\n" \
    "    sxtab16 r12, r8, r12, ror #8\n" \
    "    smlabb r4, r11, lr, r4\n" \
    "    smlatt r6, r11, lr, r6\n" \
    "    smlabb r5, r1, r12, r5\n" \
    "    smlatt r7, r1, r12, r7\n"
#define EC_DW_ROW(slot) \
    "    ldr r10, [sp, #" slot "]\n" \
    "    add r10, r10, r2\n" \
    EC_DW_TAP("[r10]") EC_DW_TAP("[r10, r9]") EC_DW_TAP("[r10, r9, lsl #1]")
#define EC_DW_OUT(acc, m, r) \
    "    ldrd r11, r1, [r3, #" m "]\n" \
    "    ldr r12, [r3, #" r "]\n" \
    "    smmlar lr, " acc ", r11, r1\n" \
    "    add lr, lr, " acc ", asr #31\n" \
    "    asr lr, lr, r12\n" \
    "    ssat " acc ", #8, lr\n"
__asm__(".syntax unified\n"
        ".section .text.ec_dw3x3_run_m3,\"ax\",%progbits\n"
        ".balign 4\n"
        ".thumb\n"
        ".thumb_func\n"
        ".type ec_dw3x3_run_m3, %function\n"
        "ec_dw3x3_run_m3:\n"
        "    push {r4, r5, r6, r7, r8, r9, r10, r11, lr}\n"
        "    sub sp, sp, #32\n"                 /* x0 x1 x2 out pixels step pairs channel */
        "    ldr r1, [r0, #0]\n    str r1, [sp, #0]\n"
        "    ldr r1, [r0, #4]\n    str r1, [sp, #4]\n"
        "    ldr r1, [r0, #8]\n    str r1, [sp, #8]\n"
        "    ldr r1, [r0, #12]\n    str r1, [sp, #12]\n"
        "    ldr r1, [r0, #24]\n    str r1, [sp, #16]\n"
        "    ldr r1, [r0, #28]\n    str r1, [sp, #20]\n"
        "    ldr r1, [r0, #32]\n    str r1, [sp, #24]\n"
        "    ldr r1, [r0, #36]\n    str r1, [sp, #28]\n"
        "    ldr r9, [r0, #16]\n"
        "    ldr r8, [r0, #20]\n"
        "1:  ldr r0, [sp, #24]\n"
        "    ldr r3, [sp, #28]\n"
        "    movs r2, #0\n"
        "2:  ldr r4, [r3, #8]\n"
        "    ldr r5, [r3, #40]\n"
        "    ldr r6, [r3, #72]\n"
        "    ldr r7, [r3, #104]\n"
        EC_DW_ROW("0") EC_DW_ROW("4") EC_DW_ROW("8")
        EC_DW_OUT("r4", "12", "20") EC_DW_OUT("r5", "44", "52")
        EC_DW_OUT("r6", "76", "84") EC_DW_OUT("r7", "108", "116")
        "    ldr r10, [sp, #12]\n"
        "    add r10, r10, r2\n"
        "    strb r4, [r10]\n"
        "    strb r5, [r10, #1]\n"
        "    strb r6, [r10, #2]\n"
        "    strb r7, [r10, #3]\n"
        "    adds r3, r3, #128\n"
        "    adds r2, r2, #4\n"
        "    cmp r2, r9\n"
        "    blt 2b\n"
        "    ldr r1, [sp, #20]\n"
        "    ldr r10, [sp, #0]\n    add r10, r10, r1\n    str r10, [sp, #0]\n"
        "    ldr r10, [sp, #4]\n    add r10, r10, r1\n    str r10, [sp, #4]\n"
        "    ldr r10, [sp, #8]\n    add r10, r10, r1\n    str r10, [sp, #8]\n"
        "    ldr r10, [sp, #12]\n    add r10, r10, r9\n    str r10, [sp, #12]\n"
        "    ldr r10, [sp, #16]\n    subs r10, r10, #1\n    str r10, [sp, #16]\n"
        "    bgt 1b\n"
        "    add sp, sp, #32\n"
        "    pop {r4, r5, r6, r7, r8, r9, r10, r11, pc}\n"
        ".size ec_dw3x3_run_m3, . - ec_dw3x3_run_m3\n"
        ".text\n");
#undef EC_DW_TAP
#undef EC_DW_ROW
#undef EC_DW_OUT
#endif

/* A whole output row of a 3x3 depthwise conv (dilation 1, mode 3, channels a multiple of 4) where every pixel has
   two or three taps per row inside the image: ec_depthwise_quads3_body per pixel, without a call each. */
EC_NOINLINE void ec_depthwise_row3(const ec_conv_params *p, const int8_t *const *rows, int y_lo, int y_hi,
                                   int8_t *out, uint32_t offset2)
{
    const int depth = p->input_depth, output_w = p->output_w, input_w = p->input_w, stride = p->stride_w;
    const int pad_left = p->pad_left, ny = y_hi - y_lo;
    int out_x, k;
#ifdef EC_DW_ASM
    /* pixels [inner_lo, inner_hi) have their three columns inside the image: origin >= 0, origin + 3 <= input_w */
    const int inner_lo = (pad_left + stride - 1) / stride;
    const int inner_hi = (input_w - 3 + pad_left) / stride + 1 < output_w ? (input_w - 3 + pad_left) / stride + 1
                                                                           : output_w;
#endif
    for (out_x = 0; out_x < output_w; ++out_x, out += depth) {
        const int origin = out_x * stride - pad_left;
        const int x_lo = origin < 0 ? -origin : 0;
        const int x_hi = input_w - origin < 3 ? input_w - origin : 3;
        const int8_t *x[3];
        for (k = 0; k < ny; ++k) x[k] = rows[y_lo + k] + (size_t)(origin + x_lo) * (size_t)depth;
#ifdef EC_DW_ASM
        if (ny == 3 && out_x == inner_lo && inner_lo < inner_hi) {
            ec_dw_run run;
            run.x[0] = x[0];
            run.x[1] = x[1];
            run.x[2] = x[2];
            run.out = out;
            run.depth = depth;
            run.offset2 = offset2;
            run.pixels = inner_hi - inner_lo;
            run.step = stride * depth;
            run.pairs = p->pairs;
            run.channel = p->channel;
            ec_dw3x3_run_m3(&run);
            out += (size_t)(inner_hi - inner_lo - 1) * (size_t)depth;
            out_x = inner_hi - 1;
            continue;
        }
#endif
        if (x_hi - x_lo == 3)
            ec_depthwise_quads3_body(p, x, y_lo, ny, 0, 3, out, offset2);
        else
            ec_depthwise_quads3_body(p, x, y_lo, ny, x_lo, 2, out, offset2);
    }
}

/* ec_depthwise_quads with the mode every MLPerf-style model has (one SMMLAR, clamp [-128, 127]), and with any. */
EC_NOINLINE void ec_depthwise_quads_q(const ec_conv_params *p, const int8_t *const *rows, int y_lo, int y_hi,
                                      size_t first, int x_lo, int n, int8_t *out, uint32_t offset2)
{
    ec_depthwise_quads(p, rows, y_lo, y_hi, first, x_lo, n, out, offset2, 3);
}

EC_NOINLINE void ec_depthwise_quads_any(const ec_conv_params *p, const int8_t *const *rows, int y_lo, int y_hi,
                                        size_t first, int x_lo, int n, int8_t *out, uint32_t offset2)
{
    ec_depthwise_quads(p, rows, y_lo, y_hi, first, x_lo, n, out, offset2, p->fast);
}
#endif

/* One output row of a DEPTHWISE_CONV_2D with depth multiplier 1 (TFLite DepthwiseConvPerChannel):
   rows[filter_y] is the input row that filter row reads, for filter_y in [y_lo, y_hi) (the rows inside
   the image). The taps inside the image are found once per output pixel (TFLite skips the others, as if
   they added w * 0); the sum starts at the bias and adds w * (x + input_offset), wrapping modulo 2^32 like
   TFLite's int32 accumulator. With EC_DSP four channels go together: SXTAB16 sign-extends two input bytes
   and adds the offset in 16-bit lanes (|x + input_offset| <= 255), SMLABB / SMLATT multiply-accumulate
   them with the weights' lanes (|w * (x + input_offset)| < 2^15): one LDR, two SXTAB16, one LDRD and
   four multiply-accumulates per tap and four channels. */
static void ec_depthwise_row(const ec_conv_params *p, const int8_t *const *rows, int y_lo, int y_hi, int8_t *out)
{
    const int depth = p->input_depth, filter_w = p->filter_w, taps = p->filter_h * p->filter_w;
    const int output_w = p->output_w, stride_w = p->stride_w, pad_left = p->pad_left, dilation_w = p->dilation_w;
    const int input_w = p->input_w, fast = p->fast;
    const int32_t input_offset = p->input_offset, output_offset = p->output_offset;
    const int32_t act_min = p->act_min, act_max = p->act_max;
    const uint32_t *const pairs = p->pairs;
    const ec_channel *const channel = p->channel;
    const size_t x_step = (size_t)dilation_w * (size_t)depth;
    int out_x, c, filter_y, filter_x, x_lo, x_hi;
#ifdef EC_DSP
    const uint32_t offset2 = (uint32_t)(uint16_t)input_offset * 0x00010001u;
    const int quads = depth & ~3; /* channels done four at a time (ec_depthwise_quads) */
    const int three = filter_w == 3 && dilation_w == 1 && p->filter_h == 3; /* ec_depthwise_quads3 */
#else
    const int quads = 0;
#endif
#ifdef EC_DSP
    /* every pixel two or three taps wide inside the image: the first has pad_left <= 1, the last >= 2 */
    if (fast == 3 && three && quads == depth && pad_left <= 1 && input_w >= 3
        && input_w - ((output_w - 1) * stride_w - pad_left) >= 2) {
        ec_depthwise_row3(p, rows, y_lo, y_hi, out, offset2);
        return;
    }
#endif
    for (out_x = 0; out_x < output_w; ++out_x, out += depth) {
        const int in_x_origin = out_x * stride_w - pad_left;
        size_t first;
        ec_depthwise_taps(in_x_origin, dilation_w, filter_w, input_w, &x_lo, &x_hi);
        first = (size_t)(in_x_origin + dilation_w * x_lo) * (size_t)depth;
#ifdef EC_DSP
        if (fast == 3 && three && x_hi - x_lo >= 2 && quads == depth) {
            const int8_t *x[3];
            for (filter_y = y_lo; filter_y < y_hi; ++filter_y) x[filter_y - y_lo] = rows[filter_y] + first;
            if (x_hi - x_lo == 3)
                ec_depthwise_quads3(p, x, y_lo, y_hi - y_lo, out, offset2);
            else
                ec_depthwise_quads2(p, x, y_lo, y_hi - y_lo, x_lo, out, offset2);
            continue;
        } else if (fast == 3)
            ec_depthwise_quads_q(p, rows, y_lo, y_hi, first, x_lo, x_hi - x_lo, out, offset2);
        else
            ec_depthwise_quads_any(p, rows, y_lo, y_hi, first, x_lo, x_hi - x_lo, out, offset2);
#endif
        for (c = quads; c < depth; ++c) {
            uint32_t acc = (uint32_t)channel[c].bias;
            for (filter_y = y_lo; filter_y < y_hi; ++filter_y) {
                const int8_t *x = rows[filter_y] + first + c;
                for (filter_x = x_lo; filter_x < x_hi; ++filter_x, x += x_step)
                    acc += (uint32_t)(ec_depthwise_weight(pairs, taps, c, filter_y * filter_w + filter_x)
                                      * (*x + input_offset));
            }
            out[c] = ec_channel_out(acc, &channel[c], fast, output_offset, act_min, act_max);
        }
    }
}
"""), "depthwise_conv_2d": c_block(("conv_params", "depthwise_taps", "depthwise_row"), r"""
/* DEPTHWISE_CONV_2D (TFLite reference_integer_ops::DepthwiseConvPerChannel): output channel
   m + in_channel * depth_multiplier reads only its input channel. Depth multiplier 1 goes row by row
   through ec_depthwise_row (rows: filter_h row pointers, in the scratch); other multipliers by the loop
   below, the same sums: bias + w * (x + input_offset) over the taps inside the image, in uint32_t (each
   product below 2^16 in magnitude), which wraps like TFLite's int32 accumulator. */
static void ec_depthwise_conv_2d(const ec_conv_params *p, const int8_t *input, int8_t *output, const int8_t **rows)
{
    const int depth_multiplier = p->output_depth / p->input_depth;
    const size_t row = (size_t)p->input_w * (size_t)p->input_depth;
    int out_y, out_x, in_channel, m, filter_y, filter_x, y_lo, y_hi, x_lo, x_hi;
    for (out_y = 0; out_y < p->output_h; ++out_y) {
        const int in_y_origin = out_y * p->stride_h - p->pad_top;
        ec_depthwise_taps(in_y_origin, p->dilation_h, p->filter_h, p->input_h, &y_lo, &y_hi);
        if (depth_multiplier == 1) {
            for (filter_y = y_lo; filter_y < y_hi; ++filter_y)
                rows[filter_y] = input + (size_t)(in_y_origin + p->dilation_h * filter_y) * row;
            ec_depthwise_row(p, rows, y_lo, y_hi, output + (size_t)out_y * p->output_w * p->output_depth);
            continue;
        }
        for (out_x = 0; out_x < p->output_w; ++out_x) {
            const int in_x_origin = out_x * p->stride_w - p->pad_left;
            int8_t *out = output + ((size_t)out_y * p->output_w + out_x) * p->output_depth;
            ec_depthwise_taps(in_x_origin, p->dilation_w, p->filter_w, p->input_w, &x_lo, &x_hi);
            for (in_channel = 0; in_channel < p->input_depth; ++in_channel) {
                for (m = 0; m < depth_multiplier; ++m) {
                    const int out_channel = m + in_channel * depth_multiplier;
                    uint32_t acc = (uint32_t)p->channel[out_channel].bias;
                    for (filter_y = y_lo; filter_y < y_hi; ++filter_y) {
                        const int8_t *x = input + (size_t)(in_y_origin + p->dilation_h * filter_y) * row
                                          + (size_t)(in_x_origin + p->dilation_w * x_lo) * p->input_depth + in_channel;
                        const int8_t *w = p->filter + ((size_t)filter_y * p->filter_w + x_lo) * p->output_depth
                                          + out_channel;
                        for (filter_x = x_lo; filter_x < x_hi; ++filter_x) {
                            acc += (uint32_t)(*w * (*x + p->input_offset));
                            x += (size_t)p->dilation_w * p->input_depth;
                            w += p->output_depth;
                        }
                    }
                    out[out_channel] = ec_channel_out(acc, &p->channel[out_channel], p->fast, p->output_offset,
                                                      p->act_min, p->act_max);
                }
            }
        }
    }
}
""")}

C_BLOCKS["depthwise_conv_2d_in_place"] = c_block(("conv_params", "dsp", "depthwise_taps", "depthwise_row"), r"""
/* DEPTHWISE_CONV_2D in place: stride 1, dilation 1, depth multiplier 1, output shape = input shape.
   Output row y overwrites input row y, and the input rows still needed (y - pad_top .. y) are kept in a
   ring of pad_top + 1 rows, each copied just before the output overwrites it; rows below y are read in
   place. rows: filter_h row pointers. The same sums as ec_depthwise_conv_2d (ec_depthwise_row). */
static void ec_depthwise_conv_2d_in_place(const ec_conv_params *p, int8_t *data, const int8_t **rows, int8_t *ring)
{
    const size_t row = (size_t)p->input_w * (size_t)p->input_depth;
    const int saved_rows = p->pad_top + 1;
    int out_y, filter_y, y_lo, y_hi;
    size_t i;
    for (out_y = 0; out_y < p->output_h; ++out_y) {
        int8_t *saved = ring + (size_t)(out_y % saved_rows) * row;
        const int8_t *from = data + (size_t)out_y * row;
        const int in_y_origin = out_y - p->pad_top;
        for (i = 0; i + 4 <= row; i += 4) ec_store32(saved + i, ec_load32(from + i));
        for (; i < row; ++i) saved[i] = from[i];
        ec_depthwise_taps(in_y_origin, 1, p->filter_h, p->input_h, &y_lo, &y_hi);
        for (filter_y = y_lo; filter_y < y_hi; ++filter_y) {
            const int in_y = in_y_origin + filter_y;
            rows[filter_y] = in_y <= out_y ? ring + (size_t)(in_y % saved_rows) * row : data + (size_t)in_y * row;
        }
        ec_depthwise_row(p, rows, y_lo, y_hi, data + (size_t)out_y * row);
    }
}
""")

OP = OpDef(
    name="DEPTHWISE_CONV_2D",
    # A depthwise conv with no bias slot at all crashes LiteRT 2.3's optimized kernels: always write three.
    operands=(Operand("input", ACTIVATION), Operand("filter", CONSTANT), Operand("bias", OPTIONAL)),
    min_written_inputs=3,
    options_table="DepthwiseConv2DOptions",
    decode=lambda o: decode_conv(o, depthwise=True),
    encode=_encode,
    version=lambda graph, op: 3,  # int8 is decided before dilation in op_version.cc
    min_runtime={3: "1.14.0"},
    prepare=lambda ctx: prepare_conv(ctx, depthwise=True),
    kernel="edgecnn.deploy.runtime.depthwise_conv:depthwise_conv_2d",
    naive=naive.depthwise_conv_2d,
    c=lambda emit, step: c_conv(emit, step, depthwise=True),
    c_blocks=C_BLOCKS,
    onnx=lambda lw, step: onnx_conv(lw, step, depthwise=True),
)
