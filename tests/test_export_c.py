"""The C99 exporter: gcc-compiled models equal the Numba runtime (itself bit-exact with LiteRT BUILTIN_REF).

Every model is compiled with the real gcc under -std=c99 -O2 -Wall -Wextra
-pedantic -Werror and run in a subprocess. To keep compilations few, several
models go into one program: each exported file has its own `<name>_invoke`,
and a generated driver runs every model over a file of inputs.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgecnn.deploy.export import export_model
from edgecnn.deploy.export.c import MAGIC, plan_arena, to_c, write_c
from edgecnn.int8.graph import Int8Graph, Op, Tensor
from edgecnn.deploy.runtime import Runtime
from edgecnn.deploy.runtime.prepare import prepare_graph
from edgecnn.errors import UnsupportedOpError
from tflite_models import GraphBuilder, graphs, lenet5, random_input

CFLAGS = ["-std=c99", "-O2", "-Wall", "-Wextra", "-pedantic", "-Werror"]


def gcc(args: list, cwd: Path) -> None:
    p = subprocess.run(["gcc", *CFLAGS, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[:4000]


def run_in_c(models: list[tuple[Int8Graph, str, np.ndarray]], workdir: Path) -> list[np.ndarray]:
    """Compile each (graph, fc_rescale, int8 inputs) as its own .c file into one program; return its outputs."""
    decls, calls = [], []
    sources = []
    for k, (graph, fc_rescale, x) in enumerate(models):
        name = f"m{k}"
        write_c(graph, workdir / f"{name}.c", name=name, fc_rescale=fc_rescale)
        sources.append(f"{name}.c")
        (workdir / f"{name}.in").write_bytes(np.ascontiguousarray(x).tobytes())
        in_size, out_size = int(np.prod(graph.input.shape)), int(np.prod(graph.output.shape))
        decls.append(f"int {name}_invoke(const int8_t *input, int8_t *output);")
        calls.append(f'    if (run({name}_invoke, {in_size}, {out_size}, "{name}.in", "{name}.out") != 0) return 1;')
    driver = "\n".join([
        "#include <stdint.h>",
        "#include <stdio.h>",
        *decls,
        "static int8_t in[1 << 16], out[1 << 16];",
        "static int run(int (*invoke)(const int8_t *, int8_t *), size_t in_size, size_t out_size,",
        "               const char *in_path, const char *out_path)",
        "{",
        '    FILE *fin = fopen(in_path, "rb"), *fout = fopen(out_path, "wb");',
        "    int status = fin && fout ? 0 : 1;",
        "    while (status == 0 && fread(in, 1, in_size, fin) == in_size) {",
        "        if (invoke(in, out) != 0 || fwrite(out, 1, out_size, fout) != out_size) status = 1;",
        "    }",
        "    if (fin) fclose(fin);",
        "    if (fout && fclose(fout) != 0) status = 1;",
        "    return status;",
        "}",
        "int main(void)",
        "{",
        *calls,
        "    return 0;",
        "}",
        "",
    ])  # fmt: skip
    (workdir / "driver.c").write_text(driver)
    gcc([*sources, "driver.c", "-o", "models"], workdir)
    subprocess.run([str(workdir / "models")], cwd=workdir, check=True, timeout=300)
    results = []
    for k, (graph, _, x) in enumerate(models):
        data = np.frombuffer((workdir / f"m{k}.out").read_bytes(), dtype=np.int8)
        results.append(data.reshape((x.shape[0],) + tuple(graph.output.shape[1:])))
    return results


def assert_c_equals_runtime(models, workdir: Path) -> None:
    for k, ((graph, fc_rescale, x), ours) in enumerate(zip(models, run_in_c(models, workdir))):
        ref = Runtime(graph, fc_rescale=fc_rescale).run(x)
        assert ours.shape == ref.shape
        diff = int(np.sum(ours != ref))
        assert diff == 0, f"model {k} ({[op.kind for op in graph.ops]}, {fc_rescale}): {diff} of {ref.size} differ"


def strip_comments(source: str) -> str:
    return re.sub(r"/\*.*?\*/", " ", source, flags=re.S)


# ---------------------------------------------------------------- the C primitives, value by value

_HARNESS = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "primitives.c"

int main(void)
{
    char op[16], a[64], b[64], c[64];
    while (scanf("%15s %63s %63s %63s", op, a, b, c) == 4) {
        const long x = strtol(a, NULL, 10), y = strtol(b, NULL, 10), z = strtol(c, NULL, 10);
        long r = 0;
        if (!strcmp(op, "srdhm")) r = ec_srdhm((int32_t)x, (int32_t)y);
        else if (!strcmp(op, "rdbpot")) r = ec_rdbpot((int32_t)x, (int)y);
        else if (!strcmp(op, "mbqm")) r = ec_mbqm((int32_t)x, (int32_t)y, (int32_t)z);
        else if (!strcmp(op, "shl")) r = ec_saturating_left_shift((int32_t)x, (int)y);
        else if (!strcmp(op, "exp")) r = ec_exp_on_negative_values_q5((int32_t)x);
        else if (!strcmp(op, "recip")) r = ec_one_over_one_plus_x((int32_t)x);
        else if (!strcmp(op, "halfsum")) r = ec_rounding_half_sum((int32_t)x, (int32_t)y);
        else if (!strcmp(op, "round")) r = ec_round_half_away(strtod(a, NULL));
        else return 2;
        printf("%ld\n", r);
    }
    return 0;
}
"""


