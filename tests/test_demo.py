"""`edgecnn demo`, the main job, end to end (one epoch to keep it short)."""

from __future__ import annotations

from conftest import run_cli


def test_demo_one_epoch(tmp_path, mnist_root):
    out = tmp_path / "demo"
    rc, stdout, err = run_cli("demo", "--data", mnist_root, "--epochs", "1", "--out", out, "--quiet")
    assert rc == 0, err
    for name in ("model.npz", "model.tflite", "model.onnx", "model.c"):
        assert (out / name).stat().st_size > 0
    rows = {line.split()[0]: line.split() for line in stdout.splitlines() if line.split()}
    for backend in ("float", "numba", "litert-ref", "litert"):
        assert backend in rows, stdout
    for exact in ("litert-ref", "onnxruntime", "c"):
        assert rows[exact][-3] == "100.00%", stdout  # identical to numba on every output row
    assert float(rows["float"][1].rstrip("%")) > 95.0
