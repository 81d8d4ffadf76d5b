"""What a `.tflite` says about itself, beside the graph: op versions, the
minimum runtime, and edgecnn's own JSON metadata.

TFLite's schema keeps this in three places, all filled the way the
TensorFlow converter fills them, so LiteRT tooling reads our files unchanged:
- `OperatorCode.version`: the kernel version an op needs (each op's
  registration decides it, as tflite/tools/versioning/op_version.cc does);
- the "min_runtime_version" metadata buffer: 16 bytes, a zero-padded version
  string, the highest of the per-op minimums (runtime_version.cc's table,
  also kept per op in the registry);
- the "edgecnn" metadata buffer: a JSON envelope with a magic and a format
  version around the graph's `metadata` dict (labels, preprocessing, ...).
"""

from __future__ import annotations

import json

import tflite

from edgecnn.errors import ModelError, TFLiteFormatError

EDGECNN_METADATA_NAME = "edgecnn"
EDGECNN_MAGIC = "edgecnn-tflite-metadata"
# Bump on an incompatible change of the envelope or of a key's meaning; a
# reader refuses a newer major version rather than guess at preprocessing.
METADATA_FORMAT_VERSION = 1
MIN_RUNTIME_NAME = "min_runtime_version"
MAX_METADATA_BYTES = 1 << 20  # labels and preprocessing fit easily; anything bigger is not ours
MIN_RUNTIME_BYTES = 16

# Builtin op names <-> codes, from the schema bindings (no hand-typed numbers).
OP_CODES = {k: v for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
OP_NAMES = {v: k for k, v in OP_CODES.items()}
# schema_utils.h: codes > 127 live only in `builtin_code`; the old byte field
# holds this placeholder so pre-2.4 readers fail cleanly.
PLACEHOLDER_FOR_GREATER_OP_CODES = 127

def min_runtime_version(versions) -> str:
    """Highest minimum runtime over (op, version) pairs, as "major.minor.patch" (each op's registration)."""
    from edgecnn.deploy.ops import lookup

    best = ""
    for kind, version in versions:
        v = lookup(kind).min_runtime.get(version, "")
        if v and (not best or tuple(map(int, v.split("."))) > tuple(map(int, best.split(".")))):
            best = v
    return best


def min_runtime_buffer(version: str) -> bytes:
    return version.encode("ascii").ljust(MIN_RUNTIME_BYTES, b"\0")


def encode_edgecnn_metadata(metadata: dict, writer_version: str) -> bytes:
    """The JSON envelope: magic, format version, writer, and the graph's dict."""
    envelope = {
        "magic": EDGECNN_MAGIC,
        "format_version": METADATA_FORMAT_VERSION,
        "writer": f"edgecnn {writer_version}",
        "metadata": metadata,
    }
    try:
        text = json.dumps(envelope, allow_nan=False, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError) as e:
        raise ModelError(f"graph metadata must be plain JSON (str, number, list, dict): {e}") from None
    return text.encode("utf-8")


def decode_edgecnn_metadata(raw: bytes, source: str) -> dict:
    """The graph's metadata dict back from an "edgecnn" buffer."""
    if len(raw) > MAX_METADATA_BYTES:
        raise TFLiteFormatError(f"{source}: edgecnn metadata is {len(raw)} bytes, more than {MAX_METADATA_BYTES}")
    try:
        envelope = json.loads(bytes(raw).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise TFLiteFormatError(f"{source}: edgecnn metadata is not valid JSON ({e})") from None
    except RecursionError:
        raise TFLiteFormatError(f"{source}: edgecnn metadata is nested too deeply") from None
    if not isinstance(envelope, dict) or envelope.get("magic") != EDGECNN_MAGIC:
        raise TFLiteFormatError(f"{source}: edgecnn metadata has no edgecnn magic")
    version = envelope.get("format_version")
    if not isinstance(version, int) or version > METADATA_FORMAT_VERSION:
        raise TFLiteFormatError(
            f"{source}: edgecnn metadata format {version!r} is newer than this edgecnn reads "
            f"({METADATA_FORMAT_VERSION}); upgrade edgecnn"
        )
    metadata = envelope.get("metadata", {})
    if not isinstance(metadata, dict):
        raise TFLiteFormatError(f"{source}: edgecnn metadata is not a JSON object")
    _check_known_keys(metadata, source)
    return metadata


def _check_known_keys(metadata: dict, source: str) -> None:
    """The keys edgecnn acts on must have the types it acts on; other keys pass through untouched."""
    labels = metadata.get("labels")
    if labels is not None and not (isinstance(labels, list) and all(isinstance(v, str) for v in labels)):
        raise TFLiteFormatError(f"{source}: edgecnn metadata 'labels' must be a list of strings")
    prep = metadata.get("preprocessing")
    if prep is None:
        return
    if not isinstance(prep, dict):
        raise TFLiteFormatError(f"{source}: edgecnn metadata 'preprocessing' must be a JSON object")
    for key in ("pad",):
        if key in prep and (isinstance(prep[key], bool) or not isinstance(prep[key], int) or not 0 <= prep[key] <= 4096):
            raise TFLiteFormatError(f"{source}: edgecnn metadata preprocessing '{key}' must be an int in [0, 4096]")
    for key in ("scale", "zero_point"):
        if key in prep and (isinstance(prep[key], bool) or not isinstance(prep[key], (int, float))):
            raise TFLiteFormatError(f"{source}: edgecnn metadata preprocessing '{key}' must be a number")
    for key in ("mean", "std"):
        value = prep.get(key)
        if value is not None and not (isinstance(value, list) and value
                                      and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
            raise TFLiteFormatError(f"{source}: edgecnn metadata preprocessing '{key}' must be a list of numbers")
        if key == "std" and value is not None and any(v <= 0 for v in value):
            raise TFLiteFormatError(f"{source}: edgecnn metadata preprocessing 'std' must be positive")
