"""cifar10 as a dataset name: found under a data root like the IDX datasets, CIFAR labels, colour training;
the --width flag of mobilenet-v1 on train and summary."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cifar10_data import write_cifar_folder
from cli_main import run_main
from conftest import assert_clean_error, run_cli
from test_fetch import isolated  # noqa: F401  (fixture: no real data root is visible)
from edgecnn.cli import main
from edgecnn.data.cifar import LABELS, TARBALL_FOLDER
from edgecnn.data.datasets import dataset_labels, find_dataset, load_split
from edgecnn.errors import DatasetNotFoundError


@pytest.mark.parametrize("tarball_layout", [True, False])
def test_found_under_a_root_or_given_directly(isolated, tarball_layout):
    batches = write_cifar_folder(isolated / "root", per_train_batch=3, test=4, tarball_layout=tarball_layout)
    folder = find_dataset("cifar10", isolated / "root")
    assert folder == isolated / "root" / "cifar10"
    x, y = load_split("cifar10", "train", isolated / "root")
    assert x.shape == (15, 32, 32, 3) and x.dtype == np.uint8 and y.dtype == np.int64
    np.testing.assert_array_equal(x[3:6], batches["data_batch_2.bin"][0])
    inner = folder / TARBALL_FOLDER if tarball_layout else folder
    for given in (folder, inner):  # --data may be the dataset folder itself
        xt, yt = load_split("cifar10", "test", given)
        np.testing.assert_array_equal(yt, batches["test_batch.bin"][1])


def test_default_roots_and_the_missing_message(isolated, monkeypatch):
    with pytest.raises(DatasetNotFoundError, match="edgecnn data fetch cifar10"):
        load_split("cifar10", "train")
    write_cifar_folder(isolated / "home" / ".cache" / "edgecnn", per_train_batch=2, test=2)
    assert load_split("cifar10", "test")[0].shape == (2, 32, 32, 3)


def test_labels():
    assert dataset_labels("cifar10") == list(LABELS) == ["airplane", "automobile", "bird", "cat", "deer", "dog",
                                                         "frog", "horse", "ship", "truck"]
    assert dataset_labels("mnist")[3] == "3" and dataset_labels("fashion-mnist")[9] == "Ankle boot"
    assert dataset_labels("mine", 4) == ["0", "1", "2", "3"]


def test_train_mobilenet_on_cifar10_with_a_width(isolated, capsys):
    """A colour dataset trains with its own 32x32x3 shape and CIFAR's class names; --width sets the channels."""
    from edgecnn.model.checkpoint import load_checkpoint

    write_cifar_folder(isolated / "root", per_train_batch=8, test=8)
    for width in ("0.25", "0.5"):
        out = isolated / f"m{width}.npz"
        assert main(["train", "--arch", "mobilenet-v1", "--width", width, "--dataset", "cifar10",
                     "--data", str(isolated / "root"), "--epochs", "1", "--batch-size", "16", "--out", str(out),
                     "--json"]) == 0
        row = json.loads(capsys.readouterr().out)
        assert row["data"] == str(isolated / "root" / "cifar10") and row["epochs"] == 1
        model = load_checkpoint(out)
        assert tuple(model.input_shape) == (32, 32, 3) and list(model.labels) == list(LABELS)
        assert model.shapes["conv1"][-1] == int(32 * float(width))
    # resuming with another width is refused in one line; the same width (or none) resumes
    assert main(["train", "--arch", "mobilenet-v1", "--width", "0.25", "--resume", "--dataset", "cifar10",
                 "--data", str(isolated / "root"), "--epochs", "2", "--out", str(isolated / "m0.5.npz")]) == 1
    assert "another width" in capsys.readouterr().err


def test_lenet_on_colour_data_is_one_line(isolated):
    write_cifar_folder(isolated / "root", per_train_batch=2, test=2)
    rc, _, err = run_cli("train", "--arch", "lenet5", "--dataset", "cifar10", "--data", isolated / "root",
                         "--out", isolated / "x.npz")
    assert_clean_error(rc, err, "lenet5 takes grey images", "resnet8")


def test_summary_width(capsys):
    rc, out, _ = run_main(capsys, "summary", "mobilenet-v1", "--json")
    default = json.loads(out)
    rc, out, _ = run_main(capsys, "summary", "mobilenet-v1", "--width", "0.5", "--json")
    half = json.loads(out)
    assert rc == 0 and default["total_params"] == 219_058 and half["total_params"] > default["total_params"]
    assert half["layers"][0]["output_shape"] == [48, 48, 16]


@pytest.mark.parametrize("width", ["0", "-0.5", "nan", "inf", "abc"])
@pytest.mark.parametrize("command", ["summary", "train"])
def test_bad_width_is_refused_before_anything_runs(tmp_path, capsys, command, width):
    args = (["summary", "mobilenet-v1"] if command == "summary"
            else ["train", "--arch", "mobilenet-v1", "--out", tmp_path / "x.npz", "--data", tmp_path / "nothing"])
    rc, out, err = run_main(capsys, *args, f"--width={width}")
    assert rc == 2 and out == "" and "Traceback" not in err
    assert "--width" in err and "positive, finite number" in err
    assert not (tmp_path / "x.npz").exists()


@pytest.mark.parametrize("args,needle", [
    (["summary", "mobilenet-v1", "--width", "5"], "(0, 4]"),
    (["summary", "resnet8", "--width", "0.5"], "--width applies to mobilenet-v1 only"),
    (["train", "--arch", "dscnn", "--width", "0.5", "--out", "x.npz"], "--width applies to mobilenet-v1 only"),
])
def test_width_on_the_wrong_arch_or_too_wide_is_one_line(tmp_path, monkeypatch, capsys, args, needle):
    monkeypatch.chdir(tmp_path)
    rc, _, err = run_main(capsys, *args)
    assert_clean_error(rc, err, needle)
