"""Both exporters on graphs with branches, several inputs and several outputs, judged by LiteRT BUILTIN_REF.

The helpers here are for every op's tests too:

    from test_export_graphs import assert_exports_match_litert
    assert_exports_match_litert(graph, [x0, x1, ...])   # one batch per graph input

compiles the C export with gcc (-std=c99 -pedantic -Wall -Wextra -Werror) and
runs it through its EDGECNN_MAIN stdin/stdout harness, runs the ONNX export
in onnxruntime, runs the .tflite in LiteRT's BUILTIN_REF, and asserts every
output element of every output is identical.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgecnn.deploy.export.c import plan_arena, to_c
from edgecnn.deploy.runtime.prepare import prepare_graph
from edgecnn.int8.graph import Int8Graph, Op, Tensor
from tflite_models import ACTS, GraphBuilder, lenet5, random_input

CFLAGS = ["-std=c99", "-O2", "-Wall", "-Wextra", "-pedantic", "-Werror"]


# ---------------------------------------------------------------- runners


def random_inputs(graph: Int8Graph, batch: int, seed: int = 0) -> list[np.ndarray]:
    """One batch per graph input, in its dtype: int8/uint8 over the whole range, float32 around +-4."""
    rng = np.random.default_rng(seed)
    xs = []
    for t in graph.inputs:
        tensor = graph.tensors[t]
        shape = (batch,) + tuple(tensor.shape[1:])
        if tensor.dtype == "float32":
            xs.append(rng.normal(0, 2, size=shape).astype(np.float32))
        else:
            info = np.iinfo(tensor.dtype)
            xs.append(rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=tensor.dtype))
    return xs


def run_c(graph: Int8Graph, xs: list[np.ndarray], workdir: Path, fc_rescale: str = "float",
          name: str = "model") -> list[np.ndarray]:  # fmt: skip
    """Compile the C export with -DEDGECNN_MAIN and feed it records: every input, in order, per image."""
    source = workdir / f"{name}.c"
    source.write_text(to_c(graph, name=name, fc_rescale=fc_rescale))
    p = subprocess.run(["gcc", *CFLAGS, "-DEDGECNN_MAIN", source.name, "-o", name], cwd=workdir,
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert p.returncode == 0, p.stderr[:4000]
    batch = xs[0].shape[0]
    records = b"".join(np.ascontiguousarray(x[n]).tobytes() for n in range(batch) for x in xs)
    p = subprocess.run([str(workdir / name)], input=records, capture_output=True, timeout=300)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    outs = [graph.tensors[t] for t in graph.outputs]
    sizes = [int(np.prod(t.shape)) * np.dtype(t.dtype).itemsize for t in outs]
    assert len(p.stdout) == batch * sum(sizes)
    per_image = np.frombuffer(p.stdout, np.uint8).reshape(batch, sum(sizes))
    results, start = [], 0
    for t, size in zip(outs, sizes):
        chunk = np.ascontiguousarray(per_image[:, start:start + size])
        results.append(chunk.view(t.dtype).reshape((batch,) + tuple(t.shape[1:])))
        start += size
    return results


def run_onnx(graph: Int8Graph, xs: list[np.ndarray], fc_rescale: str = "float") -> list[np.ndarray]:
    import onnx
    import onnxruntime as ort

    from edgecnn.deploy.export.onnx import to_onnx

    model = to_onnx(graph, fc_rescale)
    onnx.checker.check_model(model, full_check=True)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == [graph.tensors[t].name for t in graph.inputs]
    assert len(session.get_outputs()) == len(graph.outputs)
    return session.run(None, {i.name: x for i, x in zip(session.get_inputs(), xs)})


def run_litert(graph: Int8Graph, xs: list[np.ndarray]) -> list[np.ndarray]:
    """LiteRT BUILTIN_REF on the graph's .tflite, every input fed and every output read, in graph order."""
    from edgecnn.deploy.litert import load_interpreter_module
    from edgecnn.deploy.tflite import to_bytes

    module = load_interpreter_module()
    interpreter = module.Interpreter(model_content=to_bytes(graph),
                                     experimental_op_resolver_type=module.OpResolverType.BUILTIN_REF)  # fmt: skip
    inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
    assert len(inputs) == len(xs) and len(outputs) == len(graph.outputs)
    for detail, x in zip(inputs, xs):
        interpreter.resize_tensor_input(detail["index"], list(x.shape))
    interpreter.allocate_tensors()
    for detail, x in zip(inputs, xs):
        interpreter.set_tensor(detail["index"], np.ascontiguousarray(x))
    interpreter.invoke()
    return [interpreter.get_tensor(detail["index"]) for detail in outputs]


