"""edgecnn's fc_rescale="integer" against the real tflite-runtime 2.14 reference kernels.

Raspberry Pi images often ship tflite-runtime 2.14, whose FULLY_CONNECTED
rescales with the integer multiplier (docs/int8.md section 3, "older integer
path"); LiteRT >= 1.3 rescales in float. The claim: Runtime(graph,
fc_rescale="integer") equals tflite-runtime 2.14's BUILTIN_REF on every
element, for edgecnn-written files of every op and for the trained,
quantized LeNet-5 on all 10,000 MNIST test images; and the "float" mode
does not (so these tests can tell the two apart).

tflite-runtime 2.14 needs numpy<2, so it lives in its own venv, named by
$EDGECNN_TFLRT_PYTHON and driven through tests/tflrt_run.py, one subprocess
for many models. .ci/run builds that venv; locally the tests skip without
it, in CI they fail.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tflite_models import ACTS, GraphBuilder, graphs

from edgecnn.data.datasets import lenet_input, lenet_input_int8, load_split
from edgecnn.int8.graph import Int8Graph, Op, Tensor
from edgecnn.deploy.runtime import Runtime
from edgecnn.deploy.tflite import to_bytes
from edgecnn.model.checkpoint import load_checkpoint
from edgecnn.quantize.ptq import quantize_model

TFLRT_PYTHON_ENV = "EDGECNN_TFLRT_PYTHON"
TFLRT_VERSION = "2.14.0"
SCRIPT = Path(__file__).with_name("tflrt_run.py")
CALIB_IMAGES = 500


@pytest.fixture(scope="session")
def tflrt_python() -> str:
    """The tflite-runtime venv's python; skip locally without one, fail in CI."""
    path = os.environ.get(TFLRT_PYTHON_ENV)
    if not path:
        reason = (f"${TFLRT_PYTHON_ENV} is not set: point it at a python with tflite-runtime {TFLRT_VERSION} "
                  f'(python3.11 -m venv venv-tflrt && venv-tflrt/bin/pip install "numpy<2" '
                  f"tflite-runtime=={TFLRT_VERSION})")  # fmt: skip
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must provide it (.ci/run does)")
        pytest.skip(reason)
    if not os.access(path, os.X_OK):
        pytest.fail(f"${TFLRT_PYTHON_ENV}={path} is not an executable python")
    return path


def run_tflrt(python: str, jobs: list[tuple[bytes, np.ndarray]], work: Path, resolver: str = "ref") -> list:
    """Outputs of tflite-runtime for each (model bytes, int8 batch), all in one subprocess."""
    work.mkdir(parents=True, exist_ok=True)
    args = []
    for i, (data, x) in enumerate(jobs):
        (work / f"m{i}.tflite").write_bytes(data)
        np.save(work / f"x{i}.npy", x, allow_pickle=False)
        args += ["--model", str(work / f"m{i}.tflite"), "--inputs", str(work / f"x{i}.npy"),
                 "--out", str(work / f"y{i}.npy")]  # fmt: skip
    # A PYTHONPATH meant for edgecnn's venv would leak its numpy 2 into the numpy<2 venv.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    p = subprocess.run([python, str(SCRIPT), "--resolver", resolver, *args], capture_output=True, text=True,
                       env=env, timeout=600)  # fmt: skip
    assert p.returncode == 0, f"{SCRIPT.name} failed (exit {p.returncode}):\n{p.stderr[-4000:]}"
    info = json.loads(p.stdout.strip().splitlines()[-1])
    assert info["tflite_runtime"] == TFLRT_VERSION, f"{python} runs tflite-runtime {info['tflite_runtime']}"
    assert not info["errors"], f"tflite-runtime {TFLRT_VERSION} could not run: {info['errors']}"
    return [np.load(work / f"y{i}.npy", allow_pickle=False) for i in range(len(jobs))]


def ops_summary(graph: Int8Graph) -> list[str]:
    """Op kinds, FULLY_CONNECTED marked per-tensor (pt) or per-channel (pc)."""
    out = []
    for op in graph.ops:
        if op.kind == "FULLY_CONNECTED":
            out.append(f"FC-{'pc' if graph.tensors[op.inputs[1]].per_channel else 'pt'}")
        else:
            out.append(op.kind)
    return out


def assert_same(graph: Int8Graph, got: np.ndarray, want: np.ndarray, what: str) -> None:
    assert got.dtype == want.dtype == np.int8 and got.shape == want.shape, (got.shape, want.shape)
    bad = np.argwhere(got != want)
    if bad.size:
        first = tuple(bad[0])
        raise AssertionError(f"{what}: {len(bad)} of {want.size} outputs differ; first at {first}: edgecnn "
                             f"{got[first]}, tflite-runtime {want[first]}; ops {ops_summary(graph)}")  # fmt: skip


