"""The whole-graph executor: one compiled call runs a plan (plan.py) over a batch.

`run_plan` walks the op table for a group of up to `group` images at a time (the
arena holds one group's tensors, laid out once per model), dispatching on each
row's opcode to the module-level kernels in fast_conv.py and fast_ops.py: no
Python between ops, no params objects, no allocation. `run_plan_parallel` hands
out groups of images to the threads as they become free, each thread with its own
arena and scratch (one parallel region per call; Runtime uses it only for larger batches).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from edgecnn.deploy.runtime import fast_conv, fast_ops
from edgecnn.deploy.runtime.sync import atomic_add, atomic_read, cpu_yield, spin_pause

# Opcodes (column 0 of the op table).
OP_GEMM, OP_DEPTHWISE, OP_MAX_POOL, OP_AVERAGE_POOL, OP_COPY, OP_SOFTMAX, OP_ADD_SUB, OP_MEAN_HW, OP_LOOKUP = (
    1, 2, 3, 4, 5, 6, 7, 8, 9)

_U = np.uint64
SPINS = 64  # pause hints (~50 ns each) before a waiting thread starts yielding its core


@njit(cache=True)
def _run_group(ops, arena, images, a, c, i8p, w8p, i32p, i64p, f64p, kind):
    for i in range(ops.shape[0]):
        op = ops[i]
        code = op[0]
        if code == OP_GEMM:
            fast_conv.conv_gemm(op, arena, images, a, c, w8p, i32p, i64p, f64p, kind)
        elif code == OP_DEPTHWISE:
            fast_ops.depthwise(op, arena, images, c, i32p, i64p)
        elif code == OP_MAX_POOL:
            fast_ops.pool(op, arena, images, c, False)
        elif code == OP_AVERAGE_POOL:
            fast_ops.pool(op, arena, images, c, True)
        elif code == OP_COPY:
            fast_ops.copy(op, arena, images)
        elif code == OP_SOFTMAX:
            fast_ops.softmax(op, arena, images)
        elif code == OP_ADD_SUB:
            fast_ops.add_sub(op, arena, images)
        elif code == OP_MEAN_HW:
            fast_ops.mean_hw(op, arena, images, c)
        elif code == OP_LOOKUP:
            fast_ops.lookup(op, arena, images, i8p)


@njit(cache=True)
def run_plan(ops, i8p, w8p, i32p, i64p, f64p, io, x, out, first, count, group, arena, a, c, kind):
    """Images first .. first+count-1 of x (int8, flat) through the plan; their outputs into out (flat).

    io rows: [arena offset, bytes per image, position in an output row] for the input (row 0)
    and each output (rows 1..); an output row of `out` holds every output of one image.
    """
    in_off, in_size = io[0, 0], io[0, 1]
    out_row = 0
    for k in range(1, io.shape[0]):
        out_row += io[k, 1]
    for start in range(first, first + count, group):
        images = min(group, first + count - start)
        src = _U(start * in_size)
        for j in range(images * in_size):
            arena[_U(in_off + j)] = x[src + _U(j)]
        _run_group(ops, arena, images, a, c, i8p, w8p, i32p, i64p, f64p, kind)
        for k in range(1, io.shape[0]):
            off, size, pos = io[k, 0], io[k, 1], io[k, 2]
            for image in range(images):
                dst = _U((start + image) * out_row + pos)
                s = _U(off + image * size)
                for j in range(size):
                    out[dst + _U(j)] = arena[s + _U(j)]


@njit(parallel=True, cache=True)
def run_plan_parallel(ops, i8p, w8p, i32p, i64p, f64p, io, x, out, count, group, arenas, a_s, c_s, kind):
    """run_plan over `count` images, one group per task; each task uses its thread's arena and scratch.

    Runtime sets Numba's parallel chunk size to 1 around this call, so threads take groups
    as they finish (a thread slowed down by another process on a shared core does not hold
    the others back, as one fixed half of the batch each would).
    """
    tasks = (count + group - 1) // group
    for task in prange(tasks):
        thread = numba.get_thread_id()
        first = task * group
        run_plan(ops, i8p, w8p, i32p, i64p, f64p, io, x, out, first, min(group, count - first), group,
                 arenas[thread], a_s[thread], c_s[thread], kind)  # fmt: skip


@njit(cache=True)
def _run_piece(ops, i, arena, images, a, c, i8p, w8p, i32p, i64p, f64p, kind, piece, pieces):
    op = ops[i]
    code = op[0]
    if code == OP_GEMM:
        fast_conv.conv_gemm(op, arena, images, a, c, w8p, i32p, i64p, f64p, kind, piece, pieces)
    elif code == OP_DEPTHWISE:
        fast_ops.depthwise(op, arena, images, c, i32p, i64p, piece, pieces)
    else:
        _run_group(ops[i:i + 1], arena, images, a, c, i8p, w8p, i32p, i64p, f64p, kind)


def split_pieces(ops) -> np.ndarray:
    """Pieces per op for run_plan_split: 2 for convolutions with at least 2 output rows (or, on the
    im2col/1x1 path, 8 output pixels), 1 for everything else (too small to share)."""
    pieces = np.ones(ops.shape[0], np.int64)
    for i, op in enumerate(ops):
        if op[0] == OP_DEPTHWISE and op[fast_conv.F_OUT_H] >= 2:
            pieces[i] = 2
        elif op[0] == OP_GEMM and (op[fast_conv.F_OUT_H] >= 2 or op[fast_conv.F_OUT_W] >= 8):
            pieces[i] = 2
    return pieces


@njit(parallel=True, cache=True)
def run_plan_split(ops, pieces, i8p, w8p, i32p, i64p, f64p, io, x, out, count, arena, a_s, c_s, kind, workers,
                   sync):  # fmt: skip
    """Images 0 .. count-1 (count <= the plan's group) through the plan, `workers` threads sharing each op.

    sync holds two counters per op (pieces claimed, pieces done). A thread claims pieces of
    op i until none is left, then waits until all are done before it moves to op
    i+1, whose inputs are then complete (spinning briefly, then yielding the core: on a shared
    machine the thread waited for may be queued behind this one). Claiming instead of fixed shares means a thread that
    runs late (or alone, if the pool gives the region fewer threads) takes the pieces still
    open, so the loop never waits on a thread that is not there. Each thread uses its own
    scratch (by Numba thread id); every piece writes its own part of the shared arena.
    """
    in_off, in_size = io[0, 0], io[0, 1]
    for j in range(count * in_size):
        arena[_U(in_off + j)] = x[_U(j)]
    for i in range(sync.shape[0]):
        sync[i] = 0
    n_ops = ops.shape[0]
    for _ in prange(workers):
        thread = numba.get_thread_id()
        a, c = a_s[thread], c_s[thread]
        for i in range(n_ops):
            n = pieces[i]
            while True:
                piece = atomic_add(sync, 2 * i, 1)
                if piece >= n:
                    break
                _run_piece(ops, i, arena, count, a, c, i8p, w8p, i32p, i64p, f64p, kind, piece, n)
                atomic_add(sync, 2 * i + 1, 1)
            spins = 0
            while atomic_read(sync, 2 * i + 1) < n:
                if spins < SPINS:
                    spin_pause()
                    spins += 1
                else:
                    cpu_yield()
    out_row = 0
    for k in range(1, io.shape[0]):
        out_row += io[k, 1]
    for k in range(1, io.shape[0]):
        off, size, pos = io[k, 0], io[k, 1], io[k, 2]
        for image in range(count):
            dst = _U(image * out_row + pos)
            src = _U(off + image * size)
            for j in range(size):
                out[dst + _U(j)] = arena[src + _U(j)]