def _primitive_cases(rng) -> list[tuple]:
    """(name, args, python reference) over int32 extremes, powers of two +-1 and seeded random values."""
    from edgecnn.deploy.runtime import fixedpoint as fp
    from edgecnn.deploy.runtime.fully_connected import round_half_away_to_int32

    lo, hi = -(2**31), 2**31 - 1
    special = sorted({lo, lo + 1, hi, hi - 1, 0, 1, -1} | {s * 2**k + d for k in range(31) for s in (1, -1)
                                                               for d in (-1, 0, 1)} - {2**31})  # fmt: skip
    special = [v for v in special if lo <= v <= hi]
    rand = [int(v) for v in rng.integers(lo, hi, 600, endpoint=True)]
    small = [int(v) for v in rng.integers(-70000, 70000, 300)]
    values = special + rand + small
    cases = []
    for a in values:
        b = int(rng.choice(values))
        cases.append(("srdhm", (a, b), fp.saturating_rounding_doubling_high_mul.py_func(a, b)))
        e = int(rng.integers(0, 32))
        cases.append(("rdbpot", (a, e), fp.rounding_divide_by_pot.py_func(a, e)))
        for e in (1, 2, 3, 8):
            cases.append(("rdbpot", (-(abs(a) >> 9) * 2**e - 2 ** (e - 1), e),  # exact negative ties
                          fp.rounding_divide_by_pot.py_func(-(abs(a) >> 9) * 2**e - 2 ** (e - 1), e)))  # fmt: skip
        m, s = int(rng.integers(2**30, 2**31)), int(rng.integers(-31, 8))
        cases.append(("mbqm", (a, m, s), fp.multiply_by_quantized_multiplier.py_func(a, m, s)))
        e = int(rng.integers(1, 31))
        cases.append(("shl", (a, e), fp.saturating_left_shift.py_func(a, e)))
        cases.append(("halfsum", (a, b), fp.rounding_half_sum.py_func(a, b)))
        neg = -abs(a) if a != lo else lo
        cases.append(("exp", (neg,), fp.exp_on_negative_values.py_func(neg, 5)))
        if a >= 0:
            cases.append(("recip", (a,), fp.one_over_one_plus_x_for_x_in_0_1.py_func(a)))
    doubles = [k + 0.5 for k in range(-5, 5)] + [2.0**31 - 0.5, -(2.0**31) - 0.5, 2.0**31, -(2.0**31), 1e300, -1e300]
    doubles += list(rng.normal(0, 1e3, 300)) + [float(np.nextafter(k + 0.5, d)) for k in range(-3, 3) for d in (-9, 9)]
    cases += [("round", (float(v).hex(),), int(round_half_away_to_int32.py_func(float(v)))) for v in doubles]
    return cases


