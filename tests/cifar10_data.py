"""Small made-up CIFAR-10 datasets in the real binary format, for tests (never the real 170 MB tarball).

Images are learnable on purpose: each class has its own colour and a bright
square in its own place, plus noise, so a short training run beats chance.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np

from edgecnn.data.cifar import SPLIT_FILES, TARBALL_FOLDER

CLASS_COLOURS = np.array([[200, 40, 40], [40, 200, 40], [40, 40, 200], [200, 200, 40], [200, 40, 200],
                          [40, 200, 200], [230, 230, 230], [120, 60, 20], [20, 120, 60], [90, 90, 160]])


def images_for(labels, seed: int = 0) -> np.ndarray:
    """uint8 (N, 32, 32, 3) RGB images, one recognisable pattern per class."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    x = rng.normal(0, 25, (len(labels), 32, 32, 3)) + CLASS_COLOURS[labels][:, None, None, :] * 0.6
    for i, c in enumerate(labels):
        top, left = 4 + 2 * (c // 5) * 5, 4 + 4 * (c % 5)
        x[i, top:top + 8, left:left + 8] = 255 - CLASS_COLOURS[c]
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def batch_bytes(images: np.ndarray, labels) -> bytes:
    """CIFAR-10 records: a label byte, then the R, G and B planes (1,024 bytes each)."""
    planes = np.asarray(images, np.uint8).transpose(0, 3, 1, 2).reshape(len(images), -1)
    return np.concatenate([np.asarray(labels, np.uint8)[:, None], planes], axis=1).tobytes()


def make_batches(per_train_batch: int = 32, test: int = 40, seed: int = 0) -> dict[str, tuple]:
    """{file name: (images, labels)} for data_batch_1..5.bin and test_batch.bin."""
    out = {}
    for k, name in enumerate(SPLIT_FILES["train"] + SPLIT_FILES["test"]):
        n = test if name == "test_batch.bin" else per_train_batch
        labels = (np.arange(n) + k) % 10
        out[name] = (images_for(labels, seed + k), labels)
    return out


def write_cifar_folder(root, per_train_batch: int = 32, test: int = 40, seed: int = 0,
                       tarball_layout: bool = True) -> dict[str, tuple]:
    """Write `root/cifar10/cifar-10-batches-bin/*.bin` (or the .bin files in `root/cifar10/`)."""
    folder = Path(root) / "cifar10"
    if tarball_layout:
        folder = folder / TARBALL_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    batches = make_batches(per_train_batch, test, seed)
    for name, (images, labels) in batches.items():
        (folder / name).write_bytes(batch_bytes(images, labels))
    return batches


def tar_gz(members: list[tuple[str, bytes]], extra=None) -> bytes:
    """A .tar.gz of (name, bytes) plain files; `extra(tar)` may add hostile members."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if extra is not None:
            extra(tar)
    return buf.getvalue()


def cifar_tarball(per_train_batch: int = 4, test: int = 6, seed: int = 0) -> tuple[bytes, dict]:
    """A small cifar-10-binary.tar.gz with the real tarball's layout, and the batches it holds."""
    batches = make_batches(per_train_batch, test, seed)
    members = [(f"{TARBALL_FOLDER}/{name}", batch_bytes(*batch)) for name, batch in batches.items()]
    members += [(f"{TARBALL_FOLDER}/batches.meta.txt", b"airplane\nautomobile\n"),
                (f"{TARBALL_FOLDER}/readme.html", b"<html></html>")]
    return tar_gz(members), batches
