"""A small pool of Python threads for chunked kernels: numpy's BLAS and nogil Numba calls.

Numba's own parallel regions cannot call BLAS, and OpenBLAS' threads and Numba's
OpenMP threads fight over a 2-core machine when both are active. So kernels that
mix the two (conv_gemm) or that are short enough for a parallel region's set-up to
matter (batchnorm) split their work into chunks fixed by the shapes and run them
here: the caller plus get_num_threads() - 1 helper threads, each claiming the next
chunk as it finishes one; helpers spin briefly between calls (see _Helpers). Inside a worker numpy's OpenBLAS runs on that one thread (set per
thread, so the rest of the process keeps its BLAS threads). numpy's matmul and
`nogil=True` Numba kernels release the GIL, so the threads run at once.

Results never depend on the thread count or on which thread ran a chunk: callers
write each chunk's result to its own place and combine them in chunk order.
"""

from __future__ import annotations

import ctypes
import glob
import itertools
import os
import threading
import time

import numpy as np
from numba import get_num_threads, njit, types
from numba.extending import intrinsic

_pool_lock = threading.Lock()
_pool = None  # _Helpers
_pool_pid = 0
_local = threading.local()


def _openblas_local_threads():
    """numpy's OpenBLAS `openblas_set_num_threads_local` (per thread, OpenBLAS >= 0.3.27), or None."""
    libs = glob.glob(os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs", "*openblas*"))
    for path in libs:
        try:
            fn = ctypes.CDLL(path).openblas_set_num_threads_local
        except (OSError, AttributeError):
            continue
        fn.argtypes, fn.restype = [ctypes.c_int], ctypes.c_int
        return fn
    return None


_set_local_threads = None  # resolved on first use: the ctypes function, or False when there is none


def _blas_threads(n):
    """Set numpy's BLAS thread count for the calling thread; returns the previous count (or None)."""
    global _set_local_threads
    if _set_local_threads is None:
        _set_local_threads = _openblas_local_threads() or False
    return _set_local_threads(n) if _set_local_threads else None


def single_blas_thread():
    """Make numpy's BLAS single-threaded in the calling (worker) thread, for good."""
    if not getattr(_local, "blas_set", False):
        _blas_threads(1)
        _local.blas_set = True


def scratch(name, shape, dtype):
    """A per-thread buffer reused across calls (contents undefined)."""
    bufs = getattr(_local, "bufs", None)
    if bufs is None:
        bufs = _local.bufs = {}
    key = (name, np.dtype(dtype))
    size = int(np.prod(shape))
    buf = bufs.get(key)
    if buf is None or buf.size < size:
        buf = bufs[key] = np.empty(max(size, 1), dtype=dtype)
    return buf[:size].reshape(shape)


# ----------------------------------------------------------------------------- helper threads
#
# Why not a ThreadPoolExecutor: its workers sleep on a futex between calls, and waking a sleeping
# vCPU is slow (issue 9's runtime measured the same of OpenMP's PASSIVE wait). A training step makes
# ~50 short parallel calls, ~50-170 us apart, so each helper spins (no GIL: a nogil njit loop of
# atomic loads) for SPIN_LOADS reads (~0.3 ms) after each call before it sleeps on a Condition.
# Only while the process really gets its cores: a helper spinning on the core the caller needs
# (another process holding the other one) made steps slower (LeNet-5 at batch 64: 8.5 vs 7.0 ms,
# with a niced VM on one core while the load average read 2.0, so the load average is no guide).
# So the process's own CPU time per wall second, looked at every SPIN_INTERVAL, decides: helpers
# spin only while it was >= SPIN_MIN_SHARE of the threads' count (measured on 2 vCPUs, resnet8
# steps: 1.65-1.75 cores with both free, 1.0-1.35 with one taken).

SPIN_LOADS = 1 << 20
SPIN_MIN_SHARE = 0.7
SPIN_INTERVAL = 0.5
_spin_check = [0.0, False, 0.0]  # when last looked at, the verdict, process CPU seconds then


def _may_spin():
    """Did this process get nearly all of its threads' cores lately? (Then a spinning helper costs nobody.)"""
    now = time.monotonic()
    last = _spin_check
    if now - last[0] >= SPIN_INTERVAL:
        cpu = time.process_time()
        if last[0]:
            share = (cpu - last[2]) / (now - last[0])
            last[1] = share >= SPIN_MIN_SHARE * ((_pool.size + 1) if _pool is not None else 1)
        last[0], last[2] = now, cpu
    return last[1]


@intrinsic
def _load_acquire(typingctx, flags):
    """flags[0] read with an atomic acquire load (a plain load could be hoisted out of a spin loop)."""
    if not (isinstance(flags, types.Array) and flags.dtype == types.int64):
        return None

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        return builder.load_atomic(ary.data, ordering="acquire", align=8)

    return types.int64(flags), codegen


@njit(cache=True, nogil=True)
def _spin_while(flags, value, max_loads):
    """Spin without the GIL while flags[0] == value, at most max_loads reads; returns flags[0]."""
    v = value
    for _ in range(max_loads):
        v = _load_acquire(flags)
        if v != value:
            break
    return v


class _Job:
    def __init__(self, task, n_chunks):
        self.task, self.n_chunks = task, n_chunks
        self.claim = itertools.count()
        self.finished = np.zeros(1, np.int64)  # chunks done (written under `lock`, read by a spinning caller)
        self.lock = threading.Lock()
        self.all_done = threading.Event()  # for a caller that does not spin
        self.error = None

    def work(self):
        for c in iter(lambda: next(self.claim), None):
            if c >= self.n_chunks:
                return
            try:
                if self.error is None:
                    self.task(c)
            except BaseException as exc:  # re-raised by the caller
                self.error = exc
            with self.lock:
                self.finished[0] += 1
                if self.finished[0] == self.n_chunks:
                    self.all_done.set()


class _Helpers:
    """n daemon threads that run the chunks of posted jobs beside the caller."""

    def __init__(self, n):
        self.pid = os.getpid()
        self.posted = np.zeros(1, np.int64)  # job number, bumped by post()
        self.cond = threading.Condition()
        self.job = None
        self.busy = threading.Lock()  # one job at a time; a concurrent caller runs its chunks alone
        self.size = n
        for _ in range(n):
            threading.Thread(target=self._loop, name="edgecnn-chunks", daemon=True).start()

    def _loop(self):
        single_blas_thread()
        _local.helper = True
        seen = 0
        while True:
            if _spin_while(self.posted, seen, SPIN_LOADS if _may_spin() else 0) == seen:
                with self.cond:
                    while self.posted[0] == seen:
                        self.cond.wait()
            seen = int(self.posted[0])
            self.job.work()

    def run(self, job):
        self.job = job
        with self.cond:
            self.posted[0] += 1
            self.cond.notify_all()
        job.work()
        # wait only for chunks a helper has claimed: spinning if a core is free (a spinning caller
        # on the core the helper needs would only slow it down), else asleep
        done = int(job.finished[0])
        while done < job.n_chunks and _may_spin():
            if _spin_while(job.finished, done, SPIN_LOADS) == done:
                break
            done = int(job.finished[0])
        job.all_done.wait()


def _helpers(n):
    """n helper threads, started on first use; a forked child (which has none of them) starts its own."""
    global _pool, _pool_pid
    with _pool_lock:
        if _pool is None or _pool_pid != os.getpid() or _pool.size < n:
            _pool, _pool_pid = _Helpers(n), os.getpid()
        return _pool


def run_chunks(task, n_chunks):
    """task(c) for every chunk c in 0..n_chunks-1, on up to get_num_threads() threads.

    Threads claim the next chunk as they finish one (next() on a shared counter is atomic
    under the GIL), so a thread slowed by another process on its core takes fewer chunks.
    A call from inside a chunk, or while another thread's call runs, runs its chunks alone.
    """
    n = max(1, min(get_num_threads(), n_chunks))
    previous = _blas_threads(1)  # the caller's own BLAS setting comes back afterwards
    try:
        job = _Job(task, n_chunks)
        pool = _helpers(n - 1) if n > 1 and not getattr(_local, "helper", False) else None
        if pool is None or not pool.busy.acquire(blocking=False):
            job.work()
        else:
            try:
                pool.run(job)
            finally:
                pool.busy.release()
        if job.error is not None:
            raise job.error
    finally:
        if previous is not None and previous != 1:
            _blas_threads(previous)


ELEMENTWISE_MIN = 1 << 16  # values per span at least (smaller arrays run in one piece): a dispatch costs ~20-70 us
ELEMENTWISE_CHUNKS = 16  # spans at most; no sums across spans, so finer spans only even out the threads' ends


def over_spans(size, fn):
    """fn(start, stop) over spans of 0..size (in one piece when small): for elementwise
    passes, which are memory-bound in a training step and gain from both cores' bandwidth."""
    n = min(ELEMENTWISE_CHUNKS, size // ELEMENTWISE_MIN)
    if n <= 1:
        fn(0, size)
        return
    run_chunks(lambda k: fn(k * size // n, (k + 1) * size // n), n)


def sum_in_order(parts):
    """parts[0] + parts[1] + ... in chunk order: the same sum whatever thread made each part."""
    total = parts[0].copy()
    for part in parts[1:]:
        total += part
    return total
