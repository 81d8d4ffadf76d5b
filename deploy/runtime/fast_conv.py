"""CONV_2D and FULLY_CONNECTED as one int8 GEMM: im2col blocks, packed weights, fused requantization.

The plan (plan.py) turns each layer into C[m][c] = sum_k A[m][k] * W[k][c] over
m = the output pixels of the images in flight (FC: the input rows) and c = the output
channels, with k = (filter_y, filter_x, in_channel) in the filter's OHWI order.

Unsigned activations: A holds x + 128 (uint8), because vpdpbusd multiplies u8 by s8.
TFLite's sum is sum_k w*(x - zp) + bias = sum_k w*(x + 128) - (128 + zp)*sum_k w + bias,
so plan.py folds (128 + zp)*sum_k w into the bias once per layer (`folded bias`). A tap
outside the image reads zp + 128 (the `pad byte`): its term w*(zp + 128) is cancelled by
the fold, i.e. it adds exactly the 0 that TFLite's skipped tap adds. The fold and every
sum wrap in int32 (mod 2^32), so the result is TFLite's int32 accumulator, bit for bit.

Blocks of up to `block_rows` pixels are gathered into A (K padded to a multiple of 4 with
zero weights), multiplied by the packed weights (vnni.py's vpdpbusd tile on AVX-512 VNNI; on
every other CPU madd.py's int16-pair tile, with A widened to int16 and the weights packed as
int16 pairs), and requantized straight from the int32 block into the int8 output:
- CONV (and FC in "integer" mode): MultiplyByQuantizedMultiplier in one rounding shift,
  see `requantize_one` (proved equal to TFLite's two roundings).
- FC in "float" mode: round_half_away(float64(acc) * effective_scale), as LiteRT >= 1.3.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from edgecnn.deploy.runtime.cpu import GEMM_VNNI, MADD_TILES
from edgecnn.deploy.runtime.fully_connected import round_half_away_to_int32
from edgecnn.deploy.runtime.madd import madd_tile
from edgecnn.deploy.runtime.vnni import dpbusd_tile, requantize16

_U = np.uint64

# Fields of a CONV/FC row in the plan's op table (plan.py writes them).
F_IN, F_OUT = 1, 3
F_IN_H, F_IN_W, F_CIN, F_OUT_H, F_OUT_W, F_COUT = 4, 5, 6, 7, 8, 9
F_KH, F_KW, F_SH, F_SW, F_DH, F_DW, F_PAD_T, F_PAD_L = 10, 11, 12, 13, 14, 15, 16, 17
F_PAD_BYTE, F_K, F_KP, F_CP = 18, 19, 20, 21
# F_PAIRS: the weights as int16 pairs for madd.madd_tile (plan.pack_pairs), in the int32 pool.
F_W8, F_BIAS, F_RQ, F_ACT_MIN, F_ACT_MAX, F_OUT_ZP, F_FLOAT, F_EFF, F_PAIRS, F_BLOCK = (
    22, 23, 24, 25, 26, 27, 28, 29, 30, 31)
F_EXPANDED = 32  # length of the expanded per-channel constants (a multiple of cout, see requantize_rows)
# The direct (no im2col) convolution: padded plane, k4 per filter row, its packed weights, rows per block,
# and its weights as int16 pairs (madd; k2 per filter row = ceil(kw * cin / 2)).
F_PLANE_H, F_PLANE_W, F_ROW_K4, F_W_DIRECT, F_DIRECT_ROWS, F_PAIRS_DIRECT = 33, 34, 35, 36, 37, 38
FIELDS = 40

def requant_constants(multiplier: int, shift: int) -> tuple[int, int, int, int, int]:
    """(M, left, total_shift, round_pos, round_neg) for `requantize_one` (plain Python, plan time).

    TFLite computes s = SRDHM(x * 2^left, M) = floor((P + 2^30) / 2^31) with P = (x << left) * M,
    then RDBPOT(s, e), e = right shift, which rounds half away from zero:
        s >= 0: floor((s + 2^(e-1)) / 2^e)        s < 0: floor((s + 2^(e-1) - 1) / 2^e)
    For integers a, c and m, n > 0, floor((floor(a/m) + c)/n) = floor((a + c*m)/(m*n)), so
        result = (P + 2^30 + c * 2^31) >> (31 + e),  c = 2^(e-1) (s >= 0) or 2^(e-1) - 1 (s < 0),
    and s < 0 exactly when P + 2^30 < 0, i.e. P < -2^30. With e = 0 there is no second rounding
    (c = 0). |P| < 2^62 and the constants are below 2^62, so the int64 sum cannot overflow.
    SRDHM saturates only for x = M = INT32_MIN; M >= 0 here, so never. Tested exhaustively-ish
    against fixedpoint.multiply_by_quantized_multiplier in tests/test_fast_kernels.py.
    """
    left = max(shift, 0)
    right = max(-shift, 0)
    if right > 0:
        round_pos = (1 << 30) + (1 << (30 + right))
        round_neg = round_pos - (1 << 31)
    else:
        round_pos = round_neg = 1 << 30
    return int(multiplier), left, 31 + right, round_pos, round_neg


@njit(cache=True, inline="always")
def wrap32(v):
    """v mod 2^32 as a signed int32 value (held in int64): what C's int32 arithmetic leaves."""
    return ((v + 2147483648) & 4294967295) - 2147483648


