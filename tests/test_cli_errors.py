"""Bad input through the real CLI: one clear line on stderr, non-zero exit, nothing half-written."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from conftest import assert_clean_error, run_cli
from edgecnn.data.idx import write_idx
from edgecnn.fileio import OutputError, atomic_write_bytes
from edgecnn.model import build
from edgecnn.model.checkpoint import save_checkpoint


@pytest.fixture(scope="module")
def tiny_tflite(tmp_path_factory):
    from edgecnn.deploy.tflite import write_tflite
    from edgecnn.quantize.ptq import quantize_model

    m = build("lenet5").init_params(0)
    qm = quantize_model(m, np.random.default_rng(0).uniform(0, 1, (8, 32, 32, 1)).astype(np.float32), progress=False)
    p = tmp_path_factory.mktemp("tiny") / "m.tflite"
    write_tflite(qm.graph, p)
    return p


def _no_temp_files(folder):
    return not any(f.name.endswith(".part") for f in folder.rglob("*"))


@pytest.mark.parametrize("content", [b"P5\n28", b"P2\n28 28\n", b"P5", b"P5\n2 2\n0\n\x00\x00\x00\x00", b"P5\n28 28\n255\n\x00"])
def test_predict_truncated_or_bad_pgm(tiny_tflite, tmp_path, content):
    p = tmp_path / "h.pgm"
    p.write_bytes(content)
    rc, _, err = run_cli("predict", tiny_tflite, p, "--backend", "numba")
    assert_clean_error(rc, err, "h.pgm")


@pytest.mark.parametrize("array", [np.array(["a", "b"]), np.zeros((0, 0)), np.full((28, 28), np.nan), np.full((28, 28), 1000)])
def test_predict_bad_npy(tiny_tflite, tmp_path, array):
    p = tmp_path / "x.npy"
    np.save(p, array)
    rc, _, err = run_cli("predict", tiny_tflite, p, "--backend", "numba")
    assert_clean_error(rc, err, "x.npy")


def test_output_under_a_file(tiny_tflite, tmp_path, mnist_root):
    (tmp_path / "afile").write_text("x")
    rc, _, err = run_cli("export", tiny_tflite, "--out", tmp_path / "afile" / "m.onnx")
    assert_clean_error(rc, err, "cannot write")
    assert ".part" not in err
    rc, _, err = run_cli("train", "--arch", "lenet5", "--data", mnist_root, "--limit", "64", "--epochs", "1",
                         "--out", tmp_path / "afile" / "m.npz")
    assert_clean_error(rc, err)
    assert _no_temp_files(tmp_path)


@pytest.mark.parametrize("args,needle", [
    (["--seed", "-1"], "seed"), (["--lr", "nan"], "lr"), (["--lr", "-1"], "lr"), (["--weight-decay", "-5"], "weight-decay"),
])
def test_train_rejects_bad_numbers(tmp_path, mnist_root, args, needle):
    rc, _, err = run_cli("train", "--arch", "lenet5", "--data", mnist_root, "--out", tmp_path / "m.npz", *args)
    assert rc != 0 and "Traceback" not in err and needle in err
    assert not (tmp_path / "m.npz").exists()


@pytest.mark.slow
def test_train_divergence_is_an_error(tmp_path, mnist_root):
    rc, _, err = run_cli("train", "--arch", "lenet5", "--data", mnist_root, "--limit", "640", "--epochs", "1",
                         "--lr", "1e6", "--out", tmp_path / "m.npz")
    assert_clean_error(rc, err, "diverged")


def test_resume_with_another_arch(tmp_path, mnist_root):
    p = save_checkpoint(tmp_path / "m.npz", build("lenet5").init_params(0), {"epoch": 1})
    rc, _, err = run_cli("train", "--arch", "lenet5-classic", "--data", mnist_root, "--resume", "--out", p)
    assert_clean_error(rc, err, "lenet5")


def test_empty_test_split(tiny_tflite, tmp_path):
    d = tmp_path / "data" / "empty"
    d.mkdir(parents=True)
    for split in ("train", "t10k"):
        write_idx(d / f"{split}-images-idx3-ubyte", np.zeros((0, 28, 28), np.uint8))
        write_idx(d / f"{split}-labels-idx1-ubyte", np.zeros((0,), np.uint8))
    rc, _, err = run_cli("eval", tiny_tflite, "--data", tmp_path / "data", "--dataset", "empty")
    assert_clean_error(rc, err, "no images")


def test_outputs_get_normal_permissions(tmp_path):
    p = tmp_path / "out.bin"
    old = os.umask(0o022)
    try:
        atomic_write_bytes(p, b"abc")
    finally:
        os.umask(old)
    assert stat.S_IMODE(p.stat().st_mode) == 0o644


def test_atomic_write_into_a_folder_path(tmp_path):
    with pytest.raises(OutputError, match="folder"):
        atomic_write_bytes(tmp_path, b"abc")


def test_model_path_is_a_folder(tmp_path, mnist_root):
    d = tmp_path / "m.tflite"
    d.mkdir()
    rc, _, err = run_cli("eval", d, "--data", mnist_root, "--limit", "5")
    assert_clean_error(rc, err, "folder")
