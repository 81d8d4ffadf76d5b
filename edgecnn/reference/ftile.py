"""A float32 register tile for the trainer's convolutions: `rows` x (16 * `tiles`) accumulators.

    C[c0 + i*c_next + r*ldc + 16*j + l] += sum over k < K of
        A[a0 + roff[r0 + i*rows + r] + koff[k]] * B[b0 + k*ldb + 16*j + l]

for every i < count (tiles one after another), r < rows, j < tiles, l < 16.

Why: the tap loops (taps.py) stream one output row per weight, so every multiply-add
loads and stores its accumulator (one FMA per ~1.5 cycles at best). Here the
accumulators are LLVM values held in zmm registers for the whole K loop: per k, one
broadcast of A per row (folded into the FMA as {1to16}) and one load of B per 16
channels, then rows * tiles FMAs. The two offset tables make it a convolution without
an im2col buffer: forward, rows are output pixels (roff: pixel offsets in the padded
NHWC image) and k runs over the taps (koff: tap offsets); for the weight gradient rows
are taps and k runs over output pixels (then B is dy, already NHWC).

The sum over k runs in order from C's value, one FMA per k (llvm.fmuladd: fused where
the CPU has FMA), so a result never depends on how rows are grouped into tiles.
`rows` and `tiles` are run-time values (1..ROWS_FOR_TILES[tiles - 1], 1..4) picking one
unrolled shape through a switch; other shapes do nothing, callers never ask for them
(tile_rows). Without AVX-512 a 16-lane vector takes two ymm or four NEON registers, so the
tiles shrink (spills would only cost speed).
"""

from __future__ import annotations

from llvmlite import ir
from numba import njit
from numba.core import cgutils, types
from numba.extending import intrinsic

from edgecnn.host_cpu import host_features
from edgecnn.ir_switch import switch_on_shape

AVX512 = bool(host_features().get("avx512f"))
LANES = 16
MAX_TILES = 4
# Rows per tile at most, for 1..4 vectors of 16: rows x vectors accumulators, at most 28 of AVX-512's
# 32 zmm (B's vectors and a broadcast need the rest; measured per resnet8 layer at batch 64, the
# weight gradient ran up to 1.5x slower with 14 rows of 2 vectors or 6 rows of 4 than with these).
# A 16-lane vector takes 2 ymm (AVX2) or 4 NEON registers: 4 accumulators at most there.
ROWS_FOR_TILES = (14, 10, 9, 7) if AVX512 else (4, 2, 1, 1)
MAX_ROWS = max(ROWS_FOR_TILES)

_F32 = ir.FloatType()
_V16 = ir.VectorType(_F32, LANES)
_I32 = ir.IntType(32)


