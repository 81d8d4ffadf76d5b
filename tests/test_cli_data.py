"""`edgecnn data fetch` as users run it: a subprocess of the venv's python."""

import json
import os
import subprocess
import sys

import pytest

NAMES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


@pytest.fixture
def env(tmp_path):
    """Only what the test builds is visible, and any download attempt fails fast."""
    env = dict(os.environ, HOME=str(tmp_path / "home"), EDGECNN_DATA=str(tmp_path / "empty"))
    env["http_proxy"] = env["https_proxy"] = "http://127.0.0.1:9"  # discard port: no network by accident
    return env


def edgecnn(*args, env):
    return subprocess.run([sys.executable, "-m", "edgecnn", *args], capture_output=True, text=True,
                          env=env, timeout=120)


@pytest.fixture
def mnist_copy(tmp_path, mnist_root):
    """A data root of our own holding (links to) the shared MNIST files."""
    root = tmp_path / "data"
    (root / "mnist").mkdir(parents=True)
    for name in NAMES:
        (root / "mnist" / name).symlink_to(mnist_root / "mnist" / name)
    return root


def test_fetch_mnist_offline(env, mnist_copy):
    run = edgecnn("data", "fetch", "mnist", "--dir", str(mnist_copy), env=env)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == str(mnist_copy / "mnist")


def test_fetch_mnist_offline_json(env, mnist_copy):
    run = edgecnn("data", "fetch", "mnist", "--dir", str(mnist_copy), "--json", env=env)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == {"dataset": "mnist", "path": str(mnist_copy / "mnist"), "downloaded": []}


@pytest.mark.parametrize("args", [["data", "fetch", "cifar100"], ["data", "fetch", "cifar100", "--json"]])
def test_bad_name_is_one_line(env, args):
    run = edgecnn(*args, env=env)
    assert run.returncode != 0
    assert "Traceback" not in run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "cifar100" in lines[0] and "mnist" in lines[0]
    assert run.stdout == ""


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_cifar10_offline_is_one_line_and_leaves_nothing(env, tmp_path, json_flag):
    run = edgecnn("data", "fetch", "cifar10", "--dir", str(tmp_path / "d"), *json_flag, env=env)
    assert run.returncode == 1 and run.stdout == "" and "Traceback" not in run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "cifar-10-binary.tar.gz" in lines[0] and "Offline?" in lines[0]
    assert not (tmp_path / "d").exists()


def test_help(env):
    run = edgecnn("data", "fetch", "--help", env=env)
    assert run.returncode == 0
    assert "{mnist,fashion-mnist,cifar10}" in run.stdout and "--dir" in run.stdout and "--json" in run.stdout
    run = edgecnn("data", env=env)
    assert run.returncode == 2 and "fetch" in run.stderr
