"""The AVX-512 VNNI micro-kernel: a register tile of `rows` x (16 * `tiles`) int32 accumulators.

    C[r][16*j + l] = sum over k of A[r][k] * B[k][16*j + l]     (A uint8, B int8, C int32)

A holds `rows` rows of `lda` bytes (activations stored as x + 128, see fast_conv.py);
B is packed [k4][tiles][16 lanes][4 bytes]: for every group of 4 k's, 64 bytes per zmm
of 16 output channels. Per k4 step the tile broadcasts 4 bytes of each A row and issues
rows * tiles `vpdpbusd` (llvm.x86.avx512.vpdpbusd.512: each lane adds four u8 x s8
products to its int32). The accumulators are LLVM values kept in zmm registers
(allocas promoted by mem2reg), so at 4 rows x 4 tiles the loop is 16 vpdpbusd, 4 loads
of B and 4 broadcasts: compute-bound.

Overflow: each vpdpbusd adds four products of at most 255 * 128 < 2^15, and the int32
lanes wrap on overflow (the non-saturating form), exactly like TFLite's int32 sums.

`rows` and `tiles` must be literal ints at the call site (the tile is unrolled at compile
time). On a CPU without VNNI the intrinsic compiles to nothing, and cpu.py never picks
it there; emitting the instruction would make LLVM abort on such a host.
"""

from __future__ import annotations

from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

from edgecnn.deploy.runtime.cpu import HAS_VNNI
from edgecnn.ir_switch import switch_on_shape

_I8 = ir.IntType(8)
_I32 = ir.IntType(32)
_V16 = ir.VectorType(_I32, 16)


