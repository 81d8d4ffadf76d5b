"""CONV_2D: int8 per-channel convolution (TFLite reference_integer_ops::ConvPerChannel)."""

from edgecnn.deploy.ops.base import ACTIVATION, CONSTANT, OPTIONAL, OpDef, Operand
from edgecnn.deploy.export.c_source import c_block
from edgecnn.deploy.ops.conv_common import C_PARAMS, c_conv, decode_conv, encode_conv, onnx_conv, prepare_conv
from edgecnn.deploy.runtime import naive


def version(graph, op) -> int:
    """3 for int8; 6 when grouped (the filter is shallower than the input)."""
    in_ch = graph.tensors[op.inputs[0]].shape[-1]
    filter_in = graph.tensors[op.inputs[1]].shape[-1]
    return 6 if filter_in != in_ch else 3


C_BLOCKS = {**C_PARAMS, "conv_2d": c_block(("conv_params", "dsp", "dot_2x2", "dot_2x2_q15"), r"""
/* Taps i .. i + n - 1 of one window into its slot of ec_dot_2x2's interleaved patch (tap i at
   slot[2 * (i & ~3) + (i & 3)]: 4-byte chunks of the two windows alternate): ec_conv_put copies them
   from `from`, ec_conv_pad sets them to `value`; four at a time where the chunks line up. Both return
   i + n. */
static inline int ec_conv_put(int8_t *slot, int i, const int8_t *from, int n)
{
    int j = 0;
    if ((i & 3) == 0)
        for (; j + 4 <= n; j += 4) ec_store32(slot + 2 * (i + j), ec_load32(from + j));
    for (; j < n; ++j) slot[2 * ((i + j) & ~3) + ((i + j) & 3)] = from[j];
    return i + n;
}

static inline int ec_conv_pad(int8_t *slot, int i, int8_t value, int n)
{
    const uint32_t value4 = (uint32_t)(uint8_t)value * 0x01010101u;
    int j = 0;
    if ((i & 3) == 0)
        for (; j + 4 <= n; j += 4) ec_store32(slot + 2 * (i + j), value4);
    for (; j < n; ++j) slot[2 * ((i + j) & ~3) + ((i + j) & 3)] = value;
    return i + n;
}

/* One output pixel's window of one group into slot k (0 or 1, at patch + 4k) of the interleaved patch:
   tap i = (filter_y*filter_w + filter_x)*filter_depth + in_channel (the OHWI order of the filters), raw
   int8, with the input zero point (-input_offset) for taps outside the image, so that x + input_offset is
   0 there (w * 0 adds nothing, the same as TFLite skipping them); taps up to n4 (a multiple of 4) are 0
   and meet zero weights. A window row inside the image with dilation 1 and one group is one run of the
   input row. */
#if defined(__GNUC__) && !defined(__clang__)
/* Not specialised for one call's arena address: gcc would then bound the copy loops by the arena's size and
   warn (-Waggressive-loop-optimizations, an error under -Werror) about iterations that never run. */
__attribute__((noinline, noclone))
#endif
static void ec_conv_window(const ec_conv_params *p, const int8_t *input, int pixel, int group, int8_t *slot, int n4)
{
    const int8_t pad = (int8_t)(-p->input_offset);
    const int filter_w = p->filter_w, filter_depth = p->filter_depth, input_w = p->input_w;
    const size_t in_row = (size_t)input_w * (size_t)p->input_depth;
    const int out_y = pixel / p->output_w;
    const int in_y_origin = out_y * p->stride_h - p->pad_top;
    const int in_x_origin = (pixel - out_y * p->output_w) * p->stride_w - p->pad_left;
    const int runs = p->dilation_w == 1 && filter_depth == p->input_depth && in_x_origin >= 0
                     && in_x_origin + filter_w <= input_w;
    int filter_y, filter_x, i = 0;
    for (filter_y = 0; filter_y < p->filter_h; ++filter_y) {
        const int in_y = in_y_origin + p->dilation_h * filter_y;
        const int8_t *row;
        if (in_y < 0 || in_y >= p->input_h) {
            i = ec_conv_pad(slot, i, pad, filter_w * filter_depth);
            continue;
        }
        row = input + (size_t)in_y * in_row + (size_t)group * (size_t)filter_depth;
        if (runs) {
            i = ec_conv_put(slot, i, row + (size_t)in_x_origin * p->input_depth, filter_w * filter_depth);
            continue;
        }
        for (filter_x = 0; filter_x < filter_w; ++filter_x) {
            const int in_x = in_x_origin + p->dilation_w * filter_x;
            i = in_x < 0 || in_x >= input_w ? ec_conv_pad(slot, i, pad, filter_depth)
                                            : ec_conv_put(slot, i, row + (size_t)in_x * p->input_depth, filter_depth);
        }
    }
    ec_conv_pad(slot, i, 0, n4 - i);
}

/* CONV_2D (TFLite reference_integer_ops::ConvPerChannel), grouped when input_depth > filter_depth.
   Output pixels go two at a time (a last lone pixel is computed twice, in both slots): both windows are
   copied into the patch (ec_conv_window; 4-byte chunks of the two alternate, 2 * n4 bytes), then each pair
   of filters is one ec_dot_2x2 with it, as CMSIS-NN's 2x2 blocking does. The sum starts at
   channel[c].bias = bias + input_offset * (sum of the filter's weights) modulo 2^32:
   sum(w * (x + input_offset)) + bias is that plus sum(w * x), which is what TFLite's wrapping int32
   accumulator holds. Overflow: |w * x| <= 2^14; sums in uint32_t.
   In place (output and input at the same address) for a 1x1 conv, and for a stride-1 conv with its output
   pad_top rows + pad_left pixels before its input (docs/export.md): both windows are in the patch before
   either output pixel is written, in pixel order when narrowing and in reverse order (p->reverse) when
   widening. */
/* Every filter pair of one group with the two windows in the patch: ec_dot_2x2 (or, q15 = 1, ec_dot_2x2_q15 on a
   patch in 16-bit lanes), then the four outputs. Inlined once per requantization mode (fast: ec_channel_out's
   mode) and patch kind, so the per-output test is gone. */
EC_INLINE void ec_conv_pairs(const uint32_t *w, const void *patch, int n4, const ec_channel *ch, int c,
                             int per_group, int8_t *out0, int8_t *out1, int fast, int32_t offset, int32_t act_min,
                             int32_t act_max, int q15)
{
    int pair;
    for (pair = 0; 2 * pair < per_group; ++pair, w += n4, ch += 2, c += 2) {
        const int lone = 2 * pair + 1 == per_group; /* a last filter with a zero partner */
        const uint32_t bias1 = lone ? 0u : (uint32_t)ch[1].bias;
        uint32_t acc[4];
        if (q15)
            ec_dot_2x2_q15(w, (const uint32_t *)patch, n4, (uint32_t)ch[0].bias, bias1, acc);
        else
            ec_dot_2x2(w, (const int8_t *)patch, n4, (uint32_t)ch[0].bias, bias1, acc);
        if (lone) {
            out0[c] = ec_channel_out(acc[0], ch, fast, offset, act_min, act_max);
            out1[c] = ec_channel_out(acc[1], ch, fast, offset, act_min, act_max);
        } else { /* all four before any store: an int8_t store may alias ch, which would be reloaded */
            int8_t r00, r01, r10, r11;
            r00 = ec_channel_out(acc[0], ch, fast, offset, act_min, act_max);
            r01 = ec_channel_out(acc[1], ch, fast, offset, act_min, act_max);
            r10 = ec_channel_out(acc[2], ch + 1, fast, offset, act_min, act_max);
            r11 = ec_channel_out(acc[3], ch + 1, fast, offset, act_min, act_max);
            out0[c] = r00;
            out1[c] = r01;
            out0[c + 1] = r10;
            out1[c + 1] = r11;
        }
    }
}

/* ec_conv_pairs with the mode every MLPerf-style model has (one SMMLAR, clamp [-128, 127]), and with any;
   int8 patches (ec_conv_2d) and 16-bit lanes (ec_pointwise). */
EC_NOINLINE void ec_conv_pairs_q(const uint32_t *w, const int8_t *patch, int n4, const ec_channel *ch, int c,
                                 int per_group, int8_t *out0, int8_t *out1, int32_t offset)
{
    ec_conv_pairs(w, patch, n4, ch, c, per_group, out0, out1, 3, offset, -128, 127, 0);
}

EC_NOINLINE void ec_conv_pairs_any(const uint32_t *w, const int8_t *patch, int n4, const ec_channel *ch, int c,
                                   int per_group, int8_t *out0, int8_t *out1, int mode, int32_t offset,
                                   int32_t act_min, int32_t act_max)
{
    ec_conv_pairs(w, patch, n4, ch, c, per_group, out0, out1, mode, offset, act_min, act_max, 0);
}

EC_NOINLINE void ec_pointwise_pairs_q(const uint32_t *w, const uint32_t *patch, int n4, const ec_channel *ch,
                                      int per_group, int8_t *out0, int8_t *out1, int32_t offset)
{
    ec_conv_pairs(w, patch, n4, ch, 0, per_group, out0, out1, 3, offset, -128, 127, 1);
}

EC_NOINLINE void ec_pointwise_pairs_any(const uint32_t *w, const uint32_t *patch, int n4, const ec_channel *ch,
                                        int per_group, int8_t *out0, int8_t *out1, int mode, int32_t offset,
                                        int32_t act_min, int32_t act_max)
{
    ec_conv_pairs(w, patch, n4, ch, 0, per_group, out0, out1, mode, offset, act_min, act_max, 1);
}

#if defined(EC_DSP) && defined(__GNUC__) && defined(__thumb2__)
/* ec_pointwise_pairs_q for an even number of filters, in assembly (gcc's spilled around the dot loop): per
   pair the two biases, the dot loop of ec_dot_2x2_q15 (14 instructions per 16 MACs; ec_pw_pairs8_m3 takes
   8 taps per turn, 26 instructions per 32 MACs, when n4 is a multiple of 8), the four outputs in mode 3
   (SMMLAR of the doubled sum, add of the sign, asr, SSAT each) stored through post-incremented out0 / out1. Local
   symbols (two models in one program do not clash). Arguments: r0 w, r1 patch, r2 n4, r3 ch, stack:
   pairs, out0, out1. ec_channel offsets: bias 8, multiplier 12, half 16, right 20, 32 bytes each. */
#define EC_PW_ASM 1
void ec_pw_pairs_m3(const uint32_t *w, const uint32_t *patch, int n4, const ec_channel *ch, int pairs,
                    int8_t *out0, int8_t *out1);
void ec_pw_pairs8_m3(const uint32_t *w, const uint32_t *patch, int n4, const ec_channel *ch, int pairs,
                     int8_t *out0, int8_t *out1);
#define EC_PW_STEP /* 4 taps of both pixels and both filters */ \
    "    ldrd r8, r9, [r0], #8\n" \
    "    ldrd r12, lr, [r1], #8\n" \
    "    smlad r4, r8, r12, r4\n" \
    "    smlad r4, r9, lr, r4\n" \
    "    ldrd r10, r11, [r0], #8\n" \
    "    smlad r6, r10, r12, r6\n" \
    "    smlad r6, r11, lr, r6\n" \
    "    ldrd r12, lr, [r1], #8\n" \
    "    smlad r5, r8, r12, r5\n" \
    "    smlad r5, r9, lr, r5\n" \
    "    smlad r7, r10, r12, r7\n" \
    "    smlad r7, r11, lr, r7\n"
#define EC_PW_CHANNEL(m, r) /* a channel's multiplier and half (one LDRD), right shift into r8, r9, r10 */ \
    "    ldrd r8, r9, [r3, #" m "]\n" \
    "    ldr r10, [r3, #" r "]\n"
#define EC_PW_OUT(acc, to) /* one output of that channel into register `to` (acc = 2x) */ \
    "    smmlar " to ", " acc ", r8, r9\n" \
    "    add " to ", " to ", " acc ", asr #31\n" \
    "    asr " to ", " to ", r10\n" \
    "    ssat " to ", #8, " to "\n"
#define EC_PW_FUNCTION(name, loop) \
    ".syntax unified\n" \
    ".section .text." name ",\"ax\",%progbits\n" \
    ".balign 4\n" \
    ".thumb\n" \
    ".thumb_func\n" \
    ".type " name ", %function\n" \
    name ":\n" \
    "    push {r1, r4, r5, r6, r7, r8, r9, r10, r11, lr}\n" /* patch at [sp], pairs [sp, #40], outs #44, #48 */ \
    "    ldr r8, [sp, #40]\n" \
    "    cmp r8, #0\n" \
    "    ble 3f\n" \
    "    add r2, r1, r2, lsl #2\n" /* the patch's end: n4 words */ \
    "    add r8, r3, r8, lsl #6\n" \
    "    str r8, [sp, #40]\n" /* the channel table's end (2 channels of 32 bytes per pair) in place of pairs */ \
    "1:  ldr r4, [r3, #8]\n" \
    "    ldr r6, [r3, #40]\n" \
    "    mov r5, r4\n" \
    "    mov r7, r6\n" \
    "    ldr r1, [sp]\n" \
    "2:\n" loop \
    "    cmp r1, r2\n" \
    "    bne 2b\n" \
    EC_PW_CHANNEL("12", "20") EC_PW_OUT("r4", "r12") EC_PW_OUT("r5", "lr") \
    EC_PW_CHANNEL("44", "52") EC_PW_OUT("r6", "r4") EC_PW_OUT("r7", "r5") \
    "    ldrd r8, r9, [sp, #44]\n" \
    "    strb r12, [r8], #1\n" \
    "    strb r4, [r8], #1\n" \
    "    strb lr, [r9], #1\n" \
    "    strb r5, [r9], #1\n" \
    "    strd r8, r9, [sp, #44]\n" \
    "    adds r3, r3, #64\n" \
    "    ldr r8, [sp, #40]\n" \
    "    cmp r3, r8\n" \
    "    bne 1b\n" \
    "3:  pop {r1, r4, r5, r6, r7, r8, r9, r10, r11, pc}\n" \
    ".size " name ", . - " name "\n" \
    ".text\n"
__asm__(EC_PW_FUNCTION("ec_pw_pairs_m3", EC_PW_STEP) EC_PW_FUNCTION("ec_pw_pairs8_m3", EC_PW_STEP EC_PW_STEP));
#undef EC_PW_STEP
#undef EC_PW_CHANNEL
#undef EC_PW_OUT
#undef EC_PW_FUNCTION
#endif

/* ec_pointwise_pairs_q, or the assembly above for an even number of filters */
static void ec_pointwise_pairs_m3(const uint32_t *w, const uint32_t *patch, int n4, const ec_channel *ch,
                                  int per_group, int8_t *out0, int8_t *out1, int32_t offset)
{
#ifdef EC_PW_ASM
    if (!(per_group & 1)) {
        if (n4 & 4)
            ec_pw_pairs_m3(w, patch, n4, ch, per_group / 2, out0, out1);
        else
            ec_pw_pairs8_m3(w, patch, n4, ch, per_group / 2, out0, out1);
        return;
    }
#endif
    ec_pointwise_pairs_q(w, patch, n4, ch, per_group, out0, out1, offset);
}

/* Every filter pair of a conv with both pixels' windows in the 16-bit-lane patch, in the op's mode. */
static inline void ec_pointwise_outputs(const ec_conv_params *p, const uint32_t *patch, int n4, int8_t *out0,
                                        int8_t *out1)
{
    if (p->fast == 3)
        ec_pointwise_pairs_m3(p->pairs, patch, n4, p->channel, p->output_depth, out0, out1, p->output_offset);
    else
        ec_pointwise_pairs_any(p->pairs, patch, n4, p->channel, p->output_depth, out0, out1, p->fast,
                               p->output_offset, p->act_min, p->act_max);
}

/* A 1x1 conv with stride 1, no padding and one group (p->pointwise): the two input pixels go into the patch
   already in 16-bit lanes (per 4 channels the four words ec_dot_2x2_q15 reads; a last partial word of
   channels zero-extended, its weights are 0), so the pass over each filter pair sign-extends nothing:
   4 LDRD and 8 SMLAD per 16 MACs. Pixel order and in-place rules as ec_conv_2d. */
static void ec_pointwise(const ec_conv_params *p, const int8_t *input, int8_t *output, uint32_t *patch)
{
    const int in_depth = p->input_depth, n4 = (in_depth + 3) & ~3, whole = in_depth & ~3;
    const int pixels = p->output_h * p->output_w;
    const int depth = p->output_depth, reverse = p->reverse;
    int q, i, k;
    for (q = 0; q < pixels; q += 2) {
        const int two = q + 1 < pixels;
        const int pixel0 = reverse ? pixels - 1 - q : q;
        const int pixel1 = !two ? pixel0 : reverse ? pixels - 2 - q : q + 1;
        const int8_t *const x0 = input + (size_t)pixel0 * in_depth, *const x1 = input + (size_t)pixel1 * in_depth;
        uint32_t *slot = patch;
        for (i = 0; i < whole; i += 4, slot += 4) {
            const uint32_t v0 = ec_load32(x0 + i), v1 = ec_load32(x1 + i);
            slot[0] = ec_lanes02(v0);
            slot[1] = ec_lanes13(v0);
            slot[2] = ec_lanes02(v1);
            slot[3] = ec_lanes13(v1);
        }
        if (whole < in_depth) {
            uint32_t v0 = 0, v1 = 0;
            for (k = in_depth - 1; k >= whole; --k) {
                v0 = v0 << 8 | (uint8_t)x0[k];
                v1 = v1 << 8 | (uint8_t)x1[k];
            }
            slot[0] = ec_lanes02(v0);
            slot[1] = ec_lanes13(v0);
            slot[2] = ec_lanes02(v1);
            slot[3] = ec_lanes13(v1);
        }
        ec_pointwise_outputs(p, patch, n4, output + (size_t)pixel0 * depth, output + (size_t)pixel1 * depth);
    }
}

/* One output pixel's window for ec_conv_runs, straight into the patch as 16-bit lanes: window row r is taps
   r * run4 ... (the row's filter_w * input_depth bytes, then zeros up to run4, which meet zero weights), each
   4 taps as the words ec_lanes02 / ec_lanes13 of their bytes at slot[0], slot[1] (then slot += 4: the other
   pixel's words sit in between). Taps outside the image hold the input zero point (x + input_offset = 0). */
static void ec_conv_run_window(const ec_conv_params *p, const int8_t *input, int pixel, uint32_t *slot)
{
    const int depth = p->input_depth, run = p->filter_w * depth, whole = run & ~3, run4 = p->run4;
    const int8_t pad = (int8_t)(-p->input_offset);
    const uint32_t pad2 = ec_lanes02((uint32_t)(uint8_t)pad * 0x01010101u);
    const int out_y = pixel / p->output_w;
    const int in_y_origin = out_y * p->stride_h - p->pad_top;
    const int in_x_origin = (pixel - out_y * p->output_w) * p->stride_w - p->pad_left;
    const int inside = in_x_origin >= 0 && in_x_origin + p->filter_w <= p->input_w;
    int filter_y, j, k;
    for (filter_y = 0; filter_y < p->filter_h; ++filter_y) {
        const int in_y = in_y_origin + p->dilation_h * filter_y;
        const int8_t *row; /* the window row's first byte, at in_x_origin (only formed when inside the image) */
        const int8_t *image_row;
        if (in_y < 0 || in_y >= p->input_h) {
            for (j = 0; j < run4; j += 4, slot += 4) slot[0] = slot[1] = pad2;
            continue;
        }
        image_row = input + (size_t)in_y * p->input_w * depth;
        row = inside ? image_row + (size_t)in_x_origin * depth : image_row;
        j = 0;
        if (inside) {
            for (; j < whole; j += 4, slot += 4) {
                const uint32_t v = ec_load32(row + j);
                slot[0] = ec_lanes02(v);
                slot[1] = ec_lanes13(v);
            }
            if (whole < run) { /* the row's last bytes, zero-extended */
                uint32_t v = 0;
                for (k = run - 1; k >= whole; --k) v = v << 8 | (uint8_t)row[k];
                slot[0] = ec_lanes02(v);
                slot[1] = ec_lanes13(v);
                slot += 4;
            }
            continue;
        }
        for (; j < run4; j += 4, slot += 4) { /* byte by byte: a window across the image's border */
            uint32_t v = 0;
            for (k = 3; k >= 0; --k) {
                const int tap = j + k, in_x = in_x_origin + tap / depth;
                const int8_t byte = tap >= run ? 0
                                    : in_x < 0 || in_x >= p->input_w ? pad
                                    : image_row[(ptrdiff_t)in_x_origin * depth + tap];
                v = v << 8 | (uint8_t)byte;
            }
            slot[0] = ec_lanes02(v);
            slot[1] = ec_lanes13(v);
        }
    }
}

/* A one-group conv whose window rows are runs of an input row (dilation_w 1) and small (p->run4): both
   pixels' windows go into the patch as 16-bit lanes (ec_conv_run_window), the weights arranged with each
   window row padded to run4 taps, then ec_pointwise's pass over the filter pairs. Pixel order and in-place
   rules as ec_conv_2d. */
/* ec_conv_run_window for a window wholly inside the image whose last row's words lie inside the input:
   whole words throughout, the bytes past each row's run meeting zero weights. */
static inline void ec_conv_run_words(const int8_t *row, int filter_h, int run4, size_t row_step, uint32_t *slot)
{
    int filter_y, j;
    for (filter_y = 0; filter_y < filter_h; ++filter_y, row += row_step)
        for (j = 0; j < run4; j += 4, slot += 4) {
            const uint32_t v = ec_load32(row + j);
            slot[0] = ec_lanes02(v);
            slot[1] = ec_lanes13(v);
        }
}

/* p->packed: the window's rows one after the other, taps as ec_conv_window orders them (filter_h * run bytes,
   rounded up to 4, fewer taps than rows padded one by one): gathered into tmp (in whole words when inside,
   whatever follows a row's run overwritten by the next row or meeting zero weights past the last), then
   put into the slot as 16-bit lanes. */
static void ec_conv_packed_window(const ec_conv_params *p, const int8_t *input, int pixel, const int8_t *row,
                                  size_t row_step, uint32_t *slot, int8_t *tmp)
{
    const int run = p->filter_w * p->input_depth, n4 = (p->filter_h * run + 3) & ~3;
    int filter_y, j;
    if (row) {
        for (filter_y = 0; filter_y < p->filter_h; ++filter_y, row += row_step)
            for (j = 0; j < run; j += 4) ec_store32(tmp + filter_y * run + j, ec_load32(row + j));
        for (j = 0; j < n4; j += 4, slot += 4) {
            const uint32_t v = ec_load32(tmp + j);
            slot[0] = ec_lanes02(v);
            slot[1] = ec_lanes13(v);
        }
        return;
    }
    ec_conv_window(p, input, pixel, 0, tmp, n4); /* interleaved: chunk k at tmp + 8k */
    for (j = 0; j < n4; j += 4, slot += 4) {
        const uint32_t v = ec_load32(tmp + 2 * j);
        slot[0] = ec_lanes02(v);
        slot[1] = ec_lanes13(v);
    }
}

static void ec_conv_runs(const ec_conv_params *p, const int8_t *input, int8_t *output, uint32_t *patch)
{
    const int packed = p->packed;
    const int n4 = packed ? (p->filter_h * p->filter_w * p->input_depth + 3) & ~3 : p->filter_h * p->run4;
    int8_t *const tmp = (int8_t *)(void *)(patch + n4); /* packed: 2 * n4 bytes after the patch */
    const int pixels = p->output_h * p->output_w, depth = p->output_depth;
    const int filter_h = p->filter_h, run4 = p->run4, output_w = p->output_w;
    const size_t in_row = (size_t)p->input_w * p->input_depth, row_step = (size_t)p->dilation_h * in_row;
    const size_t last_row = (size_t)p->dilation_h * (filter_h - 1) * in_row;
    const size_t in_size = (size_t)p->input_h * in_row;
    /* output pixels (y, x) whose windows lie inside the image: y in [y_lo, y_hi), x in [x_lo, x_hi) */
    const int y_room = p->input_h - 1 - p->dilation_h * (filter_h - 1) + p->pad_top;
    const int x_room = p->input_w - p->filter_w + p->pad_left;
    const int y_lo = (p->pad_top + p->stride_h - 1) / p->stride_h, y_hi = y_room < 0 ? 0 : y_room / p->stride_h + 1;
    const int x_lo = (p->pad_left + p->stride_w - 1) / p->stride_w, x_hi = x_room < 0 ? 0 : x_room / p->stride_w + 1;
    int q, y = 0, x = 0, y1, x1; /* (y, x): pixel q's place, (y1, x1): pixel1's */
    for (q = 0; q < pixels; q += 2) {
        const int pixel1 = q + 1 < pixels ? q + 1 : q; /* a last lone pixel twice */
        size_t at;
        y1 = y;
        x1 = x + (pixel1 != q);
        if (x1 == output_w) {
            x1 = 0;
            ++y1;
        }
        at = (size_t)(y * p->stride_h - p->pad_top) * in_row + (size_t)(x * p->stride_w - p->pad_left) * p->input_depth;
        if (packed)
            ec_conv_packed_window(p, input, q, y >= y_lo && y < y_hi && x >= x_lo && x < x_hi
                                  && at + last_row + run4 <= in_size ? input + at : NULL, row_step, patch, tmp);
        else if (y >= y_lo && y < y_hi && x >= x_lo && x < x_hi && at + last_row + run4 <= in_size)
            ec_conv_run_words(input + at, filter_h, run4, row_step, patch);
        else
            ec_conv_run_window(p, input, q, patch);
        at = (size_t)(y1 * p->stride_h - p->pad_top) * in_row
             + (size_t)(x1 * p->stride_w - p->pad_left) * p->input_depth;
        if (packed)
            ec_conv_packed_window(p, input, pixel1, y1 >= y_lo && y1 < y_hi && x1 >= x_lo && x1 < x_hi
                                  && at + last_row + run4 <= in_size ? input + at : NULL, row_step, patch + 2, tmp);
        else if (y1 >= y_lo && y1 < y_hi && x1 >= x_lo && x1 < x_hi && at + last_row + run4 <= in_size)
            ec_conv_run_words(input + at, filter_h, run4, row_step, patch + 2);
        else
            ec_conv_run_window(p, input, pixel1, patch + 2);
        y = y1;
        x = x1 + 1;
        if (x == output_w) {
            x = 0;
            ++y;
        }
        ec_pointwise_outputs(p, patch, n4, output + (size_t)q * depth, output + (size_t)pixel1 * depth);
    }
}

static void ec_conv_2d(const ec_conv_params *p, const int8_t *input, int8_t *output, int8_t *patch)
{
    const int groups = p->input_depth / p->filter_depth;
    const int per_group = p->output_depth / groups;
    const int pairs = (per_group + 1) / 2;
    const int n4 = (p->filter_h * p->filter_w * p->filter_depth + 3) & ~3;
    const int pixels = p->output_h * p->output_w;
    const int depth = p->output_depth, reverse = p->reverse;
    const int32_t offset = p->output_offset, act_min = p->act_min, act_max = p->act_max;
    int q, group;
    if (p->pointwise) {
        ec_pointwise(p, input, output, (uint32_t *)(void *)patch);
        return;
    }
    if (p->run4) {
        ec_conv_runs(p, input, output, (uint32_t *)(void *)patch);
        return;
    }
    for (q = 0; q < pixels; q += 2) {
        const int two = q + 1 < pixels;
        const int pixel0 = reverse ? pixels - 1 - q : q;
        const int pixel1 = !two ? pixel0 : reverse ? pixels - 2 - q : q + 1;
        int8_t *const out0 = output + (size_t)pixel0 * depth;
        int8_t *const out1 = output + (size_t)pixel1 * depth; /* out0 again for a last lone pixel */
        for (group = 0; group < groups; ++group) {
            const uint32_t *w = p->pairs + (size_t)group * pairs * n4;
            const int c = group * per_group;
            ec_conv_window(p, input, pixel0, group, patch, n4);
            ec_conv_window(p, input, pixel1, group, patch + 4, n4);
            if (p->fast == 3)
                ec_conv_pairs_q(w, patch, n4, p->channel + c, c, per_group, out0, out1, offset);
            else
                ec_conv_pairs_any(w, patch, n4, p->channel + c, c, per_group, out0, out1, p->fast, offset, act_min,
                                  act_max);
        }
    }
}
""")}


OP = OpDef(
    name="CONV_2D",
    # LiteRT 2.3 insists on the bias: a -1 slot or two inputs fail to load.
    operands=(Operand("input", ACTIVATION), Operand("filter", CONSTANT), Operand("bias", OPTIONAL)),
    min_written_inputs=3,
    options_table="Conv2DOptions",
    decode=lambda o: decode_conv(o, depthwise=False),
    encode=lambda b, o, graph, op: encode_conv(b, o, "Conv2DOptions"),
    version=version,
    min_runtime={3: "1.14.0", 6: "2.9.0"},
    prepare=lambda ctx: prepare_conv(ctx, depthwise=False),
    kernel="edgecnn.deploy.runtime.conv:conv_2d",
    naive=naive.conv_2d,
    c=lambda emit, step: c_conv(emit, step, depthwise=False),
    c_blocks=C_BLOCKS,
    onnx=lambda lw, step: onnx_conv(lw, step, depthwise=False),
)