def test_c_primitives_equal_the_runtime_fixedpoint(tmp_path):
    from edgecnn.deploy.export.c import _blocks_in_order
    from edgecnn.deploy.export.c_source import BLOCKS

    # Every block but the two FULLY_CONNECTED texts (they define the same names), plus the harness.
    names = _blocks_in_order({b for b in BLOCKS if not b.startswith("fully_connected")})
    (tmp_path / "primitives.c").write_text("#include <stddef.h>\n#include <stdint.h>\n"
                                           + "\n".join(BLOCKS[b][1] for b in names))  # fmt: skip
    (tmp_path / "harness.c").write_text(_HARNESS)
    gcc(["-Wno-unused-function", "harness.c", "-o", "harness"], tmp_path)
    cases = _primitive_cases(np.random.default_rng(42))
    lines = "".join(f"{name} {' '.join(map(str, args + ('0',) * (3 - len(args))))}\n" for name, args, _ in cases)
    p = subprocess.run([str(tmp_path / "harness")], input=lines, capture_output=True, text=True, check=True)
    got = [int(v) for v in p.stdout.split()]
    assert len(got) == len(cases)
    wrong = [(name, args, want, g) for (name, args, want), g in zip(cases, got) if g != want]
    assert not wrong, f"{len(wrong)} of {len(cases)} differ, e.g. {wrong[:5]}"


# ---------------------------------------------------------------- graphs covering every op


def _grouped_conv(rng, groups: int) -> Int8Graph:
    """CONV_2D with groups (filter depth = input depth / groups), SAME, stride 2, dilation 2, RELU."""
    g = GraphBuilder(rng, (1, 9, 8, 4), 0.05, 3)
    g.conv2d(8, 3, 3, (2, 1), "SAME", (2, 2), "RELU")
    op = g.ops[-1]
    w = g.tensors[op.inputs[1]]
    depth = 4 // groups
    w.data = np.ascontiguousarray(w.data[..., :depth])
    w.shape = (8, 3, 3, depth)
    return g.build({"labels": []})


def every_op_graphs(seed: int = 7) -> list[Int8Graph]:
    rng = np.random.default_rng(seed)
    zoo = []
    g = GraphBuilder(rng, (1, 9, 7, 3), 0.1, 5)
    g.conv2d(4, 3, 3, (2, 1), "SAME", (1, 1), "RELU6")
    g.depthwise(2, 3, 2, (1, 2), "SAME", (2, 1), "RELU_N1_TO_1", bias=False)
    g.pool("AVERAGE_POOL_2D", (3, 3), (1, 1), "SAME").tanh().pool("MAX_POOL_2D", (2, 2), (2, 2), "SAME").logistic()
    g.flatten().fully_connected(7, "NONE", per_channel=False).softmax(0.5)
    graph = g.build({"labels": [f"c{i}" for i in range(7)]})
    graph.ops[1].inputs = graph.ops[1].inputs[:2]  # a depthwise conv without bias leaves the slot out
    graph.tensors[graph.ops[7].inputs[1]].zero_point[:] = 3  # per-tensor FC subtracts a weight zero point
    zoo.append(graph)

    g = GraphBuilder(rng, (1, 12, 12, 2), 1 / 255, -128)
    g.conv2d(3, 5, 5, (1, 1), "VALID", (1, 1), "RELU", per_channel=False)
    g.depthwise(1, 2, 2, (2, 2), "VALID").tanh().pool("AVERAGE_POOL_2D", (2, 3), (2, 1), "VALID", "RELU")
    g.flatten().fully_connected(9, "RELU", per_channel=True, bias=False).fully_connected(4, "RELU6").logistic()
    zoo.append(g.build({"labels": ["a", 'b"q', "c*/", "d\u00e9"]}))

    zoo.append(_grouped_conv(rng, 2))
    zoo.append(_grouped_conv(rng, 4))

    # A branch: the conv output feeds both a dead-end TANH and the pooled output, so it must outlive the TANH.
    g = GraphBuilder(rng, (1, 6, 6, 1), 0.02, 0)
    g.conv2d(2, 3, 3, padding="SAME")
    conv_out = g.x
    g.tanh()
    g.x = conv_out
    g.pool("MAX_POOL_2D", (2, 2), (2, 2))
    zoo.append(g.build())

    # Softmax over a row with keep_num_dims-free FC rows > 1 is not expressible; a 4D softmax has 6*6 rows.
    g = GraphBuilder(rng, (1, 6, 6, 3), 0.3, -20)
    g.softmax(2.0)
    zoo.append(g.build())

    # No ops at all: the output is the input.
    x = Tensor("input", (1, 5), "int8", [0.5], [1])
    zoo.append(Int8Graph([x], [], [0], [0], {}))
    return zoo