def tile_codegen(max_rows, max_tiles, combine):
    """Codegen of a register tile (dpbusd_tile, madd.madd_tile): `count` tiles one after another, the
    i-th reading A from a_start + i*a_next and writing C at c_start + i*c_next (one call covers a
    block of rows or a row of pixels: a call per tile cost ~50 ns of argument passing and
    reference counting, more than a small tile's work).

    Per k group (4 bytes of A, or 2 int16s: one 32-bit word either way) the tile broadcasts each
    A row's word and does acc = combine(builder, acc, broadcast, weights) for each 16-lane
    tile of B (64 bytes per tile per group). Offsets count the arrays' own elements. The run-time
    `rows` (1..max_rows) and `tiles` (1..max_tiles) pick one of the unrolled shapes through a
    switch; other values do nothing.
    """

    def codegen(context, builder, signature, args):
        argtys = signature.args
        intp = context.get_value_type(types.intp)
        (a_start_v, lda_v, a_step_v, steps_v, b_start_v, kq_v, c_start_v, ldc_v, count_v, a_next_v, c_next_v,
         rows_v, tiles_v) = (context.cast(builder, args[i], argtys[i], types.intp)
                             for i in (1, 2, 3, 4, 6, 7, 9, 10, 11, 12, 13, 14, 15))  # fmt: skip

        def byte_ptr(i):
            return builder.bitcast(context.make_array(argtys[i])(context, builder, args[i]).data, _I8.as_pointer())

        def scaled(v, i):
            return builder.mul(v, ir.Constant(intp, context.get_abi_sizeof(context.get_data_type(argtys[i].dtype))))

        a_ptr, b_ptr, c_ptr = byte_ptr(0), byte_ptr(5), byte_ptr(8)
        a_start_v, lda_v, a_step_v, a_next_v = (scaled(v, 0) for v in (a_start_v, lda_v, a_step_v, a_next_v))
        b_start_v = scaled(b_start_v, 5)
        c_start_v, ldc_v, c_next_v = (scaled(v, 8) for v in (c_start_v, ldc_v, c_next_v))
        accs = [[cgutils.alloca_once_value(builder, ir.Constant(_V16, None)) for _ in range(max_tiles)]
                for _ in range(max_rows)]  # fmt: skip
        mask = ir.Constant(ir.VectorType(_I32, 16), [0] * 16)

        def shape(n_rows, n_tiles):
            group_bytes = ir.Constant(intp, 64 * n_tiles)
            with cgutils.for_range(builder, count_v) as repeat:
                a_base = builder.add(a_start_v, builder.mul(repeat.index, a_next_v))
                c_base = builder.add(c_start_v, builder.mul(repeat.index, c_next_v))
                for r in range(n_rows):
                    for j in range(n_tiles):
                        builder.store(ir.Constant(_V16, None), accs[r][j])
                with cgutils.for_range(builder, steps_v) as outer:
                    s = outer.index
                    step_start = builder.add(a_base, builder.mul(s, a_step_v))
                    row_starts = [builder.add(step_start, builder.mul(lda_v, ir.Constant(intp, r)))
                                  for r in range(n_rows)]  # fmt: skip
                    b_outer = builder.add(b_start_v, builder.mul(builder.mul(s, kq_v), group_bytes))
                    with cgutils.for_range(builder, kq_v) as loop:
                        k = loop.index
                        k_bytes = builder.mul(k, ir.Constant(intp, 4))
                        b_step = builder.add(b_outer, builder.mul(k, group_bytes))
                        weights = []
                        for j in range(n_tiles):
                            p = builder.gep(b_ptr, [builder.add(b_step, ir.Constant(intp, 64 * j))])
                            weights.append(builder.load(builder.bitcast(p, _V16.as_pointer()), align=1))
                        for r in range(n_rows):
                            p = builder.gep(a_ptr, [builder.add(row_starts[r], k_bytes)])
                            word = builder.load(builder.bitcast(p, _I32.as_pointer()), align=1)
                            one = builder.insert_element(ir.Constant(_V16, ir.Undefined), word, ir.Constant(_I32, 0))
                            broadcast = builder.shuffle_vector(one, ir.Constant(_V16, ir.Undefined), mask)
                            for j in range(n_tiles):
                                acc = builder.load(accs[r][j])
                                builder.store(combine(builder, acc, broadcast, weights[j]), accs[r][j])
                for r in range(n_rows):
                    row = builder.add(c_base, builder.mul(ldc_v, ir.Constant(intp, r)))
                    for j in range(n_tiles):
                        p = builder.gep(c_ptr, [builder.add(row, ir.Constant(intp, 64 * j))])
                        builder.store(builder.load(accs[r][j]), builder.bitcast(p, _V16.as_pointer()), align=4)

        shapes = [(r, t) for r in range(1, max_rows + 1) for t in range(1, max_tiles + 1)]
        switch_on_shape(builder, intp, rows_v, tiles_v, shapes, shape, "tile")
        return context.get_dummy_value()

    return codegen


@intrinsic
def dpbusd_tile(typingctx, a, a_start, lda, a_step, steps, b, b_start, k4, c, c_start, ldc, count, a_next, c_next,
                rows, tiles):  # fmt: skip
    """C[c_start + r*ldc + 16*j + l] = sum over s < steps, k < 4*k4 of A[a_start + r*lda + s*a_step + k] * B[...],
    for r < rows (1..4), j < tiles (1..4), and `count` tiles, the i-th with a_start + i*a_next and
    c_start + i*c_next (tile_codegen).

    With steps = 1 this is a plain GEMM tile; with steps = filter height and a_step = one
    padded image row, each A row is a sliding window (fast_conv.py's direct convolution).
    B holds steps * k4 groups of [tiles][16][4] bytes, in that order.
    """
    sig = types.void(a, a_start, lda, a_step, steps, b, b_start, k4, c, c_start, ldc, count, a_next, c_next, rows,
                     tiles)  # fmt: skip
    if not HAS_VNNI:
        return sig, lambda context, builder, signature, args: context.get_dummy_value()

    def combine(builder, acc, broadcast, weights):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_V16, [_V16, _V16, _V16]),
                                            "llvm.x86.avx512.vpdpbusd.512")  # fmt: skip
        return builder.call(fn, [acc, broadcast, weights])

    return sig, tile_codegen(4, 4, combine)


