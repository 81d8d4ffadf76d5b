"""Dataset discovery, split loading and LeNet input preparation."""

import os

import numpy as np
import pytest

from edgecnn.data import datasets
from edgecnn.data.datasets import find_dataset, lenet_input, lenet_input_int8, load_split, search_roots
from edgecnn.data.idx import write_idx
from edgecnn.errors import DatasetNotFoundError, IdxFormatError, ShapeError


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No real data root is visible: HOME and $EDGECNN_DATA point into tmp_path."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("EDGECNN_DATA", raising=False)
    monkeypatch.setattr(datasets, "SYSTEM_DATA_ROOT", tmp_path / "usr-share-datasets")
    return tmp_path


def make_dataset(folder, n_train=5, n_test=3, side=8, style="-", gz=False, seed=0):
    rng = np.random.default_rng(seed)
    suffix = ".gz" if gz else ""
    out = {}
    for split, prefix, n in [("train", "train", n_train), ("test", "t10k", n_test)]:
        images = rng.integers(0, 256, (n, side, side), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        write_idx(folder / f"{prefix}-images{style}idx3-ubyte{suffix}", images)
        write_idx(folder / f"{prefix}-labels{style}idx1-ubyte{suffix}", labels)
        out[split] = (images, labels)
    return out


@pytest.mark.parametrize("style, gz", [("-", False), ("-", True), (".", False), (".", True)])
def test_user_dataset_every_naming(isolated, style, gz):
    expected = make_dataset(isolated / "root" / "digits", style=style, gz=gz)
    for split in ("train", "test"):
        images, labels = load_split("digits", split, data_dir=isolated / "root")
        np.testing.assert_array_equal(images, expected[split][0])
        np.testing.assert_array_equal(labels, expected[split][1])
        assert images.dtype == np.uint8 and labels.dtype == np.int64
        assert images.ndim == 3 and labels.shape == (len(images),)


def test_data_dir_may_be_the_dataset_folder(isolated):
    expected = make_dataset(isolated / "my-own")
    images, _ = load_split("mnist", "test", data_dir=isolated / "my-own")
    np.testing.assert_array_equal(images, expected["test"][0])
    assert find_dataset("whatever", isolated / "my-own") == isolated / "my-own"


def test_named_subfolder_beats_files_in_data_dir(isolated):
    make_dataset(isolated / "root", seed=1)
    inner = make_dataset(isolated / "root" / "fashion-mnist", seed=2)
    images, _ = load_split("fashion-mnist", "train", data_dir=isolated / "root")
    np.testing.assert_array_equal(images, inner["train"][0])


def test_search_order(isolated, monkeypatch):
    cache, system = isolated / "home" / ".cache" / "edgecnn", isolated / "usr-share-datasets"
    assert search_roots() == [cache, system]
    make_dataset(system / "ds")
    assert find_dataset("ds") == system / "ds"
    make_dataset(cache / "ds")
    assert find_dataset("ds") == cache / "ds"


def test_a_named_folder_is_the_only_place_looked(isolated, monkeypatch):
    """`--data` or $EDGECNN_DATA without the dataset is an error, never a fall-back to other data."""
    explicit, env, cache = isolated / "explicit", isolated / "env", isolated / "home" / ".cache" / "edgecnn"
    make_dataset(cache / "ds")
    make_dataset(env / "ds")
    monkeypatch.setenv("EDGECNN_DATA", str(env))
    assert search_roots(explicit) == [explicit]
    assert search_roots() == [env]
    assert find_dataset("ds") == env / "ds"
    (isolated / "nothing-here").mkdir()
    with pytest.raises(DatasetNotFoundError, match="--data folder .*nothing-here"):
        find_dataset("ds", isolated / "nothing-here")
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        find_dataset("ds", isolated / "typo")
    monkeypatch.setenv("EDGECNN_DATA", str(isolated / "typo"))
    with pytest.raises(DatasetNotFoundError, match=r"\$EDGECNN_DATA folder .*typo does not exist"):
        find_dataset("ds")
    make_dataset(explicit / "ds")
    assert find_dataset("ds", explicit) == explicit / "ds"


def test_missing_dataset_message(isolated, monkeypatch):
    (isolated / "given").mkdir()
    with pytest.raises(DatasetNotFoundError) as info:
        load_split("fashion-mnist", "train", data_dir=isolated / "given")
    message = str(info.value)
    assert str(isolated / "given" / "fashion-mnist") in message and "--data" in message
    assert "edgecnn data fetch fashion-mnist" in message
    with pytest.raises(DatasetNotFoundError) as info:
        load_split("fashion-mnist", "train")
    message = str(info.value)
    for place in [isolated / "home" / ".cache" / "edgecnn" / "fashion-mnist",
                  isolated / "usr-share-datasets" / "fashion-mnist"]:
        assert str(place) in message
    assert "--data DIR" in message


def test_missing_split(isolated):
    folder = isolated / "ds"
    make_dataset(folder)
    (folder / "t10k-labels-idx1-ubyte").unlink()
    load_split("ds", "train", data_dir=isolated)
    with pytest.raises(DatasetNotFoundError, match="no test labels"):
        load_split("ds", "test", data_dir=isolated)
    with pytest.raises(DatasetNotFoundError, match="unknown split"):
        load_split("ds", "validation", data_dir=isolated)


def test_count_mismatch_names_both_files(isolated):
    folder = isolated / "ds"
    make_dataset(folder)
    write_idx(folder / "t10k-labels-idx1-ubyte", np.zeros(4, np.uint8))
    with pytest.raises(IdxFormatError) as info:
        load_split("ds", "test", data_dir=isolated)
    message = str(info.value)
    assert str(folder / "t10k-images-idx3-ubyte") in message and str(folder / "t10k-labels-idx1-ubyte") in message
    assert "3 images" in message and "4 labels" in message


@pytest.mark.parametrize("file, array, why", [
    ("t10k-images-idx3-ubyte", np.zeros((3, 8, 8), np.float32), "ubyte"),
    ("t10k-images-idx3-ubyte", np.zeros((3, 64), np.uint8), r"\(N,H,W\)"),
    ("t10k-labels-idx1-ubyte", np.zeros((3, 1), np.uint8), "labels"),
    ("t10k-labels-idx1-ubyte", np.zeros(3, np.float64), "integer"),
])
def test_wrong_kind_of_file(isolated, file, array, why):
    folder = isolated / "ds"
    make_dataset(folder)
    write_idx(folder / file, array)
    with pytest.raises(IdxFormatError, match=why):
        load_split("ds", "test", data_dir=isolated)


def test_cache_returns_same_arrays_and_sees_rewrites(isolated):
    folder = isolated / "ds"
    make_dataset(folder, seed=1)
    first, _ = load_split("ds", "train", data_dir=isolated)
    again, _ = load_split("ds", "train", data_dir=isolated)
    assert again is first
    assert not first.flags.writeable  # shared: in-place edits would poison every caller
    new = make_dataset(folder, seed=2)
    os.utime(folder / "train-images-idx3-ubyte", ns=(1, 10**18))  # a distinct mtime even on coarse clocks
    reloaded, _ = load_split("ds", "train", data_dir=isolated)
    np.testing.assert_array_equal(reloaded, new["train"][0])


def test_real_mnist(mnist_root):
    images, labels = load_split("mnist", "train", data_dir=mnist_root)
    assert images.shape == (60000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (60000,) and labels.dtype == np.int64
    test_images, test_labels = load_split("mnist", "test", data_dir=mnist_root)
    assert test_images.shape == (10000, 28, 28) and test_labels.shape == (10000,)
    assert set(np.unique(labels)) == set(range(10))


def _lenet_reference(image):
    """One image, padded by plain Python: the definition lenet_input must meet."""
    h, w = image.shape
    top, left = max(32 - h, 0) // 2, max(32 - w, 0) // 2
    out = [[0.0] * max(w, 32) for _ in range(max(h, 32))]
    for y in range(h):
        for x in range(w):
            out[top + y][left + x] = float(image[y, x])
    return np.array(out)


@pytest.mark.parametrize("side", [28, 27, 32, 40, 1])
def test_lenet_input_matches_reference(side):
    images = np.random.default_rng(side).integers(0, 256, (3, side, side), dtype=np.uint8)
    images[0, 0, 0], images[0, -1, -1] = 0, 255
    x = lenet_input(images)
    q = lenet_input_int8(images)
    want = max(side, 32)
    assert x.shape == q.shape == (3, want, want, 1)
    assert x.dtype == np.float32 and q.dtype == np.int8
    for i in range(3):
        ref = _lenet_reference(images[i])
        np.testing.assert_array_equal(x[i, :, :, 0], (ref / 255).astype(np.float32))
        np.testing.assert_array_equal(q[i, :, :, 0].astype(np.int64), ref.astype(np.int64) - 128)


def test_lenet_input_mnist_padding_is_two_each_side():
    images = np.full((1, 28, 28), 255, np.uint8)
    x, q = lenet_input(images)[0, :, :, 0], lenet_input_int8(images)[0, :, :, 0]
    assert x[2:30, 2:30].min() == 1.0 and x.sum() == 28 * 28
    assert (q[2:30, 2:30] == 127).all() and (q == -128).sum() == 32 * 32 - 28 * 28


def test_int8_is_float_quantized_at_scale_1_over_255():
    images = np.arange(256, dtype=np.uint8).reshape(1, 16, 16)
    x, q = lenet_input(images), lenet_input_int8(images)
    np.testing.assert_array_equal(np.round(x * 255).astype(np.int64) - 128, q.astype(np.int64))


@pytest.mark.parametrize("bad", [np.zeros((28, 28), np.uint8), np.zeros((2, 28, 28), np.float32)])
def test_lenet_input_refuses_bad_images(bad):
    with pytest.raises(ShapeError):
        lenet_input(bad)
    with pytest.raises(ShapeError):
        lenet_input_int8(bad)
