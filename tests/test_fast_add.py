"""The executor's vectorized ADD/SUB (vnni.add_sub16 through fast_ops.add_sub) == the naive references and
LiteRT BUILTIN_REF, exactly; also split in two pieces (executor.run_plan_split) and against the scalar
kernel it replaced (fast_ops.add_sub_scalar). Sizes hit partial 16-lane groups and the split threshold;
scales span five orders of magnitude (input shifts on both sides, output multipliers above and below 1);
zero points hit -128 and 127."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from elementwise_cases import BINARY_OPTIONS, binary_graph, int8_tensor, litert_outputs
from hypothesis import given, settings
from hypothesis import strategies as st
from test_fast_kernels import KINDS, SETTINGS, fast_runtime

from edgecnn.deploy.runtime import interpreter, naive, plan
from edgecnn.deploy.runtime.executor import ADD_SPLIT
from edgecnn.deploy.runtime.fast_conv import F_IN, F_OUT
from edgecnn.deploy.runtime.fast_ops import F_IN2, add_sub, add_sub_scalar
from edgecnn.deploy.runtime.prepare import prepare_graph
from edgecnn.int8.graph import Int8Graph, Op


@st.composite
def add_case(draw):
    h = draw(st.integers(1, 9))
    w = draw(st.integers(1, 9))
    c = draw(st.sampled_from([1, 3, 16, 17, 40, 64, 71]))
    zp = st.one_of(st.sampled_from([-128, 127, 0]), st.integers(-128, 127))
    scale = st.floats(1e-3, 10.0).map(np.float32)
    return dict(kind=draw(st.sampled_from(["ADD", "SUB"])), shape=(1, h, w, c), q1=(draw(scale), draw(zp)),
                q2=(draw(scale), draw(zp)), q_out=(draw(scale), draw(zp)),
                act=draw(st.sampled_from(["NONE", "RELU", "RELU6"])), images=draw(st.integers(1, 3)),
                seed=draw(st.integers(0, 2**31)))  # fmt: skip


def _graph_and_inputs(case):
    """Two-input ADD/SUB graph (for the kernel test) and its inputs."""
    graph = binary_graph(case["kind"], case["shape"], case["shape"], case["q1"], case["q2"], case["q_out"],
                         case["act"])  # fmt: skip
    rng = np.random.default_rng(case["seed"])
    xs = [rng.integers(-128, 128, (case["images"],) + case["shape"][1:], dtype=np.int8) for _ in range(2)]
    xs[0].reshape(-1)[0], xs[1].reshape(-1)[-1] = -128, 127
    return graph, xs


def one_input_graph(case, swap=False):
    """x -> LOGISTIC -> t; ADD/SUB(x, t) (or (t, x)): the executor takes one graph input."""
    shape = case["shape"]
    tensors = [int8_tensor("x", shape, *case["q1"]), int8_tensor("t", shape, 1 / 256, -128),
               int8_tensor("y", shape, *case["q_out"])]  # fmt: skip
    pair = [1, 0] if swap else [0, 1]
    ops = [Op("LOGISTIC", [0], [1], {}), Op(case["kind"], pair, [2], BINARY_OPTIONS[case["kind"]](case["act"]))]
    graph = Int8Graph(tensors, ops, [0], [2]).validate()
    rng = np.random.default_rng(case["seed"])
    x = rng.integers(-128, 128, (case["images"],) + shape[1:], dtype=np.int8)
    x.reshape(-1)[0], x.reshape(-1)[-1] = -128, 127
    return graph, x


@numba.njit
def _both(op, arena_vec, arena_scalar, images, i64p, parts):
    for part in range(parts):
        add_sub(op, arena_vec, images, i64p, part, parts)
    add_sub_scalar(op, arena_scalar, images)


@settings(max_examples=80, **SETTINGS)
@given(case=add_case())
def test_add_sub_vector_equals_scalar_kernel(case):
    """add_sub16 lane for lane == the int64 scalar kernel, whole and in 1..3 pieces, on random int8 arenas."""
    graph, _ = _graph_and_inputs(case)
    (prepared,) = prepare_graph(graph, "float")
    pools, scratch = plan._Pools(), {"a": 16, "c": 256}
    op, _, _ = plan._op_row(graph, prepared, pools, scratch)
    n = case["images"] * int(np.prod(case["shape"]))
    room = -(-n // 64) * 64
    op[F_IN], op[F_IN2], op[F_OUT] = 0, room, 2 * room
    rng = np.random.default_rng(case["seed"])
    arena = rng.integers(-128, 128, 3 * room, dtype=np.int8)
    for parts in (1, 2, 3):
        vec, scalar = arena.copy(), arena.copy()
        _both(op, vec, scalar, case["images"], pools.array("i64"), parts)
        np.testing.assert_array_equal(vec, scalar)


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=30, **SETTINGS)
@given(case=add_case(), swap=st.booleans())
def test_add_sub_executor_equals_naive_and_litert(kind, case, swap):
    graph, x = one_input_graph(case, swap)
    expected = naive.run_graph(graph, x)[graph.outputs[0]]
    np.testing.assert_array_equal(expected, litert_outputs(graph, [x])[0])
    np.testing.assert_array_equal(fast_runtime(graph, kind).run(x), expected)


def test_large_add_is_split_and_exact(monkeypatch):
    """An ADD above ADD_SPLIT elements per image, run by the split executor (two pieces)."""
    monkeypatch.setattr(interpreter, "SPLIT_MACS", 0)
    monkeypatch.setattr(interpreter, "cores_free", lambda margin=1: True)
    case = dict(kind="SUB", shape=(1, 16, 17, 9), q1=(0.05, -128), q2=None, q_out=(0.02, 3), act="RELU",
                images=1, seed=5)  # fmt: skip
    assert 16 * 17 * 9 >= ADD_SPLIT
    graph, x = one_input_graph(case)
    expected = naive.run_graph(graph, x)[graph.outputs[0]]
    for kind in KINDS:
        rt = fast_runtime(graph, kind, num_threads=2)
        for _ in range(3):
            np.testing.assert_array_equal(rt.run(x), expected)
        assert rt._split is not None and rt._split.pieces.max() == 2