_V8_I64 = ir.VectorType(ir.IntType(64), 8)
_V16_I8 = ir.VectorType(_I8, 16)

# One block of requantization constants per 16 lanes, in int64s (plan.requant_vectors writes them):
# M, total shift, round_pos, round_neg for the even lanes (8) and the odd lanes (8) each, then the
# 16 int32 left shifts packed in 8 int64s, then a flag: 1 when no lane of any block of the vector
# shifts left (read from the first block; the loops then skip the shift).
RQV_M, RQV_TOTAL, RQV_POS, RQV_NEG, RQV_LEFT, RQV_FLAGS, RQV_BLOCK = 0, 16, 32, 48, 64, 72, 80


def _splat(builder, value, vector_type=_V16):
    one = builder.insert_element(ir.Constant(vector_type, ir.Undefined), value, ir.Constant(_I32, 0))
    mask = ir.Constant(ir.VectorType(_I32, vector_type.count), [0] * vector_type.count)
    return builder.shuffle_vector(one, ir.Constant(vector_type, ir.Undefined), mask)


def _multiply_ir(builder, x, rqv, no_left=False):
    """fast_conv.requantize_one on 16 int32 lanes x -> 16 int32 lanes (rqv: the lanes' RQV_* block).

    The int64 products stay in the even and odd int32 lanes' own 64-bit halves (vpmuldq on
    each, no widening or narrowing shuffles): P = x * M with x << left wrapping in int32, then
    (P + (P < -2^30 ? round_neg : round_pos)) >> total, whose low 32 bits are the result
    (|result| < 2^31). Both factors of each product are sign-extended 32-bit values, written
    as ashr(shl(v, 32), 32) so LLVM selects vpmuldq. no_left: every left shift is 0 (not emitted).
    """

    def block(offset, count=8):
        p = builder.gep(rqv, [ir.Constant(ir.IntType(64), offset)])
        return builder.load(builder.bitcast(p, ir.VectorType(ir.IntType(64), count).as_pointer()), align=8)

    c32 = ir.Constant(_V8_I64, [32] * 8)
    if not no_left:
        x = builder.shl(x, builder.bitcast(block(RQV_LEFT), _V16))
    x = builder.bitcast(x, _V8_I64)
    halves = []
    for half, xs in ((0, builder.ashr(builder.shl(x, c32), c32)), (8, builder.ashr(x, c32))):
        m = block(RQV_M + half)
        p = builder.mul(xs, builder.ashr(builder.shl(m, c32), c32))
        below = builder.icmp_signed("<", p, ir.Constant(_V8_I64, [-(1 << 30)] * 8))
        rounding = builder.select(below, block(RQV_NEG + half), block(RQV_POS + half))
        halves.append(builder.ashr(builder.add(p, rounding), block(RQV_TOTAL + half)))
    low = builder.and_(halves[0], ir.Constant(_V8_I64, [0xFFFFFFFF] * 8))
    return builder.bitcast(builder.or_(low, builder.shl(halves[1], c32)), _V16)


def _clamp_int8_ir(builder, v, zp, lo, hi, full_range=False):
    """int8(clamp(v + zp, lo, hi)); full_range: lo, hi = -128, 127 as constants (x86: one saturating vpmovsdb)."""
    if full_range:
        lo, hi = ir.Constant(_V16, [-128] * 16), ir.Constant(_V16, [127] * 16)
    v = builder.add(v, zp)
    v = builder.select(builder.icmp_signed("<", v, lo), lo, v)
    v = builder.select(builder.icmp_signed(">", v, hi), hi, v)
    return builder.trunc(v, _V16_I8)


