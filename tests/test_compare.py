"""`edgecnn compare` and deploy/compare.py: the op and image where two back ends part.

The judge of the counts is independent of edgecnn's comparison: the test runs
LiteRT's interpreter itself with preserve_all_tensors under BUILTIN_REF and
under the default resolver (XNNPACK), saves every op output of both to .npz,
and counts the differing elements per op with plain numpy.
"""

from __future__ import annotations

import functools
import json
import warnings

import numpy as np
import pytest
from cli_main import run_main
from conftest import assert_clean_error, run_cli

from test_conformance import conformance_inputs, model_dir  # noqa: F401  (the converter's models, made once)
from test_tflite_runtime_214 import tflrt_python  # noqa: F401  (its venv's python: skip locally, fail in CI)
from tflite_models import lenet5, random_input

from edgecnn.cli import main
from edgecnn.deploy.compare import OpDiff, Report, compare, compare_chunk, first_divergence
from edgecnn.deploy.tflite import read_tflite
from edgecnn.deploy.tflite.writer import to_bytes

# ---------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def lenet_file(tmp_path_factory):
    """LeNet-5 with seeded random int8 weights; input scale 1/255, zero point -128: MNIST feeds it losslessly."""
    path = tmp_path_factory.mktemp("compare") / "lenet5.tflite"
    path.write_bytes(to_bytes(lenet5(0)))
    return path


def cli_json(capsys, *args) -> dict:
    capsys.readouterr()
    assert main(["compare", *map(str, args), "--json", "--quiet"]) == 0
    return json.loads(capsys.readouterr().out)


def litert_tensors(data: bytes, inputs: list[np.ndarray], resolver: str) -> dict[str, np.ndarray]:
    """Every tensor LiteRT keeps after one invoke on the whole batch, by name (the judge's own run)."""
    from ai_edge_litert import interpreter as module

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        it = module.Interpreter(model_content=data, num_threads=1, experimental_preserve_all_tensors=True,
                                experimental_op_resolver_type=getattr(module.OpResolverType, resolver))  # fmt: skip
    for d, x in zip(it.get_input_details(), inputs):
        it.resize_tensor_input(d["index"], list(x.shape))
    it.allocate_tensors()
    for d, x in zip(it.get_input_details(), inputs):
        it.set_tensor(d["index"], x)
    it.invoke()
    out = {}
    for d in it.get_tensor_details():
        try:
            out.setdefault(d["name"], it.get_tensor(d["index"]).copy())
        except ValueError:
            pass
    return out


def direct_comparison(data: bytes, inputs: list[np.ndarray], tmp_path) -> tuple[dict, tuple | None]:
    """Per op-output name: (differing elements, largest difference, first image), and the first (image, name).

    Both runs are saved to .npz and read back before comparing. Only tensors
    with one row per image are used (enough for LeNet-5 and MobileNet).
    """
    saved = {}
    for resolver in ("BUILTIN_REF", "AUTO"):
        tensors = litert_tensors(data, inputs, resolver)
        np.savez(tmp_path / f"{resolver}.npz", names=np.array(list(tensors)), *tensors.values())
        with np.load(tmp_path / f"{resolver}.npz") as z:
            saved[resolver] = {str(name): z[f"arr_{i}"] for i, name in enumerate(z["names"])}
    graph = read_tflite(data)
    n = len(inputs[0])
    rows = {}
    for op in graph.ops:
        for t in op.outputs:
            name = graph.tensors[t].name
            rows[name] = [saved[r][name].reshape(n, -1).astype(np.int64) for r in ("BUILTIN_REF", "AUTO")]
    counts = {}
    for name, (a, b) in rows.items():
        bad = np.flatnonzero((a != b).any(axis=1))
        counts[name] = (int((a != b).sum()), int(np.abs(a - b).max()), int(bad[0]) if bad.size else None)
    first = None
    for image in range(n):  # the first image that differs anywhere, then the first op on it
        hit = next((name for name, (a, b) in rows.items() if not np.array_equal(a[image], b[image])), None)
        if hit is not None:
            first = (image, hit)
            break
    return counts, first


