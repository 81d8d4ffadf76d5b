"""Runtime: runs an Int8Graph on batches with the Numba kernels, bit-exact with LiteRT BUILTIN_REF."""

from __future__ import annotations

import os
import threading
import time
import weakref
from contextlib import contextmanager

import numba
import numpy as np

from edgecnn.deploy.runtime.cpu import GEMM_PORTABLE, GEMM_VNNI, kernel_choice
from edgecnn.deploy.runtime.plan import Unsupported, build_plan
from edgecnn.deploy.runtime.prepare import PreparedOp, prepare_graph
from edgecnn.errors import ModelError, ShapeError
from edgecnn.int8.graph import Int8Graph

DEFAULT_CHUNK = 1024  # images per pass through the graph: bounds memory (~10 kB per LeNet image per tensor)
SERIAL_BELOW = 16  # smaller batches run on one thread: a parallel region's barrier costs more than they do
# ... unless one pass (a group of images, plan.py) has at least this many MACs: then the calling thread and
# helper threads share each op (executor.run_plan_split; ~1 us per op to hand over, DS-CNN's ~13 ops ~60 us).
SPLIT_MACS = 1_000_000
TASKS_PER_THREAD = 4


@contextmanager
def _numba_threads(count: int):
    """Run the block with `count` Numba threads (numba's setting is per calling thread)."""
    previous = numba.get_num_threads()
    numba.set_num_threads(count)
    try:
        yield
    finally:
        numba.set_num_threads(previous)


_load_checked = [0.0, 0.0]  # monotonic time of the last look, and the 1-minute load average then
BATCH_MARGIN = 4  # the batch path keeps its helpers up to a load of cores + 4 (see cores_free)


def cores_free(margin: int = 1) -> bool:
    """Whether the 1-minute load average is below the core count + margin (looked up at most once a second).

    margin 1 (the split executor): a process that keeps its own threads busy (a benchmark, a
    batch job) raises the load average by about one per thread on an otherwise idle machine.
    The split executor makes the threads wait for each other after every op; when other
    processes keep the cores busy, the thread waited for is often off its core for a whole
    time slice, and one image on one thread is faster (measured: ResNet-8 batch 1, one busy
    process at nice 0 beside the benchmark: split 2,983 vs one thread 3,598 images/s; with
    OpenMP at load ~8: 513 vs ~2,000).
    margin BATCH_MARGIN (the batch path): tasks of whole images, claimed as threads become
    free, wait for each other once per call; with the same busy process two threads still won
    (DS-CNN batch 64: 11,453 vs 8,455 images/s; MobileNetV1: 3,016 vs 2,180). Speed only: every
    path gives the same bytes.
    """
    now = time.monotonic()
    if now - _load_checked[0] > 1.0:
        try:
            _load_checked[1] = os.getloadavg()[0]
        except OSError:  # no load average on this platform
            _load_checked[1] = 0.0
        _load_checked[0] = now
    return _load_checked[1] < (os.cpu_count() or 1) + margin


