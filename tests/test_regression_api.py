"""The Python API (`assert_int8_close`) and the pytest plugin users put in their own suites.

The slowest test installs the package in a fresh venv and runs the example test
file of docs/regression.md there, outside the repository.
"""

from __future__ import annotations

import os
import shutil
import sys

import numpy as np
import pytest

from conftest import REPO
from fresh_venv import install_in_fresh_venv, sh
from regression_models import gate_models

EXAMPLE = REPO / "docs" / "examples" / "test_int8_regression.py"


@pytest.fixture(scope="module")
def trained(lenet5_path, mnist_root, tmp_path_factory):
    from edgecnn.data.datasets import load_split

    return gate_models(lenet5_path, load_split("mnist", "train", mnist_root)[0], tmp_path_factory.mktemp("api"))


# ------------------------------------------------------------------ trained (slow: conftest)

def test_assert_int8_close_passes_on_a_good_model(trained, mnist_root):
    from edgecnn.deploy.regression import assert_int8_close

    c = assert_int8_close(trained["float"], trained["good"], limit=2000, data=mnist_root, max_drop=1.0,
                          min_agreement=0.985)
    assert c.samples == 2000 and c.drop_points <= 1.0 and c.agreement >= 0.985 and not c.failures


@pytest.mark.parametrize("spoiled", ["black", "flipped"])
def test_assert_int8_close_reports_drop_agreement_worst_classes_and_the_op(trained, mnist_root, spoiled):
    from edgecnn.deploy.regression import assert_int8_close

    with pytest.raises(AssertionError) as failure:
        assert_int8_close(trained["float"], trained[spoiled], limit=2000, data=mnist_root, max_drop=0.0,
                          min_agreement=0.985)
    report = str(failure.value)
    assert report.startswith("int8 model drifted from float on 2000 mnist test images:")
    assert "drop" in report and "top-1 agreement" in report and "worst classes: " in report
    assert "FAILED: agreement" in report and "below min_agreement 0.985" in report
    assert "int8 departs from float at op 0 CONV_2D (conv1)" in report


def test_assert_int8_close_takes_in_memory_models_and_own_images(lenet5_path, mnist_test):
    from edgecnn.data.datasets import lenet_input
    from edgecnn.deploy.regression import assert_int8_close
    from edgecnn.model.checkpoint import load_checkpoint
    from edgecnn.quantize.ptq import quantize_model

    images, labels = mnist_test[0][:500], mnist_test[1][:500]
    model = load_checkpoint(lenet5_path)
    good = quantize_model(model, lenet_input(images[:200]), progress=False)
    c = assert_int8_close(model, good, images=images, labels=labels, max_drop=2.0)
    assert c.samples == 500
    black = quantize_model(model, lenet_input(np.zeros((2, 28, 28), np.uint8)), progress=False)
    with pytest.raises(AssertionError, match="CONV_2D \\(conv1\\)"):
        assert_int8_close(model, black.graph, images=images, labels=labels, max_drop=2.0)


@pytest.mark.slow  # builds a wheel and a venv, installs numba, trains a LeNet-5: a few minutes
def test_the_example_runs_in_a_fresh_venv_with_only_the_package_installed(tmp_path, mnist_root):
    venv = install_in_fresh_venv(tmp_path, "train", "pytest")
    work = tmp_path / "user-suite"
    work.mkdir()
    shutil.copy(EXAMPLE, work / EXAMPLE.name)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PYTEST", "VIRTUAL_ENV"))}
    env.update(EDGECNN_DATA=str(mnist_root), PATH=f"{venv / 'bin'}:{os.environ['PATH']}", NUMBA_NUM_THREADS="1")
    p = sh(venv / "bin" / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider", EXAMPLE.name, cwd=work, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "2 passed" in p.stdout
    where = sh(venv / "bin" / "python", "-c", "import edgecnn; print(edgecnn.__file__)", cwd=work, env=env)
    assert str(venv) in where.stdout  # the installed package ran, not the repository's sources


# ------------------------------------------------------------------ fast: the plugin

def test_loading_the_plugin_imports_nothing_heavy():
    code = ("import sys, edgecnn.deploy.pytest_plugin; "
            "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in ('numpy', 'numba', 'llvmlite') "
            "or m.startswith('edgecnn.'))))")
    p = sh(sys.executable, "-c", code, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["edgecnn.deploy", "edgecnn.deploy.pytest_plugin"]


def test_the_plugin_is_registered_as_a_pytest11_entry_point():
    import tomllib

    doc = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert doc["project"]["entry-points"]["pytest11"] == {"edgecnn": "edgecnn.deploy.pytest_plugin"}


def test_the_dataset_fixture_in_a_users_suite(tmp_path, mnist_root):
    (tmp_path / "test_user.py").write_text(
        "def test_mnist(edgecnn_dataset):\n"
        "    images, labels = edgecnn_dataset('mnist', split='test', limit=7)\n"
        "    assert images.shape == (7, 28, 28) and images.dtype.name == 'uint8' and labels.shape == (7,)\n"
        "    assert edgecnn_dataset('mnist', split='test', limit=7)[0] is images  # read once per session\n"
        "def test_api(edgecnn_assert_int8_close):\n"
        "    from edgecnn.deploy.regression import assert_int8_close\n"
        "    assert edgecnn_assert_int8_close is assert_int8_close\n")
    env = dict(os.environ, EDGECNN_DATA=str(mnist_root))
    p = sh(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
           "test_user.py", cwd=tmp_path, env=env, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "2 passed" in p.stdout
    (tmp_path / "test_user.py").write_text(
        "def test_missing(edgecnn_dataset):\n    edgecnn_dataset('mnist', data='/nonexistent-edgecnn')\n")
    p = sh(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
           "test_user.py", cwd=tmp_path, env=env, timeout=300)
    assert p.returncode == 1 and "DatasetNotFoundError" in p.stdout and "/nonexistent-edgecnn" in p.stdout
