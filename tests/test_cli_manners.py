"""The CLI's manners: defaults in --help, the data folder rule, missing extras in one line,
errors in the order users expect, every written file reported, JSON everywhere."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, assert_clean_error, run_cli
from edgecnn.cli import build_parser
from edgecnn.cli.common import HelpFormatter


def subparsers(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield name, sub
                yield from subparsers(sub)


def test_every_help_shows_defaults():
    found = 0
    for name, sub in subparsers(build_parser()):
        assert sub.formatter_class is HelpFormatter, name
        text = sub.format_help()
        for action in sub._actions:
            if action.option_strings and action.default not in (None, False, argparse.SUPPRESS, []):
                found += 1
                assert "default" in HelpFormatter("x")._get_help_string(action), (name, action.dest)
                assert str(action.default) in text, (name, action.dest)
    assert found >= 15


def test_demo_has_json_and_writes_where_gitignore_knows():
    demo = dict(subparsers(build_parser()))["demo"]
    assert "--json" in demo.format_help()
    out = demo.get_default("out")
    assert f"/{out}/" in (REPO / ".gitignore").read_text().splitlines()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """An untrained lenet5 as .npz and .tflite: enough for every contract here."""
    from edgecnn.deploy.tflite import write_tflite
    from edgecnn.model import build
    from edgecnn.model.checkpoint import save_checkpoint
    from edgecnn.quantize.ptq import quantize_model

    d = tmp_path_factory.mktemp("tiny")
    m = build("lenet5").init_params(0)
    npz = save_checkpoint(d / "m.npz", m)
    qm = quantize_model(m, np.random.default_rng(0).uniform(0, 1, (8, 32, 32, 1)).astype(np.float32), progress=False)
    write_tflite(qm.graph, d / "m.tflite")
    return npz, d / "m.tflite"


@pytest.mark.parametrize("command", ["eval", "quantize", "train"])
def test_a_data_folder_without_the_dataset_is_an_error(tiny, tmp_path, mnist_root, command):
    npz, tflite = tiny
    args = {"eval": ["eval", tflite, "--backend", "litert"], "quantize": ["quantize", npz, "--out", tmp_path / "q.tflite"],
            "train": ["train", "--arch", "lenet5", "--out", tmp_path / "t.npz"]}[command]
    rc, stdout, err = run_cli(*args, "--data", tmp_path / "nonexistent")
    assert_clean_error(rc, err, "--data", "nonexistent")
    assert stdout == ""
    (tmp_path / "empty").mkdir()
    rc, _, err = run_cli(*args, "--data", tmp_path / "empty")
    assert_clean_error(rc, err, "empty", "not found")
    rc, _, err = run_cli(*args, env={"EDGECNN_DATA": str(tmp_path / "typo")})
    assert_clean_error(rc, err, "$EDGECNN_DATA", "typo")


def test_the_data_folder_is_said_on_stderr_and_in_json(tiny, mnist_root):
    _, tflite = tiny
    rc, stdout, err = run_cli("eval", tflite, "--data", mnist_root, "--limit", "20", "--json", "--backend", "litert")
    assert rc == 0, err
    assert json.loads(stdout)[0]["data"] == str(mnist_root / "mnist")
    assert f"data: {mnist_root / 'mnist'}" in err


def test_missing_model_is_reported_before_missing_data(tmp_path):
    for args in (["eval", tmp_path / "nope.tflite"], ["quantize", tmp_path / "nope.npz", "--out", tmp_path / "o.tflite"]):
        rc, _, err = run_cli(*args, "--data", tmp_path / "no-data-either")
        assert_clean_error(rc, err, "nope.")


def test_quantize_a_tflite_says_it_is_already_int8(tiny, tmp_path, mnist_root):
    _, tflite = tiny
    rc, _, err = run_cli("quantize", tflite, "--data", mnist_root, "--out", tmp_path / "x.tflite")
    assert_clean_error(rc, err, "already an int8 model", "edgecnn export")


@pytest.mark.slow  # calibrates, runs the Numba runtime and both exporters
def test_quantize_also_reports_every_file_and_matches_export(tiny, tmp_path, mnist_root):
    npz, _ = tiny
    out = tmp_path / "q.tflite"
    rc, stdout, err = run_cli("quantize", npz, "--data", mnist_root, "--calib-samples", "50", "--eval-limit", "50",
                              "--out", out, "--also", tmp_path / "q.onnx", "--also", tmp_path / "q.c")
    assert rc == 0, err
    for name in ("q.tflite", "q.onnx", "q.c", "q.h"):  # the C export writes its header beside it
        assert f"wrote {tmp_path / name} (" in stdout, stdout
    (tmp_path / "e").mkdir()
    for name in ("q.onnx", "q.c"):  # same names elsewhere: the C names its header (e/q.h comes with e/q.c)
        rc, _, err = run_cli("export", out, "--out", tmp_path / "e" / name)
        assert rc == 0, err
        assert (tmp_path / "e" / name).read_bytes() == (tmp_path / name).read_bytes()
    assert (tmp_path / "e" / "q.h").read_bytes() == (tmp_path / "q.h").read_bytes()
    rc, stdout, err = run_cli("quantize", npz, "--data", mnist_root, "--calib-samples", "50", "--eval-limit", "50",
                              "--out", out, "--also", tmp_path / "q.c", "--json")
    assert rc == 0, err
    doc = json.loads(stdout)
    assert [w["path"] for w in doc["written"]] == [str(out), str(tmp_path / "q.c"), str(tmp_path / "q.h")]
    assert doc["data"] == str(mnist_root / "mnist")


def test_eval_progress_goes_to_stderr():
    from edgecnn.cli.eval_cmd import run_in_chunks

    class Echo:
        def prepare(self, images):
            return images.reshape(len(images), -1)

        def run(self, x):
            return x

    import io
    from contextlib import redirect_stderr

    err = io.StringIO()
    with redirect_stderr(err):
        out, seconds = run_in_chunks(Echo(), np.zeros((25, 2, 2), np.uint8), "echo", show=True, chunk=10)
    assert out.shape == (25, 4) and seconds >= 0
    assert "echo" in err.getvalue() and "/25" in err.getvalue()


def without(*modules: str, args: list) -> subprocess.CompletedProcess:
    """Run the CLI in a python where `modules` cannot be imported, as in a light install."""
    code = ("import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in modules)
            + "from edgecnn.cli import main\nsys.exit(main(%r))\n" % [str(a) for a in args])
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


NUMBA_COMMANDS = [
    ["train", "--arch", "lenet5", "--out", "{tmp}/t.npz"],
    ["quantize", "{npz}", "--out", "{tmp}/q.tflite"],
    ["demo", "--out", "{tmp}/demo"],
    ["eval", "{npz}"],
    ["predict", "{npz}", "{img}"],
    ["bench", "{tflite}", "--backend", "numba"],
]


@pytest.mark.parametrize("command", NUMBA_COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_without_numba_one_line_names_the_train_extra(tiny, tmp_path, mnist_root, command):
    npz, tflite = tiny
    np.save(tmp_path / "d.npy", np.zeros((28, 28), np.uint8))
    args = [a.format(tmp=tmp_path, npz=npz, tflite=tflite, img=tmp_path / "d.npy") for a in command]
    p = without("numba", args=args + (["--data", str(mnist_root)] if command[0] in ("train", "quantize", "eval", "demo")
                                      else []))
    assert_clean_error(p.returncode, p.stderr, 'pip install "edgecnn[train]"')


@pytest.mark.parametrize("command", [["export", "{tflite}", "--out", "{tmp}/x.onnx"], ["eval", "{tmp}/x.onnx"]],
                         ids=["export", "eval"])
def test_without_onnx_one_line_names_the_onnx_extra(tiny, tmp_path, mnist_root, command):
    npz, tflite = tiny
    (tmp_path / "x.onnx").write_bytes(b"not really")
    args = [a.format(tmp=tmp_path, tflite=tflite) for a in command]
    p = without("onnx", "onnxruntime", args=args + (["--data", str(mnist_root)] if command[0] == "eval" else []))
    assert_clean_error(p.returncode, p.stderr, 'pip install "edgecnn[onnx]"')
    p = without("onnx", args=["quantize", npz, "--data", mnist_root, "--out", tmp_path / "q.tflite",
                              "--also", tmp_path / "q.onnx"])
    assert_clean_error(p.returncode, p.stderr, 'pip install "edgecnn[onnx]"')
    assert not (tmp_path / "q.tflite").exists()  # said before any work


def test_c_export_needs_no_numba(tiny, tmp_path):
    _, tflite = tiny
    p = without("numba", args=["export", tflite, "--out", tmp_path / "x.c"])
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "x.c").read_text().startswith("/* edgecnn-c")