def assert_report_matches(report: dict, counts: dict, first) -> None:
    assert [op["tensor"] for op in report["ops"]] == list(counts)
    for op in report["ops"]:
        assert op["compared"], op
        assert (op["differing"], op["max_diff"], op["first_image"]) == counts[op["tensor"]], op
    assert first is not None, "XNNPACK equals the reference on every tensor here: the test shows nothing"
    d = report["first_divergence"]
    assert (d["image"], d["tensor"]) == first
    assert report["identical"] is False


# ---------------------------------------------------------------- litert-ref vs litert (XNNPACK)


def test_lenet_reference_vs_xnnpack_counts_equal_a_direct_comparison(lenet_file, mnist_root, capsys, tmp_path):
    from edgecnn.data.datasets import load_split
    from edgecnn.deploy.compare import prepare_images

    report = cli_json(capsys, lenet_file, "--backends", "litert-ref,litert", "--data", mnist_root, "--limit", 300)
    images = load_split("mnist", "test", mnist_root)[0][:300]
    data = lenet_file.read_bytes()
    inputs = prepare_images(read_tflite(data), images)
    assert np.array_equal(inputs[0][:, 2:30, 2:30, 0].astype(np.int16) + 128, images)  # pixel + zp, padded to 32
    counts, first = direct_comparison(data, inputs, tmp_path)
    assert report["images"] == 300
    assert_report_matches(report, counts, first)
    print(f"\nLeNet-5 litert-ref vs litert: first op {report['first_divergence']['op_index']} "
          f"({report['first_divergence']['builtin']}), {sum(c[0] for c in counts.values())} differing elements")


def test_trained_lenet_reference_vs_xnnpack(lenet5_path, mnist_root, tmp_path, capsys):
    """The trained LeNet-5 of the suite (slow: trains once per session), quantized by edgecnn."""
    model = tmp_path / "lenet5.tflite"
    assert main(["quantize", str(lenet5_path), "--out", str(model), "--data", str(mnist_root), "--quiet"]) == 0
    capsys.readouterr()
    report = cli_json(capsys, model, "--backends", "litert-ref,litert", "--data", mnist_root, "--limit", 500)
    from edgecnn.data.datasets import load_split
    from edgecnn.deploy.compare import prepare_images

    data = model.read_bytes()
    inputs = prepare_images(read_tflite(data), load_split("mnist", "test", mnist_root)[0][:500])
    counts, first = direct_comparison(data, inputs, tmp_path)
    assert_report_matches(report, counts, first)


@pytest.mark.slow
def test_mobilenet_reference_vs_xnnpack_and_exact_backends(model_dir, tmp_path, capsys):
    """The converter's MobileNetV1 0.25 (96x96x3, seeded weights): XNNPACK's first op, counts as judged directly;
    numba equals the reference, C and onnxruntime on every op output."""
    path = model_dir / "mobilenet_v1_025.tflite"
    data = path.read_bytes()
    x = conformance_inputs(read_tflite(data), seed=0)[0]  # 21 random images, then all -128, all 127, a checkerboard
    np.save(tmp_path / "x.npy", x)
    first_xnnpack = cli_json(capsys, path, "--backends", "litert-ref,litert", "--inputs", tmp_path / "x.npy")
    counts, first = direct_comparison(data, [x], tmp_path)
    assert first_xnnpack["images"] == len(x) == 24
    assert_report_matches(first_xnnpack, counts, first)
    for other in ("litert-ref", "c", "onnxruntime"):
        report = cli_json(capsys, path, "--backends", f"numba,{other}", "--inputs", tmp_path / "x.npy")
        assert report["identical"], (other, report["first_divergence"])
        assert all(op["compared"] and op["elements"] for op in report["ops"]), other
    d = first_xnnpack["first_divergence"]
    print(f"\nMobileNetV1 0.25 litert-ref vs litert: first op {d['op_index']} ({d['builtin']}) on image "
          f"{d['image']}, {sum(c[0] for c in counts.values())} of "
          f"{sum(op['elements'] for op in first_xnnpack['ops'])} elements differ")


