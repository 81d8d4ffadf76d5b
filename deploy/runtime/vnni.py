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

_I8 = ir.IntType(8)
_I32 = ir.IntType(32)
_V16 = ir.VectorType(_I32, 16)


@intrinsic
def dpbusd_tile(typingctx, a, a_start, lda, a_step, steps, b, b_start, k4, c, c_start, ldc, rows, tiles):
    """C[c_start + r*ldc + 16*j + l] = sum over s < steps, k < 4*k4 of A[a_start + r*lda + s*a_step + k] * B[...].

    With steps = 1 this is a plain GEMM tile; with steps = filter height and a_step = one
    padded image row, each A row is a sliding window (fast_conv.py's direct convolution).
    B holds steps * k4 groups of [tiles][16][4] bytes, in that order.
    """
    if not (isinstance(rows, types.IntegerLiteral) and isinstance(tiles, types.IntegerLiteral)):
        return None
    n_rows, n_tiles = rows.literal_value, tiles.literal_value
    sig = types.void(a, a_start, lda, a_step, steps, b, b_start, k4, c, c_start, ldc, rows, tiles)

    def codegen(context, builder, signature, args):
        if not HAS_VNNI:
            return context.get_dummy_value()
        a_arr, a_start_v, lda_v, a_step_v, steps_v, b_arr, b_start_v, k4_v, c_arr, c_start_v, ldc_v = args[:11]
        argtys = signature.args
        intp = context.get_value_type(types.intp)

        def as_intp(value, ty):
            return context.cast(builder, value, ty, types.intp)

        a_start_v, lda_v = as_intp(a_start_v, argtys[1]), as_intp(lda_v, argtys[2])
        a_step_v, steps_v = as_intp(a_step_v, argtys[3]), as_intp(steps_v, argtys[4])
        b_start_v, k4_v = as_intp(b_start_v, argtys[6]), as_intp(k4_v, argtys[7])
        c_start_v, ldc_v = as_intp(c_start_v, argtys[9]), as_intp(ldc_v, argtys[10])
        a_ptr = builder.bitcast(context.make_array(argtys[0])(context, builder, a_arr).data, _I8.as_pointer())
        b_ptr = builder.bitcast(context.make_array(argtys[5])(context, builder, b_arr).data, _I8.as_pointer())
        c_ptr = builder.bitcast(context.make_array(argtys[8])(context, builder, c_arr).data, _I32.as_pointer())
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_V16, [_V16, _V16, _V16]),
                                            "llvm.x86.avx512.vpdpbusd.512")  # fmt: skip
        zero = ir.Constant(_V16, None)
        accs = [[cgutils.alloca_once_value(builder, zero) for _ in range(n_tiles)] for _ in range(n_rows)]
        mask = ir.Constant(ir.VectorType(_I32, 16), [0] * 16)
        with cgutils.for_range(builder, steps_v) as outer:
            s = outer.index
            step_start = builder.add(a_start_v, builder.mul(s, a_step_v))
            row_starts = [builder.add(step_start, builder.mul(lda_v, ir.Constant(intp, r))) for r in range(n_rows)]
            b_outer = builder.add(b_start_v, builder.mul(builder.mul(s, k4_v), ir.Constant(intp, 64 * n_tiles)))
            with cgutils.for_range(builder, k4_v) as loop:
                k = loop.index
                k_bytes = builder.mul(k, ir.Constant(intp, 4))
                b_step = builder.add(b_outer, builder.mul(k, ir.Constant(intp, 64 * n_tiles)))
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
                        builder.store(builder.call(fn, [acc, broadcast, weights[j]]), accs[r][j])
        for r in range(n_rows):
            row = builder.add(c_start_v, builder.mul(ldc_v, ir.Constant(intp, r)))
            for j in range(n_tiles):
                p = builder.gep(c_ptr, [builder.add(row, ir.Constant(intp, 16 * j))])
                builder.store(builder.load(accs[r][j]), builder.bitcast(p, _V16.as_pointer()), align=4)
        return context.get_dummy_value()

    return sig, codegen


_V16_I64 = ir.VectorType(ir.IntType(64), 16)
_V16_I8 = ir.VectorType(_I8, 16)


