"""A small pool of Python threads for chunked kernels: numpy's BLAS and nogil Numba calls.

Numba's own parallel regions cannot call BLAS, and OpenBLAS' threads and Numba's
OpenMP threads fight over a 2-core machine when both are active. So kernels that
mix the two (conv_gemm) or that are short enough for a parallel region's set-up to
matter (batchnorm) split their work into chunks fixed by the shapes and run them
here: the caller plus get_num_threads() - 1 workers, each claiming the next chunk as
it finishes one. Inside a worker numpy's OpenBLAS runs on that one thread (set per
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
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import get_num_threads

_pool_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
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


def _workers(n):
    """A pool of n - 1 threads (the caller is the n-th), each with single-threaded BLAS.

    A forked child inherits the pool object but not its threads: it gets a new pool."""
    global _pool, _pool_size, _pool_pid
    with _pool_lock:
        if _pool is not None and _pool_pid != os.getpid():
            _pool = None
        if _pool is None or _pool_size < n - 1:
            if _pool is not None:
                _pool.shutdown(wait=True)
            _pool_pid = os.getpid()
            _pool = ThreadPoolExecutor(max_workers=n - 1, thread_name_prefix="edgecnn-chunks",
                                       initializer=single_blas_thread)
            _pool_size = n - 1
        return _pool


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


def run_chunks(task, n_chunks):
    """task(c) for every chunk c in 0..n_chunks-1, on up to get_num_threads() threads.

    Threads claim the next chunk as they finish one (next() on a shared counter is atomic
    under the GIL), so a thread slowed by another process on its core takes fewer chunks.
    """
    n = max(1, min(get_num_threads(), n_chunks))
    previous = _blas_threads(1)  # the caller's own BLAS setting comes back afterwards
    try:
        if n == 1:
            for c in range(n_chunks):
                task(c)
            return
        claim = itertools.count()

        def worker():
            for c in iter(lambda: next(claim), None):
                if c >= n_chunks:
                    return
                task(c)

        futures = [_workers(n).submit(worker) for _ in range(1, n)]
        worker()
        for f in futures:
            f.result()
    finally:
        if previous is not None and previous != 1:
            _blas_threads(previous)


ELEMENTWISE_MIN = 1 << 16  # smaller arrays run in one piece: a dispatch costs ~20-70 us
ELEMENTWISE_CHUNKS = 8


def over_spans(size, fn):
    """fn(start, stop) over fixed spans of 0..size (in one piece when small): for elementwise
    passes, which are memory-bound in a training step and gain from both cores' bandwidth."""
    if size < ELEMENTWISE_MIN:
        fn(0, size)
        return
    run_chunks(lambda k: fn(k * size // ELEMENTWISE_CHUNKS, (k + 1) * size // ELEMENTWISE_CHUNKS),
               ELEMENTWISE_CHUNKS)


def sum_in_order(parts):
    """parts[0] + parts[1] + ... in chunk order: the same sum whatever thread made each part."""
    total = parts[0].copy()
    for part in parts[1:]:
        total += part
    return total
