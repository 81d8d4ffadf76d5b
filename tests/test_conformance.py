"""Conformance: TensorFlow-converter int8 models, every output element identical in every back end.

tests/tf_conformance_models.py builds the models embedded teams ship (MLPerf
Tiny's ResNet-8, DS-CNN, MobileNetV1 0.25 and FC autoencoder, MobileNetV2
blocks) and one small model per converter pattern (float and uint8 edges,
two outputs, branches, dilations, padding, resizing, the Dense-on-4-D shape
chain, ...) in Keras with seeded random weights, and converts them with
`tf.lite.TFLiteConverter` (full integer). It runs once per session in the
TensorFlow venv ($EDGECNN_TF_PYTHON, else the repo's .venv-tf), into a
folder shared by the xdist workers behind a file lock
($EDGECNN_CONFORMANCE_DIR instead keeps the models between sessions).

For every model, on seeded random inputs with the extremes included:
- edgecnn's reader + Numba `Runtime` == LiteRT BUILTIN_REF, every element of
  every output (on a difference, the first op whose output differs from
  LiteRT's is named);
- every op's own output == LiteRT's (preserve_all_tensors) on two images;
- the C export, compiled with gcc and run through its stdin/stdout main,
  == the runtime;
- the ONNX export in onnxruntime == the runtime.
The module is marked slow (TensorFlow makes the models: about 30 s of CPU);
CI runs it. Each test records how many outputs and elements it compared (record_property,
and one JSON line per test in the shared folder's counts.jsonl);
`python tests/test_conformance.py DIR` totals a folder's counts.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pytest
import tflite

from edgecnn.deploy.tflite import read_tflite
from edgecnn.deploy.tflite.metadata import OP_NAMES
from edgecnn.int8.graph import Int8Graph

from tf_conformance_models import MODELS  # numpy only at import: TensorFlow loads in its main()

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
MAKER = Path(__file__).with_name("tf_conformance_models.py")
TF_PYTHON_ENV = "EDGECNN_TF_PYTHON"
DIR_ENV = "EDGECNN_CONFORMANCE_DIR"
RANDOM_IMAGES = 21
CFLAGS = ["-std=c99", "-O2", "-Wall", "-Wextra", "-pedantic", "-Werror"]
NAMES = sorted(MODELS)
# What the suite must exercise, in the converter's own files (before folding).
REQUIRED_OPS = {
    "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "MAX_POOL_2D", "AVERAGE_POOL_2D", "RESHAPE", "SOFTMAX",
    "LOGISTIC", "TANH", "SHAPE", "STRIDED_SLICE", "PACK", "GATHER", "REDUCE_PROD", "CONCATENATION",
    "ADD", "SUB", "MUL", "RELU", "RELU6", "LEAKY_RELU", "HARD_SWISH", "MEAN", "REDUCE_MAX", "PAD", "PADV2",
    "QUANTIZE", "DEQUANTIZE", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "SPACE_TO_BATCH_ND",
    "BATCH_TO_SPACE_ND",
}  # fmt: skip


# ---------------------------------------------------------------- making the models once


def tf_python() -> str:
    path = os.environ.get(TF_PYTHON_ENV) or str(REPO / ".venv-tf" / "bin" / "python")
    if not os.access(path, os.X_OK):
        pytest.fail(f"no TensorFlow python at {path}: set ${TF_PYTHON_ENV} (.ci/run builds one: "
                    f"python3.11 -m venv .venv-tf && .venv-tf/bin/pip install tensorflow-cpu==2.20.0)")  # fmt: skip
    return path


def _shared_dir(tmp_path_factory) -> Path:
    if os.environ.get(DIR_ENV):  # a folder kept between sessions (made there if it holds no manifest yet)
        d = Path(os.environ[DIR_ENV])
        d.mkdir(parents=True, exist_ok=True)
        return d
    base = tmp_path_factory.getbasetemp()
    d = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "edgecnn-conformance"
    d.mkdir(exist_ok=True)
    return d


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    """The converter's files for every model, made once per session across xdist workers."""
    d = _shared_dir(tmp_path_factory)
    with open(d / "make.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        manifest = d / "manifest.json"
        if not manifest.exists() or sorted(json.loads(manifest.read_text())["models"]) != NAMES:
            # A PYTHONPATH meant for edgecnn's venv would leak its numpy into TensorFlow's.
            env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
            p = subprocess.run([tf_python(), str(MAKER), str(d)], capture_output=True, text=True, env=env,
                               timeout=1200)  # fmt: skip
            assert p.returncode == 0, f"{MAKER.name} failed (exit {p.returncode}):\n{p.stderr[-4000:]}"
    manifest = json.loads((d / "manifest.json").read_text())
    assert sorted(manifest["models"]) == NAMES
    return d


# ---------------------------------------------------------------- one model's case


def file_ops(data: bytes) -> list[str]:
    """The builtin names of the file's ops, in order (before edgecnn folds anything)."""
    m = tflite.Model.GetRootAs(data, 0)
    sg = m.Subgraphs(0)
    names = []
    for i in range(sg.OperatorsLength()):
        code = m.OperatorCodes(sg.Operators(i).OpcodeIndex())
        names.append(OP_NAMES[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())])
    return names