@intrinsic
def requantize16(typingctx, c, bias, mult, left, total, round_pos, round_neg, out, groups, out_zp, act_min, act_max):
    """16 outputs at a time: int8(clamp(requantize(c + bias) + out_zp)) in explicit 512-bit vectors.

    The arithmetic of fast_conv.requantize_rows (TFLite's MultiplyByQuantizedMultiplier as one
    rounding shift, proved in fast_conv.requant_constants): acc = c + bias and x = acc << left
    wrap in int32 lanes; p = x * M in int64 lanes (sign-extended 32-bit factors: vpmuldq);
    (p + (p < -2^30 ? round_neg : round_pos)) >> total; + zero point, clamp, int8.
    c, bias, mult, left are int32 arrays, total/round_pos/round_neg int64 (plan-time constants),
    all starting at the first group (slices); out int8. Portable IR: LLVM lowers it on any CPU.
    """
    sig = types.void(c, bias, mult, left, total, round_pos, round_neg, out, groups, out_zp, act_min, act_max)

    def codegen(context, builder, signature, args):
        argtys = signature.args
        c_p, b_p, m_p, l_p, t_p, rp_p, rn_p, o_p = (context.make_array(argtys[i])(context, builder, args[i]).data
                                                    for i in range(8))  # fmt: skip
        intp = context.get_value_type(types.intp)
        groups_v = context.cast(builder, args[8], argtys[8], types.intp)
        i32s = [builder.trunc(context.cast(builder, args[i], argtys[i], types.int64), _I32) for i in (9, 10, 11)]

        def splat(value):
            one = builder.insert_element(ir.Constant(_V16, ir.Undefined), value, ir.Constant(_I32, 0))
            return builder.shuffle_vector(one, ir.Constant(_V16, ir.Undefined), ir.Constant(_V16, [0] * 16))

        zp, lo, hi = (splat(v) for v in i32s)

        def load(ptr, index, vector_type=_V16, align=4):
            p = builder.gep(ptr, [index])
            return builder.load(builder.bitcast(p, vector_type.as_pointer()), align=align)

        with cgutils.for_range(builder, groups_v) as loop:
            base = builder.mul(loop.index, ir.Constant(intp, 16))
            acc = builder.add(load(c_p, base), load(b_p, base))
            x = builder.shl(acc, load(l_p, base))
            p = builder.mul(builder.sext(x, _V16_I64), builder.sext(load(m_p, base), _V16_I64))
            below = builder.icmp_signed("<", p, ir.Constant(_V16_I64, [-(1 << 30)] * 16))
            rounding = builder.select(below, load(rn_p, base, _V16_I64, 8), load(rp_p, base, _V16_I64, 8))
            v = builder.ashr(builder.add(p, rounding), load(t_p, base, _V16_I64, 8))
            v = builder.add(builder.trunc(v, _V16), zp)
            v = builder.select(builder.icmp_signed("<", v, lo), lo, v)
            v = builder.select(builder.icmp_signed(">", v, hi), hi, v)
            out_ptr = builder.bitcast(builder.gep(o_p, [base]), _V16_I8.as_pointer())
            builder.store(builder.trunc(v, _V16_I8), out_ptr, align=1)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def depthwise_row(typingctx, plane, row_base, taps, tap_count, weights, weight_stride, acc, groups):
    """acc[16g + l] = sum over t < tap_count of weights[t*weight_stride + 16g + l] * plane[row_base + taps[t] + 16g + l].

    One output row of a depthwise conv, 16 lanes at a time, every tap accumulated in a register
    before one store (fast_ops.depthwise lays the plane out so that each tap's inputs for the row
    are contiguous). plane and weights hold int16 values (in int32 arrays; offsets count int16s):
    |w| <= 128 and |x + offset| <= 255, so each product, at most 32640, is exact in an int16 lane
    (vpmullw); it is sign-extended and added in int32 lanes, which wrap like TFLite's sums.
    Portable IR (no x86 intrinsic).
    """
    sig = types.void(plane, row_base, taps, tap_count, weights, weight_stride, acc, groups)

    def codegen(context, builder, signature, args):
        argtys = signature.args
        intp = context.get_value_type(types.intp)
        i16 = ir.IntType(16)
        v16_i16 = ir.VectorType(i16, 16)
        plane_p = builder.bitcast(context.make_array(argtys[0])(context, builder, args[0]).data, i16.as_pointer())
        taps_p = context.make_array(argtys[2])(context, builder, args[2]).data
        w_p = builder.bitcast(context.make_array(argtys[4])(context, builder, args[4]).data, i16.as_pointer())
        acc_p = context.make_array(argtys[6])(context, builder, args[6]).data
        row_base = context.cast(builder, args[1], argtys[1], types.intp)
        tap_count = context.cast(builder, args[3], argtys[3], types.intp)
        w_stride = context.cast(builder, args[5], argtys[5], types.intp)
        groups_v = context.cast(builder, args[7], argtys[7], types.intp)
        total = cgutils.alloca_once_value(builder, ir.Constant(_V16, None))

        def load(ptr, index):
            return builder.load(builder.bitcast(builder.gep(ptr, [index]), v16_i16.as_pointer()), align=2)

        with cgutils.for_range(builder, groups_v) as loop:
            base = builder.mul(loop.index, ir.Constant(intp, 16))
            builder.store(ir.Constant(_V16, None), total)
            with cgutils.for_range(builder, tap_count) as tap_loop:
                t = tap_loop.index
                tap = builder.load(builder.gep(taps_p, [t]))
                x = load(plane_p, builder.add(builder.add(row_base, tap), base))
                w = load(w_p, builder.add(builder.mul(t, w_stride), base))
                product = builder.sext(builder.mul(w, x), _V16)
                builder.store(builder.add(builder.load(total), product), total)
            builder.store(builder.load(total), builder.bitcast(builder.gep(acc_p, [base]), _V16.as_pointer()), align=4)
        return context.get_dummy_value()

    return sig, codegen
