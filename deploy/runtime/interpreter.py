"""Runtime: runs an Int8Graph on int8 batches with the Numba kernels, bit-exact with LiteRT BUILTIN_REF."""

from __future__ import annotations

from contextlib import contextmanager

import numba
import numpy as np

from edgecnn.deploy.graph import Int8Graph
from edgecnn.deploy.runtime.prepare import PreparedOp, prepare_graph
from edgecnn.errors import ModelError, ShapeError

DEFAULT_CHUNK = 1024  # images per pass through the graph: bounds memory (~10 kB per LeNet image per tensor)
SERIAL_BELOW = 16  # smaller batches run on one thread: a parallel region's barrier costs more than they do


@contextmanager
def _numba_threads(count: int):
    """Run the block with `count` Numba threads (numba's setting is per calling thread)."""
    previous = numba.get_num_threads()
    numba.set_num_threads(count)
    try:
        yield
    finally:
        numba.set_num_threads(previous)


class Runtime:
    """Executes an Int8Graph.

    fc_rescale picks FULLY_CONNECTED's rescale: "float" (the current LiteRT
    reference, float64 + round half away) or "integer" (LiteRT <= 1.2.0 and
    tflite-runtime 2.14: MultiplyByQuantizedMultiplier). All validation and
    every float computation happen here, in __init__; the first run of each
    kernel compiles it (cached on disk afterwards).

    num_threads caps the Numba threads (default: Numba's, i.e. all cores);
    batches under SERIAL_BELOW images always run on one thread.
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
        self._input = graph.inputs[0]
        self._output = graph.outputs[0]
        # Last op that reads each tensor, so run() can drop buffers early.
        self._last_use = {self._output: len(self.ops)}
        for i, op in enumerate(self.ops):
            self._last_use[op.input] = max(self._last_use.get(op.input, -1), i)

    def _shape(self, tensor_index: int, images: int) -> tuple[int, ...]:
        shape = self.graph.tensors[tensor_index].shape
        return (images * shape[0],) + tuple(shape[1:])

    def _check_input(self, x) -> np.ndarray:
        expected = self.graph.input.shape[1:]
        if not isinstance(x, np.ndarray) or x.dtype != np.int8:
            got = x.dtype if isinstance(x, np.ndarray) else type(x).__name__
            raise ShapeError(f"input must be an int8 numpy array, got {got}")
        if x.ndim != len(expected) + 1 or tuple(x.shape[1:]) != tuple(expected):
            raise ShapeError(f"input must have shape (N, {', '.join(map(str, expected))}), got {x.shape}")
        return np.ascontiguousarray(x)

    def _threads(self, images: int) -> int:
        if images < SERIAL_BELOW:
            return 1
        return int(self.num_threads) if self.num_threads is not None else numba.get_num_threads()

    def _run_chunk(self, x: np.ndarray, keep_all: bool) -> dict[int, np.ndarray]:
        images = x.shape[0]
        buffers = {self._input: x}
        for i, op in enumerate(self.ops):
            source = buffers[op.input]
            out = np.empty(self._shape(op.output, images), dtype=np.int8)
            args = [op.params, source.shape, source.reshape(-1)]
            for shape, data in op.constants:
                args += [shape, data]
            try:
                op.kernel(*args, out.shape, out.reshape(-1))
            except (ValueError, SystemError) as exc:  # a kernel's own check; inside prange it arrives as SystemError
                cause = exc.__cause__ if isinstance(exc, SystemError) and exc.__cause__ else exc
                raise ModelError(f"op {i} ({getattr(op.kernel, '__name__', 'kernel')}): {cause}") from None
            buffers[op.output] = out
            if not keep_all:
                for t in [t for t in buffers if self._last_use.get(t, -1) <= i and t != op.output]:
                    del buffers[t]
        return buffers

    def run(self, x: np.ndarray) -> np.ndarray:
        """int8 (N, *input.shape[1:]) -> int8 (N, *output.shape[1:])."""
        x = self._check_input(x)
        images = x.shape[0]
        result = np.empty((images,) + tuple(self.graph.output.shape[1:]), dtype=np.int8)
        with _numba_threads(self._threads(images)):
            for start in range(0, images, self.chunk_size):
                stop = min(start + self.chunk_size, images)
                result[start:stop] = self._run_chunk(x[start:stop], keep_all=False)[self._output]
        return result

    def run_intermediates(self, x: np.ndarray) -> dict[int, np.ndarray]:
        """Every tensor an op computes (by tensor index) -> its int8 values for all N images."""
        x = self._check_input(x)
        images = x.shape[0]
        results = {op.output: np.empty(self._shape(op.output, images), dtype=np.int8) for op in self.ops}
        with _numba_threads(self._threads(images)):
            for start in range(0, images, self.chunk_size):
                stop = min(start + self.chunk_size, images)
                buffers = self._run_chunk(x[start:stop], keep_all=True)
                for t, array in results.items():
                    rows = self.graph.tensors[t].shape[0]
                    array[start * rows:stop * rows] = buffers[t]
        return results