def _assert_same(name: str, ours: list[np.ndarray], ref: list[np.ndarray]) -> int:
    assert len(ours) == len(ref), f"{name}: {len(ours)} outputs, LiteRT gives {len(ref)}"
    total = 0
    for k, (a, b) in enumerate(zip(ours, ref)):
        assert a.dtype == b.dtype and a.shape == b.shape, f"{name} output {k}: {a.dtype}{a.shape} vs {b.dtype}{b.shape}"
        same = a.view(np.uint8) == b.view(np.uint8) if a.dtype == np.float32 else a == b
        assert np.all(same), f"{name} output {k}: {int(np.sum(~same))} of {a.size} elements differ from LiteRT"
        total += a.size
    return total


def assert_exports_match_litert(graph: Int8Graph, xs: list[np.ndarray], fc_rescale: str = "float") -> int:
    """C (gcc), ONNX (onnxruntime) and LiteRT BUILTIN_REF give identical outputs; returns elements compared."""
    ref = run_litert(graph, xs)
    with tempfile.TemporaryDirectory() as d:
        n = _assert_same("C", run_c(graph, xs, Path(d), fc_rescale), ref)
    _assert_same("ONNX", run_onnx(graph, xs, fc_rescale), ref)
    return n


# ---------------------------------------------------------------- graphs


def two_heads(seed: int = 0) -> Int8Graph:
    """A conv feeding two heads (FC -> softmax, and max pool -> tanh); the conv output is an output too."""
    g = GraphBuilder(np.random.default_rng(seed), (1, 10, 9, 3), 0.05, -3)
    g.conv2d(6, 3, 3, (1, 1), "SAME", act="RELU")
    trunk = g.x
    g.flatten().fully_connected(11, "NONE").softmax(0.7)
    classes = g.x
    g.x = trunk
    g.pool("MAX_POOL_2D", (2, 2), (2, 2), "SAME").tanh()
    graph = g.build()
    graph.outputs = [classes, g.x, trunk]
    return graph.validate()


def two_inputs(seed: int = 1) -> Int8Graph:
    """Two independent chains: an image through a depthwise conv and a vector through an FC; outputs swapped."""
    g = GraphBuilder(np.random.default_rng(seed), (1, 7, 7, 2), 0.1, 4)
    g.depthwise(2, 3, 3, (2, 2), "VALID", act="RELU6").pool("AVERAGE_POOL_2D", (2, 2), (1, 1), "VALID")
    image_out = g.x
    g.x = g._add(Tensor("features", (1, 12), "int8", [0.02], [-7]))
    second = g.x
    g.fully_connected(5, "RELU").logistic()
    return Int8Graph(list(g.tensors), list(g.ops), [g.input, second], [g.x, image_out]).validate()


def dead_end_branch(seed: int = 2) -> Int8Graph:
    """A branch whose value nobody reads (the TANH): it must still not overwrite the live conv output."""
    g = GraphBuilder(np.random.default_rng(seed), (1, 6, 6, 1), 0.02, 0)
    g.conv2d(2, 3, 3, padding="SAME")
    conv_out = g.x
    g.tanh()
    g.x = conv_out
    g.pool("MAX_POOL_2D", (2, 2), (2, 2))
    return g.build()


def float_and_uint8_edges(seed: int = 3, input_dtype: str = "float32") -> Int8Graph:
    """The converter's edges: a float32 (or uint8) input QUANTIZEd to int8, a conv, then two outputs:
    DEQUANTIZE to float32 and QUANTIZE to uint8 (same scale, zero point + 128)."""
    g = GraphBuilder(np.random.default_rng(seed), (1, 6, 5, 2), 0.0137, -3)
    g.conv2d(3, 3, 3, (1, 1), "SAME", act="RELU")
    tensors, ops = list(g.tensors), list(g.ops)
    x_int8, y_int8 = tensors[g.input], tensors[g.x]

    def add(tensor) -> int:
        tensors.append(tensor)
        return len(tensors) - 1

    if input_dtype == "float32":
        x = add(Tensor("x_float", x_int8.shape, "float32", [], []))
    else:
        x = add(Tensor("x_uint8", x_int8.shape, "uint8", [0.02], [131]))
    y_float = add(Tensor("y_float", y_int8.shape, "float32", [], []))
    y_uint8 = add(Tensor("y_uint8", y_int8.shape, "uint8", y_int8.scale, y_int8.zero_point + 128))
    ops = [Op("QUANTIZE", [x], [g.input])] + ops + [Op("DEQUANTIZE", [g.x], [y_float]),
                                                    Op("QUANTIZE", [g.x], [y_uint8])]  # fmt: skip
    return Int8Graph(tensors, ops, [x], [y_float, y_uint8]).validate()


