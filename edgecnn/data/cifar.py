"""CIFAR-10 from its binary batches (`cifar-10-binary.tar.gz`), never the pickled Python version.

Each batch file is a run of 3,073-byte records: one label byte (0..9), then the
32x32 image as three 1,024-byte planes (red, green, blue; rows top to bottom).
edgecnn works in NHWC, so the planes are interleaved into (32, 32, 3) uint8.

    load_cifar10(folder, "train")  -> images (50000, 32, 32, 3) uint8, labels (50000,) int64
    load_cifar10(folder, "test")   -> (10000, 32, 32, 3), (10000,)

`folder` holds the .bin files, or the `cifar-10-batches-bin/` folder the tarball
unpacks to.
"""

from __future__ import annotations

import functools
import os
import stat
from pathlib import Path

import numpy as np

from edgecnn.errors import DataError, DatasetNotFoundError

SIDE, CHANNELS, CLASSES = 32, 3, 10
IMAGE_BYTES = SIDE * SIDE * CHANNELS
RECORD_BYTES = 1 + IMAGE_BYTES
SPLIT_FILES = {"train": [f"data_batch_{i}.bin" for i in range(1, 6)], "test": ["test_batch.bin"]}
TARBALL_FOLDER = "cifar-10-batches-bin"
MAX_BATCH_BYTES = 60_000 * RECORD_BYTES  # all of CIFAR-10 in one file; real batches hold 10,000
LABELS = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


class CifarFormatError(DataError):
    """A CIFAR-10 batch file is malformed: wrong size or a label outside 0..9."""


def read_cifar_batch(path) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N,32,32,3), labels int64 (N,)) of one binary batch file.

    The size is checked before reading, so a FIFO or a huge file is refused instead of hanging or
    filling memory.
    """
    path = Path(path)
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise CifarFormatError(f"{path}: not a regular file")
        if info.st_size > MAX_BATCH_BYTES:
            raise CifarFormatError(f"{path}: {info.st_size:,} bytes is more than a CIFAR-10 batch file "
                                   f"({MAX_BATCH_BYTES:,} bytes at most)")
        raw = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return decode_cifar_batch(raw, str(path))


def decode_cifar_batch(raw, name: str = "<cifar batch>") -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N,32,32,3), labels int64 (N,)) of a batch file's bytes; CifarFormatError if malformed."""
    raw = np.frombuffer(raw, dtype=np.uint8) if isinstance(raw, (bytes, bytearray, memoryview)) else raw
    if raw.size == 0:
        raise CifarFormatError(f"{name}: the file is empty (0 bytes is not a whole number of CIFAR-10 records)")
    if raw.size % RECORD_BYTES:
        hint = " (3,074-byte records are CIFAR-100's, which has two label bytes)" \
            if raw.size % (RECORD_BYTES + 1) == 0 else ""
        raise CifarFormatError(f"{name}: {raw.size:,} bytes is not a whole number of {RECORD_BYTES:,}-byte "
                               f"CIFAR-10 records{hint}")
    records = raw.reshape(-1, RECORD_BYTES)
    labels = records[:, 0].astype(np.int64)
    if labels.max() >= CLASSES:
        bad = int(np.argmax(labels >= CLASSES))
        raise CifarFormatError(f"{name}: record {bad} has label {labels[bad]}; CIFAR-10 labels are 0..9")
    # (N, C, H, W) planes -> (N, H, W, C) pixels
    images = np.ascontiguousarray(records[:, 1:].reshape(-1, CHANNELS, SIDE, SIDE).transpose(0, 2, 3, 1))
    return images, labels


def cifar10_folder(folder) -> Path:
    """The folder holding the batch files: `folder` itself or its `cifar-10-batches-bin/`."""
    folder = Path(folder)
    for candidate in (folder, folder / TARBALL_FOLDER):
        if (candidate / SPLIT_FILES["test"][0]).is_file() or (candidate / SPLIT_FILES["train"][0]).is_file():
            return candidate
    raise DatasetNotFoundError(f"{folder}: no CIFAR-10 binary batches (data_batch_1.bin ... test_batch.bin) "
                               f"there or in {TARBALL_FOLDER}/")


@functools.lru_cache(maxsize=4)
def _load_cached(folder: str, split: str, stamps: tuple) -> tuple[np.ndarray, np.ndarray]:
    # stamps (mtime, size per file) are part of the key, so rewritten files are re-read
    parts = [read_cifar_batch(Path(folder) / name) for name in SPLIT_FILES[split]]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    images.flags.writeable = labels.flags.writeable = False  # shared: nobody may edit them in place
    return images, labels


def load_cifar10(folder, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N,32,32,3) HWC, labels int64 (N,)) of a split, read-only and cached in-process."""
    if split not in SPLIT_FILES:
        raise DatasetNotFoundError(f"unknown split {split!r}; use one of {', '.join(SPLIT_FILES)}")
    folder = cifar10_folder(folder)
    missing = [n for n in SPLIT_FILES[split] if not (folder / n).is_file()]
    if missing:
        raise DatasetNotFoundError(f"{folder}: the CIFAR-10 {split} split lacks {', '.join(missing)}")
    stamps = tuple((os.stat(folder / n).st_mtime_ns, os.stat(folder / n).st_size) for n in SPLIT_FILES[split])
    return _load_cached(str(folder.resolve()), split, stamps)