def _requantize_ir(builder, acc, bias, rqv, zp, lo, hi, variant=(False, False)):
    """int8 lanes = clamp(requantize(acc + bias) + zp): fast_conv.requantize_one on 16 int32 lanes.

    variant = (no_left, full_range), see _variants."""
    no_left, full_range = variant
    return _clamp_int8_ir(builder, _multiply_ir(builder, builder.add(acc, bias), rqv, no_left), zp, lo, hi,
                          full_range)  # fmt: skip


def _variants(builder, rqv, lo_scalar, hi_scalar, emit):
    """Call emit(variant) in four branches chosen once per call, variant = (no_left, full_range): no left
    shift in the vector (its first block's RQV_FLAGS), and a clamp to -128..127 (act_min, act_max)."""
    i64 = ir.IntType(64)
    flag = builder.load(builder.gep(rqv, [ir.Constant(i64, RQV_FLAGS)]))
    no_left = builder.icmp_signed("!=", flag, ir.Constant(i64, 0))
    full = builder.and_(builder.icmp_signed("==", lo_scalar, ir.Constant(i64, -128)),
                        builder.icmp_signed("==", hi_scalar, ir.Constant(i64, 127)))  # fmt: skip
    with builder.if_else(no_left) as (then, otherwise):
        for branch, left_flag in ((then, True), (otherwise, False)):
            with branch:
                with builder.if_else(full) as (full_then, full_otherwise):
                    with full_then:
                        emit((left_flag, True))
                    with full_otherwise:
                        emit((left_flag, False))


def _store_int8(builder, value, ptr, lanes_left):
    """Store 16 int8 lanes, or only the first lanes_left (< 16) of them, one by one (nothing past them)."""
    full = builder.icmp_signed(">=", lanes_left, ir.Constant(lanes_left.type, 16))
    with builder.if_else(full) as (then, otherwise):
        with then:
            builder.store(value, builder.bitcast(ptr, _V16_I8.as_pointer()), align=1)
        with otherwise:
            with cgutils.for_range(builder, lanes_left) as lane_loop:
                lane = lane_loop.index
                builder.store(builder.extract_element(value, lane), builder.gep(ptr, [lane]))


def _array_ptr(context, builder, ty, value, element=None):
    data = context.make_array(ty)(context, builder, value).data
    return data if element is None else builder.bitcast(data, element.as_pointer())


@intrinsic
def requantize16(typingctx, c, bias, rqv, out, count, out_zp, act_min, act_max):
    """out[j] = int8(clamp(requantize(c[j] + bias[j]) + out_zp)) for j < count, 16 lanes at a time.

    c and bias are int32 arrays, rqv the int64 constant blocks (one per 16 lanes, RQV_*), all
    starting at lane 0; the last partial group is stored through a mask (nothing past count is
    written; c and bias are read up to the next multiple of 16). Portable IR: LLVM lowers it
    on any CPU.
    """
    sig = types.void(c, bias, rqv, out, count, out_zp, act_min, act_max)

    def codegen(context, builder, signature, args):
        argtys = signature.args
        c_p = _array_ptr(context, builder, argtys[0], args[0])
        b_p = _array_ptr(context, builder, argtys[1], args[1])
        r_p = _array_ptr(context, builder, argtys[2], args[2])
        o_p = _array_ptr(context, builder, argtys[3], args[3])
        intp = context.get_value_type(types.intp)
        count_v = context.cast(builder, args[4], argtys[4], types.intp)
        zp, lo, hi = (_splat(builder, builder.trunc(context.cast(builder, args[i], argtys[i], types.int64), _I32))
                      for i in (5, 6, 7))  # fmt: skip
        groups = builder.sdiv(builder.add(count_v, ir.Constant(intp, 15)), ir.Constant(intp, 16))

        def load(ptr, index):
            return builder.load(builder.bitcast(builder.gep(ptr, [index]), _V16.as_pointer()), align=4)

        def emit(variant):
            with cgutils.for_range(builder, groups) as loop:
                base = builder.mul(loop.index, ir.Constant(intp, 16))
                rqv = builder.gep(r_p, [builder.mul(loop.index, ir.Constant(intp, RQV_BLOCK))])
                v = _requantize_ir(builder, load(c_p, base), load(b_p, base), rqv, zp, lo, hi, variant)
                _store_int8(builder, v, builder.gep(o_p, [base]), builder.sub(count_v, base))

        _variants(builder, r_p, *(context.cast(builder, args[i], argtys[i], types.int64) for i in (6, 7)), emit)
        return context.get_dummy_value()

    return sig, codegen


