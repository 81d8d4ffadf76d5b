"""Find a dataset folder and load its train/test splits.

A data root holds one folder per dataset (`mnist/`, `fashion-mnist/`,
`cifar10/`, or a user's own). A dataset folder holds IDX files (grey images,
(N,H,W)) or CIFAR-10 binary batches (colour, (N,32,32,3)), directly or in the
`cifar-10-batches-bin/` folder the CIFAR tarball unpacks to. An explicit `data_dir` is the only place looked; so is
`$EDGECNN_DATA` when set. Only when neither is given are the default roots
searched: `~/.cache/edgecnn`, then `/usr/share/datasets` (where Debian's
dataset packages install). A typo in `--data` is an error naming the folder,
never a quiet fall-back to other data.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from edgecnn.data import cifar
from edgecnn.data.idx import read_idx
from edgecnn.errors import DatasetNotFoundError, IdxFormatError, ShapeError

SPLIT_PREFIXES = {"train": "train", "test": "t10k"}
SYSTEM_DATA_ROOT = Path("/usr/share/datasets")
LENET_SIDE = 32
DATASET_LABELS = {
    "mnist": [str(i) for i in range(10)],
    "fashion-mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
    "cifar10": list(cifar.LABELS),
}


def dataset_labels(name: str, n: int = 10) -> list[str]:
    """Class names of a known dataset; "0".."n-1" for a user's own."""
    return list(DATASET_LABELS.get(name, [str(i) for i in range(n)]))


def explicit_root(data_dir: str | os.PathLike | None = None) -> tuple[Path, str] | None:
    """(root, how it was given) when the user named a data folder: `--data`, else `$EDGECNN_DATA`."""
    if data_dir:
        return Path(data_dir).expanduser(), "--data"
    if os.environ.get("EDGECNN_DATA"):
        return Path(os.environ["EDGECNN_DATA"]).expanduser(), "$EDGECNN_DATA"
    return None


def default_roots() -> list[Path]:
    """Where data is looked for when no folder is named."""
    return [Path.home() / ".cache" / "edgecnn", SYSTEM_DATA_ROOT]


def search_roots(data_dir: str | os.PathLike | None = None) -> list[Path]:
    """The data roots to look in: the one named folder, else the defaults in order."""
    named = explicit_root(data_dir)
    return [named[0]] if named else default_roots()


def idx_file_names(split: str, kind: str) -> list[str]:
    """Accepted names for a split's `images` or `labels` file, preferred first.

    The dash form is MNIST's; the dot form (`train-images.idx3-ubyte`) is common
    in hand-made datasets. Raw files are preferred over `.gz`: they load faster.
    """
    prefix = SPLIT_PREFIXES[split]
    idx = "idx3" if kind == "images" else "idx1"
    stems = [f"{prefix}-{kind}-{idx}-ubyte", f"{prefix}-{kind}.{idx}-ubyte"]
    return stems + [s + ".gz" for s in stems]


def _is_idx_folder(folder: Path) -> bool:
    return any((folder / n).is_file()
               for split in SPLIT_PREFIXES for n in idx_file_names(split, "images"))


def _is_cifar_folder(folder: Path) -> bool:
    try:
        cifar.cifar10_folder(folder)
    except DatasetNotFoundError:
        return False
    return True


def _is_dataset_folder(folder: Path) -> bool:
    return _is_idx_folder(folder) or _is_cifar_folder(folder)


def candidate_folders(name: str, data_dir: str | os.PathLike | None = None) -> list[Path]:
    """Folders that may hold dataset `name`, in the order they are tried.

    A named folder (`--data` or `$EDGECNN_DATA`) may be a root holding `name/`
    or the dataset folder itself, so users can point at any folder of IDX files.
    """
    named = explicit_root(data_dir)
    if named:
        return [named[0] / name, named[0]]
    return [root / name for root in default_roots()]


def find_dataset(name: str = "mnist", data_dir: str | os.PathLike | None = None) -> Path:
    """The folder holding dataset `name`; DatasetNotFoundError naming every place looked."""
    named = explicit_root(data_dir)
    if named and not named[0].is_dir():
        root, how = named
        raise DatasetNotFoundError(f"{how} folder {root} does not exist (looking for dataset {name!r})")
    looked = candidate_folders(name, data_dir)
    for folder in looked:
        if _is_dataset_folder(folder):
            return folder
    where = f"{named[1]} folder {named[0]}" if named else "the default folders"
    raise DatasetNotFoundError(
        f"dataset {name!r} not found in {where} (looked in {', '.join(map(str, looked))}); "
        f"download it with `edgecnn data fetch {name}"
        + (f" --dir {named[0]}`" if named and named[1] == "--data" else "`")
        + ("" if named else " or pass --data DIR"))


