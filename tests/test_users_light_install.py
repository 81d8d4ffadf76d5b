"""The device install as docs/device.md tells it: build a wheel, install it with the `device` extra
in a fresh venv, and check what works there and what says, in one line, which extra it needs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fresh_venv import install_in_fresh_venv, sh

pytestmark = pytest.mark.slow  # builds a wheel and a venv: about a minute


@pytest.fixture(scope="module")
def device_venv(tmp_path_factory):
    """A wheel built from a copy of the sources (the shared tree gets no build/ folder), installed `[device]`."""
    return install_in_fresh_venv(tmp_path_factory.mktemp("light"), "device")


@pytest.fixture(scope="module")
def files(tmp_path_factory, mnist_test):
    from edgecnn.deploy.tflite import write_tflite
    from edgecnn.model import build
    from edgecnn.model.checkpoint import save_checkpoint
    from edgecnn.quantize.ptq import quantize_model

    d = tmp_path_factory.mktemp("light-files")
    m = build("lenet5").init_params(0)
    save_checkpoint(d / "m.npz", m)
    qm = quantize_model(m, np.random.default_rng(0).uniform(0, 1, (8, 32, 32, 1)).astype(np.float32), progress=False)
    write_tflite(qm.graph, d / "m.tflite")
    Image.fromarray(255 - mnist_test[0][0]).resize((64, 64)).convert("RGB").save(d / "digit.png")
    return d


def edgecnn(venv: Path, *args, cwd=None):
    env = dict(os.environ, PATH=f"{venv / 'bin'}:{os.environ['PATH']}")
    env.pop("PYTHONPATH", None)
    return sh(venv / "bin" / "edgecnn", *args, cwd=cwd, env=env, timeout=300)


def test_only_the_device_packages_are_installed(device_venv):
    listed = sh(device_venv / "bin" / "pip", "list", "--format", "json")
    names = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert {"edgecnn", "numpy", "pillow", "tflite", "flatbuffers", "ai-edge-litert"} <= names
    assert not names & {"numba", "onnx", "onnxruntime"}  # (ai-edge-litert brings tqdm)


def test_device_commands_work(device_venv, files, mnist_root):
    p = edgecnn(device_venv, "predict", files / "m.tflite", files / "digit.png", "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)[0]["inverted"] is True
    p = edgecnn(device_venv, "eval", files / "m.tflite", "--data", mnist_root, "--limit", "100", "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)[0]["backend"] == "litert"
    p = edgecnn(device_venv, "bench", files / "m.tflite", "--seconds", "0.2", "--json")
    assert p.returncode == 0, p.stderr
    p = edgecnn(device_venv, "export", files / "m.tflite", "--out", files / "m.c")
    assert p.returncode == 0, p.stderr  # generating C needs no Numba


@pytest.mark.parametrize("args, extra", [
    (["train", "--arch", "lenet5", "--out", "{d}/t.npz"], "train"),
    (["quantize", "{d}/m.npz", "--out", "{d}/q.tflite"], "train"),
    (["demo", "--out", "{d}/demo"], "train"),
    (["eval", "{d}/m.npz"], "train"),
    (["predict", "{d}/m.npz", "{d}/digit.png"], "train"),
    (["export", "{d}/m.tflite", "--out", "{d}/m.onnx"], "onnx"),
], ids=["train", "quantize", "demo", "eval-npz", "predict-npz", "export-onnx"])
def test_missing_extras_are_one_line(device_venv, files, mnist_root, args, extra):
    args = [a.format(d=files) for a in args]
    if args[0] in ("train", "quantize", "demo", "eval"):
        args += ["--data", str(mnist_root)]
    p = edgecnn(device_venv, *args)
    assert p.returncode != 0
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    assert f'pip install "edgecnn[{extra}]"' in lines[0]