@njit(cache=True, inline="always")
def requantize_one(acc, mult, left, total, round_pos, round_neg):
    """MultiplyByQuantizedMultiplier(acc, M, shift) with TFLite's two roundings, as one shift (see above)."""
    x = acc
    if left > 0:
        x = wrap32(x << left)  # TFLite's x * (1 << left) in int32 wraps
    p = x * mult
    return (p + (round_neg if p < -1073741824 else round_pos)) >> total


@njit(cache=True)
def _im2col(op, arena, in_base, first, rows, a):
    """A[i][k] = (input tap k of output pixel first + i) + 128, or the pad byte outside the image.

    Pixels count over all images in flight: m = (image * out_h + out_y) * out_w + out_x.
    """
    in_h, in_w, cin = op[F_IN_H], op[F_IN_W], op[F_CIN]
    out_h, out_w = op[F_OUT_H], op[F_OUT_W]
    kh, kw, sh, sw, dh, dw = op[F_KH], op[F_KW], op[F_SH], op[F_SW], op[F_DH], op[F_DW]
    pad_t, pad_l = op[F_PAD_T], op[F_PAD_L]
    pad = np.uint8(op[F_PAD_BYTE])
    k, kp = op[F_K], op[F_KP]
    pixels = out_h * out_w
    image_size = in_h * in_w * cin
    for i in range(rows):
        m = first + i
        image = m // pixels
        rest = m - image * pixels
        out_y = rest // out_w
        out_x = rest - out_y * out_w
        dst = _U(i * kp)
        src_image = in_base + image * image_size
        for fy in range(kh):
            in_y = out_y * sh - pad_t + fy * dh
            for fx in range(kw):
                in_x = out_x * sw - pad_l + fx * dw
                if in_y < 0 or in_y >= in_h or in_x < 0 or in_x >= in_w:
                    for c in range(cin):
                        a[dst + _U(c)] = pad
                else:
                    src = _U(src_image + (in_y * in_w + in_x) * cin)
                    for c in range(cin):
                        a[dst + _U(c)] = np.uint8(np.int32(arena[src + _U(c)]) + 128)
                dst += _U(cin)
        for t in range(k, kp):
            a[_U(i * kp + t)] = 0


@njit(cache=True)
def _rows_copy(op, arena, in_base, first, rows, a):
    """1x1, stride 1, no padding (pointwise convs, FC): A's rows are the input rows, + 128."""
    k, kp = op[F_K], op[F_KP]
    if k == kp:  # the rows are contiguous in A too: one flat loop
        src, n = _U(in_base + first * k), rows * k
        for t in range(n):
            a[_U(t)] = np.uint8(np.int32(arena[src + _U(t)]) + 128)
        return
    for i in range(rows):
        src = _U(in_base + (first + i) * k)
        dst = _U(i * kp)
        for t in range(k):
            a[dst + _U(t)] = np.uint8(np.int32(arena[src + _U(t)]) + 128)
        for t in range(k, kp):
            a[dst + _U(t)] = 0


@njit(cache=True)
def _tile(a, a_start, lda, a_step, steps, w8, w_start, k4, c, c_start, ldc, count, a_next, c_next, rows, tiles):
    """vnni.dpbusd_tile in a function of its own: called from the loops, its 16 unrolled shapes are compiled
    once (emitted inline at each call site, they measured ~1 us slower on a ResNet-8 layer)."""
    dpbusd_tile(a, a_start, lda, a_step, steps, w8, w_start, k4, c, c_start, ldc, count, a_next, c_next, rows, tiles)


