"""The float checkpoint: a `.npz` with a JSON spec, the arrays, a magic and a version.

Layout of the archive (never loaded with pickle):
  __magic__     uint8 bytes of "edgecnn-float"
  __format__    int64 format version: 1 (chains: spec {"layers": [...]}), 2 (adds graphs:
                spec {"nodes": [...], "output"}, and buffer/ arrays)
  __spec__      uint8 bytes of the model's JSON spec (arch, input shape, labels, layers or nodes)
  __train__     uint8 bytes of JSON training state (optional: epoch, seconds, history, config, dataset)
  param/<layer>/<name>    parameter arrays
  buffer/<layer>/<name>   non-trained state, such as BatchNorm's running mean and variance
  opt/<...>               optimizer state (optional, for --resume)

Loading treats the file as hostile: zip members must be plain stored or deflated
.npy files, each member's declared shape is checked against what the spec says
it must be before a byte of it is inflated, and the spec is validated (types,
limits) before the model is built (see spec_check.py).
"""

from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path

import numpy as np

from edgecnn.errors import CheckpointError, EdgecnnError
from edgecnn.fileio import atomic_path
from edgecnn.model.graph import Graph

MAGIC = b"edgecnn-float"
FORMAT_VERSION = 2
MAX_SPEC_BYTES = 4 << 20      # a 4,096-node spec is well under 1 MB
MAX_TRAIN_BYTES = 16 << 20
MAX_MEMBERS = 3 * 4096 * 8    # params, buffers and optimizer state of the largest allowed graph
_ZIP_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)  # what np.savez and np.savez_compressed write


def _text(obj) -> np.ndarray:
    return np.frombuffer(json.dumps(obj, sort_keys=True).encode(), dtype=np.uint8)


def save_checkpoint(path, model: Graph, train_state: dict | None = None, opt_state: dict | None = None) -> Path:
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
    for key, value in model.named_buffers():
        arrays[f"buffer/{key}"] = value
    for key, value in (opt_state or {}).items():
        arrays[f"opt/{key}"] = value
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    return path


class _Archive:
    """The .npy members of a checkpoint zip, read one at a time with their headers checked first."""

    def __init__(self, path: Path, zf: zipfile.ZipFile):
        self.path, self.zf = path, zf
        self.members = {}
        infos = zf.infolist()
        if len(infos) > MAX_MEMBERS:
            raise CheckpointError(f"{path}: {len(infos)} arrays, over the limit of {MAX_MEMBERS}")
        for info in infos:
            if info.flag_bits & 0x1:
                raise CheckpointError(f"{path}: member {info.filename!r:.80} is encrypted; checkpoints never are")
            if info.compress_type not in _ZIP_METHODS:
                raise CheckpointError(f"{path}: member {info.filename!r:.80} uses zip compression method "
                                      f"{info.compress_type}; checkpoints are stored or deflated")
            if not info.filename.endswith(".npy"):
                raise CheckpointError(f"{path}: member {info.filename!r:.80} is not a .npy array")
            self.members[info.filename[:-4]] = info

    def __contains__(self, key):
        return key in self.members

    def keys(self, prefix: str):
        return [k for k in self.members if k.startswith(prefix)]

    def _header(self, f, key):
        try:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f"npy format {version}")
        except (ValueError, EOFError, OSError, SyntaxError, TypeError, zipfile.BadZipFile) as exc:
            raise CheckpointError(f"{self.path}: array {key} has a bad .npy header ({exc})") from None
        if dtype.hasobject or dtype.kind not in "biuf":
            raise CheckpointError(f"{self.path}: array {key} holds {dtype}, not numbers (edgecnn never loads "
                                  f"Python objects)")
        return tuple(shape), dtype

    def read(self, key: str, shape=None, max_bytes: int | None = None, kinds: str = "biuf") -> np.ndarray:
        """Array `key`, after checking its declared shape (== shape) or size (<= max_bytes) and dtype kind."""
        if key not in self.members:
            raise CheckpointError(f"{self.path}: checkpoint has no array {key}")
        try:
            with self.zf.open(self.members[key]) as f:
                declared, dtype = self._header(f, key)
                if dtype.kind not in kinds:
                    raise CheckpointError(f"{self.path}: {key} is {dtype}, expected "
                                          f"{'floating point' if kinds == 'f' else 'integers'}")
                if shape is not None and declared != tuple(shape):
                    raise CheckpointError(f"{self.path}: {key}: checkpoint shape {declared} != model shape "
                                          f"{tuple(shape)}")
                nbytes = math.prod(declared) * dtype.itemsize
                if max_bytes is not None and nbytes > max_bytes:
                    raise CheckpointError(f"{self.path}: {key} declares {nbytes:,} bytes, over the limit of "
                                          f"{max_bytes:,}")
            with self.zf.open(self.members[key]) as f:
                return np.lib.format.read_array(f, allow_pickle=False)
        except CheckpointError:
            raise
        except (ValueError, EOFError, OSError, zipfile.BadZipFile, NotImplementedError, RuntimeError) as exc:
            raise CheckpointError(f"{self.path}: array {key} is unreadable ({exc.__class__.__name__}: "
                                  f"{exc})") from None

    def json(self, key: str, max_bytes: int):
        raw = self.read(key, max_bytes=max_bytes, kinds="u")
        if raw.dtype != np.uint8 or raw.ndim != 1:
            raise CheckpointError(f"{self.path}: {key} must be a 1-D uint8 array of JSON text")
        try:
            return json.loads(raw.tobytes())
        except RecursionError:
            raise CheckpointError(f"{self.path}: {key} nests too deeply to be a checkpoint") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"{self.path}: {key} is not valid JSON ({exc})") from None


