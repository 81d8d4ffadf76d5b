"""Shared by the QUANTIZE / DEQUANTIZE / RESIZE_* / SPACE_TO_BATCH_ND / BATCH_TO_SPACE_ND tests.

Graph builders for one op (or a short chain) and the three comparisons:
naive == Numba, Numba == LiteRT BUILTIN_REF, and a batch of N == N single runs.
Outputs are compared byte for byte, so float32 outputs must agree in every bit.
"""

from __future__ import annotations

import numpy as np

from edgecnn.deploy.litert import LiteRTRunner
from edgecnn.deploy.runtime import Runtime
from edgecnn.deploy.runtime.naive import run_graph
from edgecnn.deploy.tflite import to_bytes
from edgecnn.int8.graph import Int8Graph, Op, Tensor


def activation(name, shape, dtype="int8", scale=0.05, zero_point=0) -> Tensor:
    if dtype == "float32":
        return Tensor(name, shape, dtype, [], [])
    return Tensor(name, shape, dtype, [scale], [zero_point])


def int32_constant(name, values) -> Tensor:
    values = np.asarray(values, dtype=np.int32)
    return Tensor(name, values.shape, "int32", [], [], 0, values)


def single_op(kind, x: Tensor, out: Tensor, constants=(), options=None) -> Int8Graph:
    """x -> kind(x, *constants) -> out, as a whole graph."""
    tensors = [x, out, *constants]
    op = Op(kind, [0] + list(range(2, 2 + len(constants))), [1], dict(options or {}))
    return Int8Graph(tensors, [op], [0], [1]).validate()


def random_batch(graph: Int8Graph, batch: int, seed: int) -> np.ndarray:
    """Random input: uniform integers with both extremes for int8/uint8, float32 around the quantized range."""
    rng = np.random.default_rng(seed)
    t = graph.tensors[graph.inputs[0]]
    shape = (batch,) + tuple(t.shape[1:])
    if t.dtype == "float32":
        return rng.normal(0, 3, size=shape).astype(np.float32)
    info = np.iinfo(t.dtype)
    x = rng.integers(int(info.min), int(info.max) + 1, size=shape).astype(t.dtype)
    flat = x.reshape(batch, -1)
    flat[0, 0], flat[-1, -1] = info.min, info.max
    return x


def assert_identical(got, want, what: str = "") -> None:
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape, (what, got.dtype, got.shape, want.dtype, want.shape)
    if got.tobytes() != want.tobytes():
        g, w = got.reshape(-1), want.reshape(-1)
        bad = [i for i in range(w.size) if g[i:i + 1].tobytes() != w[i:i + 1].tobytes()]
        i = bad[0]
        raise AssertionError(f"{what}: {len(bad)} of {w.size} elements differ; first at {i}: "
                             f"got {g[i]!r}, want {w[i]!r}")


def naive_equals_numba(graph: Int8Graph, x: np.ndarray) -> int:
    """Every graph output of the naive interpreter equals the Numba runtime's, bit for bit; returns the count."""
    tensors = run_graph(graph, x)
    got = Runtime(graph).run_all(x)
    count = 0
    for t, g in zip(graph.outputs, got):
        assert_identical(g, tensors[t].reshape(g.shape), f"output {graph.tensors[t].name}")
        count += g.size
    return count


def numba_equals_litert(graph: Int8Graph, x: np.ndarray, runtime: Runtime | None = None) -> int:
    """The Numba runtime equals LiteRT BUILTIN_REF on every output element (bitwise); returns the count."""
    want = LiteRTRunner(to_bytes(graph), "ref").run(x)
    want = want if isinstance(want, list) else [want]
    got = (runtime or Runtime(graph)).run_all(x)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert_identical(g, w, "Numba vs LiteRT")
    return sum(w.size for w in want)


def batch_equals_single_runs(graph: Int8Graph, x: np.ndarray) -> None:
    """Running N images at once gives exactly what N runs of one image give."""
    runtime = Runtime(graph)
    together = runtime.run_all(x)
    for n in range(x.shape[0]):
        alone = runtime.run_all(x[n:n + 1])
        for a, t in zip(alone, together):
            assert_identical(t[n:n + 1], a, f"image {n} of {x.shape[0]}")


# ------------------------------------------------------------ the C and ONNX exports

def exports_equal_litert(graph: Int8Graph, x: np.ndarray) -> int:
    """C (gcc) and ONNX (onnxruntime) outputs identical to LiteRT BUILTIN_REF (test_export_graphs' runners)."""
    from test_export_graphs import assert_exports_match_litert

    return assert_exports_match_litert(graph, [x])


def exports_equal_runtime(graph: Int8Graph, x: np.ndarray) -> int:
    """C and ONNX identical to the Numba runtime: for N images where LiteRT orders S2B's rows differently."""
    import tempfile
    from pathlib import Path

    from test_export_graphs import run_c, run_onnx

    want = Runtime(graph).run_all(x)
    with tempfile.TemporaryDirectory() as d:
        for name, got in (("C", run_c(graph, [x], Path(d))), ("ONNX", run_onnx(graph, [x]))):
            assert len(got) == len(want)
            for g, w in zip(got, want):
                assert_identical(g, w, f"{name} vs runtime")
    return sum(w.size for w in want)