def _quantize_params_of_input(graph: Int8Graph, t: int) -> tuple[float, int]:
    """(scale, zero point) the model quantizes float input t with: its own, or its QUANTIZE consumer's output's."""
    tensor = graph.tensors[t]
    if tensor.scale.size:
        return float(tensor.scale[0]), int(tensor.zero_point[0])
    for op in graph.ops:
        if t in op.inputs and graph.tensors[op.outputs[0]].scale.size:
            out = graph.tensors[op.outputs[0]]
            return float(out.scale[0]), int(out.zero_point[0])
    return 1 / 128, 0


def conformance_inputs(graph: Int8Graph, seed: int) -> list[np.ndarray]:
    """One array per graph input: random images, then the extremes.

    Integer inputs: RANDOM_IMAGES uniform over the whole range, then all
    minimum, all maximum, and a min/max checkerboard. Float inputs: random
    images in the calibration range [-1, 1] and beyond it ([-4, 4], which
    saturates), zeros, +-1e4 (clamped by QUANTIZE), a +-1e4 checkerboard, and
    values on exact half steps of the input scale (rounding ties).
    """
    rng = np.random.default_rng(seed)
    arrays = []
    for t in graph.inputs:
        tensor = graph.tensors[t]
        shape = tuple(tensor.shape[1:])
        checker = (np.indices(shape).sum(axis=0) % 2).astype(bool) if shape else np.array(True)
        if tensor.dtype in ("int8", "uint8"):
            info = np.iinfo(tensor.dtype)
            images = [rng.integers(info.min, info.max, shape, dtype=tensor.dtype, endpoint=True)
                      for _ in range(RANDOM_IMAGES)]  # fmt: skip
            images += [np.full(shape, info.min, tensor.dtype), np.full(shape, info.max, tensor.dtype),
                       np.where(checker, info.min, info.max).astype(tensor.dtype)]  # fmt: skip
        else:
            scale, zp = _quantize_params_of_input(graph, t)
            ties = (rng.integers(-128, 127, shape) - zp + 0.5) * scale
            images = [rng.uniform(-1, 1, shape) for _ in range(RANDOM_IMAGES - 2)]
            images += [rng.uniform(-4, 4, shape) for _ in range(2)]
            images += [np.zeros(shape), np.full(shape, 1e4), np.full(shape, -1e4), np.where(checker, -1e4, 1e4), ties]
        arrays.append(np.stack(images).astype(tensor.dtype))
    return arrays


@dataclass
class Case:
    name: str
    path: Path
    data: bytes = field(repr=False)

    @cached_property
    def graph(self) -> Int8Graph:
        return read_tflite(self.data)

    @cached_property
    def inputs(self) -> list[np.ndarray]:
        return conformance_inputs(self.graph, seed=NAMES.index(self.name))

    @cached_property
    def runtime(self):
        from edgecnn.deploy.runtime import Runtime

        return Runtime(self.graph)

    @cached_property
    def outputs(self) -> list[np.ndarray]:
        """edgecnn's runtime on every input image: one array per graph output."""
        return self.runtime.run_all(self.inputs)

    def output_names(self) -> list[str]:
        return [self.graph.tensors[t].name for t in self.graph.outputs]


_CASES: dict[str, Case] = {}


@pytest.fixture
def case(request, model_dir) -> Case:
    name = request.param
    if name not in _CASES:
        path = model_dir / f"{name}.tflite"
        _CASES[name] = Case(name, path, path.read_bytes())
    return _CASES[name]


