"""CIFAR-10 binary batches: CHW planes become HWC pixels; bad files raise CifarFormatError."""

from __future__ import annotations

import numpy as np
import pytest

from edgecnn.data.cifar import (RECORD_BYTES, SPLIT_FILES, TARBALL_FOLDER, CifarFormatError, load_cifar10,
                                read_cifar_batch)
from edgecnn.errors import DataError, DatasetNotFoundError


def _records(labels, seed=0):
    """CIFAR-format bytes and the HWC images they hold."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (len(labels), 32, 32, 3), dtype=np.uint8)
    planes = images.transpose(0, 3, 1, 2).reshape(len(labels), -1)  # R plane, G plane, B plane
    data = np.concatenate([np.asarray(labels, np.uint8)[:, None], planes], axis=1)
    return data.tobytes(), images


def test_reads_planes_as_hwc(tmp_path):
    raw, images = _records([3, 0, 9])
    (tmp_path / "b.bin").write_bytes(raw)
    x, y = read_cifar_batch(tmp_path / "b.bin")
    assert x.shape == (3, 32, 32, 3) and x.dtype == np.uint8 and y.dtype == np.int64
    np.testing.assert_array_equal(x, images)
    np.testing.assert_array_equal(y, [3, 0, 9])
    # byte 1 of a record is the red value of the top-left pixel, byte 1025 its green
    assert x[0, 0, 0, 0] == raw[1] and x[0, 0, 0, 1] == raw[1 + 1024] and x[0, 0, 1, 0] == raw[2]


def test_loads_splits_from_the_tarball_folder(tmp_path):
    folder = tmp_path / TARBALL_FOLDER
    folder.mkdir()
    expected = []
    for i, name in enumerate(SPLIT_FILES["train"] + SPLIT_FILES["test"]):
        raw, images = _records([i % 10, (i + 1) % 10], seed=i)
        (folder / name).write_bytes(raw)
        expected.append(images)
    x, y = load_cifar10(tmp_path, "train")
    assert x.shape == (10, 32, 32, 3) and list(y[:4]) == [0, 1, 1, 2]
    np.testing.assert_array_equal(x[2:4], expected[1])
    xt, yt = load_cifar10(folder, "test")
    np.testing.assert_array_equal(xt, expected[5])
    assert not x.flags.writeable


@pytest.mark.parametrize("content,match", [
    (b"", "not a whole number"),
    (b"\0" * (RECORD_BYTES + 5), "not a whole number"),
    (b"\0" * (2 * (RECORD_BYTES + 1)), "CIFAR-100"),
])
def test_bad_sizes(tmp_path, content, match):
    (tmp_path / "b.bin").write_bytes(content)
    with pytest.raises(CifarFormatError, match=match):
        read_cifar_batch(tmp_path / "b.bin")


def test_bad_label(tmp_path):
    raw, _ = _records([1, 10])
    (tmp_path / "b.bin").write_bytes(raw)
    with pytest.raises(CifarFormatError, match="record 1 has label 10"):
        read_cifar_batch(tmp_path / "b.bin")
    assert issubclass(CifarFormatError, DataError)


def test_missing_files(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="no CIFAR-10"):
        load_cifar10(tmp_path, "test")
    (tmp_path / "test_batch.bin").write_bytes(_records([1])[0])
    with pytest.raises(DatasetNotFoundError, match="data_batch_1.bin"):
        load_cifar10(tmp_path, "train")
    with pytest.raises(DatasetNotFoundError, match="unknown split"):
        load_cifar10(tmp_path, "validation")
