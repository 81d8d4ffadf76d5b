"""The JSON records edgecnn writes beside results (eval baselines, saved outputs): read as untrusted input."""

from __future__ import annotations

import json


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def parse_record(raw: bytes, fmt: str, newest: int, what: str, where: str, error) -> dict:
    """The JSON object in `raw`, with "format" == fmt and an integer "version" in 1..newest; else `error`."""
    try:
        doc = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise error(f"{where}: not a JSON {what} ({type(exc).__name__})") from None
    if not isinstance(doc, dict) or doc.get("format") != fmt:
        raise error(f"{where}: not an edgecnn {what} (no \"format\": \"{fmt}\")")
    version = doc.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise error(f"{where}: bad {what} version {version!r}")
    if version > newest:
        raise error(f"{where}: {what} version {version} is from a newer edgecnn (this one reads {newest})")
    return doc


def short_str(v, limit: int = 4096) -> bool:
    return isinstance(v, str) and 0 < len(v) <= limit


def valid_images(images) -> bool:
    """Whether `images` is an identity as regression.images_identity makes: dataset, split, count, sha256."""
    count = images.get("count") if isinstance(images, dict) else None
    return (isinstance(images, dict) and all(short_str(images.get(k), 256) for k in ("dataset", "split", "sha256"))
            and isinstance(count, int) and not isinstance(count, bool) and count >= 1)
