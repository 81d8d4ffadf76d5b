"""The portable micro-kernels: int16 pairs multiplied and added in int32 lanes, in generic LLVM IR.

For CPUs without AVX-512 VNNI (x86 with AVX2 or AVX-512BW, ARM). Each int32 word of an
operand holds two int16s (its low half first); for every output lane

    acc += sext(a.lo) * sext(b.lo) + sext(a.hi) * sext(b.hi)

written as even/odd shufflevectors -> sext to i32 -> mul -> add. LLVM's X86 backend
matches that pattern to `vpmaddwd` (then `vpaddd`); on AArch64 it becomes widening
multiplies (smull/smlal) or mul + pairwise adds. No target intrinsic: every CPU compiles it.

`madd_tile` is the GEMM tile (as vnni.dpbusd_tile, one k pair per step instead of four
bytes): A is int16 (activations x + 128, 0..255, fast_conv.py's unsigned form, so the
same folded bias serves both paths), B is packed [k2][tiles][16 lanes][2 x int16] in
int32 words (plan.pack_pairs): 64 bytes per 16 output channels per k pair.
`depthwise_pairs_row` is vnni.depthwise_pairs_row with this multiply-add instead of vpdpwssd.

Exactness: each product is at most 255 * 128 = 32640 in magnitude (u8 x s8 GEMM; the
depthwise plane holds x + offset, |.| <= 255, times |w| <= 128), so it is exact in int32,
and a pair's sum (|.| <= 65280) too. `vpmaddwd`'s only wrap case is both products equal to
(-32768)^2, impossible here. The accumulators are int32 lanes that wrap like TFLite's sums
(LLVM's `add` is modular), so every path gives TFLite's int32 accumulator bit for bit.

Register tiles: `rows` x `tiles` accumulators of 16 int32 lanes, kept in registers (allocas
promoted by mem2reg). A 16-lane accumulator is one zmm with AVX-512BW, two ymm with AVX2
(16 registers), four q registers on NEON (32): cpu.py's MADD_ROWS / MADD_TILES pick a
shape that does not spill on the host (chosen from its features at import, compiled on
first use).
"""

from __future__ import annotations

from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

from edgecnn.deploy.runtime.cpu import MADD_ISA
from edgecnn.deploy.runtime.vnni import RQV_BLOCK, _requantize_ir, _row_operands, _store_int8, _variants

_I16 = ir.IntType(16)
_I32 = ir.IntType(32)
_V16 = ir.VectorType(_I32, 16)
_V32_I16 = ir.VectorType(_I16, 32)
_EVEN = ir.Constant(ir.VectorType(_I32, 16), list(range(0, 32, 2)))
_ODD = ir.Constant(ir.VectorType(_I32, 16), list(range(1, 32, 2)))


def madd_ir(builder, acc, a_words, b_words):
    """acc + (a.lo * b.lo + a.hi * b.hi) per int32 lane, a and b 16 words of two int16s each (pmaddwd + add).

    x86: the pmaddwd intrinsic for the host's widest vectors (cpu.MADD_ISA), since LLVM's
    pattern match of the generic form fails once one operand is a broadcast word (instcombine
    folds the even/odd shuffles of a splat, and it emitted vpmulld). Elsewhere the generic form.
    """
    module = builder.module
    if MADD_ISA == "avx512bw":
        fn = cgutils.get_or_insert_function(module, ir.FunctionType(_V16, [_V32_I16, _V32_I16]),
                                            "llvm.x86.avx512.pmaddw.d.512")  # fmt: skip
        return builder.add(acc, builder.call(fn, [builder.bitcast(a_words, _V32_I16), builder.bitcast(b_words, _V32_I16)]))
    if MADD_ISA == "avx2":
        v8, v16_i16 = ir.VectorType(_I32, 8), ir.VectorType(_I16, 16)
        fn = cgutils.get_or_insert_function(module, ir.FunctionType(v8, [v16_i16, v16_i16]), "llvm.x86.avx2.pmadd.wd")
        undef = ir.Constant(_V16, ir.Undefined)
        halves = []
        for lanes in (list(range(8)), list(range(8, 16))):
            mask = ir.Constant(ir.VectorType(_I32, 8), lanes)
            a8 = builder.bitcast(builder.shuffle_vector(a_words, undef, mask), v16_i16)
            b8 = builder.bitcast(builder.shuffle_vector(b_words, undef, mask), v16_i16)
            halves.append(builder.call(fn, [a8, b8]))
        both = builder.shuffle_vector(halves[0], halves[1], ir.Constant(ir.VectorType(_I32, 16), list(range(16))))
        return builder.add(acc, both)
    a16 = builder.bitcast(a_words, _V32_I16)
    b16 = builder.bitcast(b_words, _V32_I16)
    undef = ir.Constant(_V32_I16, ir.Undefined)

    def half(v, which):
        return builder.sext(builder.shuffle_vector(v, undef, which), _V16)

    even = builder.mul(half(a16, _EVEN), half(b16, _EVEN))
    odd = builder.mul(half(a16, _ODD), half(b16, _ODD))
    return builder.add(acc, builder.add(even, odd))


def _splat_word(builder, word):
    one = builder.insert_element(ir.Constant(_V16, ir.Undefined), word, ir.Constant(_I32, 0))
    return builder.shuffle_vector(one, ir.Constant(_V16, ir.Undefined), ir.Constant(ir.VectorType(_I32, 16), [0] * 16))