@njit(cache=True)
def _madd(a, a_start, lda, a_step, steps, w, w_start, k2, c, c_start, ldc, count, a_next, c_next, rows, tiles):
    """madd.madd_tile in a function of its own (as _tile)."""
    madd_tile(a, a_start, lda, a_step, steps, w, w_start, k2, c, c_start, ldc, count, a_next, c_next, rows, tiles)


@njit(cache=True, inline="always")
def chunk_tiles(kind):
    """16-lane tiles per weight chunk: 4 (64 channels) for vpdpbusd, MADD_TILES for the pair tile."""
    return 4 if kind == GEMM_VNNI else MADD_TILES


@njit(cache=True, inline="always")
def chunk_size(kind, kq):
    """Elements of one full chunk of packed weights per k group (kq = k4 or k2): bytes or pair words."""
    return kq * 256 if kind == GEMM_VNNI else kq * 16 * MADD_TILES


@njit(cache=True, inline="always")
def c_stride(op, kind):
    """int32 words between output pixels in the C block: cout when the tiles cover one 16-channel
    tile (cout < 16: then rows are contiguous and requantize in one flat pass), else cp. Both kernel
    paths store a tile's rows in ascending order, so the overlap is safe (see _gemm_tiles)."""
    if op[F_CP] == 16:
        return op[F_COUT]
    return op[F_CP]