def _task_images(images: int, threads: int, group: int) -> int:
    """Images per task of the parallel executor: at most the plan's group and images / (TASKS_PER_THREAD *
    threads) (a thread slowed by another process hands its share to the other), and of those sizes the
    one whose busiest thread has the fewest images (ResNet-8, 64 images, group 5: tasks of 4, 8 per
    thread = 32 images, not tasks of 5, 7 on one thread = 35), the largest on a tie."""
    limit = max(1, min(group, -(-images // (TASKS_PER_THREAD * threads))))
    best, best_load = limit, None
    for size in range(limit, 0, -1):
        load = -(-(-(-images // size)) // threads) * size  # tasks per busiest thread x task size
        if best_load is None or load < best_load:
            best, best_load = size, load
    return best


def _stop_helpers(ctl: np.ndarray) -> None:
    from edgecnn.deploy.runtime.executor import CTL_STOP

    ctl[CTL_STOP] = 1


class _Helpers:
    """threads - 1 daemon threads, each looping in executor.split_worker (no GIL held), for one plan.

    They join the jobs of executor.run_plan_split (one pass, each op shared, in the arena of
    slot 0) and executor.run_plan_shared (a batch in tasks of images, each thread in its own
    slot's arena). Their scratch is slot 1.. of the Runtime's per-thread buffers (the caller
    uses slot 0). They stop (within ~10 ms) when this object is collected, i.e. with their
    Runtime. Started only after split_worker is compiled or loaded from the cache in this
    thread (a compile in a helper would hold the GIL while the caller waits on it).
    """

    def __init__(self, plan, gemm, arenas, a, c, threads: int):
        from edgecnn.deploy.runtime.executor import (
            CTL_STOP,
            CTL_WORDS,
            run_plan_shared,
            run_plan_split,
            split_pieces,
            split_sync,
            split_worker,
        )

        self.threads = threads
        self.run, self.shared = run_plan_split, run_plan_shared
        self.pieces = split_pieces(plan.ops)
        self.sync = split_sync(plan.ops)
        self.ctl = np.zeros(CTL_WORDS, np.int64)
        common = (plan.ops, self.pieces, plan.i8, plan.w8, plan.i32, plan.i64, plan.f64, plan.io, arenas[0])
        # The calls' arguments, but for the images (bound once: ~1 us less per call than looking them up)
        self.plan_args = (plan.ops, plan.i8, plan.w8, plan.i32, plan.i64, plan.f64, plan.io)
        self.split_args = (plan.ops, self.pieces, plan.i8, plan.w8, plan.i32, plan.i64, plan.f64, plan.io)
        self.caller_args = (arenas[0], a[0], c[0], gemm, self.sync, self.ctl)
        self.ctl[CTL_STOP] = 1
        split_worker(self.ctl, *common, arenas[0], a[0], c[0], gemm, self.sync)  # returns at once: compiled
        self.ctl[CTL_STOP] = 0
        for slot in range(1, threads):
            threading.Thread(target=split_worker, name=f"edgecnn-split-{slot}", daemon=True,
                             args=(self.ctl, *common, arenas[slot], a[slot], c[slot], gemm, self.sync)).start()
        weakref.finalize(self, _stop_helpers, self.ctl)


class Runtime:
    """Executes an Int8Graph, branches and all, in the order of its ops.

    run(x) takes one array per graph input (a single array, a list in the
    graph's input order, or a dict by tensor name) and returns one array per
    graph output (a single array when the graph has one output, else a list
    in the graph's output order). Every output is returned.

    fc_rescale picks FULLY_CONNECTED's rescale: "float" (the current LiteRT
    reference, float64 + round half away) or "integer" (LiteRT <= 1.2.0 and
    tflite-runtime 2.14: MultiplyByQuantizedMultiplier). All validation and
    every float computation happen here, in __init__; the first run of each
    kernel compiles it (cached on disk afterwards).

    num_threads caps the threads (default: Numba's count, i.e. all cores);
    batches under SERIAL_BELOW images run on one thread, except on the executor
    path when one pass holds at least SPLIT_MACS multiply-accumulates (a large
    model): then the threads share each op. On the executor path the threads
    are the calling one and num_threads - 1 helper threads of this Runtime
    (_Helpers: started on first use, spinning ~1 ms after each call, then
    napping; no OpenMP region per call); the per-op path uses Numba's. Sharing
    ops needs a load average below the core count + 1, sharing a batch below
    the core count + BATCH_MARGIN (cores_free): on busier cores one thread was
    faster.

    Two paths, same bytes. When the whole graph is covered (plan.py: CONV_2D,
    DEPTHWISE_CONV_2D, FULLY_CONNECTED, MAX/AVERAGE_POOL_2D, RESHAPE, SOFTMAX,
    same-shape ADD/SUB, MEAN over H and W, LOGISTIC, TANH; one int8 input,
    int8 outputs), run/run_all execute a plan built here once, in one
    compiled call (executor.py), with the GEMM kernels cpu.py picks from the
    CPU ("vnni" or "portable"; EDGECNN_KERNELS=portable|legacy forces one).
    Otherwise, and always for run_intermediates, each op's kernel is called
    in turn (the per-op path). `plan` is None and `fallback_reason` says why
    when the per-op path runs. A Runtime keeps per-thread scratch buffers:
    do not call one instance from several Python threads at once.
    """

    def __init__(self, graph: Int8Graph, fc_rescale: str = "float", chunk_size: int = DEFAULT_CHUNK,
                 num_threads: int | None = None):  # fmt: skip
        from edgecnn.tuning import tune_process

        tune_process()  # before the first parallel kernel; speed only
        self.graph = graph
        self.fc_rescale = fc_rescale
        self.chunk_size = int(chunk_size)
        if self.chunk_size <= 0:
            raise ValueError("chunk_size must be positive")
        if num_threads is not None and not 1 <= int(num_threads) <= numba.config.NUMBA_NUM_THREADS:
            raise ValueError(f"num_threads must be in 1..{numba.config.NUMBA_NUM_THREADS}, got {num_threads}")
        self.num_threads = num_threads
        self.ops: list[PreparedOp] = prepare_graph(graph, fc_rescale)
        last_use = graph.last_uses()
        # After op i, the buffers no later op (and no graph output) reads.
        self._release = [[t for t in dict.fromkeys(op.inputs) if last_use.get(t, -1) == i and t not in graph.outputs]
                         for i, op in enumerate(self.ops)]  # fmt: skip
        # The whole-graph executor (executor.py), when it covers every op; else the per-op path below.
        self.kernels = kernel_choice()
        self.plan = None
        self.fallback_reason = "EDGECNN_KERNELS=legacy" if self.kernels == "legacy" else None
        if self.kernels != "legacy":
            try:
                self.plan = build_plan(graph, self.ops)
            except Unsupported as exc:
                self.fallback_reason = str(exc)
        self._gemm = GEMM_VNNI if self.kernels == "vnni" else GEMM_PORTABLE
        self._buffers: dict[int, tuple] = {}  # slices -> (arenas, im2col blocks, int32 scratch), made once
        self._serial = None  # (run_plan, arena, im2col block, int32 scratch) for one thread, bound on first use
        self._split = None  # _Helpers: the split executor's helper threads, started on first use
        self._output_shapes = [(lambda n, rest=tuple(graph.tensors[t].shape[1:]): (n,) + rest) for t in graph.outputs]

    def _shape(self, tensor_index: int, images: int) -> tuple[int, ...]:
        shape = self.graph.tensors[tensor_index].shape
        return (images * shape[0],) + tuple(shape[1:])

    def _check_inputs(self, x) -> list[np.ndarray]:
        g = self.graph
        if isinstance(x, dict):
            names = [g.tensors[t].name for t in g.inputs]
            unknown = sorted(set(x) - set(names))
            if unknown or len(x) != len(names):
                raise ShapeError(f"inputs must be given by the names {names}, got {sorted(x)}")
            x = [x[n] for n in names]
        elif not isinstance(x, (list, tuple)):
            x = [x]
        if len(x) != len(g.inputs):
            raise ShapeError(f"the model has {len(g.inputs)} inputs, got {len(x)} arrays")
        arrays, images = [], None
        for t, array in zip(g.inputs, x):
            tensor = g.tensors[t]
            expected = tuple(tensor.shape[1:])
            if not isinstance(array, np.ndarray) or array.dtype != np.dtype(tensor.dtype):
                got = array.dtype if isinstance(array, np.ndarray) else type(array).__name__
                raise ShapeError(f"input {tensor.name} must be a {tensor.dtype} numpy array, got {got}")
            if array.ndim != len(expected) + 1 or tuple(array.shape[1:]) != expected:
                raise ShapeError(f"input {tensor.name} must have shape (N, {', '.join(map(str, expected))}), "
                                 f"got {array.shape}")  # fmt: skip
            if images is not None and array.shape[0] != images:
                raise ShapeError(f"inputs have different batch sizes ({images} and {array.shape[0]})")
            images = array.shape[0]
            arrays.append(np.ascontiguousarray(array))
        return arrays

    def _threads(self, images: int) -> int:
        if images < SERIAL_BELOW:
            return 1
        return int(self.num_threads) if self.num_threads is not None else numba.get_num_threads()

    def _operand(self, buffers: dict, t: int, images: int) -> tuple:
        tensor = self.graph.tensors[t]
        if tensor.is_constant:
            return tuple(tensor.shape), tensor.data.reshape(-1)
        array = buffers[t]
        return array.shape, array.reshape(-1)

    def _run_chunk(self, inputs: list[np.ndarray], keep_all: bool) -> dict[int, np.ndarray]:
        images = inputs[0].shape[0]
        buffers = dict(zip(self.graph.inputs, inputs))
        for i, op in enumerate(self.ops):
            args = [op.params]
            for t in op.inputs:
                args += self._operand(buffers, t, images)
            for shape, data in op.constants:
                args += [shape, data]
            outs = [np.empty(self._shape(t, images), dtype=self.graph.tensors[t].dtype) for t in op.outputs]
            for out in outs:
                args += [out.shape, out.reshape(-1)]
            try:
                op.kernel(*args)
            except (ValueError, SystemError) as exc:  # a kernel's own check; inside prange it arrives as SystemError
                cause = exc.__cause__ if isinstance(exc, SystemError) and exc.__cause__ else exc
                raise ModelError(f"op {i} ({op.kind}): {cause}") from None
            buffers.update(zip(op.outputs, outs))
            if not keep_all:
                for t in self._release[i]:
                    buffers.pop(t, None)
        return buffers

    def _batches(self, x):
        arrays = self._check_inputs(x)
        images = arrays[0].shape[0]
        for start in range(0, images, self.chunk_size):
            stop = min(start + self.chunk_size, images)
            yield start, stop, [a[start:stop] for a in arrays]

    def _scratch(self, slices: int) -> tuple:
        """Per-thread arena and scratch for `slices` threads, allocated on first use and kept."""
        if slices not in self._buffers:
            p = self.plan
            self._buffers[slices] = (np.zeros((slices, p.arena_bytes), np.int8), np.zeros((slices, p.a_bytes), np.uint8),
                                     np.zeros((slices, p.c_words), np.int32))  # fmt: skip
        return self._buffers[slices]

    def _run_plan(self, array: np.ndarray) -> list[np.ndarray]:
        """All outputs through the executor: one compiled call (2+ threads: with this Runtime's helper threads)."""
        p, g = self.plan, self.graph
        images = array.shape[0]
        out = np.empty((images, p.out_row), np.int8)
        threads = self._threads(images)
        if threads > 1 and not cores_free(BATCH_MARGIN):
            threads = 1  # very busy cores: a task a helper claimed may wait for a thread that is off its core
        wanted = int(self.num_threads) if self.num_threads is not None else numba.get_num_threads()
        if images <= p.group and wanted >= 2 and images * p.macs >= SPLIT_MACS and cores_free():
            self._run_split(array, out, wanted)
        elif threads == 1:
            if self._serial is None:
                from edgecnn.deploy.runtime.executor import run_plan

                arenas, a, c = self._scratch(1)
                self._serial = (run_plan, arenas[0], a[0], c[0])
            run, arena, a, c = self._serial
            run(p.ops, p.i8, p.w8, p.i32, p.i64, p.f64, p.io, array.reshape(-1), out.reshape(-1), 0, images, p.group,
                arena, a, c, self._gemm)  # fmt: skip
        else:
            h = self._helpers(threads)
            task = _task_images(images, threads, p.group)
            h.shared(*h.plan_args, array.reshape(-1), out.reshape(-1), images, task, *h.caller_args)
        if len(g.outputs) == 1:
            return [out.reshape(self._output_shapes[0](images))]
        results, position = [], 0
        for make_shape, size in zip(self._output_shapes, p.output_sizes):
            results.append(out[:, position:position + size].reshape(make_shape(images)))
            position += size
        return results

    def _helpers(self, threads: int) -> "_Helpers":
        """This Runtime's threads - 1 helper threads (started on first use, restarted if the count changes)."""
        if self._split is None or self._split.threads != threads:
            arenas, a, c = self._scratch(numba.config.NUMBA_NUM_THREADS)
            self._split = _Helpers(self.plan, self._gemm, arenas, a, c, threads)
        return self._split

    def _run_split(self, array: np.ndarray, out: np.ndarray, threads: int) -> None:
        """One pass, the calling thread and threads - 1 helper threads sharing each op (executor.run_plan_split)."""
        h = self._helpers(threads)
        h.run(*h.split_args, array.reshape(-1), out.reshape(-1), array.shape[0], *h.caller_args)

    def run_all(self, x) -> list[np.ndarray]:
        """Every graph output, as a list in the graph's output order."""
        arrays = self._check_inputs(x)
        if self.plan is not None:
            return self._run_plan(arrays[0])
        images = arrays[0].shape[0]
        g = self.graph
        results = [np.empty((images,) + tuple(g.tensors[t].shape[1:]), dtype=g.tensors[t].dtype) for t in g.outputs]
        with _numba_threads(self._threads(images)):
            for start, stop, chunk in self._batches(arrays):
                buffers = self._run_chunk(chunk, keep_all=False)
                for t, result in zip(g.outputs, results):
                    result[start:stop] = buffers[t].reshape((stop - start,) + result.shape[1:])
        return results

    def run(self, x):
        """One array per input -> the output array, or a list of them when the graph has several."""
        results = self.run_all(x)
        return results[0] if len(results) == 1 else results

    def run_intermediates(self, x) -> dict[int, np.ndarray]:
        """Every tensor an op computes (by tensor index) -> its values for all N images."""
        arrays = self._check_inputs(x)
        images = arrays[0].shape[0]
        g = self.graph
        results = {t: np.empty(self._shape(t, images), dtype=g.tensors[t].dtype) for op in self.ops for t in op.outputs}
        with _numba_threads(self._threads(images)):
            for start, stop, chunk in self._batches(arrays):
                buffers = self._run_chunk(chunk, keep_all=True)
                for t, array in results.items():
                    rows = g.tensors[t].shape[0]
                    array[start * rows:stop * rows] = buffers[t]
        return results