@pytest.mark.slow
def test_every_op_compiles_and_equals_the_runtime():
    models = [(graph, mode, random_input(graph, 64, seed=k))
              for k, graph in enumerate(every_op_graphs()) for mode in ("float", "integer")]  # fmt: skip
    kinds = {op.kind for graph, _, _ in models for op in graph.ops}
    assert kinds == {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "MAX_POOL_2D", "AVERAGE_POOL_2D",
                     "RESHAPE", "SOFTMAX", "LOGISTIC", "TANH"}  # fmt: skip
    with tempfile.TemporaryDirectory() as d:
        assert_c_equals_runtime(models, Path(d))


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(graphs(max_layers=3), min_size=4, max_size=4), st.sampled_from(["float", "integer"]),
       st.integers(0, 2**31 - 1))  # fmt: skip
@pytest.mark.slow
def test_random_graphs_equal_the_runtime(batch, fc_rescale, seed):
    models = [(graph, fc_rescale, random_input(graph, 48, seed=seed + k)) for k, graph in enumerate(batch)]
    with tempfile.TemporaryDirectory() as d:
        assert_c_equals_runtime(models, Path(d))


@settings(max_examples=25, deadline=None)
@given(graphs(max_layers=4))
def test_arena_plan_never_shares_bytes_between_live_tensors(graph):
    steps = prepare_graph(graph)
    plan = plan_arena(graph, steps)
    live = {}
    for i, step in enumerate(steps):
        for t in step.outputs:
            if t in plan.offsets:
                live[t] = [i, i]
    for i, step in enumerate(steps):
        for t in step.inputs:
            if t in live:
                live[t][1] = i
    for a in live:
        size_a = int(np.prod(graph.tensors[a].shape))
        assert 0 <= plan.offsets[a] and plan.offsets[a] + size_a <= plan.size
        for b in live:
            size_b = int(np.prod(graph.tensors[b].shape))
            overlap_time = not (live[a][1] < live[b][0] or live[b][1] < live[a][0])
            overlap_bytes = plan.offsets[a] < plan.offsets[b] + size_b and plan.offsets[b] < plan.offsets[a] + size_a
            assert a == b or not (overlap_time and overlap_bytes)


def test_arena_of_a_chain_is_two_buffers():
    graph = lenet5(seed=3)
    plan = plan_arena(graph, prepare_graph(graph))
    sizes = [int(np.prod(graph.tensors[op.outputs[0]].shape)) for op in graph.ops[:-1]]
    # conv1 (4704) and pool1 (1176) are alive together; every later pair is smaller.
    assert plan.size == max(a + b for a, b in zip(sizes, sizes[1:])) == 4704 + 1176


# ---------------------------------------------------------------- the file itself


