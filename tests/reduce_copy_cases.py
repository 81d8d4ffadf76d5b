"""Graphs and checks shared by the MEAN, REDUCE_MAX, CONCATENATION, PAD and PADV2 tests.

Each builder returns a small validated Int8Graph with one int8 input; the
checks run it three ways (naive references, the Numba runtime, LiteRT's
BUILTIN_REF) and compare every output element.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from edgecnn.deploy.litert import LiteRTRunner
from edgecnn.deploy.runtime import Runtime
from edgecnn.deploy.runtime.naive import run_graph
from edgecnn.deploy.tflite import to_bytes
from edgecnn.int8.graph import Int8Graph, Op, Tensor

SCALES = (1 / 255, 0.0123, 0.05, 0.3, 1.7)
zero_points = st.one_of(st.sampled_from([-128, 127, 0]), st.integers(-128, 127))  # the extremes, often
scales = st.sampled_from(SCALES)


def inputs(graph: Int8Graph, batch: int, seed: int) -> np.ndarray:
    """Random int8 images, the first element -128 and the last 127."""
    x = np.random.default_rng(seed).integers(-128, 128, size=(batch,) + graph.input.shape[1:], dtype=np.int8)
    flat = x.reshape(batch, -1)
    flat[0, 0], flat[-1, -1] = -128, 127
    return x


def _one_op(kind, x_shape, in_q, out_shape, out_q, constants, options) -> Int8Graph:
    """input -> kind(input, *constants) -> output; constants are Tensors appended after the input."""
    tensors = [Tensor("input", x_shape, "int8", [in_q[0]], [in_q[1]]), *constants,
               Tensor("output", out_shape, "int8", [out_q[0]], [out_q[1]])]  # fmt: skip
    out = len(tensors) - 1
    return Int8Graph(tensors, [Op(kind, list(range(out)), [out], dict(options))], [0], [out]).validate()


def reduce_graph(kind: str, shape, axes, keep_dims: bool, in_q, out_q) -> Int8Graph:
    """MEAN or REDUCE_MAX over `axes` (an int32 constant, as the converter writes it)."""
    rank = len(shape)
    reduced = {a % rank for a in axes}
    if keep_dims:
        out_shape = tuple(1 if d in reduced else n for d, n in enumerate(shape))
    else:
        out_shape = tuple(n for d, n in enumerate(shape) if d not in reduced)
    axis = Tensor("axis", (len(axes),), "int32", [], [], 0, np.asarray(axes, np.int32))
    return _one_op(kind, shape, in_q, out_shape, out_q, [axis], {"keep_dims": keep_dims})


def pad_graph(kind: str, shape, paddings, in_q, out_q, constant=None, dtype="int32") -> Int8Graph:
    """PAD (or PADV2 with the int8 `constant`, at the output's qparams) by a constant [rank, 2] paddings."""
    paddings = np.asarray(paddings, dtype=dtype).reshape(len(shape), 2)
    out_shape = tuple(int(n + b + a) for n, (b, a) in zip(shape, paddings))
    constants = [Tensor("paddings", paddings.shape, dtype, [], [], 0, paddings)]
    if constant is not None:
        constants.append(Tensor("constant_values", (), "int8", [out_q[0]], [out_q[1]], 0, np.int8(constant)))
    return _one_op(kind, shape, in_q, out_shape, out_q, constants, {})


def random_axes(draw, rank: int) -> list[int]:
    """A non-empty set of non-batch axes, some negative, maybe repeated (LiteRT collapses duplicates)."""
    axes = draw(st.lists(st.integers(1, rank - 1), min_size=1, max_size=rank - 1))
    return [a - rank if draw(st.booleans()) else a for a in axes]


def assert_same(got: np.ndarray, want: np.ndarray, what: str) -> None:
    assert got.shape == want.shape and got.dtype == want.dtype, (what, got.shape, want.shape)
    if not np.array_equal(got, want):
        bad = np.argwhere(got != want)
        first = tuple(bad[0])
        raise AssertionError(f"{what}: {len(bad)} of {want.size} elements differ; first at {first}: "
                             f"{got[first]} vs {want[first]}")  # fmt: skip


def naive_equals_numba(graph: Int8Graph, batch: int = 2, seed: int = 0) -> np.ndarray:
    x = inputs(graph, batch, seed)
    got = np.asarray(Runtime(graph).run(x))
    naive = run_graph(graph, x)[graph.outputs[0]].reshape(got.shape)
    assert_same(got, naive, "Numba vs naive")
    return got


def numba_equals_litert(graph: Int8Graph, batch: int = 3, seed: int = 0) -> int:
    """Asserts every element equal; returns how many were compared."""
    x = inputs(graph, batch, seed)
    want = LiteRTRunner(to_bytes(graph), "ref").run(x)
    got = np.asarray(Runtime(graph).run(x))
    assert_same(got, want, "Numba vs LiteRT BUILTIN_REF")
    return want.size


def litert_ref_multi(graph: Int8Graph, xs: list[np.ndarray]) -> np.ndarray:
    """LiteRT BUILTIN_REF on a graph with several int8 inputs (one output), straight through the interpreter."""
    from edgecnn.deploy.litert import load_interpreter_module, native_stderr_quiet

    module = load_interpreter_module()
    with native_stderr_quiet():
        interpreter = module.Interpreter(model_content=to_bytes(graph),
                                         experimental_op_resolver_type=module.OpResolverType.BUILTIN_REF)  # fmt: skip
        details = interpreter.get_input_details()
        for d, x in zip(details, xs):
            interpreter.resize_tensor_input(d["index"], list(x.shape))
        interpreter.allocate_tensors()
    by_name = {d["name"]: d["index"] for d in details}
    for t, x in zip(graph.inputs, xs):
        interpreter.set_tensor(by_name[graph.tensors[t].name], np.ascontiguousarray(x))
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def c_and_onnx_equal_runtime(graphs: list[Int8Graph], workdir, batch: int = 3) -> int:
    """The C export (gcc) and the ONNX export (onnxruntime) of each single-input graph equal the runtime.

    Returns how many output elements were compared (per back end).
    """
    from test_export_c import assert_c_equals_runtime
    from test_export_onnx import assert_exact

    models = [(g, "float", inputs(g, batch, seed)) for seed, g in enumerate(graphs)]
    for g, _, x in models:
        assert_exact(g, x)
    assert_c_equals_runtime(models, workdir)
    return sum(x.shape[0] * int(np.prod(g.output.shape)) for g, _, x in models)


def c_and_onnx_equal_runtime_in(graphs: list[Int8Graph], batch: int = 2) -> int:
    """c_and_onnx_equal_runtime in a fresh temporary directory (for hypothesis tests, which cannot use tmp_path)."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory(prefix="edgecnn-c-") as workdir:
        return c_and_onnx_equal_runtime(graphs, Path(workdir), batch)


def exports_match_litert(graphs: list[Int8Graph], batch: int = 4) -> int:
    """Each graph's C export (gcc), ONNX export (onnxruntime) and LiteRT BUILTIN_REF agree on every element
    (tests/test_export_graphs.py; any number of graph inputs). Returns the elements compared per back end."""
    from test_export_graphs import assert_exports_match_litert, random_inputs

    return sum(assert_exports_match_litert(g, random_inputs(g, batch, seed)) for seed, g in enumerate(graphs))
