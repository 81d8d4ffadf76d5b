"""The float checkpoint: a `.npz` with a JSON spec, the arrays, a magic and a version.

Layout of the archive (loaded with allow_pickle=False):
  __magic__     uint8 bytes of "edgecnn-float"
  __format__    int64 format version
  __spec__      uint8 bytes of the model's JSON spec (arch, input shape, labels, layers)
  __train__     uint8 bytes of JSON training state (optional: epoch, seed, history)
  param/<layer>/<name>   parameter arrays
  opt/<...>              optimizer state (optional, for --resume)
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from edgecnn.errors import CheckpointError, EdgecnnError
from edgecnn.fileio import atomic_path
from edgecnn.model.sequential import Sequential

MAGIC = b"edgecnn-float"
FORMAT_VERSION = 1


def _text(obj) -> np.ndarray:
    return np.frombuffer(json.dumps(obj, sort_keys=True).encode(), dtype=np.uint8)


def save_checkpoint(path, model: Sequential, train_state: dict | None = None, opt_state: dict | None = None) -> Path:
    """Write atomically: a crash mid-save leaves the previous file intact."""
    path = Path(path)
    arrays = {
        "__magic__": np.frombuffer(MAGIC, dtype=np.uint8),
        "__format__": np.array(FORMAT_VERSION, dtype=np.int64),
        "__spec__": _text(model.spec()),
    }
    if train_state is not None:
        arrays["__train__"] = _text(train_state)
    for key, value in model.named_params():
        arrays[f"param/{key}"] = value
    for key, value in (opt_state or {}).items():
        arrays[f"opt/{key}"] = value
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    return path


def load_checkpoint(path, with_state: bool = False):
    """Load a model (and optionally its train/optimizer state) without pickle."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a checkpoint file")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except ValueError as exc:
        if "pickle" in str(exc):  # numpy refuses object arrays: never load them
            raise CheckpointError(f"{path}: not an edgecnn checkpoint (it holds Python objects, which edgecnn "
                                  f"never loads)") from None
        raise CheckpointError(f"{path}: not an edgecnn checkpoint ({exc})") from None
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise CheckpointError(f"{path}: not an edgecnn checkpoint ({exc.__class__.__name__}: {exc})") from None
    if "__magic__" not in data or data["__magic__"].tobytes() != MAGIC:
        raise CheckpointError(f"{path}: not an edgecnn checkpoint (no edgecnn magic)")
    version = int(data.get("__format__", -1))
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format {version} is newer than this edgecnn supports ({FORMAT_VERSION}); upgrade edgecnn")
    if version < 1:
        raise CheckpointError(f"{path}: bad checkpoint format version {version}")
    try:
        spec = json.loads(data["__spec__"].tobytes())
        model = Sequential.from_spec(spec)
        model.init_params(seed=0)
        model.load_state_dict({k[len("param/"):]: v for k, v in data.items() if k.startswith("param/")})
    except EdgecnnError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: corrupt checkpoint ({exc})") from None
    for key, value in model.named_params():
        if data[f"param/{key}"].dtype.kind != "f":
            raise CheckpointError(f"{path}: {key} is {data[f'param/{key}'].dtype}, not floating point")
        if not np.all(np.isfinite(value)):
            raise CheckpointError(f"{path}: {key} holds NaN or infinite values")
    if not with_state:
        return model
    train_state = json.loads(data["__train__"].tobytes()) if "__train__" in data else {}
    opt_state = {k[len("opt/"):]: v for k, v in data.items() if k.startswith("opt/")}
    return model, train_state, opt_state