def test_file_format_header_defines_and_labels():
    graph = lenet5(metadata={"labels": [str(i) for i in range(10)], "edgecnn_version": "0.1.0", "arch": "lenet5"})
    source = to_c(graph, name="digits")
    assert source.startswith(f"/* {MAGIC} v1\n")
    assert "edgecnn 0.1.0" in source.split("*/")[0]
    for define in ("#define DIGITS_INPUT_SIZE 1024\n", "#define DIGITS_OUTPUT_SIZE 10\n",
                   "#define DIGITS_INPUT_ZERO_POINT -128\n", "#define DIGITS_NUM_LABELS 10\n",
                   "#define DIGITS_FORMAT_VERSION 1\n"):  # fmt: skip
        assert define in source
    assert re.search(r"#define DIGITS_INPUT_SCALE 0\.0039215", source)
    assert "int digits_invoke(const int8_t *input, int8_t *output)" in source
    assert 'const char *const digits_labels[10] = {\n    "0",' in source
    code = strip_comments(source)
    assert "malloc" not in code and "#include <math.h>" not in code
    # The weights are all there: 61,706 parameters, of which the biases are int32 (a conv's biases are in its
    # op*_channel table, one row per output channel). Weights are two 16-bit lanes per uint32_t word: a conv's
    # in op*_pairs, padded to a multiple of 4 taps with zeros (6 x 3 + 16 x 2 more), a fully connected layer's in
    # op*_lanes, units padded to a multiple of 4 with zero rows (the last layer: 2 x 84 more).
    arrays = re.findall(r"static const (int8_t|int32_t|ec_channel) op\d+_(filter|bias|channel)\[(\d+)\]", source)
    words = re.findall(r"static const uint32_t op\d+_(?:pairs|lanes)\[(\d+)\]", source)
    assert sum(int(n) for _, _, n in arrays) + 2 * sum(int(n) for n in words) == 61_706 + 6 * 3 + 16 * 2 + 2 * 84
    assert to_c(graph, name="digits") == source  # deterministic


def test_integer_mode_has_no_floating_point_at_all(tmp_path):
    """fc_rescale="integer": no float/double in the code, and gcc builds it without any FP register."""
    graphs_ = [lenet5(seed=1)] + every_op_graphs()[:2]
    for k, graph in enumerate(graphs_):
        source = to_c(graph, fc_rescale="integer")
        code = strip_comments(source)
        assert not re.search(r"\b(float|double)\b", code)
        path = tmp_path / f"int{k}.c"
        path.write_text(source)
        gcc(["-mgeneral-regs-only", "-c", path.name, "-o", f"int{k}.o"], tmp_path)
    # The check can fail: the float mode does need FP registers, in the FC rescale only.
    source = to_c(graphs_[0], fc_rescale="float")
    (tmp_path / "float.c").write_text(source)
    p = subprocess.run(["gcc", *CFLAGS, "-mgeneral-regs-only", "-c", "float.c", "-o", "float.o"], cwd=tmp_path,
                       capture_output=True, text=True)  # fmt: skip
    assert p.returncode != 0 and "ec_fully_connected" in p.stderr
    allowed = (
        r"static int32_t ec_round_half_away\(double v\)",
        r"const double a = v < 0 \? -v : v;",
        r"if \(a - \(double\)r >= 0\.5\) r \+= 1;",
        r"const double \*effective_scale;",
        r"ec_saturate\(\(int64_t\)ec_round_half_away\(\(double\)total \* p->effective_scale\[unit \+ k\]\)",
        r"static const double op\d+_effective_scale\[\d+\] = \{",
    )
    for line in strip_comments(source).splitlines():
        if re.search(r"\b(float|double)\b", line) and "#" not in line:
            assert any(re.search(a, line) for a in allowed), line


def test_unsupported_op_is_a_clear_error(tmp_path):
    graph = lenet5()
    graph.ops.insert(1, Op("HYPOT", [graph.ops[0].outputs[0]], [graph.ops[0].outputs[0]]))
    with pytest.raises(UnsupportedOpError, match=r"op 1 \(HYPOT\).*C exporter"):
        to_c(graph)
    out = tmp_path / "model.c"
    with pytest.raises(UnsupportedOpError):
        export_model(graph, out)
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_bad_arguments():
    with pytest.raises(ValueError, match="identifier"):
        to_c(lenet5(), name="my model")
    with pytest.raises(ValueError, match="fc_rescale"):
        to_c(lenet5(), fc_rescale="fixed")