@intrinsic
def madd_tile(typingctx, a, a_start, lda, a_step, steps, b, b_start, k2, c, c_start, ldc, rows, tiles):
    """C[c_start + r*ldc + 16*j + l] = sum over s < steps, k < 2*k2 of A[a_start + r*lda + s*a_step + k] * B[...].

    A is an int16 array (offsets in int16s; each row's pair k2 read as one int32 word), B an
    int32 array of pair words, steps * k2 groups of [tiles][16] words (offsets in words), C
    int32. steps and a_step: fast_conv's direct convolution (one step per filter row), as
    vnni.dpbusd_tile. `rows` and `tiles` must be literal ints (the tile is unrolled).
    """
    if not (isinstance(rows, types.IntegerLiteral) and isinstance(tiles, types.IntegerLiteral)):
        return None
    n_rows, n_tiles = rows.literal_value, tiles.literal_value
    sig = types.void(a, a_start, lda, a_step, steps, b, b_start, k2, c, c_start, ldc, rows, tiles)

    def codegen(context, builder, signature, args):
        argtys = signature.args
        intp = context.get_value_type(types.intp)
        a_start_v, lda_v, a_step_v, steps_v, b_start_v, k2_v, c_start_v, ldc_v = (
            context.cast(builder, args[i], argtys[i], types.intp) for i in (1, 2, 3, 4, 6, 7, 9, 10))
        a_ptr = builder.bitcast(context.make_array(argtys[0])(context, builder, args[0]).data, _I16.as_pointer())
        b_ptr = builder.bitcast(context.make_array(argtys[5])(context, builder, args[5]).data, _I32.as_pointer())
        c_ptr = builder.bitcast(context.make_array(argtys[8])(context, builder, args[8]).data, _I32.as_pointer())
        accs = [[cgutils.alloca_once_value(builder, ir.Constant(_V16, None)) for _ in range(n_tiles)]
                for _ in range(n_rows)]  # fmt: skip
        step_words = ir.Constant(intp, 16 * n_tiles)
        with cgutils.for_range(builder, steps_v) as outer:
            s = outer.index
            step_start = builder.add(a_start_v, builder.mul(s, a_step_v))
            row_starts = [builder.add(step_start, builder.mul(lda_v, ir.Constant(intp, r))) for r in range(n_rows)]
            b_outer = builder.add(b_start_v, builder.mul(builder.mul(s, k2_v), step_words))
            with cgutils.for_range(builder, k2_v) as loop:
                k = loop.index
                k_halves = builder.mul(k, ir.Constant(intp, 2))
                b_step = builder.add(b_outer, builder.mul(k, step_words))
                weights = []
                for j in range(n_tiles):
                    p = builder.gep(b_ptr, [builder.add(b_step, ir.Constant(intp, 16 * j))])
                    weights.append(builder.load(builder.bitcast(p, _V16.as_pointer()), align=4))
                for r in range(n_rows):
                    p = builder.gep(a_ptr, [builder.add(row_starts[r], k_halves)])
                    word = builder.load(builder.bitcast(p, _I32.as_pointer()), align=2)
                    broadcast = _splat_word(builder, word)
                    for j in range(n_tiles):
                        builder.store(madd_ir(builder, builder.load(accs[r][j]), broadcast, weights[j]), accs[r][j])
        for r in range(n_rows):
            row = builder.add(c_start_v, builder.mul(ldc_v, ir.Constant(intp, r)))
            for j in range(n_tiles):
                p = builder.gep(c_ptr, [builder.add(row, ir.Constant(intp, 16 * j))])
                builder.store(builder.load(accs[r][j]), builder.bitcast(p, _V16.as_pointer()), align=4)
        return context.get_dummy_value()

    return sig, codegen


PAIR_GROUPS = 2  # 16-lane groups per step of depthwise_pairs_row: independent accumulator chains


@intrinsic
def depthwise_pairs_row(typingctx, plane, row_base, taps, tap_count, weights, weight_stride, bias, rqv, out, count,
                        out_zp, act_min, act_max):  # fmt: skip
    """vnni.depthwise_pairs_row on any CPU: acc += madd(plane pair words, weight pair words), then requantized.

    Same operands and layout (fast_ops.depthwise_pairs): word j of tap t is
    weights[t*weight_stride + j] and plane[row_base + taps[t] + j]; int32 results requantized
    in registers and stored as int8 (the last partial group lane by lane).
    """
    sig = types.void(plane, row_base, taps, tap_count, weights, weight_stride, bias, rqv, out, count, out_zp,
                     act_min, act_max)  # fmt: skip

    def codegen(context, builder, signature, args):
        intp = context.get_value_type(types.intp)
        (plane_p, taps_p, w_p, b_p, r_p, o_p, row_base, tap_count, w_stride, count_v, zp, lo, hi,
         bounds) = _row_operands(context, builder, signature, args, None)  # fmt: skip
        groups = builder.sdiv(builder.add(count_v, ir.Constant(intp, 15)), ir.Constant(intp, 16))
        totals = [cgutils.alloca_once_value(builder, ir.Constant(_V16, None)) for _ in range(PAIR_GROUPS)]

        def load(ptr, index):
            return builder.load(builder.bitcast(builder.gep(ptr, [index]), _V16.as_pointer()), align=4)

        def emit_groups(first_group, n, variant):
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
                    builder.store(madd_ir(builder, builder.load(totals[g]), x, w), totals[g])
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
