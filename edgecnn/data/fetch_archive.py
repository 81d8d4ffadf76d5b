"""Datasets published as one tarball (CIFAR-10), downloaded, verified and unpacked atomically.

The tarball streams to a temp file and is checked (size, then SHA-256) before
it is opened; it unpacks (`safe_tar`: plain files only, nothing outside the
target, bounded sizes) into a fresh hidden folder beside the dataset, which is
renamed into place only when every expected file is there. Then the unpacked
files' SHA-256s go to the folder's `SHA256SUMS`, which is how a later `fetch`
knows they are the verified ones. A bad hash, a short download or a hostile
archive leaves no dataset (and no temp files) behind.

CIFAR-10's binary version only (`cifar-10-binary.tar.gz`), never the pickled
Python one. Its SHA-256 and size are TensorFlow Datasets'
`url_checksums/cifar10.txt`.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from edgecnn.data.fetch import (SUMS_FILE, FetchResult, _MirrorFailed, _read_sums, _sha256_file, _stream,
                                download_folder, teller)
from edgecnn.data.datasets import candidate_folders
from edgecnn.data.safe_tar import TarLimits, extract_tar_gz
from edgecnn.errors import ChecksumError, DataError, DownloadError
from edgecnn.fileio import atomic_write_bytes, temp_file_beside

STAGING_TAG = "edgecnn-tmp"


@dataclass(frozen=True)
class Archive:
    """One published tarball: where it is, what it must hash to, what it must unpack to."""

    file: str
    sha256: str
    size: int
    mirrors: tuple[str, ...]  # base URLs; the file is mirror + "/" + file
    folder: str  # the folder the tarball unpacks to
    required: tuple[str, ...]  # files that must be in `folder` once unpacked
    limits: TarLimits = field(default_factory=TarLimits)


ARCHIVES: dict[str, Archive] = {
    "cifar10": Archive(
        file="cifar-10-binary.tar.gz",
        sha256="c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
        size=170_052_171,
        mirrors=("https://www.cs.toronto.edu/~kriz/",),
        folder="cifar-10-batches-bin",
        required=tuple(f"data_batch_{i}.bin" for i in range(1, 6)) + ("test_batch.bin",),
        # 6 batches of 30,730,000 bytes + batches.meta.txt + readme.html: about 185 MB
        limits=TarLimits(max_members=16, max_file_bytes=32 << 20, max_total_bytes=200 << 20),
    ),
}


def fetch_archive(name: str, dest_dir=None, mirrors: Sequence[str] | None = None, quiet: bool = False,
                  timeout: float = 30, archive: Archive | None = None) -> FetchResult:
    """Make sure archive dataset `name` is unpacked and verified; FetchResult(folder, downloaded).

    Verified files anywhere in the search path win (so fetch works offline once
    done); a verified tarball copied by hand into the dataset folder is
    unpacked without downloading. `mirrors` and `archive` override the
    published ones (tests serve small tarballs of their own).
    """
    archive = archive or ARCHIVES[name]
    mirrors = list(mirrors) if mirrors is not None else list(archive.mirrors)
    say = teller(quiet)
    for folder in candidate_folders(name, dest_dir):
        if verified_unpacked(folder, archive):
            say(f"{name}: verified files already in {folder}")
            return FetchResult(folder, ())

    with download_folder(dest_dir, name) as folder:
        _remove_stale_staging(folder, archive)
        try:
            local = folder / archive.file
            if local.is_file() and local.stat().st_size == archive.size \
                    and _sha256_file(local) == archive.sha256:
                say(f"{name}: unpacking the verified {local}")
                _install(local, folder, archive)
                downloaded = ()
            else:
                tmp = temp_file_beside(local)
                try:
                    _download(tmp, archive, mirrors, timeout, quiet)
                    _install(Path(tmp), folder, archive)
                finally:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(tmp)
                downloaded = (archive.file,)
        except ChecksumError:
            raise
        except DownloadError as exc:
            raise DownloadError(f"{exc}. Offline? Copy {archive.file} (from another machine) into {folder} "
                                "and run again") from None
    say(f"{name}: verified files in {folder}")
    return FetchResult(folder, downloaded)


def verified_unpacked(folder: Path, archive: Archive) -> bool:
    """True when `folder` holds every required file and each matches the folder's SHA256SUMS."""
    sums = _read_sums(folder)
    names = [f"{archive.folder}/{n}" for n in archive.required]
    if not all(n in sums and (folder / n).is_file() for n in names):
        return False
    try:
        return all(_sha256_file(folder / n) == sums[n] for n in names)
    except OSError:
        return False


