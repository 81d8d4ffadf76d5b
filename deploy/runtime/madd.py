"""The portable GEMM micro-kernel: int16 pairs multiplied and added in int32 lanes.

For CPUs without AVX-512 VNNI (x86 with AVX2 or AVX-512BW, ARM). Each int32 word of an
operand holds two int16s (its low half first); for every output lane

    acc += sext(a.lo) * sext(b.lo) + sext(a.hi) * sext(b.hi)

On x86 that is the `vpmaddwd` intrinsic (then `vpaddd`), zmm with AVX-512BW, ymm with AVX2;
elsewhere (ARM) generic IR: even/odd shufflevectors -> sext to i32 -> mul -> add, which LLVM
lowers to widening multiplies. See madd_ir for why x86 does not use the generic form.

`madd_tile` is the GEMM tile (as vnni.dpbusd_tile, one k pair per step instead of four
bytes): A is int16 (activations x + 128, 0..255, fast_conv.py's unsigned form, so the
same folded bias serves both paths), B is packed [k2][tiles][16 lanes][2 x int16] in
int32 words (plan.pack_pairs): 64 bytes per 16 output channels per k pair.

Exactness: each product is at most 255 * 128 = 32640 in magnitude (A in 0..255, weights in
-128..127), so it is exact in int32, and a pair's sum (|.| <= 65280) too. `vpmaddwd`'s only
wrap case is both products equal to (-32768)^2, impossible here. The accumulators are int32
lanes that wrap like TFLite's sums (LLVM's `add` is modular), so every path gives TFLite's
int32 accumulator bit for bit.

Register tiles: `rows` x `tiles` accumulators of 16 int32 lanes, kept in registers (allocas
promoted by mem2reg). A 16-lane accumulator is one zmm with AVX-512BW, two ymm with AVX2
(16 registers), four q registers on NEON (32): cpu.py's MADD_ROWS / MADD_TILES bound the
shapes so that none spills on the host (chosen from its features at import, compiled on
first use).
"""

from __future__ import annotations

from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

from edgecnn.deploy.runtime.cpu import MADD_ISA, MADD_ROWS, MADD_TILES
from edgecnn.deploy.runtime.vnni import tile_codegen

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
        pairs = [builder.bitcast(a_words, _V32_I16), builder.bitcast(b_words, _V32_I16)]
        return builder.add(acc, builder.call(fn, pairs))
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


@intrinsic
def madd_tile(typingctx, a, a_start, lda, a_step, steps, b, b_start, k2, c, c_start, ldc, count, a_next, c_next,
              rows, tiles):  # fmt: skip
    """C[c_start + r*ldc + 16*j + l] = sum over s < steps, k < 2*k2 of A[a_start + r*lda + s*a_step + k] * B[...],
    for r < rows (1..MADD_ROWS), j < tiles (1..MADD_TILES), and `count` tiles, the i-th with
    a_start + i*a_next and c_start + i*c_next (vnni.tile_codegen).

    A is an int16 array (offsets in int16s; each row's pair k read as one int32 word), B an
    int32 array of pair words, steps * k2 groups of [tiles][16] words (offsets in words), C
    int32. steps and a_step: fast_conv's direct convolution (one step per filter row), as
    vnni.dpbusd_tile.
    """
    sig = types.void(a, a_start, lda, a_step, steps, b, b_start, k2, c, c_start, ldc, count, a_next, c_next, rows,
                     tiles)  # fmt: skip
    return sig, tile_codegen(MADD_ROWS, MADD_TILES, madd_ir)