def _split_file(folder: Path, split: str, kind: str) -> Path:
    names = idx_file_names(split, kind)
    for n in names:
        if (folder / n).is_file():
            return folder / n
    raise DatasetNotFoundError(f"{folder}: no {split} {kind}: looked for {', '.join(names)}")


@functools.lru_cache(maxsize=8)
def _read_cached(path: str, mtime_ns: int, size: int) -> np.ndarray:
    # mtime and size are part of the key so a rewritten file is re-read.
    array = read_idx(path)
    array.flags.writeable = False  # shared by every caller: nobody may edit it in place
    return array


def _read(path: Path) -> np.ndarray:
    path = path.resolve()
    st = path.stat()
    return _read_cached(str(path), st.st_mtime_ns, st.st_size)


def load_split(name: str = "mnist", split: str = "train",
               data_dir: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N,H,W) grey or (N,32,32,3) CIFAR colour, labels int64 (N,)) of one split, read-only.

    Arrays are cached in-process, so reloading MNIST costs nothing; copy them
    before editing in place. The folder's content decides the format: IDX files
    are read as IDX, CIFAR-10 binary batches as CIFAR.
    """
    if split not in SPLIT_PREFIXES:
        raise DatasetNotFoundError(f"unknown split {split!r}; use one of {', '.join(SPLIT_PREFIXES)}")
    folder = find_dataset(name, data_dir)
    if not _is_idx_folder(folder):
        return cifar.load_cifar10(folder, split)
    images_path = _split_file(folder, split, "images")
    labels_path = _split_file(folder, split, "labels")
    images, labels = _read(images_path), _read(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise IdxFormatError(f"{images_path}: images must be ubyte (N,H,W), got {images.dtype} {images.shape}")
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise IdxFormatError(f"{labels_path}: labels must be integer (N,), got {labels.dtype} {labels.shape}")
    if len(images) != len(labels):
        raise IdxFormatError(
            f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} labels")
    return images, _as_int64(labels)


def _as_int64(labels: np.ndarray) -> np.ndarray:
    if labels.dtype == np.int64:
        return labels
    out = labels.astype(np.int64)
    out.flags.writeable = False
    return out


def _pad_amounts(images: np.ndarray) -> tuple[int, int, int, int]:
    if images.ndim != 3:
        raise ShapeError(f"images must be (N,H,W), got shape {images.shape}")
    if images.dtype != np.uint8:
        raise ShapeError(f"images must be uint8 pixels, got {images.dtype}")
    _, h, w = images.shape
    pad_h, pad_w = max(LENET_SIDE - h, 0), max(LENET_SIDE - w, 0)
    return pad_h // 2, pad_h - pad_h // 2, pad_w // 2, pad_w - pad_w // 2


def lenet_input(images: np.ndarray) -> np.ndarray:
    """float32 (N,32,32,1) LeNet input: zero-padded to 32 (28 -> 2 each side), pixel / 255.

    Images already 32 or larger are left unpadded.
    """
    top, bottom, left, right = _pad_amounts(images)
    n, h, w = images.shape
    out = np.zeros((n, h + top + bottom, w + left + right, 1), dtype=np.float32)
    # A float32 divide is correctly rounded, so this equals float32(pixel) / 255 exactly.
    np.divide(images, np.float32(255), out=out[:, top:top + h, left:left + w, 0], dtype=np.float32)
    return out


def lenet_input_int8(images: np.ndarray) -> np.ndarray:
    """int8 (N,32,32,1) LeNet input: padded pixel - 128, exact.

    This is the float input quantized with scale 1/255, zero point -128, so
    padding (pixel 0) becomes -128.
    """
    top, bottom, left, right = _pad_amounts(images)
    n, h, w = images.shape
    out = np.full((n, h + top + bottom, w + left + right, 1), -128, dtype=np.int8)
    # pixel - 128 in int8 is the pixel with its top bit flipped.
    out[:, top:top + h, left:left + w, 0] = (images ^ np.uint8(0x80)).view(np.int8)
    return out