def test_preserved_tensors_are_xnnpack_s_own(lenet_file):
    """preserve_all_tensors leaves XNNPACK on: the outputs are a plain run's, and every kept tensor equals
    what a copy whose outputs are every tensor gives without preserving (XNNPACK then must produce them)."""
    from edgecnn.deploy.intermediates import LiteRTSource, every_tensor_out
    from edgecnn.deploy.litert import LiteRTRunner

    data, graph = lenet_file.read_bytes(), lenet5(0)
    x = random_input(graph, 200, seed=6)
    plain = LiteRTRunner(data, "default").run(x)
    assert not np.array_equal(plain, LiteRTRunner(data, "ref").run(x))  # XNNPACK is on here
    kept = LiteRTSource(graph, data, "default").tensors([x])
    assert np.array_equal(kept[graph.outputs[0]], plain)
    copy = every_tensor_out(graph)
    outs = LiteRTRunner(to_bytes(copy), "default").run(x)
    assert len(kept) == len(copy.outputs) == 8
    for t, y in zip(copy.outputs, outs):
        assert np.array_equal(kept[t], y.reshape(len(x), -1)), graph.tensors[t].name


# ---------------------------------------------------------------- exact back ends agree everywhere


@pytest.mark.parametrize("other", ["litert-ref", "c", "onnxruntime"])
def test_numba_equals_exact_backends_on_every_op(lenet_file, mnist_root, capsys, other):
    report = cli_json(capsys, lenet_file, "--backends", f"numba,{other}", "--data", mnist_root, "--limit", 200)
    assert report["identical"] and report["first_divergence"] is None
    assert len(report["ops"]) == 8
    for op in report["ops"]:
        assert op["compared"] and op["elements"] > 0 and op["differing"] == 0 and op["max_diff"] == 0, op


def test_litert_builtin_parts_from_the_reference_at_a_fully_connected(lenet_file):
    """Optimized kernels round FULLY_CONNECTED's ties differently: the report names that op, not a conv."""
    x = random_input(lenet5(0), 300, seed=1)
    d = first_divergence(lenet_file, "litert-ref", "litert-builtin", inputs=x)
    assert d is not None and d.builtin == "FULLY_CONNECTED", d
    assert "FULLY_CONNECTED" in d.message() and f"image {d.image}" in d.message()


def test_first_divergence_takes_dataset_images_as_eval_feeds_them(lenet_file, mnist_root):
    from edgecnn.data.datasets import load_split

    images = load_split("mnist", "test", mnist_root)[0][:64]
    d = first_divergence(lenet_file, "litert-ref", "litert", images=images)
    whole = compare(lenet_file, "litert-ref", "litert", images=images)
    assert d == whole.first and d.op_index == 0 and d.builtin == "CONV_2D"
    assert first_divergence(lenet_file, "numba", "litert-ref", images=images) is None


def test_float_differences_and_json_infinity():
    from edgecnn.deploy.compare import difference

    a = np.array([[0.0, np.nan, 1.0, np.inf]], np.float32)
    b = np.array([[-0.0, np.nan, np.nan, np.inf]], np.float32)
    assert difference(a, b).tolist() == [[0.0, 0.0, np.inf, 0.0]]
    row = OpDiff(0, "DEQUANTIZE", "out", 1, max_diff=float("inf"))
    assert json.loads(json.dumps(row.as_dict()))["max_diff"] == "inf"


def test_text_report_names_the_first_op(lenet_file, mnist_root, capsys):
    assert main(["compare", str(lenet_file), "--backends", "litert-ref,litert", "--data", str(mnist_root),
                 "--limit", "100", "--quiet"]) == 0  # fmt: skip
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("lenet5.tflite: litert-ref vs litert, 100 images")
    assert out[-1].startswith("first difference: op 0 (CONV_2D) output conv_2d_0, image ")
    assert len(out) == 2 + 8 + 1


# ---------------------------------------------------------------- the mechanism: a spoiled copy, a spoiled tensor


def test_other_model_with_one_weight_changed_parts_at_that_op(lenet_file, mnist_root, tmp_path, capsys):
    graph = lenet5(0)
    w = graph.tensors[graph.ops[2].inputs[1]].data  # the second conv's filter
    w.reshape(-1)[0] = -w.reshape(-1)[0] if w.reshape(-1)[0] not in (0, -128) else 77
    spoiled = tmp_path / "spoiled.tflite"
    spoiled.write_bytes(to_bytes(graph))
    report = cli_json(capsys, lenet_file, "--other", spoiled, "--backends", "numba", "--data", mnist_root,
                      "--limit", 50)  # fmt: skip
    assert [op["differing"] > 0 for op in report["ops"]][:3] == [False, False, True]
    assert report["first_divergence"]["op_index"] == 2 and report["first_divergence"]["builtin"] == "CONV_2D"
    assert report["other"] == "spoiled.tflite"
    # and across back ends: the copy in C against the original in LiteRT's reference
    report = cli_json(capsys, lenet_file, "--other", spoiled, "--backends", "litert-ref,c", "--data", mnist_root,
                      "--limit", 20)  # fmt: skip
    assert report["first_divergence"]["op_index"] == 2


