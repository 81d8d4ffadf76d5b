"""The quantize-and-export CLI and the int8 commands, end to end through the real `edgecnn` CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import assert_clean_error, run_cli
from edgecnn.deploy.images import read_image, write_png


@pytest.fixture(scope="module")
def untrained_tflite(tmp_path_factory):
    """A quantized, untrained lenet5: enough for the CLI's contracts, and built in a second."""
    from edgecnn.deploy.tflite import write_tflite
    from edgecnn.model import build
    from edgecnn.quantize.ptq import quantize_model

    m = build("lenet5").init_params(0)
    qm = quantize_model(m, np.random.default_rng(0).uniform(0, 1, (8, 32, 32, 1)).astype(np.float32), progress=False)
    p = tmp_path_factory.mktemp("untrained") / "m.tflite"
    write_tflite(qm.graph, p)
    return p


@pytest.fixture(scope="module")
def tflite_model(tmp_path_factory, lenet5_path, mnist_root):
    out = tmp_path_factory.mktemp("cli") / "lenet5.tflite"
    rc, stdout, err = run_cli("quantize", lenet5_path, "--data", mnist_root, "--calib-samples", "300",
                              "--out", out, "--also", out.with_suffix(".onnx"), "--json")
    assert rc == 0, err
    return out, json.loads(stdout)


@pytest.mark.slow
def test_quantize_json_contract(tflite_model):
    out, doc = tflite_model
    assert set(doc) >= {"out", "float_accuracy", "int8_accuracy", "bytes", "layers"}
    assert doc["out"] == str(out) and doc["bytes"] == out.stat().st_size
    assert out.with_suffix(".onnx").stat().st_size > 0 and doc["also"] == [str(out.with_suffix(".onnx"))]
    assert abs(doc["float_accuracy"] - doc["int8_accuracy"]) <= 0.003
    assert [r["name"] for r in doc["layers"]][:2] == ["conv1", "pool1"]
    assert all(isinstance(r["sqnr_db"], float) for r in doc["layers"])


@pytest.mark.slow
def test_eval_numba_equals_litert_ref_on_all_test_images(tflite_model, mnist_root, tmp_path):
    out, _ = tflite_model
    outputs = {}
    for backend in ("numba", "litert-ref"):
        npy = tmp_path / f"{backend}.npy"
        rc, stdout, err = run_cli("eval", out, "--data", mnist_root, "--backend", backend,
                                  "--save-outputs", npy, "--json")
        assert rc == 0, err
        doc = json.loads(stdout)
        assert doc[0]["samples"] == 10_000 and doc[0]["backend"] == backend
        outputs[backend] = np.load(npy)
    assert outputs["numba"].dtype == np.int8 and outputs["numba"].shape == (10_000, 10)
    assert np.array_equal(outputs["numba"], outputs["litert-ref"])


@pytest.mark.slow
def test_eval_float_and_several_models(tflite_model, lenet5_path, mnist_root):
    out, _ = tflite_model
    rc, stdout, err = run_cli("eval", lenet5_path, "--data", mnist_root, "--limit", "500", "--json")
    assert rc == 0, err
    doc = json.loads(stdout)
    assert doc[0]["backend"] == "float" and doc[0]["samples"] == 500


@pytest.mark.slow
def test_predict_png_pgm_npy(tflite_model, mnist_test, tmp_path):
    out, _ = tflite_model
    images, labels = mnist_test
    paths = []
    for i in range(3):
        p = tmp_path / f"digit{i}.png"
        write_png(p, images[i])
        assert np.array_equal(read_image(p), images[i])
        paths.append(p)
    pgm = tmp_path / "digit3.pgm"
    pgm.write_bytes(b"P5\n28 28\n255\n" + images[3].tobytes())
    npy = tmp_path / "digit4.npy"
    np.save(npy, images[4])
    paths += [pgm, npy]
    for backend in ("numba", "litert"):
        rc, stdout, err = run_cli("predict", out, *paths, "--backend", backend, "--json")
        assert rc == 0, err
        doc = json.loads(stdout)
        assert [d["label"] for d in doc] == [str(v) for v in labels[:5]]
        assert all(len(d["scores"]) == 10 for d in doc)


