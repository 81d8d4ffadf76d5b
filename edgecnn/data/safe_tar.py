"""Unpack a downloaded .tar.gz without trusting it.

`tarfile.extractall` follows whatever the archive says: absolute paths, `..`,
symlinks pointing anywhere, device nodes. Here every member is checked before a
byte of it is written, only plain files and folders are accepted, each file is
written by edgecnn itself (O_EXCL, under the target only), and sizes are
bounded per file, in total and in member count. Any refusal raises
UnsafeArchiveError naming the member; the caller unpacks into a fresh folder and
deletes it on failure, so a hostile archive leaves nothing behind.
"""

from __future__ import annotations

import os
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from edgecnn.errors import DataError

CHUNK = 1 << 20


class UnsafeArchiveError(DataError):
    """A tar archive holds something edgecnn will not unpack (a path outside the target, a link, too much data)."""


@dataclass(frozen=True)
class TarLimits:
    max_members: int = 64
    max_file_bytes: int = 64 << 20
    max_total_bytes: int = 256 << 20
    max_name_chars: int = 255


def member_path(name: str, limits: TarLimits = TarLimits()) -> PurePosixPath:
    """The member's relative path, or UnsafeArchiveError for absolute, `..`, backslash or odd names."""
    if not name or len(name) > limits.max_name_chars or "\0" in name or "\\" in name:
        raise UnsafeArchiveError(f"member {name[:80]!r}: not a plain relative path")
    path = PurePosixPath(name)
    if path.is_absolute() or name.startswith("/"):
        raise UnsafeArchiveError(f"member {name!r}: an absolute path")
    parts = [p for p in path.parts if p != "."]
    if any(p == ".." for p in parts):
        raise UnsafeArchiveError(f"member {name!r}: a path with '..'")
    if not parts or any(":" in p for p in parts):
        raise UnsafeArchiveError(f"member {name!r}: not a plain relative path")
    return PurePosixPath(*parts)


def extract_tar_gz(archive, target, limits: TarLimits = TarLimits()) -> list[str]:
    """Unpack plain files and folders of `archive` (.tar.gz) into the existing, empty folder `target`.

    Returns the relative names of the files written. Links, devices, FIFOs,
    absolute or `..` paths, duplicate names and anything over `limits` raise
    UnsafeArchiveError; a corrupt gzip or tar raises DataError. On error some
    files may already sit under `target` (never outside it): unpack into a
    fresh folder and remove it on failure.
    """
    target = Path(target)
    written, seen, total = [], set(), 0
    try:
        with tarfile.open(archive, mode="r|gz") as tar:  # a stream: members come once, in order
            for count, member in enumerate(tar, start=1):
                if count > limits.max_members:
                    raise UnsafeArchiveError(f"more than {limits.max_members} members")
                if member.isdir() and member.name.strip("/") in (".", ""):
                    continue  # the archive's own root ("./"): nothing to make
                rel = member_path(member.name, limits)
                if rel in seen:
                    raise UnsafeArchiveError(f"member {member.name!r} appears twice")
                seen.add(rel)
                if member.isdir():
                    _make_dirs(target, rel)
                    continue
                if not member.isfile():
                    kind = ("a symlink" if member.issym() else "a hard link" if member.islnk()
                            else "a device or FIFO")
                    raise UnsafeArchiveError(f"member {member.name!r} is {kind}; only plain files are unpacked")
                if member.size > limits.max_file_bytes:
                    raise UnsafeArchiveError(f"member {member.name!r} is {member.size:,} bytes, over the "
                                             f"{limits.max_file_bytes:,}-byte limit")
                total += member.size
                if total > limits.max_total_bytes:
                    raise UnsafeArchiveError(f"the archive unpacks to over {limits.max_total_bytes:,} bytes")
                _make_dirs(target, rel.parent)
                _write_member(tar, member, target / rel)
                written.append(str(rel))
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        if isinstance(exc, OSError) and exc.errno is not None:
            raise DataError(f"cannot unpack into {target}: {exc.strerror or exc}") from None
        raise DataError(f"corrupt archive ({type(exc).__name__}: {exc})") from None
    return written


def _make_dirs(target: Path, rel: PurePosixPath) -> None:
    """mkdir each component under target; an existing non-folder (or a link) there is refused."""
    here = target
    for part in rel.parts:
        here = here / part
        if here.is_symlink() or (here.exists() and not here.is_dir()):
            raise UnsafeArchiveError(f"member folder {str(rel)!r} clashes with a file in the archive")
        here.mkdir(exist_ok=True)


def _write_member(tar: tarfile.TarFile, member: tarfile.TarInfo, dest: Path) -> None:
    src = tar.extractfile(member)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(dest, flags, 0o644)
    except FileExistsError:
        raise UnsafeArchiveError(f"member {member.name!r} clashes with another member") from None
    remaining = member.size
    with os.fdopen(fd, "wb") as out:
        while remaining > 0:
            chunk = src.read(min(CHUNK, remaining))
            if not chunk:
                raise DataError(f"corrupt archive: member {member.name!r} is cut short")
            out.write(chunk)
            remaining -= len(chunk)