@njit(cache=True)
def _gemm_tiles(kind, a, rows4, kp, w8, w32, w_start, cp, c, ldc):
    """c[r*ldc + ch] = sum_k a[r][k] * w[k][ch] for rows4 rows (a multiple of 4), all cp channels.

    ldc < cp only with one 16-channel tile (see c_stride): each row's 16 stores run over the
    next row's first lanes, which that row's own store, later, overwrites.
    """
    kq = kp // 4 if kind == GEMM_VNNI else kp // 2
    per_chunk = chunk_tiles(kind)
    for chunk in range((cp + 16 * per_chunk - 1) // (16 * per_chunk)):
        tiles = min(per_chunk, (cp - chunk * 16 * per_chunk) // 16)
        w_chunk = w_start + chunk * chunk_size(kind, kq)  # earlier chunks are full
        c_start = chunk * 16 * per_chunk
        if kind == GEMM_VNNI:  # (a call per path, not a shared helper: each call level costs ~25-35 ns)
            _tile(a, 0, kp, 0, 1, w8, w_chunk, kq, c, c_start, ldc, rows4 // 4, 4 * kp, 4 * ldc, 4, tiles)
        else:
            _madd(a, 0, kp, 0, 1, w32, w_chunk, kq, c, c_start, ldc, rows4 // 4, 4 * kp, 4 * ldc, 4, tiles)


@njit(cache=True)
def _fill_plane(op, arena, image, plane, pr0, pr1):
    """Plane rows pr0 .. pr1-1 of _conv_direct's padded image: x + 128 inside, the pad byte around it.

    plane is uint8 (VNNI) or int16 (the pair tile): the same values, 0..255, in either."""
    in_h, in_w, cin = op[F_IN_H], op[F_IN_W], op[F_CIN]
    pad_t, pad_l, plane_w = op[F_PAD_T], op[F_PAD_L], op[F_PLANE_W]
    pad = np.uint8(op[F_PAD_BYTE])
    row_bytes = in_w * cin
    src_image = op[F_IN] + image * in_h * row_bytes
    for j in range(pr0 * plane_w * cin, pr1 * plane_w * cin):
        plane[_U(j)] = pad
    for y in range(max(0, pr0 - pad_t), min(in_h, pr1 - pad_t)):
        src = _U(src_image + y * row_bytes)
        dst = _U(((pad_t + y) * plane_w + pad_l) * cin)
        for j in range(row_bytes):
            plane[dst + _U(j)] = np.uint8(np.int32(arena[src + _U(j)]) + 128)


@njit(cache=True)
def _conv_direct(op, arena, images, plane, c, w8p, i32p, i64p, y0, y1, kind):
    """CONV_2D without im2col (dilation_w 1): each A row is a window of a padded image.

    plane[py][px][ci] = x + 128 inside the image and the pad byte (zp + 128) around it (uint8 for
    vpdpbusd, int16 for the pair tile: `plane` is then the scratch viewed as int16). For
    output pixel (oy, ox) and filter row fy, the taps (fx, ci) are the kw*cin contiguous values
    at ((oy*sh + fy*dh)*plane_w + ox*sw)*cin: the tile reads them in place, with lda = sw*cin
    between neighbouring pixels and a_step = dh*plane_w*cin between filter rows. The weights
    are packed per filter row, each row's kw*cin taps padded to a multiple of 4 (VNNI) or 2
    (pairs) with zeros (the extra values read are the next pixel's, times 0). Output rows
    y0 .. y1-1 only (the split executor gives each thread a range): the plane is filled in the
    rows those windows read.
    """
    in_h, in_w, cin = op[F_IN_H], op[F_IN_W], op[F_CIN]
    out_h, out_w, cout = op[F_OUT_H], op[F_OUT_W], op[F_COUT]
    kh, kw, sh, sw, dh = op[F_KH], op[F_KW], op[F_SH], op[F_SW], op[F_DH]
    plane_h, plane_w = op[F_PLANE_H], op[F_PLANE_W]
    if kind == GEMM_VNNI:
        kq, w_direct = op[F_ROW_K4], op[F_W_DIRECT]
    else:
        kq, w_direct = (kw * cin + 1) // 2, op[F_PAIRS_DIRECT]
    per_chunk = chunk_tiles(kind)
    cp, block_rows = op[F_CP], op[F_DIRECT_ROWS]
    ldc = c_stride(op, kind)
    bias, rq, expanded = op[F_BIAS], op[F_RQ], op[F_EXPANDED]
    act_min, act_max, out_zp = op[F_ACT_MIN], op[F_ACT_MAX], op[F_OUT_ZP]
    # Plane rows the output rows read (the values past the last row are k padding, times 0 weights).
    pr0, pr1 = y0 * sh, min(plane_h, (y1 - 1) * sh + (kh - 1) * dh + 1)
    for image in range(images):
        _fill_plane(op, arena, image, plane, pr0, pr1)
        out_image = op[F_OUT] + image * out_h * out_w * cout
        for first_y in range(y0, y1, block_rows):
            rows_y = min(block_rows, y1 - first_y)
            for chunk in range((cp + 16 * per_chunk - 1) // (16 * per_chunk)):
                tiles = min(per_chunk, (cp - chunk * 16 * per_chunk) // 16)
                w_chunk = w_direct + chunk * kh * chunk_size(kind, kq)
                full = out_w // 4  # tiles of 4 pixels per output row, then the row's 1-3 leftover pixels
                left = out_w % 4
                for yi in range(rows_y):
                    a_row = (first_y + yi) * sh * plane_w * cin
                    c_row = yi * out_w * ldc + chunk * 16 * per_chunk
                    a_left, c_left = a_row + 4 * full * sw * cin, c_row + 4 * full * ldc
                    lda, a_step = sw * cin, dh * plane_w * cin
                    if kind == GEMM_VNNI:
                        _tile(plane, a_row, lda, a_step, kh, w8p, w_chunk, kq, c, c_row, ldc, full, 4 * lda,
                              4 * ldc, 4, tiles)  # fmt: skip
                        if left:
                            _tile(plane, a_left, lda, a_step, kh, w8p, w_chunk, kq, c, c_left, ldc, 1, 0, 0, left,
                                  tiles)  # fmt: skip
                    else:
                        _madd(plane, a_row, lda, a_step, kh, i32p, w_chunk, kq, c, c_row, ldc, full, 4 * lda,
                              4 * ldc, 4, tiles)  # fmt: skip
                        if left:
                            _madd(plane, a_left, lda, a_step, kh, i32p, w_chunk, kq, c, c_left, ldc, 1, 0, 0, left,
                                  tiles)  # fmt: skip
            requantize_rows(c, ldc, rows_y * out_w, cout, i32p[bias:], i64p[rq:], expanded, act_min, act_max, out_zp,
                            arena, out_image + first_y * out_w * cout)  # fmt: skip


@njit(cache=True)
def _epilogue(op, c, ldc, rows, first, arena, out_base, i32p, i64p, f64p):
    """Bias (folded) -> requantize -> output zero point -> clamp -> int8, from the int32 block."""
    cout, cp = op[F_COUT], op[F_CP]
    bias, rq = op[F_BIAS], op[F_RQ]
    act_min, act_max, out_zp = op[F_ACT_MIN], op[F_ACT_MAX], op[F_OUT_ZP]
    if op[F_FLOAT]:
        eff = op[F_EFF]
        for i in range(rows):
            dst = _U(out_base + (first + i) * cout)
            for ch in range(cout):
                acc = wrap32(np.int64(c[_U(i * ldc + ch)]) + i32p[_U(bias + ch)])
                v = round_half_away_to_int32(np.float64(acc) * f64p[_U(eff + ch)]) + out_zp
                arena[dst + _U(ch)] = min(max(v, act_min), act_max)
        return
    expanded = op[F_EXPANDED]
    requantize_rows(c, ldc, rows, cout, i32p[bias:], i64p[rq:], expanded, act_min, act_max, out_zp, arena,
                    out_base + first * cout)


@njit(cache=True)
def requantize_rows(c, c_stride, rows, cout, bias, rqv, expanded, act_min, act_max, out_zp, out, out_start):
    """out[out_start + i*cout + ch] = clamp(requantize(c[i*c_stride + ch] + bias[ch]) + out_zp), int8.

    vnni.requantize16 does the arithmetic (requantize_one's, 16 lanes at a time, the last
    partial group through a lane-by-lane store). The per-channel constants (bias, and the
    requantization blocks rqv) repeat the cout channels expanded/cout times, so when the rows
    are contiguous (c_stride == cout) the work runs as long flat loops of `expanded` lanes;
    a loop over 16 channels alone spends its time in loop setup. Otherwise row by row.
    """
    if c_stride == cout:
        count = rows * cout
        for start in range(0, count, expanded):
            requantize16(c[start:], bias, rqv, out[out_start + start:], min(expanded, count - start), out_zp,
                         act_min, act_max)  # fmt: skip
        return
    for i in range(rows):
        requantize16(c[i * c_stride:], bias, rqv, out[out_start + i * cout:], cout, out_zp, act_min, act_max)


@njit(cache=True)
def conv_gemm(op, arena, images, a, c, w8p, i32p, i64p, f64p, kind, part=0, parts=1):
    """One CONV_2D / FULLY_CONNECTED layer for `images` images held in the arena (see module doc).

    part of parts: only that share of the output (rows of each image on the direct path, a
    range of output pixels otherwise), for the split executor; the default is all of it.
    """
    in_base, out_base = op[F_IN], op[F_OUT]
    kp, cp = op[F_KP], op[F_CP]
    total = images * op[F_OUT_H] * op[F_OUT_W]
    block = op[F_BLOCK]
    ldc = c_stride(op, kind)
    direct = (op[F_KH] == 1 and op[F_KW] == 1 and op[F_SH] == 1 and op[F_SW] == 1 and op[F_PAD_T] == 0
              and op[F_PAD_L] == 0 and op[F_IN_H] == op[F_OUT_H] and op[F_IN_W] == op[F_OUT_W])  # fmt: skip
    if op[F_DIRECT_ROWS] > 0 and not direct:
        out_h = op[F_OUT_H]
        y0, y1 = out_h * part // parts, out_h * (part + 1) // parts
        if kind == GEMM_VNNI:
            _conv_direct(op, arena, images, a, c, w8p, i32p, i64p, y0, y1, kind)
        else:
            _conv_direct(op, arena, images, a.view(np.int16), c, w8p, i32p, i64p, y0, y1, kind)
        return
    p0, p1 = total * part // parts, total * (part + 1) // parts
    for first in range(p0, p1, block):
        rows = min(block, p1 - first)
        rows4 = (rows + 3) // 4 * 4  # padding rows: computed from stale values, never stored
        if kind == GEMM_VNNI:
            _gather(op, arena, in_base, first, rows, a, direct)
            _gemm_tiles(kind, a, rows4, kp, w8p, i32p, op[F_W8], cp, c, ldc)
        else:  # A widened to int16 for the pair tile (the scratch holds twice the bytes, plan.py)
            a16 = a.view(np.int16)
            _gather(op, arena, in_base, first, rows, a16, direct)
            _gemm_tiles(kind, a16, rows4, kp, w8p, i32p, op[F_PAIRS], cp, c, ldc)
        _epilogue(op, c, ldc, rows, first, arena, out_base, i32p, i64p, f64p)


@njit(cache=True)
def _gather(op, arena, in_base, first, rows, a, direct):
    """A's rows for output pixels first .. first+rows-1 (a uint8 or int16: the same values, x + 128)."""
    if direct:
        _rows_copy(op, arena, in_base, first, rows, a)
    else:
        _im2col(op, arena, in_base, first, rows, a)
