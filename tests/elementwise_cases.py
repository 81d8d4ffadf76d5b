"""Graphs, strategies and judges shared by the ADD/SUB/MUL/RELU/RELU6/LEAKY_RELU/HARD_SWISH tests.

- `binary_graph` / `unary_graph`: one op with its own qparams on every tensor;
  a binary op's inputs may be computed (graph inputs) or constants.
- `litert_outputs`: LiteRT's BUILTIN_REF on a graph with any number of inputs.
- `runtime_and_naive`: the Numba runtime's output and the naive references'.
- hypothesis strategies: qparams whose zero points hit -128 and 127 and
  whose scales span five orders of magnitude; broadcastable shape pairs up
  to six dimensions; int8 inputs that always contain -128 and 127.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from test_export_graphs import assert_exports_match_litert  # at import: it defines @given tests of its own

from edgecnn.deploy.runtime import Runtime
from edgecnn.deploy.runtime.naive import run_graph
from edgecnn.deploy.tflite import to_bytes
from edgecnn.int8.graph import Int8Graph, Op, Tensor

BINARY_OPTIONS = {
    "ADD": lambda act: {"fused_activation_function": act, "pot_scale_int16": True},
    "SUB": lambda act: {"fused_activation_function": act, "pot_scale_int16": True},
    "MUL": lambda act: {"fused_activation_function": act},
}


def int8_tensor(name, shape, scale, zero_point, data=None) -> Tensor:
    return Tensor(name, tuple(shape), "int8", [np.float32(scale)], [int(zero_point)], 0, data)


def binary_graph(kind, shape1, shape2, q1, q2, q_out, act="NONE", constants=(None, None)) -> Int8Graph:
    """One ADD/SUB/MUL: inputs with qparams q1, q2 ((scale, zero point)); constants[i] is data or None."""
    out_shape = tuple(np.broadcast_shapes(tuple(shape1), tuple(shape2)))
    tensors = [int8_tensor("x1", shape1, *q1, constants[0]), int8_tensor("x2", shape2, *q2, constants[1]),
               int8_tensor("y", out_shape, *q_out)]  # fmt: skip
    inputs = [i for i in (0, 1) if constants[i] is None]
    op = Op(kind, [0, 1], [2], BINARY_OPTIONS[kind](act))
    return Int8Graph(tensors, [op], inputs, [2]).validate()


def unary_graph(kind, shape, q_in, q_out, options=None) -> Int8Graph:
    tensors = [int8_tensor("x", shape, *q_in), int8_tensor("y", shape, *q_out)]
    return Int8Graph(tensors, [Op(kind, [0], [1], dict(options or {}))], [0], [1]).validate()


def random_inputs(graph, rng, batch: int = 2) -> list[np.ndarray]:
    """One int8 batch per graph input; the first holds -128 and the last 127."""
    arrays = []
    for t in graph.inputs:
        shape = (batch,) + tuple(graph.tensors[t].shape[1:])
        x = rng.integers(-128, 128, size=shape, dtype=np.int8)
        flat = x.reshape(-1)
        flat[0], flat[-1] = -128, 127
        arrays.append(x)
    return arrays


def every_int8(graph, batch: int = 1) -> np.ndarray:
    """For a one-input element-wise graph: every int8 value, repeated to fill the batch."""
    shape = (batch,) + tuple(graph.input.shape[1:])
    return np.resize(np.arange(-128, 128, dtype=np.int8), shape)


def litert_outputs(graph, inputs) -> list[np.ndarray]:
    """Every output of LiteRT's BUILTIN_REF interpreter (several inputs allowed; batch = inputs' first dim)."""
    from edgecnn.deploy.litert import load_interpreter_module, native_stderr_quiet

    module = load_interpreter_module()
    with native_stderr_quiet():
        interpreter = module.Interpreter(model_content=to_bytes(graph),
                                         experimental_op_resolver_type=module.OpResolverType.BUILTIN_REF)  # fmt: skip
        details = interpreter.get_input_details()
        for d, x in zip(details, inputs):
            interpreter.resize_tensor_input(d["index"], list(x.shape))
        interpreter.allocate_tensors()
    for d, x in zip(details, inputs):
        interpreter.set_tensor(d["index"], np.ascontiguousarray(x))
    interpreter.invoke()
    return [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]


def runtime_outputs(graph, inputs) -> list[np.ndarray]:
    return Runtime(graph).run_all(list(inputs))


def naive_outputs(graph, inputs) -> list[np.ndarray]:
    tensors = run_graph(graph, list(inputs))
    batch = inputs[0].shape[0]
    return [tensors[t].reshape((batch,) + tuple(graph.tensors[t].shape[1:])) for t in graph.outputs]


def assert_same(got, want, what: str):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape and got.dtype == want.dtype, (what, got.shape, want.shape, got.dtype, want.dtype)
    if not np.array_equal(got, want):
        bad = np.argwhere(got != want)
        first = tuple(bad[0])
        raise AssertionError(f"{what}: {len(bad)} of {want.size} elements differ; first at {first}: "
                             f"{got[first]} vs {want[first]}")  # fmt: skip


# --- hypothesis strategies -----------------------------------------------------------------------

zero_points = st.one_of(st.sampled_from([-128, 127, 0]), st.integers(-128, 127))


@st.composite
def scales(draw, low=-4.0, high=1.0):
    """A float32 scale 10^u, u in [low, high]: five orders of magnitude by default."""
    return float(np.float32(10.0 ** draw(st.floats(low, high, allow_nan=False))))


@st.composite
def qparams(draw, low=-4.0, high=1.0):
    return draw(scales(low, high)), draw(zero_points)


@st.composite
def broadcast_shapes(draw, max_rank=6, max_dim=4, max_size=400):
    """(output shape, shape1, shape2, constant1, constant2) with batch 1, as the runtime's layout allows.

    A computed input has the output's rank (first dimension 1); a constant
    may drop leading dimensions (even all of them: a scalar). At most one
    input is a constant.
    """
    rank = draw(st.integers(1, max_rank))
    out = [1] + [draw(st.integers(1, max_dim)) for _ in range(rank - 1)]
    while int(np.prod(out)) > max_size:
        out[out.index(max(out))] -= 1
    constant = draw(st.sampled_from([None, 0, 1]))
    shapes = [[d if draw(st.booleans()) else 1 for d in out] for _ in (0, 1)]
    computed = 1 if constant == 0 else 0
    for axis, d in enumerate(out):  # every output dimension is reached by some input
        if shapes[0][axis] != d and shapes[1][axis] != d:
            shapes[computed][axis] = d
    if constant is not None:
        shapes[constant] = shapes[constant][draw(st.integers(0, rank)):]
    return tuple(out), tuple(shapes[0]), tuple(shapes[1]), constant == 0, constant == 1


ACTIVATIONS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")


@st.composite
def binary_cases(draw, kind, low=-4.0, high=1.0):
    """A one-op graph of `kind` on drawn shapes and qparams, and a seed for its inputs and constants."""
    out, shape1, shape2, const1, const2 = draw(broadcast_shapes())
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    constants = tuple(rng.integers(-128, 128, size=s, dtype=np.int8) if c else None
                      for s, c in ((shape1, const1), (shape2, const2)))  # fmt: skip
    q1, q2, q_out = draw(qparams(low, high)), draw(qparams(low, high)), draw(qparams(low, high))
    act = draw(st.sampled_from(ACTIVATIONS))
    return binary_graph(kind, shape1, shape2, q1, q2, q_out, act, constants), seed


def assert_runtime_matches_naive(graph, seed: int, batch: int = 2):
    inputs = random_inputs(graph, np.random.default_rng(seed), batch)
    for got, want in zip(runtime_outputs(graph, inputs), naive_outputs(graph, inputs)):
        assert_same(got, want, f"runtime vs naive, ops {[(op.kind, op.options) for op in graph.ops]}")


def assert_runtime_matches_litert(graph, seed: int, batch: int = 2) -> int:
    """Runtime == BUILTIN_REF on every element; returns how many elements were compared."""
    inputs = random_inputs(graph, np.random.default_rng(seed), batch)
    got, want = runtime_outputs(graph, inputs), litert_outputs(graph, inputs)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert_same(g, w, f"runtime vs LiteRT, ops {[(op.kind, op.options) for op in graph.ops]}")
    return sum(w.size for w in want)


@st.composite
def unary_cases(draw, kind, low=-4.0, high=1.0):
    """A one-op element-wise graph of `kind` on a drawn odd shape (rank 1 to 5) with drawn qparams."""
    rank = draw(st.integers(1, 5))
    shape = (1,) + tuple(draw(st.integers(1, 7)) for _ in range(rank - 1))
    options = {}
    if kind == "LEAKY_RELU":
        options["alpha"] = float(np.float32(draw(st.sampled_from([0.0, 0.01, 0.1, 0.2, 0.3, 1.0, 1.5, -0.25])
                                                | st.floats(-2.0, 2.0, allow_nan=False))))  # fmt: skip
    q_in, (out_scale, out_zp) = draw(qparams(low, high)), draw(qparams(low, high))
    if kind == "HARD_SWISH":  # LiteRT refuses an output scale below input scale / 128
        out_scale = max(out_scale, float(np.float32(q_in[0] / 100)))
    return unary_graph(kind, shape, q_in, (out_scale, out_zp), options)


def unary_inputs(graph, batch: int = 2) -> list[np.ndarray]:
    """Every int8 value at least once when the batch holds 256 elements or more, else a spread."""
    shape = (batch,) + tuple(graph.input.shape[1:])
    size = int(np.prod(shape))
    values = np.arange(-128, 128, dtype=np.int8) if size >= 256 else np.linspace(-128, 127, size).astype(np.int8)
    return [np.resize(values, shape)]


def assert_unary_runtime_matches(graph, judge: str, batch: int = 2):
    """judge: "naive" or "litert"."""
    inputs = unary_inputs(graph, batch)
    want = naive_outputs(graph, inputs) if judge == "naive" else litert_outputs(graph, inputs)
    for got, ref in zip(runtime_outputs(graph, inputs), want):
        assert_same(got, ref, f"runtime vs {judge}, {graph.ops[0].kind} {graph.ops[0].options} "
                              f"in {graph.tensors[0].scale[0]}/{graph.tensors[0].zero_point[0]} "
                              f"out {graph.tensors[1].scale[0]}/{graph.tensors[1].zero_point[0]}")  # fmt: skip


def assert_exports_match(graph, inputs) -> int:
    """C (gcc) and ONNX (onnxruntime) outputs == LiteRT BUILTIN_REF (the export tests' shared judge)."""
    return assert_exports_match_litert(graph, inputs)