def test_bench_json(untrained_tflite):
    out = untrained_tflite
    rc, stdout, err = run_cli("bench", out, "--backend", "litert", "--batch", "16", "--seconds", "0.2", "--json")
    assert rc == 0, err
    doc = json.loads(stdout)
    assert doc["backend"] == "litert" and doc["batch"] == 16
    assert doc["images_per_second"] > 0 and doc["latency_ms_p99"] >= doc["latency_ms_p50"] > 0


def test_device_path_imports_nothing_heavy(untrained_tflite, tmp_path, mnist_test):
    """`predict` on LiteRT must not import the trainer, onnx, Numba or the Numba runtime.

    The op registry's params records live beside the kernels in `edgecnn.deploy.runtime`, a package
    that imports no Numba; its executor and kernels must stay unloaded."""
    out = untrained_tflite
    p = tmp_path / "d.npy"
    np.save(p, mnist_test[0][0])
    code = ("import sys; from edgecnn.cli import main; rc = main(['predict', %r, %r, '--backend', 'litert']);"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('numba', 'onnx', 'onnxruntime', 'torch', 'tensorflow')"
            " or m.startswith(('edgecnn.train', 'edgecnn.reference', 'edgecnn.deploy.runtime.interpreter', 'edgecnn.quantize.ptq'))];"
            "print(bad); sys.exit(rc)") % (str(out), str(p))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("content,needle", [
    (b"", "tflite"),
    (b"\x00" * 7, "tflite"),
    (bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8)), "tflite"),
])
def test_eval_bad_tflite_files(tmp_path, mnist_root, content, needle):
    p = tmp_path / "bad.tflite"
    p.write_bytes(content)
    rc, _, err = run_cli("eval", p, "--data", mnist_root, "--limit", "10")
    assert_clean_error(rc, err)


def test_truncated_tflite(untrained_tflite, tmp_path, mnist_root):
    out = untrained_tflite
    p = tmp_path / "trunc.tflite"
    p.write_bytes(out.read_bytes()[: out.stat().st_size // 2])
    rc, _, err = run_cli("eval", p, "--data", mnist_root, "--limit", "10")
    assert_clean_error(rc, err)


def test_quantize_bad_inputs(tmp_path, mnist_root):
    from edgecnn.model import build
    from edgecnn.model.checkpoint import save_checkpoint

    lenet5_path = save_checkpoint(tmp_path / "untrained.npz", build("lenet5").init_params(0))
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"PK\x03\x04 not really")
    rc, _, err = run_cli("quantize", junk, "--data", mnist_root, "--out", tmp_path / "m.tflite")
    assert_clean_error(rc, err, "checkpoint")
    assert not (tmp_path / "m.tflite").exists()
    rc, _, err = run_cli("quantize", lenet5_path, "--data", tmp_path / "nowhere", "--dataset", "nope",
                         "--out", tmp_path / "m.tflite")
    assert_clean_error(rc, err, "nope")
    assert not (tmp_path / "m.tflite").exists()


def test_predict_bad_image(untrained_tflite, tmp_path):
    out = untrained_tflite
    p = tmp_path / "x.png"
    p.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    rc, _, err = run_cli("predict", out, p, "--backend", "numba")
    assert_clean_error(rc, err, "x.png")


@pytest.mark.slow
def test_light_device_install_without_numba(tflite_model, tmp_path, mnist_test):
    """With Numba absent (the `device` extra), summary, predict, eval and bench still work, on LiteRT."""
    out, _ = tflite_model
    p = tmp_path / "d.npy"
    np.save(p, mnist_test[0][0])
    code = ("import sys, json; sys.modules['numba'] = None\n"
            "from edgecnn.cli import main\n"
            "assert main(['summary', 'lenet5', '--json']) == 0\n"
            "assert main(['predict', %r, %r, '--json']) == 0\n"
            "assert main(['bench', %r, '--seconds', '0.1', '--json']) == 0\n") % (str(out), str(p), str(out))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    docs = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith(("{", "["))]
    assert docs[1][0]["label"] == str(mnist_test[1][0])
    assert docs[2]["backend"] == "litert"
