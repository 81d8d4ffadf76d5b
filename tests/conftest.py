"""Shared fixtures: the MNIST location and small trained models, trained once per session.

Trained models are cached under pytest's shared temp root behind a file
lock, so pytest-xdist workers train each model once between them.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import numpy as np
import pytest

from edgecnn.tuning import tune_process

tune_process()  # OpenMP waits passively: two xdist workers share 2 cores

REPO = Path(__file__).resolve().parents[1]


def data_root() -> Path:
    root = os.environ.get("EDGECNN_DATA")
    if root:
        return Path(root)
    return REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def mnist_root() -> Path:
    root = data_root()
    assert (root / "mnist").is_dir(), f"MNIST not found under {root}; set EDGECNN_DATA"
    return root


def _shared_dir(tmp_path_factory) -> Path:
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    d = shared / "edgecnn-shared"
    d.mkdir(exist_ok=True)
    return d


def trained_checkpoint(tmp_path_factory, mnist_root, arch: str, epochs: int, limit: int | None, seed: int = 0) -> Path:
    """Train `arch` once for the whole session (across xdist workers) and return its checkpoint."""
    from edgecnn.data.datasets import lenet_input, load_split
    from edgecnn.model import build
    from edgecnn.model.checkpoint import save_checkpoint
    from edgecnn.train.trainer import TrainConfig, train

    d = _shared_dir(tmp_path_factory)
    path = d / f"{arch}-e{epochs}-n{limit}-s{seed}.npz"
    with open(d / f"{path.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.exists():
            images, labels = load_split("mnist", "train", mnist_root)
            test_images, test_labels = load_split("mnist", "test", mnist_root)
            if limit:
                images, labels = images[:limit], labels[:limit]
            model = build(arch).init_params(seed)
            train(model, (lenet_input(images), labels), (lenet_input(test_images[:1000]), test_labels[:1000]),
                  TrainConfig(epochs=epochs, seed=seed), progress=False)
            save_checkpoint(path, model)
    return path


@pytest.fixture(scope="session")
def lenet5_path(tmp_path_factory, mnist_root) -> Path:
    return trained_checkpoint(tmp_path_factory, mnist_root, "lenet5", epochs=2, limit=None)


@pytest.fixture(scope="session")
def classic_path(tmp_path_factory, mnist_root) -> Path:
    return trained_checkpoint(tmp_path_factory, mnist_root, "lenet5-classic", epochs=2, limit=None)


@pytest.fixture(scope="session")
def mnist_test(mnist_root):
    from edgecnn.data.datasets import load_split

    return load_split("mnist", "test", mnist_root)


def run_cli(*args, env=None, cwd=None):
    """Run the real `edgecnn` CLI in a subprocess: (returncode, stdout, stderr)."""
    import subprocess
    import sys

    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.run([sys.executable, "-m", "edgecnn", *map(str, args)], capture_output=True, text=True,
                       env=e, cwd=cwd, timeout=600)
    return p.returncode, p.stdout, p.stderr


def assert_clean_error(rc: int, stderr: str, *needles: str) -> None:
    """Non-zero exit, one line on stderr, no traceback."""
    assert rc != 0
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    for n in needles:
        assert n.lower() in lines[0].lower(), lines[0]


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


TRAINING_FIXTURES = ("lenet5_path", "classic_path")  # each trains a model once per session (~45 s idle)


def pytest_collection_modifyitems(config, items):
    """Tests that need a trained model are slow by definition: `-m "not slow"` leaves the training out."""
    for item in items:
        if any(name in getattr(item, "fixturenames", ()) for name in TRAINING_FIXTURES):
            item.add_marker(pytest.mark.slow)
