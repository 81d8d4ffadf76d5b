"""The executor's kernels for the ops around the GEMMs: depthwise conv, pools, ADD/SUB, MEAN, SOFTMAX, copies.

Each works on `images` images held contiguously in the arena (tensor t of image i at
offset(t) + i * size(t)), reads its fields from its row of the plan's op table (plan.py),
and does TFLite's arithmetic (docs/int8.md); requantization uses fast_conv.requantize_one
(TFLite's two roundings as one shift, proved there).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from edgecnn.deploy.runtime.fast_conv import (
    F_ACT_MAX,
    F_ACT_MIN,
    F_BIAS,
    F_CIN,
    F_COUT,
    F_DH,
    F_DW,
    F_IN,
    F_IN_H,
    F_IN_W,
    F_KH,
    F_KW,
    F_OUT,
    F_OUT_H,
    F_OUT_W,
    F_OUT_ZP,
    F_PAD_L,
    F_PAD_T,
    F_RQ,
    F_SH,
    F_SW,
    requantize_one,
    wrap32,
)
from edgecnn.deploy.runtime.pooling import divide_rounding_half_away
from edgecnn.deploy.runtime.softmax import _softmax_row
from edgecnn.deploy.runtime.cpu import GEMM_VNNI
from edgecnn.deploy.runtime.vnni import add_sub16, depthwise_pairs_row, depthwise_row

_U = np.uint64

# DEPTHWISE_CONV_2D extra fields (the shape fields are fast_conv's); the pair plane's (depthwise_pairs:
# its weights in the int32 pool, its tap offsets in the int64 pool, its columns, its tap count; 0 = none).
F_IN_OFFSET, F_DEPTH_MULT, F_PLANE_H, F_PLANE_W, F_WEXP, F_TAPS = 18, 19, 20, 21, 22, 29
F_PAIR_W, F_PAIR_TAPS, F_PAIR_COLS, F_PAIR_COUNT = 30, 31, 32, 33
# Generic fields of the other ops.
F_IN2, F_SIZE = 2, 4


@njit(cache=True)
def depthwise_pairs(op, arena, images, scratch, i32p, i64p, part, parts):
    """DEPTHWISE_CONV_2D on AVX-512 VNNI, dilation_w 1, stride_w 1 or 2 (plan.py: 1): two taps per vpdpwssd.

    plane[py][q][oc] is an int32 word holding two int16s: the padded input (x + input_offset, 0
    in the padding) at padded columns sw*q and sw*q + 1. Filter columns 2m and 2m + 1 of output
    column ox read exactly those two at q = ox + 2m/sw, so one vnni.depthwise_pairs_row tap (a
    word of weights (w[2m], w[2m+1]), w[kw] = 0 for odd kw) adds both products; ceil(kw/2) taps
    per filter row instead of kw. Same sums as `depthwise` (each product < 2^15, int32 wraps).
    """
    in_h, in_w, cin = op[F_IN_H], op[F_IN_W], op[F_CIN]
    out_h, out_w, cout = op[F_OUT_H], op[F_OUT_W], op[F_COUT]
    kh, sh, sw = op[F_KH], op[F_SH], op[F_SW]
    pad_t, pad_l = op[F_PAD_T], op[F_PAD_L]
    in_offset, dm = np.int32(op[F_IN_OFFSET]), op[F_DEPTH_MULT]
    plane_h, cols, count = op[F_PLANE_H], op[F_PAIR_COLS], op[F_PAIR_COUNT]
    act_min, act_max, out_zp = op[F_ACT_MIN], op[F_ACT_MAX], op[F_OUT_ZP]
    row_len = out_w * cout
    row_stride = -(-row_len // 16) * 16
    plane = scratch.view(np.int16)
    bias_row = i32p[op[F_BIAS]:]
    rqv = i64p[op[F_RQ]:]
    tap_offsets = i64p[op[F_PAIR_TAPS]:op[F_PAIR_TAPS] + count]
    weights = i32p[op[F_PAIR_W]:]
    y0, y1 = out_h * part // parts, out_h * (part + 1) // parts
    pr0, pr1 = y0 * sh, min(plane_h, (y1 - 1) * sh + (kh - 1) * op[F_DH] + 1)  # plane rows those rows read
    row_words = cols * cout
    for image in range(images):
        src_image = op[F_IN] + image * in_h * in_w * cin
        dst_image = op[F_OUT] + image * out_h * out_w * cout
        for py in range(pr0, pr1):
            y = py - pad_t
            base = _U(2 * py * row_words)
            if y < 0 or y >= in_h:
                for j in range(2 * row_words):
                    plane[base + _U(j)] = 0
                continue
            src_row = src_image + y * in_w * cin
            for q in range(cols):
                x0 = sw * q - pad_l
                dst = base + _U(2 * q * cout)
                ok0, ok1 = 0 <= x0 < in_w, 0 <= x0 + 1 < in_w
                s0, s1 = _U(src_row + x0 * cin), _U(src_row + (x0 + 1) * cin)
                if ok0 and ok1 and dm == 1:
                    for ch in range(cout):
                        plane[dst + _U(2 * ch)] = np.int16(np.int32(arena[s0 + _U(ch)]) + in_offset)
                        plane[dst + _U(2 * ch + 1)] = np.int16(np.int32(arena[s1 + _U(ch)]) + in_offset)
                else:
                    for ch in range(cout):
                        plane[dst + _U(2 * ch)] = np.int16(np.int32(arena[s0 + _U(ch // dm)]) + in_offset) if ok0 else 0
                        plane[dst + _U(2 * ch + 1)] = (np.int16(np.int32(arena[s1 + _U(ch // dm)]) + in_offset)
                                                       if ok1 else 0)  # fmt: skip
        for j in range(2 * plane_h * row_words, 2 * plane_h * row_words + 64):
            plane[_U(j)] = 0
        for out_y in range(y0, y1):
            out_row = arena[dst_image + out_y * row_len:]
            depthwise_pairs_row(scratch, out_y * sh * row_words, tap_offsets, count, weights, row_stride, bias_row,
                                rqv, out_row, row_len, out_zp, act_min, act_max)  # fmt: skip


@njit(cache=True)
def depthwise(op, arena, images, scratch, i32p, i64p, part=0, parts=1, kind=0):
    """DEPTHWISE_CONV_2D: a padded int32 plane of x + input_offset, then whole output rows at a time.

    plane[phase][py][q][oc] = x[iy][ix][oc // depth_multiplier] + input_offset for the padded
    column px = q*stride_w + phase, 0 in the padding (w * 0 adds nothing, as TFLite's skipped
    taps). Splitting columns by phase makes every tap's inputs for one output row contiguous
    (px = out_x*stride_w + fx*dilation_w -> phase (fx*dw) % sw, q = out_x + (fx*dw) // sw), so
    vnni.depthwise_row adds all taps in registers, 16 lanes at a time, with weights expanded
    along the row at plan time, requantizes them in registers and stores int8 (no int32 row).
    Overflow: |w| <= 128, |x + offset| <= 255: each product < 2^15; int32 sums wrap like TFLite's.
    part of parts: only that share of each image's output rows (the split executor), with the
    plane filled in the rows they read.
    """
    in_h, in_w, cin = op[F_IN_H], op[F_IN_W], op[F_CIN]
    out_h, out_w, cout = op[F_OUT_H], op[F_OUT_W], op[F_COUT]
    kh, kw, sh, sw = op[F_KH], op[F_KW], op[F_SH], op[F_SW]
    pad_t, pad_l = op[F_PAD_T], op[F_PAD_L]
    in_offset, dm = np.int32(op[F_IN_OFFSET]), op[F_DEPTH_MULT]
    plane_h, q_cols = op[F_PLANE_H], op[F_PLANE_W]
    wexp, bias, rq, taps = op[F_WEXP], op[F_BIAS], op[F_RQ], op[F_TAPS]
    act_min, act_max, out_zp = op[F_ACT_MIN], op[F_ACT_MAX], op[F_OUT_ZP]
    row_len = out_w * cout
    row_stride = -(-row_len // 16) * 16  # expanded weights: one row of 16-lane groups per tap
    plane_len = sw * plane_h * q_cols * cout  # int16 entries
    plane = scratch.view(np.int16)
    bias_row = i32p[bias:]
    rqv = i64p[rq:]
    tap_offsets = i64p[taps:taps + kh * kw]
    weights = i32p[wexp:]
    y0, y1 = out_h * part // parts, out_h * (part + 1) // parts
    pr0, pr1 = y0 * sh, min(plane_h, (y1 - 1) * sh + (kh - 1) * op[F_DH] + 1)  # plane rows those rows read
    y_lo, y_hi = max(0, pr0 - pad_t), min(in_h, pr1 - pad_t)
    for image in range(images):
        src_image = op[F_IN] + image * in_h * in_w * cin
        dst_image = op[F_OUT] + image * out_h * out_w * cout
        for phase in range(sw):
            for j in range((phase * plane_h + pr0) * q_cols * cout, (phase * plane_h + pr1) * q_cols * cout):
                plane[_U(j)] = 0
        for j in range(plane_len, plane_len + 16):
            plane[_U(j)] = 0
        if dm == 1 and sw == 1:  # one phase: each input row is one contiguous run of the plane
            for y in range(y_lo, y_hi):
                src = _U(src_image + y * in_w * cin)
                dst = _U(((pad_t + y) * q_cols + pad_l) * cout)
                for j in range(in_w * cin):
                    plane[dst + _U(j)] = np.int16(np.int32(arena[src + _U(j)]) + in_offset)
        general_rows = 0 if dm == 1 and sw == 1 else y_hi  # else: pixel by pixel, phase by phase
        for y in range(y_lo, general_rows):
            for phase in range(sw):
                x0 = (phase - pad_l) % sw  # the first input column whose padded column px has this phase
                dst = _U(((phase * plane_h + pad_t + y) * q_cols + (pad_l + x0) // sw) * cout)
                for x in range(x0, in_w, sw):
                    src = _U(src_image + (y * in_w + x) * cin)
                    if dm == 1:
                        for ch in range(cout):
                            plane[dst + _U(ch)] = np.int16(np.int32(arena[src + _U(ch)]) + in_offset)
                    else:
                        for ch in range(cout):
                            plane[dst + _U(ch)] = np.int16(np.int32(arena[src + _U(ch // dm)]) + in_offset)
                    dst += _U(cout)
        for out_y in range(y0, y1):
            depthwise_row(scratch, out_y * sh * q_cols * cout, tap_offsets, kh * kw, weights, row_stride, bias_row, rqv,
                          arena[dst_image + out_y * row_len:], row_len, out_zp, act_min, act_max)  # fmt: skip


@njit(cache=True)
def pool(op, arena, images, scratch, average):
    """MAX_POOL_2D / AVERAGE_POOL_2D: the window clipped to the image, channels innermost; no rescale."""
    in_h, in_w, depth = op[F_IN_H], op[F_IN_W], op[F_CIN]
    out_h, out_w = op[F_OUT_H], op[F_OUT_W]
    fh, fw, sh, sw = op[F_KH], op[F_KW], op[F_SH], op[F_SW]
    pad_t, pad_l = op[F_PAD_T], op[F_PAD_L]
    act_min, act_max = op[F_ACT_MIN], op[F_ACT_MAX]
    for image in range(images):
        src_image = op[F_IN] + image * in_h * in_w * depth
        dst_image = op[F_OUT] + image * out_h * out_w * depth
        for out_y in range(out_h):
            y0 = out_y * sh - pad_t
            fy0, fy1 = max(0, -y0), min(fh, in_h - y0)
            for out_x in range(out_w):
                x0 = out_x * sw - pad_l
                fx0, fx1 = max(0, -x0), min(fw, in_w - x0)
                for ch in range(depth):
                    scratch[_U(ch)] = 0 if average else -128
                for fy in range(fy0, fy1):
                    for fx in range(fx0, fx1):
                        src = _U(src_image + ((y0 + fy) * in_w + x0 + fx) * depth)
                        if average:  # Overflow: window-many int8 values, far below 2^24
                            for ch in range(depth):
                                scratch[_U(ch)] += np.int32(arena[src + _U(ch)])
                        else:
                            for ch in range(depth):
                                scratch[_U(ch)] = max(scratch[_U(ch)], np.int32(arena[src + _U(ch)]))
                dst = _U(dst_image + (out_y * out_w + out_x) * depth)
                count = (fy1 - fy0) * (fx1 - fx0)
                for ch in range(depth):
                    v = np.int64(scratch[_U(ch)])
                    if average:
                        v = divide_rounding_half_away(v, count)
                    arena[dst + _U(ch)] = min(max(v, act_min), act_max)


@njit(cache=True)
def copy(op, arena, images):
    """RESHAPE: the bytes, unchanged."""
    n = images * op[F_SIZE]
    src, dst = _U(op[F_IN]), _U(op[F_OUT])
    for j in range(n):
        arena[dst + _U(j)] = arena[src + _U(j)]


# SOFTMAX fields: rows per image, depth, input multiplier, input left shift, diff_min.
F_SM_ROWS, F_SM_DEPTH, F_SM_MULT, F_SM_LEFT, F_SM_DIFF_MIN = 4, 5, 6, 7, 8


@njit(cache=True)
def softmax(op, arena, images):
    """SOFTMAX over the last axis: softmax.py's row function, row by row."""
    rows, depth = images * op[F_SM_ROWS], op[F_SM_DEPTH]
    for r in range(rows):
        _softmax_row(arena[op[F_IN]:], arena[op[F_OUT]:], r * depth, depth, op[F_SM_MULT], op[F_SM_LEFT],
                     op[F_SM_DIFF_MIN])  # fmt: skip


# ADD/SUB fields: size per image, the three offsets, the common left shift, three sets of
# requantization constants (M, left, total, round_pos, round_neg), the SUB flag, the clamp;
# for vnni.add_sub16: the offset of its three 16-lane constant blocks in the int64 pool, and
# (in1 offset, in2 offset, out offset, left shift, SUB flag) again, side by side.
F_AB_IN1_OFF, F_AB_IN2_OFF, F_AB_OUT_OFF, F_AB_LEFT = 5, 6, 7, 8
F_AB_RQ1, F_AB_RQ2, F_AB_RQO, F_AB_SUB = 9, 14, 19, 24
F_AB_RQV, F_AB_VEC = 34, 35


@njit(cache=True)
def add_sub(op, arena, images, i64p, part=0, parts=1):
    """ADD / SUB of two same-shape int8 tensors (no broadcast): TFLite's 8-bit add.h arithmetic.

    vnni.add_sub16, 16 lanes at a time (add_sub_scalar is the same arithmetic element by
    element, kept as its reference). part of parts: that share of the elements (in runs of 64).
    """
    n = images * op[F_SIZE]
    j0 = (n * part // parts) // 64 * 64
    j1 = n if part == parts - 1 else (n * (part + 1) // parts) // 64 * 64
    if j1 <= j0:
        return
    add_sub16(arena[op[F_IN] + j0:], arena[op[F_IN2] + j0:], arena[op[F_OUT] + j0:], j1 - j0, i64p[op[F_AB_RQV]:],
              op[F_AB_VEC:F_AB_VEC + 5], op[F_ACT_MIN], op[F_ACT_MAX])  # fmt: skip


@njit(cache=True)
def add_sub_scalar(op, arena, images):
    """add_sub element by element, in int64 (the reference for add_sub16 in the tests).

    Ranges: |x + offset| <= 255, << 20 gives < 2^28 (int32); each input multiplier is <= 1/2,
    so the rescaled terms and their sum stay below 2^28.
    """
    n = images * op[F_SIZE]
    in1, in2, out = _U(op[F_IN]), _U(op[F_IN2]), _U(op[F_OUT])
    o1, o2, oo, ls = op[F_AB_IN1_OFF], op[F_AB_IN2_OFF], op[F_AB_OUT_OFF], op[F_AB_LEFT]
    r1, r2, ro = F_AB_RQ1, F_AB_RQ2, F_AB_RQO
    sub = op[F_AB_SUB]
    act_min, act_max = op[F_ACT_MIN], op[F_ACT_MAX]
    for j in range(n):
        q = _U(j)
        a = (np.int64(arena[in1 + q]) + o1) << ls
        b = (np.int64(arena[in2 + q]) + o2) << ls
        sa = requantize_one(a, op[r1], op[r1 + 1], op[r1 + 2], op[r1 + 3], op[r1 + 4])
        sb = requantize_one(b, op[r2], op[r2 + 1], op[r2 + 2], op[r2 + 3], op[r2 + 4])
        s = sa - sb if sub else sa + sb
        v = requantize_one(s, op[ro], op[ro + 1], op[ro + 2], op[ro + 3], op[ro + 4]) + oo
        arena[out + q] = min(max(v, act_min), act_max)


# MEAN over height and width of NHWC: pixels per image, channels, zero points, requant constants.
F_MEAN_PIXELS, F_MEAN_DEPTH, F_MEAN_IN_ZP, F_MEAN_OUT_ZP, F_MEAN_RQ = 4, 5, 6, 7, 8


@njit(cache=True)
def mean_hw(op, arena, images, scratch):
    """MEAN over axes 1 and 2: clamp(MBQM(sum - zp_in * count) + zp_out), as reduce.py's mean.

    Overflow: the sum of `pixels` int8 values is far below 2^31; wrapped like TFLite's int32 anyway.
    """
    pixels, depth = op[F_MEAN_PIXELS], op[F_MEAN_DEPTH]
    in_zp, out_zp = op[F_MEAN_IN_ZP], op[F_MEAN_OUT_ZP]
    r = F_MEAN_RQ
    for image in range(images):
        src = _U(op[F_IN] + image * pixels * depth)
        for ch in range(depth):
            scratch[_U(ch)] = 0
        for p in range(pixels):
            for ch in range(depth):
                scratch[_U(ch)] += np.int32(arena[src + _U(p * depth + ch)])
        dst = _U(op[F_OUT] + image * depth)
        for ch in range(depth):
            shifted = wrap32(np.int64(scratch[_U(ch)]) - in_zp * pixels)
            v = requantize_one(shifted, op[r], op[r + 1], op[r + 2], op[r + 3], op[r + 4]) + out_zp
            arena[dst + _U(ch)] = min(max(v, -128), 127)


# LOGISTIC / TANH: size per image, the 256-entry table's offset in the int8 pool.
F_LUT_TABLE = 5


@njit(cache=True)
def lookup(op, arena, images, i8p):
    n = images * op[F_SIZE]
    src, dst, table = _U(op[F_IN]), _U(op[F_OUT]), _U(op[F_LUT_TABLE])
    for j in range(n):
        arena[dst + _U(j)] = i8p[table + _U(np.int32(arena[src + _U(j)]) + 128)]