def test_write_c_and_export_model_from_a_tflite_file(tmp_path):
    from edgecnn.deploy.tflite import to_bytes

    graph = lenet5(seed=2, metadata={"labels": list("abcdefghij")})
    assert write_c(graph, tmp_path / "a.c").read_text() == to_c(graph)
    (tmp_path / "m.tflite").write_bytes(to_bytes(graph))
    export_model(tmp_path / "m.tflite", tmp_path / "b.c")
    assert (tmp_path / "b.c").read_text() == to_c(graph)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.c", "b.c", "m.tflite"]


def test_main_driver_and_the_softmax_error_status(tmp_path):
    """EDGECNN_MAIN reads records from stdin; a softmax row TFLite aborts on makes invoke return -1."""
    g = GraphBuilder(np.random.default_rng(0), (1, 600), 0.1, 0)
    graph = g.softmax(1.0).build()
    write_c(graph, tmp_path / "s.c", name="s")
    gcc(["-DEDGECNN_MAIN", "s.c", "-o", "s"], tmp_path)
    x = random_input(graph, 3, seed=1)
    p = subprocess.run([str(tmp_path / "s")], input=x.tobytes(), capture_output=True, check=True)
    assert np.array_equal(np.frombuffer(p.stdout, np.int8).reshape(3, 600), Runtime(graph).run(x))
    equal = np.zeros((1, 600), np.int8)  # 600 maxima: the Q12.19 sum needs more than TFLite's final shift allows
    with pytest.raises(Exception) as raised:  # Numba wraps an error raised inside prange in a SystemError
        Runtime(graph).run(equal)
    assert "softmax: row too long" in str(raised.value) + str(raised.value.__cause__)
    p = subprocess.run([str(tmp_path / "s")], input=equal.tobytes(), capture_output=True)
    assert p.returncode == 1 and b"inference failed" in p.stderr
    p = subprocess.run([str(tmp_path / "s")], input=x.tobytes()[:-1], capture_output=True)
    assert p.returncode == 1 and b"whole number" in p.stderr


# ---------------------------------------------------------------- trained LeNets on all of MNIST test


@pytest.fixture(scope="module")
def mnist_images(mnist_root):
    from edgecnn.data.datasets import lenet_input, lenet_input_int8, load_split

    train_images, _ = load_split("mnist", "train", mnist_root)
    test_images, _ = load_split("mnist", "test", mnist_root)
    return lenet_input(train_images[:500]), lenet_input_int8(test_images)


@pytest.mark.parametrize("arch", ["lenet5", "lenet5-classic"])
def test_trained_lenet_equals_the_runtime_on_mnist(arch, lenet5_path, classic_path, mnist_images, tmp_path,
                                                   record_property):  # fmt: skip
    from edgecnn.model.checkpoint import load_checkpoint
    from edgecnn.quantize.ptq import quantize_model

    calib, x = mnist_images
    graph = quantize_model(load_checkpoint(lenet5_path if arch == "lenet5" else classic_path), calib,
                           progress=False).graph  # fmt: skip
    path = write_c(graph, tmp_path / "model.c")
    record_property(f"{arch}_c_bytes", path.stat().st_size)
    gcc(["-DEDGECNN_MAIN", "model.c", "-o", "model"], tmp_path)
    p = subprocess.run([str(tmp_path / "model")], input=x.tobytes(), capture_output=True, check=True, timeout=300)
    ours = np.frombuffer(p.stdout, np.int8).reshape(10_000, 10)
    ref = Runtime(graph).run(x)
    assert np.array_equal(ours, ref), f"{int(np.sum(ours != ref))} of {ref.size} outputs differ"
