"""Unpack a downloaded .tar.gz without trusting it.

`tarfile.extractall` follows whatever the archive says: absolute paths, `..`,
symlinks pointing anywhere, device nodes. Here every member is checked before a
byte of it is written, only plain files and folders are accepted, each file is
written by edgecnn itself (O_EXCL, under the target only), and sizes are
bounded per file, in total and in member count. Any refusal raises
UnsafeArchiveError naming the member; the caller unpacks into a fresh folder and
deletes it on failure, so a hostile archive leaves nothing behind.
Memory and time are bounded too: the inflated stream is counted (a gzip bomb
stops at the budget), long-name/pax header blocks over 64 KiB are refused
before tarfile reads them into memory, and the gzip CRC and length are checked
at the end.
"""

from __future__ import annotations

import gzip
import os
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from edgecnn.errors import DataError

CHUNK = 1 << 20
MAX_HEADER_BYTES = 64 << 10  # a long name or pax record block; tarfile reads one whole into memory
_HEADER_TYPES = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE, tarfile.XGLTYPE,
                 tarfile.SOLARIS_XHDTYPE)


class UnsafeArchiveError(DataError):
    """A tar archive holds something edgecnn will not unpack (a path outside the target, a link, too much data)."""


@dataclass(frozen=True)
class TarLimits:
    max_members: int = 64
    max_file_bytes: int = 64 << 20
    max_total_bytes: int = 256 << 20
    max_name_chars: int = 255

    @property
    def max_inflated_bytes(self) -> int:
        """The tar stream's size at most: the data, each member's headers, the end blocks and padding."""
        per_member = MAX_HEADER_BYTES + 4 * tarfile.BLOCKSIZE
        return self.max_total_bytes + self.max_members * per_member + 4 * tarfile.RECORDSIZE


class _CheckedTarInfo(tarfile.TarInfo):
    """A header block whose long name or pax records would be read into memory whole is refused first."""

    @classmethod
    def frombuf(cls, buf, encoding, errors):
        info = super().frombuf(buf, encoding, errors)
        if info.type in _HEADER_TYPES and info.size > MAX_HEADER_BYTES:
            raise UnsafeArchiveError(f"a {info.size:,}-byte long-name or pax header (over {MAX_HEADER_BYTES:,})")
        return info


class _Inflated:
    """The gzip stream as tarfile reads it, refused once it inflates past `budget` bytes."""

    def __init__(self, raw, budget: int):
        self.stream, self.budget, self.count = gzip.GzipFile(fileobj=raw, mode="rb"), budget, 0

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(min(size, CHUNK) if size >= 0 else CHUNK)
        self.count += len(data)
        if self.count > self.budget:
            raise UnsafeArchiveError(f"the archive inflates to over {self.budget:,} bytes")
        return data

    def finish(self) -> None:
        """Read to the end, so gzip checks its CRC-32 and length (tarfile stops at the end-of-archive blocks)."""
        while self.read(CHUNK):
            pass


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
        with open(archive, "rb") as raw, \
                tarfile.open(fileobj=(inflated := _Inflated(raw, limits.max_inflated_bytes)), mode="r|",
                             tarinfo=_CheckedTarInfo) as tar:  # a stream: members come once, in order
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
            inflated.finish()
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