def _codegen(context, builder, signature, args):
    argtys = signature.args
    intp = context.get_value_type(types.intp)

    def data(i, elem):
        return builder.bitcast(context.make_array(argtys[i])(context, builder, args[i]).data, elem.as_pointer())

    def value(i):
        return context.cast(builder, args[i], argtys[i], types.intp)

    a_ptr, roff_ptr, koff_ptr, b_ptr, c_ptr = data(0, _F32), data(2, intp), data(4, intp), data(6, _F32), data(9, _F32)
    (a0, r0, k_len, b0, ldb, c0, ldc, count, c_next, rows_v, tiles_v) = (
        value(i) for i in (1, 3, 5, 7, 8, 10, 11, 12, 13, 14, 15))  # fmt: skip
    fmuladd = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_V16, [_V16, _V16, _V16]),
                                             "llvm.fmuladd.v16f32")  # fmt: skip
    accs = [[cgutils.alloca_once_value(builder, ir.Constant(_V16, None)) for _ in range(MAX_TILES)]
            for _ in range(MAX_ROWS)]  # fmt: skip
    zero_mask = ir.Constant(ir.VectorType(_I32, LANES), [0] * LANES)

    def c_vector(base, r, j):
        offset = builder.add(base, builder.add(builder.mul(ldc, ir.Constant(intp, r)), ir.Constant(intp, LANES * j)))
        return builder.bitcast(builder.gep(c_ptr, [offset]), _V16.as_pointer())

    def shape(n_rows, n_tiles):
        with cgutils.for_range(builder, count) as repeat:
            i = repeat.index
            c_base = builder.add(c0, builder.mul(i, c_next))
            r_base = builder.add(r0, builder.mul(i, ir.Constant(intp, n_rows)))
            row_starts = []
            for r in range(n_rows):
                off = builder.load(builder.gep(roff_ptr, [builder.add(r_base, ir.Constant(intp, r))]))
                row_starts.append(builder.add(a0, off))
            for r in range(n_rows):
                for j in range(n_tiles):
                    builder.store(builder.load(c_vector(c_base, r, j), align=4), accs[r][j])
            with cgutils.for_range(builder, k_len) as loop:
                k = loop.index
                koff = builder.load(builder.gep(koff_ptr, [k]))
                b_row = builder.add(b0, builder.mul(k, ldb))
                weights = []
                for j in range(n_tiles):
                    p = builder.gep(b_ptr, [builder.add(b_row, ir.Constant(intp, LANES * j))])
                    weights.append(builder.load(builder.bitcast(p, _V16.as_pointer()), align=4))
                for r in range(n_rows):
                    x = builder.load(builder.gep(a_ptr, [builder.add(row_starts[r], koff)]))
                    one = builder.insert_element(ir.Constant(_V16, ir.Undefined), x, ir.Constant(_I32, 0))
                    broadcast = builder.shuffle_vector(one, ir.Constant(_V16, ir.Undefined), zero_mask)
                    for j in range(n_tiles):
                        acc = builder.load(accs[r][j])
                        builder.store(builder.call(fmuladd, [broadcast, weights[j], acc]), accs[r][j])
            for r in range(n_rows):
                for j in range(n_tiles):
                    builder.store(builder.load(accs[r][j]), c_vector(c_base, r, j), align=4)

    shapes = [(r, t) for t in range(1, MAX_TILES + 1) for r in range(1, ROWS_FOR_TILES[t - 1] + 1)]
    switch_on_shape(builder, intp, rows_v, tiles_v, shapes, shape, "ftile")
    return context.get_dummy_value()


@intrinsic
def _ftile(typingctx, a, a0, roff, r0, koff, k_len, b, b0, ldb, c, c0, ldc, count, c_next, rows, tiles):
    """The tile of the module docstring; a, b, c flat float32 arrays, roff and koff intp."""
    sig = types.void(a, a0, roff, r0, koff, k_len, b, b0, ldb, c, c0, ldc, count, c_next, rows, tiles)
    return sig, _codegen


@njit(cache=True, nogil=True, inline="always")
def tile_rows(n, tiles):
    """Rows per tile for n rows of `tiles` vectors: the fewest tiles, as even as possible."""
    n_tiles = -(-n // ROWS_FOR_TILES[tiles - 1])
    return -(-n // n_tiles)


@njit(cache=True, nogil=True, inline="always")
def ftile_span(a, a0, roff, r0, n_rows, koff, k_len, b, b0, ldb, c, c0, ldc, width):
    """C rows [0, n_rows) (each `width` floats, a multiple of 16, in blocks of up to 4 vectors) of the
    tile product, with row r reading roff[r0 + r]: the whole span in at most two calls per block."""
    for j0 in range(0, width, MAX_TILES * LANES):
        tiles = min(MAX_TILES, (width - j0) // LANES)
        rows = tile_rows(n_rows, tiles)
        full = n_rows // rows
        if full:
            _ftile(a, a0, roff, r0, koff, k_len, b, b0 + j0, ldb, c, c0 + j0, ldc, full, rows * ldc, rows, tiles)
        rest = n_rows - full * rows
        if rest:
            _ftile(a, a0, roff, r0 + full * rows, koff, k_len, b, b0 + j0, ldb, c, c0 + j0 + full * rows * ldc, ldc,
                   1, 0, rest, tiles)  # fmt: skip