def test_comparison_core_picks_first_image_then_first_op():
    """Image 1 differs at op 3 only, image 2 at op 0: the two part at image 1, op 3; op 0 first differs on image 2."""
    table = [(i, "OP", i, i) for i in range(4)]
    a = {t: np.zeros((4, 5), np.int8) for t in range(4)}
    b = {t: v.copy() for t, v in a.items()}
    b[3][1, 2] = 7
    b[0][2, :2] = -3
    report = Report("m", ("x", "y"), ops=[OpDiff(i, "OP", f"t{i}", i) for i in range(4)])
    compare_chunk(report, table, a, b, offset=10, images=4)
    assert (report.first.op_index, report.first.image, report.first.differing, report.first.max_diff) == (3, 11, 1, 7)
    assert (report.ops[0].differing, report.ops[0].max_diff, report.ops[0].first_image) == (2, 3, 12)
    assert report.ops[1].differing == report.ops[2].differing == 0
    compare_chunk(report, table, b, a, offset=14, images=4)  # a later chunk adds counts, keeps the first place
    assert report.first.image == 11 and report.ops[3].differing == 2 and report.ops[3].images_differing == 2


def test_monkeypatched_backend_tensor_is_found(lenet_file, monkeypatch):
    """onnxruntime's op 5 output spoiled by one on image 37: compare names op 5, image 37, one element."""
    from edgecnn.deploy import intermediates

    original, done = intermediates.OnnxSource.tensors, [0]

    def spoiled(self, inputs):
        got, n = original(self, inputs), len(inputs[0])
        if done[0] <= 37 < done[0] + n:
            got[self.graph.ops[5].outputs[0]][37 - done[0], 3] ^= 1
        done[0] += n
        return got

    monkeypatch.setattr(intermediates.OnnxSource, "tensors", spoiled)
    report = compare(lenet_file, "numba", "onnxruntime", inputs=random_input(lenet5(0), 100, seed=2), chunk=16)
    assert (report.first.op_index, report.first.image, report.first.differing, report.first.max_diff) == (5, 37, 1, 1)
    assert [op.differing for op in report.ops] == [0, 0, 0, 0, 0, 1, 0, 0]
    assert report.images == 100


def test_tensors_an_in_place_op_overwrote_are_not_compared():
    """tflite-runtime 2.14's ADD writes into its input's buffer even with preserve_all_tensors."""
    from edgecnn.deploy.intermediates import overwritten

    graph = lenet5(0)
    outs = [op.outputs[0] for op in graph.ops]
    address = {outs[0]: 200, outs[1]: 300, outs[2]: 200, outs[3]: 100, outs[4]: 100, outs[5]: 100, outs[6]: 400}
    # op 4 (RESHAPE of op 3) aliases it: same bytes; op 5 then overwrites both; op 2 overwrites op 0
    assert overwritten(graph, address) == {outs[0], outs[3], outs[4]}
    assert overwritten(graph, {outs[3]: 100, outs[4]: 100}) == set()


def test_chunks_bound_memory_and_count_every_image(lenet_file):
    x = random_input(lenet5(0), 90, seed=3)
    whole = compare(lenet_file, "litert-ref", "litert", inputs=x, chunk=90)
    chunked = compare(lenet_file, "litert-ref", "litert", inputs=x, chunk=7)
    assert [o.as_dict() for o in chunked.ops] == [o.as_dict() for o in whole.ops]
    assert chunked.first == whole.first and chunked.images == 90
    seen = []
    stopped = compare(lenet_file, "litert-ref", "litert", inputs=x, chunk=7, stop_at_first=True, progress=seen.append)
    assert stopped.first == whole.first and stopped.images < 90 and seen[-1] == stopped.images


