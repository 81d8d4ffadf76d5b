"""Saved outputs that a board's run is checked against: `eval --save-outputs host.npz` / `--expect-outputs host.npz`.

The .npz holds the arrays `output0`, `output1`, ... (numpy's savez, as before)
and, as the zip archive's comment, a JSON record: format and version, the
model's SHA-256, the images (dataset, split, count, SHA-256 of the pixels), the
backend, and each array's dtype, shape and SHA-256. The comment is invisible to
`np.load`, so `z.files` stays the model's outputs. Reading treats the file as
untrusted: `allow_pickle=False`, the record checked field by field, each array
checked against its hash, one-line errors.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np

from edgecnn.deploy.npy import ZIP_READ_ERRORS
from edgecnn.deploy.records import parse_record, short_str, valid_images
from edgecnn.errors import EdgecnnError

FORMAT = "edgecnn-outputs"
VERSION = 1
MAX_ARRAYS = 64
MAX_ARRAY_BYTES = 1 << 30


class OutputsFileError(EdgecnnError):
    """An outputs file is unreadable, malformed, or made from another model or other images."""


def array_sha256(a: np.ndarray) -> str:
    a = np.ascontiguousarray(a)
    h = hashlib.sha256(repr((a.dtype.str, a.shape)).encode())
    h.update(a.tobytes())
    return h.hexdigest()


def outputs_record(outputs: list[np.ndarray], model_sha256: str, model_name: str, images: dict,
                   backend: str) -> dict:
    import edgecnn

    return {"format": FORMAT, "version": VERSION, "edgecnn_version": edgecnn.__version__,
            "model": {"name": model_name, "sha256": model_sha256}, "images": dict(images), "backend": backend,
            "arrays": [{"name": f"output{j}", "dtype": y.dtype.name, "shape": list(y.shape),
                        "sha256": array_sha256(y)} for j, y in enumerate(outputs)]}


def write_outputs_npz(f, outputs: list[np.ndarray], record: dict | None) -> None:
    """np.savez of output0, output1, ... into the open binary file `f`, the record as the zip comment."""
    np.savez(f, **{f"output{j}": y for j, y in enumerate(outputs)})
    if record is not None:
        f.flush()
        f.seek(0)
        with zipfile.ZipFile(f, "a") as z:
            z.comment = json.dumps(record, separators=(",", ":")).encode()


def read_outputs(path) -> tuple[list[np.ndarray], dict]:
    """(arrays in output order, the validated record) of an outputs file; OutputsFileError otherwise."""
    path = Path(path)
    name = path.name
    if path.suffix.lower() != ".npz":
        raise OutputsFileError(f"{name}: --expect-outputs needs the .npz that --save-outputs PATH.npz writes "
                               "(a .npy holds no model hash or image identity)")
    if path.is_dir():
        raise OutputsFileError(f"{path} is a folder, not an outputs file")
    try:
        with zipfile.ZipFile(path) as z:
            comment = z.comment
            big = next((i for i in z.infolist() if i.file_size > MAX_ARRAY_BYTES), None)
    except FileNotFoundError:
        raise OutputsFileError(f"{path} does not exist") from None
    except (*ZIP_READ_ERRORS, ValueError) as exc:
        raise OutputsFileError(f"{name}: not an .npz archive ({type(exc).__name__})") from None
    if big is not None:  # a zip bomb, or not a file edgecnn wrote: refuse before inflating it
        raise OutputsFileError(f"{name}: {big.filename} inflates to {big.file_size:,} bytes, "
                               f"more than the {MAX_ARRAY_BYTES >> 30} GiB an outputs array may hold")
    record = _record(comment, name)
    arrays = []
    try:
        with np.load(path, allow_pickle=False) as z:
            for k, spec in enumerate(record["arrays"]):
                key = f"output{k}"
                if key not in z.files:
                    raise OutputsFileError(f"{name}: the record lists {key}, the archive does not hold it")
                a = z[key]
                if a.dtype.name != spec["dtype"] or list(a.shape) != spec["shape"] or \
                        array_sha256(a) != spec["sha256"]:
                    raise OutputsFileError(f"{name}: {key} is not the array the record describes "
                                           "(edited after it was saved?)")
                arrays.append(a)
    except OutputsFileError:
        raise
    except (*ZIP_READ_ERRORS, ValueError, KeyError) as exc:  # pickled objects, bad headers
        raise OutputsFileError(f"{name}: unreadable array ({type(exc).__name__}: {str(exc)[:80]})") from None
    return arrays, record


def _record(comment: bytes, name: str) -> dict:
    if not comment:
        raise OutputsFileError(f"{name}: no edgecnn record (model hash, images); save it with "
                               "`edgecnn eval MODEL --save-outputs PATH.npz`")
    record = parse_record(comment, FORMAT, VERSION, "outputs file", name, OutputsFileError)
    model, images, arrays = record.get("model"), record.get("images"), record.get("arrays")
    if not (isinstance(model, dict) and short_str(model.get("sha256")) and short_str(model.get("name"))):
        raise OutputsFileError(f"{name}: its record has no model name and sha256")
    if not valid_images(images):
        raise OutputsFileError(f"{name}: its record does not identify the images (dataset, split, count, sha256)")
    if not short_str(record.get("backend")):
        raise OutputsFileError(f"{name}: its record names no backend")
    if not isinstance(arrays, list) or not 1 <= len(arrays) <= MAX_ARRAYS or not all(
            isinstance(a, dict) and short_str(a.get("dtype")) and short_str(a.get("sha256"))
            and isinstance(a.get("shape"), list) and all(isinstance(d, int) for d in a["shape"]) for a in arrays):
        raise OutputsFileError(f"{name}: its record's \"arrays\" list is malformed")
    return record


def check_same_run(record: dict, model_sha256: str, images: dict, source: str) -> None:
    """OutputsFileError unless `record` was made from this model file and these images."""
    from edgecnn.deploy.regression import describe_images, same_images

    if record["model"]["sha256"] != model_sha256:
        raise OutputsFileError(f"{source} was saved from another model ({record['model']['name']}, sha256 "
                               f"{record['model']['sha256'][:12]}), not this one (sha256 {model_sha256[:12]})")
    if not same_images(record["images"], images):
        raise OutputsFileError(f"{source} was saved on {describe_images(record['images'])}, this run uses "
                               f"{describe_images(images)}: use the same --dataset/--limit")


def compare_outputs(expected: list[np.ndarray], actual: list[np.ndarray]) -> dict:
    """Identical rows (images whose every output element is equal), identical elements, the largest difference."""
    if len(expected) != len(actual):
        raise OutputsFileError(f"the saved file holds {len(expected)} outputs, the model has {len(actual)}")
    rows = len(actual[0])
    same_row = np.ones(rows, bool)
    elements = identical = 0
    max_diff, where = 0.0, None
    for j, (e, a) in enumerate(zip(expected, actual)):
        a = np.asarray(a).reshape(e.shape) if np.asarray(a).size == e.size else None
        if a is None or e.dtype != np.asarray(actual[j]).dtype:
            raise OutputsFileError(f"output{j}: saved {e.dtype.name} {list(e.shape)}, this run gives "
                                   f"{np.asarray(actual[j]).dtype.name} {list(np.asarray(actual[j]).shape)}")
        wide = np.float64 if e.dtype.kind == "f" else np.int64
        diff = np.abs(e.astype(wide) - a.astype(wide)).reshape(rows, -1)
        equal = diff == 0
        same_row &= equal.all(axis=1)
        elements += diff.size
        identical += int(equal.sum())
        if diff.size and float(diff.max()) > max_diff:
            max_diff = float(diff.max())
            r = int(np.argmax(diff.max(axis=1)))
            where = {"image": r, "output": f"output{j}"}
    first = int(np.argmin(same_row)) if not same_row.all() else None
    return {"rows": int(rows), "identical_rows": int(same_row.sum()), "elements": int(elements),
            "identical_elements": int(identical), "max_diff": max_diff, "first_differing_image": first,
            "largest_at": where}


def describe_difference(c: dict, max_diff: float, source: str) -> str:
    at = c["largest_at"] or {}
    return (f"outputs differ from {source}: {c['rows'] - c['identical_rows']} of {c['rows']} images, "
            f"{c['elements'] - c['identical_elements']} of {c['elements']} elements; largest difference "
            f"{c['max_diff']:g} (image {at.get('image')}, {at.get('output')}) > --max-diff {max_diff:g}")