def _row_operands(context, builder, signature, args, element):
    """depthwise_row's and depthwise_pairs_row's operands: the array pointers (plane and weights as
    `element`, None: the arrays' own type), the scalars, the zero point and clamp as 16-lane splats, and
    the clamp's two int64 values (for _variants)."""
    argtys = signature.args
    pointers = [_array_ptr(context, builder, argtys[i], args[i], element if i in (0, 4) else None)
                for i in (0, 2, 4, 6, 7, 8)]  # fmt: skip
    scalars = [context.cast(builder, args[i], argtys[i], types.intp) for i in (1, 3, 5, 9)]
    wide = [context.cast(builder, args[i], argtys[i], types.int64) for i in (10, 11, 12)]
    splats = [_splat(builder, builder.trunc(v, _I32)) for v in wide]
    plane_p, taps_p, w_p, b_p, r_p, o_p = pointers
    row_base, tap_count, w_stride, count_v = scalars
    return (plane_p, taps_p, w_p, b_p, r_p, o_p, row_base, tap_count, w_stride, count_v, *splats, wide[1:])


@intrinsic
def depthwise_row(typingctx, plane, row_base, taps, tap_count, weights, weight_stride, bias, rqv, out, count,
                  out_zp, act_min, act_max):
    """One output row of a depthwise conv, requantized: out[j] for j < count, 16 lanes at a time.

    acc = sum over t < tap_count of weights[t*weight_stride + j] * plane[row_base + taps[t] + j],
    every tap accumulated in a register, then requantized in registers (as requantize16) and
    stored as int8: the int32 row never goes to memory. fast_ops.depthwise lays the plane out so
    that each tap's inputs for the row are contiguous. plane and weights hold int16 values (in
    int32 arrays; offsets count int16s): |w| <= 128 and |x + offset| <= 255, so each product, at
    most 32640, is exact in an int16 lane (vpmullw); it is sign-extended and added in int32
    lanes, which wrap like TFLite's sums. Portable IR (no x86 intrinsic).
    """
    sig = types.void(plane, row_base, taps, tap_count, weights, weight_stride, bias, rqv, out, count, out_zp,
                     act_min, act_max)  # fmt: skip

    def codegen(context, builder, signature, args):
        intp = context.get_value_type(types.intp)
        i16 = ir.IntType(16)
        v16_i16 = ir.VectorType(i16, 16)
        (plane_p, taps_p, w_p, b_p, r_p, o_p, row_base, tap_count, w_stride, count_v, zp, lo, hi,
         bounds) = _row_operands(context, builder, signature, args, i16)  # fmt: skip
        groups = builder.sdiv(builder.add(count_v, ir.Constant(intp, 15)), ir.Constant(intp, 16))
        total = cgutils.alloca_once_value(builder, ir.Constant(_V16, None))

        def load(ptr, index, vector_type=v16_i16, align=2):
            return builder.load(builder.bitcast(builder.gep(ptr, [index]), vector_type.as_pointer()), align=align)

        def emit(variant):
            with cgutils.for_range(builder, groups) as loop:
                base = builder.mul(loop.index, ir.Constant(intp, 16))
                builder.store(ir.Constant(_V16, None), total)
                with cgutils.for_range(builder, tap_count) as tap_loop:
                    t = tap_loop.index
                    tap = builder.load(builder.gep(taps_p, [t]))
                    x = load(plane_p, builder.add(builder.add(row_base, tap), base))
                    w = load(w_p, builder.add(builder.mul(t, w_stride), base))
                    product = builder.sext(builder.mul(w, x), _V16)
                    builder.store(builder.add(builder.load(total), product), total)
                rqv = builder.gep(r_p, [builder.mul(loop.index, ir.Constant(intp, RQV_BLOCK))])
                v = _requantize_ir(builder, builder.load(total), load(b_p, base, _V16, 4), rqv, zp, lo, hi, variant)
                _store_int8(builder, v, builder.gep(o_p, [base]), builder.sub(count_v, base))

        _variants(builder, r_p, *bounds, emit)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def add_sub16(typingctx, in1, in2, out, count, rqv, offsets, act_min, act_max):
    """TFLite's int8 ADD / SUB (no broadcast) on 16 lanes at a time: out[j] for j < count.

    a = (in1[j] + o1) << left, b = (in2[j] + o2) << left; sa, sb = requantize_one(a), (b) with
    the inputs' constants (rqv blocks 0 and 1); s = sa + sb (or sa - sb when sub); out =
    clamp(requantize_one(s) (block 2) + out_offset). offsets = (o1, o2, out_offset, left, sub).
    Ranges: |x + o| <= 255, so a, b < 2^28 in int32; the input multipliers are <= 1/2, so
    |sa|, |sb| < 2^27 and s fits in int32: the same values as fast_ops.add_sub's int64 scalar code.
    The last partial group is stored lane by lane (nothing past count). Portable IR.
    """
    sig = types.void(in1, in2, out, count, rqv, offsets, act_min, act_max)

    def codegen(context, builder, signature, args):
        argtys = signature.args
        intp = context.get_value_type(types.intp)
        a_p = _array_ptr(context, builder, argtys[0], args[0], _I8)
        b_p = _array_ptr(context, builder, argtys[1], args[1], _I8)
        o_p = _array_ptr(context, builder, argtys[2], args[2], _I8)
        r_p = _array_ptr(context, builder, argtys[4], args[4])
        f_p = _array_ptr(context, builder, argtys[5], args[5])
        count_v = context.cast(builder, args[3], argtys[3], types.intp)

        def field(k):
            return _splat(builder, builder.trunc(builder.load(builder.gep(f_p, [ir.Constant(intp, k)])), _I32))

        o1, o2, oo, left = field(0), field(1), field(2), field(3)
        sub = builder.icmp_signed("!=", builder.load(builder.gep(f_p, [ir.Constant(intp, 4)])),
                                  ir.Constant(ir.IntType(64), 0))  # fmt: skip
        lo, hi = (_splat(builder, builder.trunc(context.cast(builder, args[i], argtys[i], types.int64), _I32))
                  for i in (6, 7))  # fmt: skip
        rq1, rq2, rqo = (builder.gep(r_p, [ir.Constant(intp, k * RQV_BLOCK)]) for k in range(3))
        groups = builder.sdiv(builder.add(count_v, ir.Constant(intp, 15)), ir.Constant(intp, 16))

        def load(ptr, index):
            v = builder.load(builder.bitcast(builder.gep(ptr, [index]), _V16_I8.as_pointer()), align=1)
            return builder.sext(v, _V16)

        with cgutils.for_range(builder, groups) as loop:
            base = builder.mul(loop.index, ir.Constant(intp, 16))
            a = builder.shl(builder.add(load(a_p, base), o1), left)
            b = builder.shl(builder.add(load(b_p, base), o2), left)
            sa, sb = _multiply_ir(builder, a, rq1), _multiply_ir(builder, b, rq2)
            total = builder.select(sub, builder.sub(sa, sb), builder.add(sa, sb))
            v = _clamp_int8_ir(builder, _multiply_ir(builder, total, rqo), oo, lo, hi)
            _store_int8(builder, v, builder.gep(o_p, [base]), builder.sub(count_v, base))
        return context.get_dummy_value()

    return sig, codegen