@st.composite
def branching_graphs(draw, max_ops: int = 6):
    """Random trees of ops: each op reads any tensor computed so far; any of them may be graph outputs."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    g = GraphBuilder(rng, (1, draw(st.integers(3, 8)), draw(st.integers(3, 8)), draw(st.integers(1, 3))),
                     draw(st.sampled_from([1 / 255, 0.05, 0.3])), draw(st.integers(-128, 127)))  # fmt: skip
    produced = [g.x]
    for _ in range(draw(st.integers(1, max_ops))):
        g.x = draw(st.sampled_from(produced))
        kind = draw(st.sampled_from(["conv", "depthwise", "max", "avg", "logistic", "tanh"]))
        padding, act = "SAME", draw(st.sampled_from(ACTS))
        k, stride = draw(st.integers(1, 3)), draw(st.integers(1, 2))
        if kind == "conv":
            g.conv2d(draw(st.integers(1, 4)), k, k, (stride, stride), padding, (1, 1), act)
        elif kind == "depthwise":
            g.depthwise(draw(st.integers(1, 2)), k, k, (stride, stride), padding, (1, 1), act)
        elif kind in ("max", "avg"):
            g.pool("MAX_POOL_2D" if kind == "max" else "AVERAGE_POOL_2D", (k, k), (stride, stride), padding, act)
        else:
            g.logistic() if kind == "logistic" else g.tanh()
        produced.append(g.x)
    outputs = draw(st.lists(st.sampled_from(produced[1:]), min_size=1, max_size=4, unique=True))
    return Int8Graph(list(g.tensors), list(g.ops), [g.input], outputs).validate()


def float_in_the_middle(seed: int = 4) -> Int8Graph:
    """conv -> DEQUANTIZE -> float32 -> QUANTIZE -> int8: a float tensor lives in the C arena (aligned)."""
    g = GraphBuilder(np.random.default_rng(seed), (1, 5, 5, 3), 0.05, 7)
    g.conv2d(3, 3, 3, (1, 1), "SAME").pool("MAX_POOL_2D", (2, 2), (1, 1), "VALID")
    tensors, ops = list(g.tensors), list(g.ops)
    y = tensors[g.x]
    tensors.append(Tensor("as_float", y.shape, "float32", [], []))
    tensors.append(Tensor("requantized", y.shape, "int8", [float(y.scale[0]) * 1.7], [-5]))
    ops += [Op("DEQUANTIZE", [g.x], [len(tensors) - 2]), Op("QUANTIZE", [len(tensors) - 2], [len(tensors) - 1])]
    return Int8Graph(tensors, ops, [g.input], [len(tensors) - 1]).validate()


# ---------------------------------------------------------------- tests


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(graph=branching_graphs(), seed=st.integers(0, 2**16))
def test_random_trees_with_several_outputs_equal_the_runtime(graph, seed):
    """The arena planner on branches, and every output filled, against the runtime (itself LiteRT-exact)."""
    from edgecnn.deploy.runtime import Runtime

    xs = random_inputs(graph, 6, seed)
    ref = Runtime(graph).run(xs)
    ref = ref if isinstance(ref, list) else [ref]
    with tempfile.TemporaryDirectory() as d:
        assert _assert_same("C", run_c(graph, xs, Path(d)), ref) > 0
    assert _assert_same("ONNX", run_onnx(graph, xs), ref) > 0


@pytest.mark.parametrize("build", [two_heads, two_inputs, dead_end_branch, float_in_the_middle])
def test_branches_and_several_outputs_match_litert(build):
    graph = build()
    assert assert_exports_match_litert(graph, random_inputs(graph, 24, seed=5)) > 0


@pytest.mark.parametrize("input_dtype", ["float32", "uint8"])
def test_float_and_uint8_edges_match_litert(input_dtype):
    graph = float_and_uint8_edges(input_dtype=input_dtype)
    assert assert_exports_match_litert(graph, random_inputs(graph, 16, seed=6)) == 2 * 16 * 6 * 5 * 3
    source = to_c(graph, name="edges")
    in_type = "float" if input_dtype == "float32" else "uint8_t"
    assert f"int edges_invoke(const {in_type} *input0, float *output0, uint8_t *output1)" in source


def test_imagenet_head_of_1000_classes_matches_litert():
    """FULLY_CONNECTED to 1,000 classes and SOFTMAX over them, in C and ONNX (the ONNX softmax used to stop at 511)."""
    g = GraphBuilder(np.random.default_rng(8), (1, 1, 1, 64), 0.05, -2)
    g.pool("AVERAGE_POOL_2D", (1, 1), (1, 1)).flatten().fully_connected(1000, "NONE").softmax(1.0)
    graph = g.build()
    assert assert_exports_match_litert(graph, random_inputs(graph, 16, seed=12)) == 16 * 1000


def test_integer_rescale_on_two_heads_equals_the_runtime(tmp_path):
    """fc_rescale="integer" is older LiteRT's; the installed LiteRT uses float, so the judge is the runtime."""
    from edgecnn.deploy.runtime import Runtime

    graph = two_heads(3)
    xs = random_inputs(graph, 16, seed=9)
    ref = Runtime(graph, fc_rescale="integer").run(xs)
    assert _assert_same("C", run_c(graph, xs, tmp_path, "integer"), ref) > 0
    assert _assert_same("ONNX", run_onnx(graph, xs, "integer"), ref) > 0