# ---- downloading -----------------------------------------------------------------------

class _Capped:
    """A file wrapper that refuses to grow past `limit` bytes: a server sending more is not our file."""

    def __init__(self, f, limit: int):
        self.f, self.limit, self.n = f, limit, 0

    def write(self, chunk: bytes) -> None:
        self.n += len(chunk)
        if self.n > self.limit:
            raise _MirrorFailed(f"sent more than the {self.limit:,} bytes the file has", checksum=True)
        self.f.write(chunk)


def _download(tmp: str, archive: Archive, mirrors: Sequence[str], timeout: float, quiet: bool) -> None:
    """Fill `tmp` with a verified copy of the tarball from the first mirror that has one."""
    failures = []
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + archive.file
        try:
            with open(tmp, "wb") as out:
                sha = _stream(url, _Capped(out, archive.size), archive.file, timeout, quiet)
            size = os.path.getsize(tmp)
            if size != archive.size:
                raise _MirrorFailed(f"{size:,} bytes, want {archive.size:,}", checksum=True)
            if sha != archive.sha256:
                raise _MirrorFailed(f"checksum mismatch: got {sha[:12]}…, want {archive.sha256[:12]}…",
                                              checksum=True)
            return
        except _MirrorFailed as exc:
            failures.append((url, exc))
    error = ChecksumError if failures and all(f.checksum for _, f in failures) else DownloadError
    tried = "; ".join(f"{url} ({exc})" for url, exc in failures) or "no mirrors"
    raise error(f"could not fetch a verified {archive.file}; tried {tried}")


# ---- unpacking -------------------------------------------------------------------------

def _install(tarball: Path, folder: Path, archive: Archive) -> None:
    """Unpack a verified tarball into a staging folder, then move `archive.folder` into place and record sums."""
    staging = Path(tempfile.mkdtemp(prefix=f".{archive.folder}.{STAGING_TAG}-{os.getpid()}-", dir=folder))
    try:
        written = extract_tar_gz(tarball, staging, archive.limits)
        unpacked = staging / archive.folder
        missing = [n for n in archive.required if not (unpacked / n).is_file()]
        if missing:
            raise DataError(f"{archive.file} does not hold {archive.folder}/{', '.join(missing)}")
        ours = [n for n in written if n.startswith(archive.folder + "/")]
        sums = {n: _sha256_file(staging / n) for n in ours}
        target = folder / archive.folder
        if target.exists() or target.is_symlink():  # an unverified copy: replaced, never merged
            os.replace(target, staging / ".old")  # removed with the staging folder
        os.replace(unpacked, target)
        lines = "".join(f"{sha}  {n}\n" for n, sha in sorted(sums.items()))
        atomic_write_bytes(folder / SUMS_FILE, lines.encode())
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _remove_stale_staging(folder: Path, archive: Archive) -> None:
    """Staging folders left by a fetch that was killed mid-unpack (its process is gone)."""
    from edgecnn.fileio import _process_alive  # the same liveness rule as stale temp files

    pattern = re.compile(re.escape(f".{archive.folder}.{STAGING_TAG}-") + r"(\d+)-")
    for entry in folder.iterdir():
        match = pattern.match(entry.name)
        if match and entry.is_dir() and not entry.is_symlink() and int(match.group(1)) != os.getpid() \
                and not _process_alive(int(match.group(1))):
            shutil.rmtree(entry, ignore_errors=True)
