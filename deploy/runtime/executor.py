"""The whole-graph executor: one compiled call runs a plan (plan.py) over a batch.

`run_plan` walks the op table for a group of up to `group` images at a time (the
arena holds one group's tensors, laid out once per model), dispatching on each
row's opcode to the module-level kernels in fast_conv.py and fast_ops.py: no
Python between ops, no params objects, no allocation. With 2+ threads, the
calling thread and a Runtime's helper threads (`split_worker`, started once, no
OpenMP region per call) share the work: `run_plan_shared` hands out tasks of
images (each thread with its own arena and scratch), `run_plan_split` the pieces
of each op of one pass (small batches of a large model).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit

from edgecnn.deploy.runtime import fast_conv, fast_ops
from edgecnn.deploy.runtime.sync import (
    array_address,
    atomic_add,
    atomic_cas,
    atomic_read,
    atomic_store,
    cpu_yield,
    int8_pointer,
    nap,
    spin_pause,
)

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
            fast_ops.depthwise(op, arena, images, c, i32p, i64p, 0, 1, kind)
        elif code == OP_MAX_POOL:
            fast_ops.pool(op, arena, images, c, False)
        elif code == OP_AVERAGE_POOL:
            fast_ops.pool(op, arena, images, c, True)
        elif code == OP_COPY:
            fast_ops.copy(op, arena, images)
        elif code == OP_SOFTMAX:
            fast_ops.softmax(op, arena, images)
        elif code == OP_ADD_SUB:
            fast_ops.add_sub(op, arena, images, i64p)
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


@njit(cache=True)
def _run_piece(ops, i, arena, images, a, c, i8p, w8p, i32p, i64p, f64p, kind, piece, pieces):
    op = ops[i]
    code = op[0]
    if code == OP_GEMM:
        fast_conv.conv_gemm(op, arena, images, a, c, w8p, i32p, i64p, f64p, kind, piece, pieces)
    elif code == OP_DEPTHWISE:
        fast_ops.depthwise(op, arena, images, c, i32p, i64p, piece, pieces, kind)
    elif code == OP_ADD_SUB:
        fast_ops.add_sub(op, arena, images, i64p, piece, pieces)
    else:
        _run_group(ops[i:i + 1], arena, images, a, c, i8p, w8p, i32p, i64p, f64p, kind)


def split_pieces(ops) -> np.ndarray:
    """Pieces per op for run_plan_split: 2 for convolutions with at least 2 output rows (or, on the
    im2col/1x1 path, 8 output pixels) and for ADD/SUB of at least ADD_SPLIT elements, 1 for
    everything else (too small to share)."""
    pieces = np.ones(ops.shape[0], np.int64)
    for i, op in enumerate(ops):
        if op[0] == OP_DEPTHWISE and op[fast_conv.F_OUT_H] >= 2:
            pieces[i] = 2
        elif op[0] == OP_GEMM and (op[fast_conv.F_OUT_H] >= 2 or op[fast_conv.F_OUT_W] >= 8):
            pieces[i] = 2
        elif op[0] == OP_ADD_SUB and op[fast_ops.F_SIZE] >= ADD_SPLIT:
            pieces[i] = 2
    return pieces


ADD_SPLIT = 2048  # elements per image of an ADD/SUB worth sharing (~1 us of work)

# The split executor's control words (int64, one cache line each): the job's number, its image count,
# and the workers' stop flag. Its counters: per op, pieces claimed and pieces done, one cache line
# each, both tagged with the job's number above TAG_SHIFT so that a worker still looking at an
# earlier job (descheduled, or just late) can never claim or wait on the current one's pieces.
CTL_JOB, CTL_COUNT, CTL_STOP, CTL_WORDS = 0, 8, 16, 32
# A job is either one pass split op by op (MODE_SPLIT, run_plan_split) or a batch in tasks of images, each
# thread with its own arena (MODE_BATCH, run_plan_shared: the input's and output's addresses, images per task).
CTL_MODE, CTL_X, CTL_OUT, CTL_TASK = 17, 18, 19, 20
MODE_SPLIT, MODE_BATCH = 0, 1
TAG_SHIFT = 20
LINE = 8  # int64s per cache line
IDLE_SPINS = 20_000  # polls with `pause` (~50 ns each, ~1 ms) before an idle worker starts napping
NAP_POLLS = 200  # then polls 50 us apart (~20 ms; 2,000 cost ~65 ms of CPU in the first idle second),
# then 1 ms apart (~1 s: a caller coming back within a second, e.g. a benchmark's next turn after other
# engines', finds the helper within ~1 ms), then 10 ms apart (each wake-up costs CPU time on a VM).
NAP_LONG_POLLS = 1_000


def split_sync(ops) -> np.ndarray:
    """The counters run_plan_split and split_worker share (two cache lines per op)."""
    return np.zeros(2 * LINE * max(1, ops.shape[0]), np.int64)


@njit(cache=True)
def _claim_ops(ops, pieces, arena, count, a, c, i8p, w8p, i32p, i64p, f64p, kind, sync, job):
    """Run the pieces of every op this thread can claim, op after op; False if the job ended under it.

    After op i's pieces are all claimed, wait until they are all done (op i+1 reads them): a
    few `pause` hints, then sched_yield per poll (the thread waited for may be queued behind
    this one on a shared machine).
    """
    tag = job << TAG_SHIFT
    for i in range(ops.shape[0]):
        n = pieces[i]
        claims, dones = 2 * LINE * i, 2 * LINE * i + LINE
        while True:
            v = atomic_read(sync, claims)
            if v - tag >= n or v < tag:  # all claimed, or (v < tag) a later job reset the counters
                if v < tag or v - tag >= 1 << TAG_SHIFT:
                    return False
                break
            if atomic_cas(sync, claims, v, v + 1):
                _run_piece(ops, i, arena, count, a, c, i8p, w8p, i32p, i64p, f64p, kind, v - tag, n)
                atomic_add(sync, dones, 1)
        spins = 0
        while True:
            v = atomic_read(sync, dones)
            if v - tag >= n:
                if v - tag >= 1 << TAG_SHIFT:
                    return False
                break
            if v < tag:
                return False
            if spins < SPINS:
                spin_pause()
                spins += 1
            else:
                cpu_yield()
    return True


@njit(cache=True)
def run_plan_split(ops, pieces, i8p, w8p, i32p, i64p, f64p, io, x, out, count, arena, a, c, kind, sync, ctl):
    """Images 0 .. count-1 (count <= the plan's group) through the plan, the calling thread and the
    split_worker threads (if any run) sharing each op's pieces.

    The job is posted by numbering it (ctl[CTL_JOB]) after its counters are reset and its input
    is in the arena; a worker that sees a new number joins in and claims pieces of the op the
    job is at; the calling thread claims too, and waits only for pieces a worker has claimed.
    No thread ever waits for a worker to start, so a worker that is asleep, descheduled or
    absent (one thread, or a forked child) only means fewer hands. Each thread uses its own
    scratch; every piece writes its own part of the shared arena.
    """
    in_off, in_size = io[0, 0], io[0, 1]
    for j in range(count * in_size):
        arena[_U(in_off + j)] = x[_U(j)]
    job = ctl[CTL_JOB] + 1
    for i in range(sync.shape[0]):
        atomic_store(sync, i, job << TAG_SHIFT)
    atomic_store(ctl, CTL_MODE, MODE_SPLIT)
    atomic_store(ctl, CTL_COUNT, count)
    atomic_store(ctl, CTL_JOB, job)
    _claim_ops(ops, pieces, arena, count, a, c, i8p, w8p, i32p, i64p, f64p, kind, sync, job)
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


@njit(cache=True)
def _claim_tasks(ops, i8p, w8p, i32p, i64p, f64p, io, x, out, count, task, arena, a, c, kind, sync, job):
    """Run tasks of `task` images (run_plan, this thread's arena) while any is unclaimed; False if the job ended."""
    tag = job << TAG_SHIFT
    tasks = (count + task - 1) // task
    while True:
        v = atomic_read(sync, 0)
        if v < tag or v - tag >= tasks:
            return v >= tag and v - tag < 1 << TAG_SHIFT
        if atomic_cas(sync, 0, v, v + 1):
            first = (v - tag) * task
            run_plan(ops, i8p, w8p, i32p, i64p, f64p, io, x, out, first, min(task, count - first), task, arena, a, c,
                     kind)  # fmt: skip
            atomic_add(sync, LINE, 1)


@njit(cache=True)
def run_plan_shared(ops, i8p, w8p, i32p, i64p, f64p, io, x, out, count, task, arena, a, c, kind, sync, ctl):
    """run_plan over `count` images, in tasks of `task` images that the calling thread and the split_worker
    threads claim as they become free (each with its own arena and scratch); returns when all are done.

    Posted like run_plan_split's jobs (counters tagged with the job's number, then the number), so
    the caller never waits for a helper to start, only for tasks a helper has claimed.
    """
    job = ctl[CTL_JOB] + 1
    tag = job << TAG_SHIFT
    atomic_store(sync, 0, tag)  # tasks claimed
    atomic_store(sync, LINE, tag)  # tasks done
    atomic_store(ctl, CTL_MODE, MODE_BATCH)
    atomic_store(ctl, CTL_X, array_address(x))
    atomic_store(ctl, CTL_OUT, array_address(out))
    atomic_store(ctl, CTL_TASK, task)
    atomic_store(ctl, CTL_COUNT, count)
    atomic_store(ctl, CTL_JOB, job)
    _claim_tasks(ops, i8p, w8p, i32p, i64p, f64p, io, x, out, count, task, arena, a, c, kind, sync, job)
    tasks = (count + task - 1) // task
    spins = 0
    while atomic_read(sync, LINE) - tag < tasks:
        if spins < SPINS:
            spin_pause()
            spins += 1
        else:
            cpu_yield()


@njit(cache=True, nogil=True)
def split_worker(ctl, ops, pieces, i8p, w8p, i32p, i64p, f64p, io, arena, own_arena, a, c, kind, sync):
    """A helper thread's loop (run without the GIL): join each job run_plan_split or run_plan_shared posts,
    until ctl[CTL_STOP]. arena is the one split jobs share, own_arena this thread's for batch jobs.

    Between jobs it polls: spinning with `pause` for IDLE_SPINS polls (back-to-back calls find
    it awake), then napping 50 us NAP_POLLS times, 1 ms NAP_LONG_POLLS times, then 10 ms (an idle
    runtime costs little; a job posted meanwhile starts without it, and it joins when it wakes:
    after a long idle spell the first ~10 ms of calls may run on the caller alone).
    """
    in_size = io[0, 1]
    out_row = 0
    for k in range(1, io.shape[0]):
        out_row += io[k, 1]
    seen = atomic_read(ctl, CTL_JOB)
    idle = 0
    while atomic_read(ctl, CTL_STOP) == 0:
        job = atomic_read(ctl, CTL_JOB)
        if job != seen:
            seen = job
            count = atomic_read(ctl, CTL_COUNT)
            if atomic_read(ctl, CTL_MODE) == MODE_SPLIT:
                _claim_ops(ops, pieces, arena, count, a, c, i8p, w8p, i32p, i64p, f64p, kind, sync, job)
            else:
                x = numba.carray(int8_pointer(atomic_read(ctl, CTL_X)), count * in_size)
                out = numba.carray(int8_pointer(atomic_read(ctl, CTL_OUT)), count * out_row)
                _claim_tasks(ops, i8p, w8p, i32p, i64p, f64p, io, x, out, count, atomic_read(ctl, CTL_TASK), own_arena,
                             a, c, kind, sync, job)  # fmt: skip
            idle = 0
        elif idle < IDLE_SPINS:
            spin_pause()
            idle += 1
        elif idle < IDLE_SPINS + NAP_POLLS:
            nap(50)
            idle += 1
        elif idle < IDLE_SPINS + NAP_POLLS + NAP_LONG_POLLS:
            nap(1000)
            idle += 1
        else:
            nap(10000)