PAIR_GROUPS = 4  # 16-lane groups per step of depthwise_pairs_row: independent vpdpwssd chains (latency 4-5)


@intrinsic
def depthwise_pairs_row(typingctx, plane, row_base, taps, tap_count, weights, weight_stride, bias, rqv, out, count,
                        out_zp, act_min, act_max):  # fmt: skip
    """depthwise_row with two taps per step: acc += vpdpwssd(plane pair words, weight pair words).

    plane and weights are int32 arrays whose words each hold two int16s (fast_ops.depthwise_pairs
    lays them out); word j of tap t: weights[t*weight_stride + j] and plane[row_base + taps[t] + j].
    llvm.x86.avx512.vpdpwssd.512 adds both int16 products of each word to the int32 lane, wrapping
    (each product is at most 32640, so the pair's sum is exact before the add). Requantized in
    registers and stored as int8, as depthwise_row. AVX-512 VNNI only: on a CPU without it this
    compiles to nothing, and fast_ops never calls it there (as dpbusd_tile).
    """
    sig = types.void(plane, row_base, taps, tap_count, weights, weight_stride, bias, rqv, out, count, out_zp,
                     act_min, act_max)  # fmt: skip

    def codegen(context, builder, signature, args):
        if not HAS_VNNI:
            return context.get_dummy_value()
        intp = context.get_value_type(types.intp)
        (plane_p, taps_p, w_p, b_p, r_p, o_p, row_base, tap_count, w_stride, count_v, zp, lo, hi,
         bounds) = _row_operands(context, builder, signature, args, None)  # fmt: skip
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_V16, [_V16, _V16, _V16]),
                                            "llvm.x86.avx512.vpdpwssd.512")  # fmt: skip
        groups = builder.sdiv(builder.add(count_v, ir.Constant(intp, 15)), ir.Constant(intp, 16))
        totals = [cgutils.alloca_once_value(builder, ir.Constant(_V16, None)) for _ in range(PAIR_GROUPS)]

        def load(ptr, index):
            return builder.load(builder.bitcast(builder.gep(ptr, [index]), _V16.as_pointer()), align=4)

        def emit_groups(first_group, n, variant):
            """n groups of 16 lanes from first_group on, each with its own accumulator chain."""
            bases = [builder.mul(builder.add(first_group, ir.Constant(intp, g)), ir.Constant(intp, 16))
                     for g in range(n)]  # fmt: skip
            for g in range(n):
                builder.store(ir.Constant(_V16, None), totals[g])
            with cgutils.for_range(builder, tap_count) as tap_loop:
                t = tap_loop.index
                x_start = builder.add(row_base, builder.load(builder.gep(taps_p, [t])))
                w_start = builder.mul(t, w_stride)
                for g in range(n):
                    x = load(plane_p, builder.add(x_start, bases[g]))
                    w = load(w_p, builder.add(w_start, bases[g]))
                    builder.store(builder.call(fn, [builder.load(totals[g]), x, w]), totals[g])
            for g in range(n):
                group = builder.add(first_group, ir.Constant(intp, g))
                rqv = builder.gep(r_p, [builder.mul(group, ir.Constant(intp, RQV_BLOCK))])
                v = _requantize_ir(builder, builder.load(totals[g]), load(b_p, bases[g]), rqv, zp, lo, hi, variant)
                _store_int8(builder, v, builder.gep(o_p, [bases[g]]), builder.sub(count_v, bases[g]))

        blocks = builder.sdiv(groups, ir.Constant(intp, PAIR_GROUPS))
        done = builder.mul(blocks, ir.Constant(intp, PAIR_GROUPS))

        def emit(variant):
            with cgutils.for_range(builder, blocks) as loop:
                emit_groups(builder.mul(loop.index, ir.Constant(intp, PAIR_GROUPS)), PAIR_GROUPS, variant)
            with cgutils.for_range(builder, builder.sub(groups, done)) as loop:
                emit_groups(builder.add(done, loop.index), 1, variant)

        _variants(builder, r_p, *bounds, emit)
        return context.get_dummy_value()

    return sig, codegen
