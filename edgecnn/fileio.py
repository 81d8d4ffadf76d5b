"""Atomic output: a failure never leaves a half-written file behind.

Each write goes to a temp file beside the target, named
`.NAME.edgecnn-tmp-PID-XXXX.part` so a user can tell what it is, then is
renamed over NAME. A SIGKILL mid-write can still leave one behind; the next
write to the same target removes those whose writing process is gone.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path

from edgecnn.errors import EdgecnnError


class OutputError(EdgecnnError):
    """An output file cannot be written where the user asked."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


TEMP_TAG = "edgecnn-tmp"
TEMP_SUFFIX = ".part"


def temp_prefix(path: Path) -> str:
    """The start of every temp file name edgecnn uses while writing `path`."""
    return f".{path.name}.{TEMP_TAG}-"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return pid > 0  # someone else's live process, or a number no process can have
    return True


def remove_stale_temps(path: Path) -> list[Path]:
    """Delete temp files left beside `path` by writers that died (SIGKILL, power loss); return them."""
    prefix = temp_prefix(path)
    pattern = re.compile(re.escape(prefix) + r"(\d+)-[^/]*" + re.escape(TEMP_SUFFIX) + "$")
    removed = []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return removed
    for entry in entries:
        match = pattern.match(entry.name)
        if match and int(match.group(1)) != os.getpid() and not _process_alive(int(match.group(1))):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


def temp_file_beside(path: Path) -> str:
    """Create an empty temp file in `path`'s folder (making the folder); errors name `path`."""
    if path.is_dir():
        raise OutputError(f"cannot write {path}: it is a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(path)
        fd, tmp = tempfile.mkstemp(prefix=f"{temp_prefix(path)}{os.getpid()}-", suffix=TEMP_SUFFIX,
                                   dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    return tmp


def check_writable(path: str | os.PathLike) -> None:
    """Fail now, with OutputError, if `path` could not be written later (before hours of work)."""
    os.unlink(temp_file_beside(Path(path)))


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temp path beside `path`; on success rename it over `path`.

    The temp file lives in the same folder so `os.replace` is a rename on one
    filesystem, which POSIX makes atomic. It gets the permissions a plain
    `open()` would give (mkstemp's are 0600). Errors name `path`, never the temp file.
    """
    path = Path(path)
    tmp = temp_file_beside(path)
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