def test_chunk_size_follows_the_memory_budget():
    from edgecnn.deploy.compare import chunk_size

    graph = lenet5(0)
    per_image = 28 * 28 * 6 + 14 * 14 * 6 + 10 * 10 * 16 + 2 * 400 + 120 + 84 + 10  # every op output, int8
    assert chunk_size(graph) == 256  # the cap: 256 images are 2 MB
    assert chunk_size(graph, budget=100_000) == 100_000 // per_image == 11
    assert chunk_size(graph, budget=1) == 1


# ---------------------------------------------------------------- tflite-runtime in its own interpreter


def test_tflite_runtime_in_its_own_python(lenet_file, monkeypatch, tflrt_python):
    monkeypatch.setenv("EDGECNN_TFLRT_PYTHON", tflrt_python)
    x = random_input(lenet5(0), 200, seed=4)
    same = compare(lenet_file, "numba", "tflite-runtime-ref", inputs=x, fc_rescale="integer", chunk=64)
    assert same.identical and all(op.compared and op.elements for op in same.ops)
    d = first_divergence(lenet_file, "numba", "tflite-runtime-ref", inputs=x)  # float FC rescale: 2.14 differs
    assert d is not None and d.builtin == "FULLY_CONNECTED"


@pytest.mark.slow
def test_tflite_runtime_on_resnet8_leaves_in_place_tensors_out(model_dir, monkeypatch, tflrt_python):
    """Converter-made ResNet-8: 2.14 runs ADD in place, so the conv outputs it overwrites are not compared;
    every other op output equals edgecnn's runtime with tflite-runtime's integer FULLY_CONNECTED rescale."""
    monkeypatch.setenv("EDGECNN_TFLRT_PYTHON", tflrt_python)
    path = model_dir / "resnet8.tflite"
    x = conformance_inputs(read_tflite(path), seed=0)[0]
    report = compare(path, "numba", "tflite-runtime-ref", inputs=x, fc_rescale="integer")
    left_out = [op.op_index for op in report.ops if not op.elements]
    assert left_out and all(report.ops[i + 1].builtin == "ADD" for i in left_out), left_out
    assert report.identical and sum(op.elements > 0 for op in report.ops) == len(report.ops) - len(left_out)


# ---------------------------------------------------------------- one-line errors


@pytest.mark.parametrize("backends, needle", [
    ("numba,foo", "unknown backend 'foo'"),
    ("numba", "two names"),
    ("numba,litert,c", "two names"),
])  # fmt: skip
def test_bad_backends_are_one_line(lenet_file, capsys, backends, needle):
    run = run_cli if backends == "numba,foo" else functools.partial(run_main, capsys)  # one real subprocess
    rc, out, err = run("compare", lenet_file, "--backends", backends, "--random", "2")
    assert_clean_error(rc, err, needle)


def test_errors_are_one_line(lenet_file, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EDGECNN_TFLRT_PYTHON", str(tmp_path / "nope"))
    rc, _, err = run_main(capsys, "compare", lenet_file, "--backends", "numba,tflite-runtime", "--random", "2")
    assert_clean_error(rc, err, "EDGECNN_TFLRT_PYTHON")
    model = tmp_path / "model.onnx"
    model.write_bytes(b"x")
    rc, _, err = run_main(capsys, "compare", model, "--backends", "numba,c", "--random", "2")
    assert_clean_error(rc, err, ".tflite")
    other = tmp_path / "other.tflite"
    g = lenet5(0)
    g.ops[1].kind = "AVERAGE_POOL_2D"
    other.write_bytes(to_bytes(g))
    rc, _, err = run_main(capsys, "compare", lenet_file, "--other", other, "--backends", "numba", "--random", "2")
    assert_clean_error(rc, err, "different ops", "op 1")
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\0" * 64)
    rc, _, err = run_main(capsys, "compare", bad, "--backends", "numba,c", "--random", "2")
    assert_clean_error(rc, err, "bad.tflite")


def test_inputs_file_feeds_a_model(lenet_file, tmp_path, capsys):
    x = random_input(lenet5(0), 12, seed=5)
    np.save(tmp_path / "x.npy", x)
    report = cli_json(capsys, lenet_file, "--backends", "numba,litert-ref", "--inputs", tmp_path / "x.npy")
    assert report["images"] == 12 and report["identical"]
    assert compare(lenet_file, "litert-ref", "litert", inputs=x).as_dict()["images"] == 12
