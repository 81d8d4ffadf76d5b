"""Warm timing of a model on one backend: the figures `edgecnn bench` and the benchmarks print."""

from __future__ import annotations

import time

import numpy as np


def set_threads(backend_name: str, threads: int) -> None:
    if backend_name in ("numba", "float"):
        try:
            import numba

            numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        except ImportError:
            pass


def time_calls(fn, seconds: float = 2.0, min_calls: int = 5, max_calls: int = 100_000) -> np.ndarray:
    """Per-call wall times (s) of fn(), repeated until `seconds` have passed."""
    times = []
    start = time.perf_counter()
    while len(times) < max_calls and (len(times) < min_calls or time.perf_counter() - start < seconds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return np.array(times)


def random_input(b, batch: int):
    """A seeded random batch in the model's input form, one array per input (a list for several).

    One-channel image models get random pixels through `prepare` (the path eval and predict take);
    int8/uint8 inputs otherwise take random values over their whole range, float32 inputs values
    over the range their QUANTIZE op represents (`IOSpec.value_range`), or [0, 1) when unknown.
    """
    rng = np.random.default_rng(0)
    specs = list(getattr(b, "inputs", None) or [])
    shape = tuple(b.input_shape)
    if len(specs) <= 1 and len(shape) == 3 and shape[2] == 1:
        return b.prepare(rng.integers(0, 256, size=(batch, shape[0], shape[1]), dtype=np.uint8))
    if not specs:  # a backend without I/O specs: real values in [0, 1)
        return b.prepare_values(rng.random((batch, *shape), dtype=np.float32))
    arrays = []
    for s in specs:
        size = (batch, *s.shape)
        if s.dtype == np.float32:
            lo, hi = s.value_range or (0.0, 1.0)
            arrays.append(rng.uniform(lo, hi, size=size).astype(np.float32))
        else:
            info = np.iinfo(s.dtype)
            arrays.append(rng.integers(int(info.min), int(info.max) + 1, size=size).astype(s.dtype))
    return arrays[0] if len(arrays) == 1 else arrays


def bench(model_path, backend: str | None = None, batch: int = 1, threads: int = 1, seconds: float = 2.0) -> dict:
    from edgecnn.deploy.backends import open_backend

    b = open_backend(model_path, backend, num_threads=threads)
    set_threads(b.name, threads)
    x = random_input(b, batch)
    t0 = time.perf_counter()
    b.run(x)  # warm-up: JIT compilation, allocation, interpreter resize
    warmup = time.perf_counter() - t0
    times = time_calls(lambda: b.run(x), seconds)
    return {"backend": b.name, "batch": batch, "threads": threads,
            "images_per_second": float(batch * len(times) / times.sum()),
            "latency_ms_p50": float(np.percentile(times, 50) * 1e3),
            "latency_ms_p99": float(np.percentile(times, 99) * 1e3),
            "calls": int(len(times)), "warmup_seconds": float(warmup),
            "inputs": [s.as_dict() for s in getattr(b, "inputs", [])]}  # what the random batch fed