def batch(graph: Int8Graph, seed: int, n: int = 32) -> np.ndarray:
    x = np.random.default_rng(seed).integers(-128, 128, size=(n,) + graph.input.shape[1:], dtype=np.int8)
    flat = x.reshape(n, -1)
    flat[0, :], flat[1, :] = -128, 127  # the extremes, always
    return x


# ---------------------------------------------------------------- graphs


def fc_graph(seed: int) -> Int8Graph:
    """FULLY_CONNECTED per-tensor or per-channel, with or without bias, often behind a small trunk."""
    rng = np.random.default_rng(seed)
    scale = [1 / 255, 0.0123, 0.05, 0.3][seed % 4]
    if seed % 3 == 0:  # a conv trunk first, as in LeNet
        g = GraphBuilder(rng, (1, int(rng.integers(3, 8)), int(rng.integers(3, 8)), int(rng.integers(1, 4))), scale,
                         int(rng.integers(-128, 128)))  # fmt: skip
        g.conv2d(int(rng.integers(1, 5)), 3, 3, padding="SAME", act=ACTS[seed % 4]).pool("MAX_POOL_2D").flatten()
    else:
        g = GraphBuilder(rng, (1, int(rng.integers(1, 80))), scale, int(rng.integers(-128, 128)))
    g.fully_connected(int(rng.integers(1, 16)), ACTS[(seed // 4) % 4], per_channel=bool(seed % 2),
                      bias=bool((seed // 2) % 2))  # fmt: skip
    if seed % 5 == 0:
        g.fully_connected(int(rng.integers(1, 10)), per_channel=not seed % 2)
    return g.build()


def other_graph(seed: int) -> Int8Graph:
    """CONV_2D / DEPTHWISE_CONV_2D / pools / TANH / LOGISTIC, ending in SOFTMAX or not."""
    rng = np.random.default_rng(seed)
    g = GraphBuilder(rng, (1, int(rng.integers(4, 10)), int(rng.integers(4, 10)), int(rng.integers(1, 4))),
                     [1 / 255, 0.02, 0.1][seed % 3], int(rng.integers(-128, 128)))  # fmt: skip
    padding = ["SAME", "VALID"][seed % 2]
    act = ACTS[(seed // 2) % 4]
    kind = seed % 5
    if kind == 0:
        g.conv2d(int(rng.integers(1, 5)), 3, 3, (1, 2), padding, (1, 1), act, per_channel=bool(seed % 3))
    elif kind == 1:
        g.depthwise(int(rng.integers(1, 3)), 3, 2, (2, 1), padding, (1, 1), act)
    elif kind == 2:
        g.conv2d(3, 2, 2, padding=padding, dilation=(2, 1), act=act).pool("AVERAGE_POOL_2D", (2, 2), (1, 1), padding)
    elif kind == 3:
        g.pool("MAX_POOL_2D", (2, 3), (2, 2), padding, act).tanh()
    else:
        g.depthwise(1, 2, 2, padding=padding, act=act).logistic()
    if seed % 4 == 0:
        g.flatten().softmax([1.0, 0.5, 2.0][seed % 3])
    return g.build()


def two_input_fc_graph(seed: int) -> Int8Graph:
    """FULLY_CONNECTED with no bias slot at all (version 6), which GraphBuilder never writes."""
    g = GraphBuilder(np.random.default_rng(seed), (1, 17), 0.05, 3).fully_connected(7, per_channel=bool(seed % 2),
                                                                                     bias=False)  # fmt: skip
    graph = g.build()
    graph.ops[-1].inputs = graph.ops[-1].inputs[:2]
    return graph


def grouped_conv_graph(seed: int) -> Int8Graph:
    """CONV_2D with two groups (version 6): the filter sees half the input channels."""
    rng = np.random.default_rng(seed)
    g = GraphBuilder(rng, (1, 6, 5, 4), 0.02, -5)
    half = GraphBuilder(rng, (1, 6, 5, 2), 0.02, -5).conv2d(4, 3, 3, padding="SAME", act="RELU").build()
    w, b, out = (half.tensors[i] for i in half.ops[0].inputs[1:] + half.ops[0].outputs)
    wt, bt = g._add(w), g._add(b)
    return g._next("CONV_2D", [g.x, wt, bt], half.ops[0].options, (1, 6, 5, 4), float(out.scale[0]),
                   int(out.zero_point[0])).build()  # fmt: skip


def tie_fc_graph() -> Int8Graph:
    """One unit, weight 1, in_s 1, w_s 0.5, out_s 1: the effective scale is exactly 0.5, so odd
    accumulators are exact halves. The integer path rounds them up (SRDHM), the float path away
    from zero: -3 -> -1 against -2 (the docs/int8.md example)."""
    tensors = [
        Tensor("input", (1, 1), "int8", [1.0], [0]),
        Tensor("w", (1, 1), "int8", [0.5], [0], 0, np.array([[1]], np.int8)),
        Tensor("b", (1,), "int32", [0.5], [0], 0, np.array([0], np.int32)),
        Tensor("out", (1, 1), "int8", [1.0], [0]),
    ]
    op = Op("FULLY_CONNECTED", [0, 1, 2], [3], {"fused_activation_function": "NONE", "keep_num_dims": False})
    return Int8Graph(tensors, [op], [0], [3]).validate()


def seeded_graphs() -> list[Int8Graph]:
    return ([fc_graph(s) for s in range(240)] + [other_graph(s) for s in range(60)]
            + [two_input_fc_graph(s) for s in range(4)] + [grouped_conv_graph(s) for s in range(3)])  # fmt: skip


# ---------------------------------------------------------------- tests


@pytest.fixture(scope="module")
def seeded_results(tflrt_python, tmp_path_factory):
    graphs_ = seeded_graphs()
    xs = [batch(g, s) for s, g in enumerate(graphs_)]
    want = run_tflrt(tflrt_python, [(to_bytes(g), x) for g, x in zip(graphs_, xs)], tmp_path_factory.mktemp("tflrt"))
    return graphs_, xs, want


def test_integer_mode_matches_tflite_runtime_214_ref_on_seeded_graphs(seeded_results):
    graphs_, xs, want = seeded_results
    kinds = set()
    for i, (g, x, y) in enumerate(zip(graphs_, xs, want)):
        assert_same(g, Runtime(g, fc_rescale="integer").run(x), y, f"graph {i}")
        kinds.update(ops_summary(g))
    # The batch really covers both FC paths and the other kernels.
    assert {"FC-pt", "FC-pc", "CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "AVERAGE_POOL_2D", "TANH", "LOGISTIC",
            "SOFTMAX"} <= kinds  # fmt: skip


def test_float_mode_differs_from_tflite_runtime_214_on_fully_connected(seeded_results):
    # Without this the test above could pass with either mode: 2.14 must be the integer path.
    graphs_, xs, want = seeded_results
    differing = {"FC-pt": 0, "FC-pc": 0}
    for g, x, y in zip(graphs_, xs, want):
        got = Runtime(g, fc_rescale="float").run(x)
        if not np.array_equal(got, y):
            assert "FULLY_CONNECTED" in [op.kind for op in g.ops], f"only FC may differ; ops {ops_summary(g)}"
            for kind in {k for k in ops_summary(g) if k.startswith("FC-")}:
                differing[kind] += 1
    print(f"\nfloat mode differs from tflite-runtime 2.14 on graphs with {differing}")
    assert differing["FC-pt"] > 0 and differing["FC-pc"] > 0, differing


def test_exact_half_fc_rounds_the_integer_way(tflrt_python, tmp_path):
    g = tie_fc_graph()
    x = np.arange(-128, 128, dtype=np.int8).reshape(-1, 1)
    (want,) = run_tflrt(tflrt_python, [(to_bytes(g), x)], tmp_path)
    assert want[x[:, 0] == -3][0, 0] == -1 and want[x[:, 0] == 3][0, 0] == 2  # ties toward +inf
    assert_same(g, Runtime(g, fc_rescale="integer").run(x), want, "integer mode")
    assert Runtime(g, fc_rescale="float").run(x)[x[:, 0] == -3][0, 0] == -2


@settings(max_examples=25, deadline=None)
@given(graphs(max_layers=3), st.integers(0, 1000))
def test_integer_mode_matches_tflite_runtime_214_ref_on_random_chains(tflrt_python, tmp_path_factory, graph, seed):
    x = batch(graph, seed, n=8)
    (want,) = run_tflrt(tflrt_python, [(to_bytes(graph), x)], tmp_path_factory.mktemp("chain"))
    assert_same(graph, Runtime(graph, fc_rescale="integer").run(x), want, "chain")


@pytest.mark.slow
def test_quantized_lenet5_matches_tflite_runtime_214_ref_on_all_mnist_test_images(
        tflrt_python, tmp_path, lenet5_path, mnist_root, mnist_test, record_property):  # fmt: skip
    model = load_checkpoint(lenet5_path)
    calib = lenet_input(load_split("mnist", "train", mnist_root)[0][:CALIB_IMAGES])
    per_channel = quantize_model(model, calib, progress=False).graph
    per_tensor = quantize_model(model, calib, per_tensor=True, progress=False).graph
    x = lenet_input_int8(mnist_test[0])
    want = run_tflrt(tflrt_python, [(to_bytes(per_channel), x), (to_bytes(per_tensor), x)], tmp_path)
    for name, graph, y in [("per-channel", per_channel, want[0]), ("per-tensor", per_tensor, want[1])]:
        assert y.shape == (10_000, 10)
        assert_same(graph, Runtime(graph, fc_rescale="integer").run(x), y, f"lenet5 {name}")
        differ = int(np.sum(Runtime(graph, fc_rescale="float").run(x) != y))
        record_property(f"{name}_float_mode_differing_outputs", differ)
        print(f"\nlenet5 {name}: float mode differs from tflite-runtime 2.14 on {differ} of {y.size} outputs")
