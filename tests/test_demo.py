"""`edgecnn demo`, the main job, end to end (one epoch to keep it short)."""

from __future__ import annotations

import json

import pytest

from conftest import run_cli

pytestmark = pytest.mark.slow  # trains on all of MNIST


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


def test_demo_json(tmp_path, mnist_root):
    rc, stdout, err = run_cli("demo", "--data", mnist_root, "--epochs", "1", "--out", tmp_path / "d", "--quiet",
                              "--json")
    assert rc == 0, err
    doc = json.loads(stdout)
    assert doc["data"] == str(mnist_root / "mnist") and doc["epochs"] == 1
    rows = {r["backend"]: r for r in doc["rows"]}
    assert rows["litert-ref"]["identical_to_numba"] == "100.00%" and rows["float"]["accuracy"] > 0.95
    assert all(p.startswith(str(tmp_path / "d")) for p in doc["written"])
