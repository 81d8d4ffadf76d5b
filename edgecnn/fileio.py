"""Atomic output: a failure never leaves a half-written file behind."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from edgecnn.errors import EdgecnnError


class OutputError(EdgecnnError):
    """An output file cannot be written where the user asked."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _temp_beside(path: Path) -> str:
    """Create an empty temp file in `path`'s folder (making the folder); errors name `path`."""
    if path.is_dir():
        raise OutputError(f"cannot write {path}: it is a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    return tmp


def check_writable(path: str | os.PathLike) -> None:
    """Fail now, with OutputError, if `path` could not be written later (before hours of work)."""
    os.unlink(_temp_beside(Path(path)))


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temp path beside `path`; on success rename it over `path`.

    The temp file lives in the same folder so `os.replace` is a rename on one
    filesystem, which POSIX makes atomic. It gets the permissions a plain
    `open()` would give (mkstemp's are 0600). Errors name `path`, never the temp file.
    """
    path = Path(path)
    tmp = _temp_beside(path)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and not isinstance(exc, EdgecnnError):
            raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(data)