def record(model_dir: Path, record_property, backend: str, case: Case, outputs: list[np.ndarray]) -> None:
    counts = {"model": case.name, "backend": backend, "images": int(case.inputs[0].shape[0]),
              "outputs": len(outputs), "elements": int(sum(o.size for o in outputs))}  # fmt: skip
    for key, value in counts.items():
        record_property(key, value)
    with open(model_dir / "counts.jsonl", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write(json.dumps(counts) + "\n")
    print(f"\n{case.name} {backend}: {counts['outputs']} outputs, {counts['elements']} elements identical")


def assert_identical(got: list[np.ndarray], want: list[np.ndarray], what: str, names: list[str]) -> None:
    """Same count, dtype, shape and bytes for every output (floats compared bit for bit)."""
    assert len(got) == len(want), f"{what}: {len(got)} outputs, expected {len(want)}"
    for k, (a, b) in enumerate(zip(got, want)):
        a, b = np.asarray(a), np.asarray(b)
        label = f"{what}: output {k} ({names[k]})"
        assert a.dtype == b.dtype, f"{label} is {a.dtype}, expected {b.dtype}"
        assert a.shape == b.shape, f"{label} has shape {a.shape}, expected {b.shape}"
        diff = np.flatnonzero(a.reshape(-1).view(np.uint8 if a.itemsize == 1 else np.uint32)
                              != b.reshape(-1).view(np.uint8 if b.itemsize == 1 else np.uint32))  # fmt: skip
        if diff.size:
            first = np.unravel_index(diff[0], a.shape)
            raise AssertionError(f"{label}: {diff.size} of {a.size} elements differ; first at {tuple(map(int, first))}: "
                                 f"got {a[first]}, expected {b[first]}")  # fmt: skip


# ---------------------------------------------------------------- the suite covers what it must


def test_the_suite_covers_every_required_op(model_dir, record_property):
    seen = {}
    for name in NAMES:
        for kind in file_ops((model_dir / f"{name}.tflite").read_bytes()):
            seen.setdefault(kind, name)
    record_property("ops", json.dumps(sorted(seen)))
    print(f"\n{len(NAMES)} models, {len(seen)} distinct builtin ops: {sorted(seen)}")
    missing = REQUIRED_OPS - set(seen)
    assert not missing, f"no conformance model uses {sorted(missing)}"


def test_every_registered_op_is_covered(model_dir):
    from edgecnn.deploy.ops import REGISTRY

    seen = {kind for name in NAMES for kind in file_ops((model_dir / f"{name}.tflite").read_bytes())}
    assert not set(REGISTRY) - seen, f"registered ops no conformance model uses: {sorted(set(REGISTRY) - seen)}"


# ---------------------------------------------------------------- the runtime against LiteRT's reference


def compare_every_op(case: Case, image: int) -> tuple[int, int, str | None]:
    """Every op's output on one image, edgecnn's runtime against LiteRT BUILTIN_REF (preserve_all_tensors).

    Returns (op outputs compared, elements compared, the first difference in
    edgecnn's op order or None). Tensors are matched by name; the few that
    LiteRT does not keep or edgecnn renamed are skipped.
    """
    from edgecnn.deploy.litert import load_interpreter_module, native_stderr_quiet

    module = load_interpreter_module()
    with native_stderr_quiet():
        interpreter = module.Interpreter(model_content=case.data, experimental_preserve_all_tensors=True,
                                         experimental_op_resolver_type=module.OpResolverType.BUILTIN_REF)  # fmt: skip
        interpreter.allocate_tensors()
    one = [x[image:image + 1] for x in case.inputs]
    for detail, x in zip(interpreter.get_input_details(), one):
        interpreter.set_tensor(detail["index"], x)
    interpreter.invoke()
    index_of = {}
    for detail in interpreter.get_tensor_details():
        index_of.setdefault(detail["name"], detail["index"])
    ours = case.runtime.run_intermediates(one)
    tensors = elements = 0
    for i, op in enumerate(case.graph.ops):
        for t in op.outputs:
            name = case.graph.tensors[t].name
            if name not in index_of:
                continue
            try:
                theirs = interpreter.get_tensor(index_of[name]).reshape(-1)
            except ValueError:
                continue
            mine = ours[t].reshape(-1)
            if mine.shape != theirs.shape:
                continue
            if not np.array_equal(mine, theirs):
                return tensors, elements, (f"first differing op on image {image}: op {i} ({op.kind}), output {name}: "
                                           f"{int(np.sum(mine != theirs))} of {mine.size} elements differ")  # fmt: skip
            tensors, elements = tensors + 1, elements + mine.size
    return tensors, elements, None


@pytest.mark.parametrize("case", NAMES, indirect=True)
def test_runtime_equals_litert_reference(case, model_dir, record_property):
    from edgecnn.deploy.litert import LiteRTRunner

    runner = LiteRTRunner(case.data, "ref")
    want = runner.run(case.inputs)
    want = want if isinstance(want, list) else [want]
    names = [d["name"] for d in runner.interpreter.get_output_details()]
    assert names == case.output_names(), "edgecnn and LiteRT order the outputs differently"
    got = case.outputs
    try:
        assert_identical(got, want, f"{case.name} runtime vs LiteRT BUILTIN_REF", names)
    except AssertionError as e:
        bad = next(k for k in range(case.inputs[0].shape[0])
                   if any(not np.array_equal(g[k], w[k]) for g, w in zip(got, want)))  # fmt: skip
        raise AssertionError(f"{e}\n{compare_every_op(case, bad)[2]}") from None
    record(model_dir, record_property, "runtime", case, got)


@pytest.mark.parametrize("case", NAMES, indirect=True)
def test_every_op_output_equals_litert_reference(case, model_dir, record_property):
    """Beyond the graph's outputs: each op's own output, on a random image and on the all-maximum one."""
    total_tensors = total_elements = 0
    for image in (0, RANDOM_IMAGES + 1):
        tensors, elements, difference = compare_every_op(case, image)
        assert difference is None, f"{case.name}: {difference}"
        total_tensors, total_elements = total_tensors + tensors, total_elements + elements
    assert total_tensors >= len(case.graph.ops), f"{case.name}: only {total_tensors} op outputs matched by name"
    record_property("op_outputs", total_tensors)
    record_property("op_output_elements", total_elements)
    with open(model_dir / "counts.jsonl", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write(json.dumps({"model": case.name, "backend": "every_op", "images": 2, "outputs": total_tensors,
                            "elements": total_elements}) + "\n")  # fmt: skip
    print(f"\n{case.name} every op: {total_tensors} op outputs, {total_elements} elements identical")


# ---------------------------------------------------------------- the C export (gcc) against the runtime


def run_c(case: Case, workdir: Path) -> list[np.ndarray]:
    """Export, compile with -DEDGECNN_MAIN and pipe records through: every input's bytes in, every output's out."""
    from edgecnn.deploy.export.c import to_c

    source = workdir / f"{case.name}.c"
    source.write_text(to_c(case.graph, name="conformance_model"))
    exe = workdir / case.name
    p = subprocess.run(["gcc", *CFLAGS, "-DEDGECNN_MAIN", str(source), "-o", str(exe), "-lm"], capture_output=True,
                       text=True, timeout=600)  # fmt: skip
    assert p.returncode == 0, f"gcc failed on {case.name}:\n{p.stderr[:4000]}"
    images = case.inputs[0].shape[0]
    records = b"".join(x[k].tobytes() for k in range(images) for x in case.inputs)
    p = subprocess.run([str(exe)], input=records, capture_output=True, timeout=600)
    assert p.returncode == 0, f"{case.name}'s C program failed (exit {p.returncode}): {p.stderr.decode()[:2000]}"
    g = case.graph
    out_tensors = [g.tensors[t] for t in g.outputs]
    per_image = [int(np.prod(t.shape[1:], dtype=np.int64)) * t.shape[0] for t in out_tensors]
    dtypes = [np.dtype(t.dtype) for t in out_tensors]
    record_bytes = sum(n * d.itemsize for n, d in zip(per_image, dtypes))
    assert len(p.stdout) == images * record_bytes, f"C wrote {len(p.stdout)} bytes, expected {images * record_bytes}"
    results = [np.empty((images, *o.shape[1:]), o.dtype) for o in case.outputs]
    offset = 0
    for k in range(images):
        for result, n, d in zip(results, per_image, dtypes):
            result[k] = np.frombuffer(p.stdout, d, n, offset).reshape(result.shape[1:])
            offset += n * d.itemsize
    return results


@pytest.mark.parametrize("case", NAMES, indirect=True)
def test_c_export_equals_runtime(case, model_dir, tmp_path, record_property):
    got = run_c(case, tmp_path)
    assert_identical(got, case.outputs, f"{case.name} C export vs runtime", case.output_names())
    record(model_dir, record_property, "c", case, got)


# ---------------------------------------------------------------- the ONNX export (onnxruntime) against the runtime


@pytest.mark.parametrize("case", NAMES, indirect=True)
def test_onnx_export_equals_runtime(case, model_dir, record_property):
    import onnxruntime as ort

    from edgecnn.deploy.export.onnx import to_onnx

    model = to_onnx(case.graph)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {i.name: x for i, x in zip(session.get_inputs(), case.inputs)}
    assert len(feeds) == len(case.inputs), f"the ONNX model has {len(session.get_inputs())} inputs"
    got = session.run(None, feeds)
    assert_identical(got, case.outputs, f"{case.name} ONNX export vs runtime", case.output_names())
    record(model_dir, record_property, "onnx", case, got)


def summarize(folder: Path) -> str:
    """Totals per back end from a folder's counts.jsonl (the last record of each model and back end)."""
    last = {}
    for line in (folder / "counts.jsonl").read_text().splitlines():
        row = json.loads(line)
        last[(row["model"], row["backend"])] = row
    lines = []
    for backend in ("runtime", "every_op", "c", "onnx"):
        rows = [r for (_, b), r in sorted(last.items()) if b == backend]
        lines.append(f"{backend}: {len(rows)} models, {sum(r['images'] for r in rows)} images, "
                     f"{sum(r['outputs'] for r in rows)} outputs, {sum(r['elements'] for r in rows)} elements identical")
    return "\n".join(lines)


if __name__ == "__main__":
    print(summarize(Path(sys.argv[1])))