def test_signature_and_defines_name_every_input_and_output():
    source = to_c(two_inputs(), name="pair")
    assert ("int pair_invoke(const int8_t *input0, const int8_t *input1, int8_t *output0, int8_t *output1)"
            in source)  # fmt: skip
    for define in ("PAIR_NUM_INPUTS 2", "PAIR_NUM_OUTPUTS 2", "PAIR_INPUT0_SIZE 98", "PAIR_INPUT1_SIZE 12",
                   "PAIR_OUTPUT0_SIZE 5", "PAIR_OUTPUT1_SIZE 16", "PAIR_INPUT1_ZERO_POINT -7"):  # fmt: skip
        assert f"#define {define}\n" in source
    # A one-input, one-output int8 model keeps the classic signature and names.
    source = to_c(lenet5(), name="digits")
    assert "int digits_invoke(const int8_t *input, int8_t *output)" in source
    assert "#define DIGITS_INPUT_SIZE 1024\n" in source and "#define DIGITS_OUTPUT_SIZE 10\n" in source


def test_outputs_that_are_inputs_or_listed_twice(tmp_path):
    """The caller's buffers are filled even when no op writes them: an input passed through, an output repeated."""
    from edgecnn.deploy.runtime import Runtime

    graph = two_heads(4)
    graph.outputs = [graph.outputs[0], graph.inputs[0], graph.outputs[0]]
    xs = random_inputs(graph, 5, seed=2)
    ref = Runtime(graph).run(xs)
    assert _assert_same("C", run_c(graph, xs, tmp_path), ref) == 11 * 5 * 2 + 10 * 9 * 3 * 5
    assert _assert_same("ONNX", run_onnx(graph, xs), ref) > 0


def test_an_input_no_op_reads_still_compiles(tmp_path):
    """-Wextra warns about an unused parameter; the C marks an unread graph input as used."""
    from edgecnn.deploy.runtime import Runtime

    graph = two_inputs()
    graph.ops = graph.ops[:2]  # drop the FC chain: the second input is read by nobody
    graph.outputs = [graph.outputs[1]]
    xs = random_inputs(graph, 3, seed=4)
    assert _assert_same("C", run_c(graph, xs, tmp_path), [Runtime(graph).run(xs)]) == 3 * 16


def test_arena_keeps_every_live_tensor_apart_on_branches():
    for graph in (two_heads(), two_inputs(), dead_end_branch()):
        steps = prepare_graph(graph)
        plan = plan_arena(graph, steps)
        caller = set(graph.inputs) | set(graph.outputs)
        computed = {t for step in steps for t in step.outputs}
        assert set(plan.offsets) == computed - caller
        for i, step in enumerate(steps):  # an op's inputs and outputs never share a byte
            spans = [(plan.offsets[t], plan.offsets[t] + int(np.prod(graph.tensors[t].shape)))
                     for t in list(step.inputs) + list(step.outputs) if t in plan.offsets]  # fmt: skip
            for a in range(len(spans)):
                for b in range(a + 1, len(spans)):
                    assert spans[a][1] <= spans[b][0] or spans[b][1] <= spans[a][0], (i, spans)
        for a, (fa, la) in plan.lifetimes.items():
            for b, (fb, lb) in plan.lifetimes.items():
                if a < b and not (la < fb or lb < fa):
                    sa, sb = int(np.prod(graph.tensors[a].shape)), int(np.prod(graph.tensors[b].shape))
                    oa, ob = plan.offsets[a], plan.offsets[b]
                    assert oa + sa <= ob or ob + sb <= oa


def test_generating_c_needs_no_numba(tmp_path):
    """The C exporter runs where neither Numba nor onnx can be imported (the light device install)."""
    script = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('numba', 'onnx', 'onnxruntime'):\n"
        "            raise ImportError(name + ' is blocked in this test')\n"
        "sys.meta_path.insert(0, Block())\n"
        "sys.path.insert(0, %r)\n"
        "from tflite_models import lenet5\n"
        "from edgecnn.deploy.export import export_model\n"
        "export_model(lenet5(), %r)\n"
        "assert not [m for m in sys.modules if m.split('.')[0] in ('numba', 'onnx')]\n"
    ) % (str(Path(__file__).parent), str(tmp_path / "m.c"))
    p = subprocess.run([sys_executable(), "-c", script], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    assert (tmp_path / "m.c").read_text().startswith("/* edgecnn-c v1")


def sys_executable() -> str:
    import sys

    return sys.executable