def _format_version(path, archive: _Archive) -> int:
    raw = archive.read("__format__", max_bytes=64, kinds="iu")
    if raw.size != 1:
        raise CheckpointError(f"{path}: bad checkpoint format version (an array of shape {raw.shape})")
    version = int(raw.reshape(-1)[0])
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format {version} is newer than this edgecnn supports ({FORMAT_VERSION}); upgrade edgecnn")
    if version < 1:
        raise CheckpointError(f"{path}: bad checkpoint format version {version}")
    return version


def _check_train_state(path, state) -> dict:
    """The __train__ document --resume reads: a dict with the expected types, or CheckpointError."""
    def bad(what):
        return CheckpointError(f"{path}: corrupt training state ({what})")

    if not isinstance(state, dict):
        raise bad("not a JSON object")
    for key in ("epoch",):
        if key in state and (isinstance(state[key], bool) or not isinstance(state[key], int) or state[key] < 0):
            raise bad(f"{key} must be an integer >= 0")
    if "seconds" in state and (isinstance(state["seconds"], bool) or not isinstance(state["seconds"], (int, float))
                               or not math.isfinite(state["seconds"]) or state["seconds"] < 0):
        raise bad("seconds must be a finite number >= 0")
    history = state.get("history", [])
    if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
        raise bad("history must be a list of objects")
    for h in history:
        for k, v in h.items():
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
                raise bad(f"history field {k!r:.40} must be a number")
    if "config" in state and not isinstance(state["config"], dict):
        raise bad("config must be an object")
    if "dataset" in state and not isinstance(state["dataset"], str):
        raise bad("dataset must be a string")
    return state


def _build(path, spec) -> Graph:
    from edgecnn.model.spec_check import check_model_size, check_spec

    try:
        check_spec(spec)
        model = Graph.from_spec(spec)  # structure and shapes only: no arrays yet
        check_model_size(model)
        model.init_params(seed=0)
    except EdgecnnError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    except (KeyError, ValueError, TypeError, AttributeError, OverflowError) as exc:
        raise CheckpointError(f"{path}: corrupt checkpoint spec ({exc.__class__.__name__}: {exc})") from None
    return model


def _load_arrays(path, archive: _Archive, model: Graph) -> None:
    for prefix, store in (("param/", "params"), ("buffer/", "buffers")):
        for layer in model.layers:
            arrays = getattr(layer, store)
            for k, v in arrays.items():
                a = archive.read(f"{prefix}{layer.name}/{k}", shape=v.shape, kinds="f")
                if not np.all(np.isfinite(a)):
                    raise CheckpointError(f"{path}: {layer.name}/{k} holds NaN or infinite values")
                arrays[k] = a.astype(v.dtype)


def _opt_state(path, archive: _Archive, model: Graph) -> dict:
    """Optimizer arrays: each named after a parameter and shaped like it (or the scalar step count t)."""
    shapes = {k: v.shape for k, v in model.named_params()}
    out = {}
    for member in archive.keys("opt/"):
        key = member[len("opt/"):]
        if key == "t":
            out[key] = archive.read(member, shape=(), kinds="iu")
            continue
        head, _, param = key.partition("/")
        if head not in ("m", "v", "buf") or param not in shapes:
            raise CheckpointError(f"{path}: optimizer state {key!r:.80} names no parameter of the model")
        out[key] = archive.read(member, shape=shapes[param], kinds="f")
    return out


def load_checkpoint(path, with_state: bool = False):
    """Load a model (and optionally its train/optimizer state) without pickle, refusing hostile files."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a checkpoint file")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with zipfile.ZipFile(path) as zf:
            archive = _Archive(path, zf)
            if "__magic__" not in archive or archive.read("__magic__", max_bytes=64).tobytes() != MAGIC:
                raise CheckpointError(f"{path}: not an edgecnn checkpoint (no edgecnn magic)")
            _format_version(path, archive)
            model = _build(path, archive.json("__spec__", MAX_SPEC_BYTES))
            _load_arrays(path, archive, model)
            if not with_state:
                return model
            train_state = archive.json("__train__", MAX_TRAIN_BYTES) if "__train__" in archive else {}
            return model, _check_train_state(path, train_state), _opt_state(path, archive, model)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as exc:
        raise CheckpointError(f"{path}: not an edgecnn checkpoint ({exc.__class__.__name__}: {exc})") from None
