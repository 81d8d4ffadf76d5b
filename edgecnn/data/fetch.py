"""Download MNIST-style datasets from public mirrors, verified by SHA-256 (CIFAR-10: fetch_archive.py).

Nothing unverified is ever kept: each `.gz` streams to a temp file, is checked
(gz hash if published), decompressed to a second temp file, checked again (raw
hash if published) and only then renamed into place. A mirror that fails in
any way is skipped for the next one.

Checksum sources (see the table below): MNIST raw hashes are the
`SHA256SUMS` shipped with edgecnn's reference copy of MNIST; Fashion-MNIST
gz hashes are TensorFlow Datasets' `url_checksums/fashion_mnist.txt`.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import os
import sys
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping, NamedTuple, Sequence

from edgecnn.data.datasets import candidate_folders
from edgecnn.errors import ChecksumError, DatasetNotFoundError, DownloadError
from edgecnn.fileio import atomic_path, atomic_write_bytes, temp_file_beside
from edgecnn.progress import progress_bar

CHUNK = 1 << 20
SUMS_FILE = "SHA256SUMS"


class FileChecksum(NamedTuple):
    """Published SHA-256 of one file: of the raw IDX bytes, of the `.gz`, or both."""

    raw: str | None = None
    gz: str | None = None


MIRRORS: dict[str, list[str]] = {
    "mnist": [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ],
    "fashion-mnist": [
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
    ],
}

CHECKSUMS: dict[str, dict[str, FileChecksum]] = {
    # Raw IDX bytes of the original LeCun files (the SHA256SUMS of the reference copy CI uses).
    # Only raw hashes: mirrors may recompress, which changes the gz bytes, never the raw ones.
    "mnist": {
        "train-images-idx3-ubyte": FileChecksum(
            raw="ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
        "train-labels-idx1-ubyte": FileChecksum(
            raw="65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
        "t10k-images-idx3-ubyte": FileChecksum(
            raw="0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
        "t10k-labels-idx1-ubyte": FileChecksum(
            raw="ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
    },
    # The .gz files; tensorflow/datasets tensorflow_datasets/url_checksums/fashion_mnist.txt.
    # The same files' MD5s are the ones zalandoresearch/fashion-mnist publishes.
    "fashion-mnist": {
        "train-images-idx3-ubyte": FileChecksum(
            gz="3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
        "train-labels-idx1-ubyte": FileChecksum(
            gz="a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
        "t10k-images-idx3-ubyte": FileChecksum(
            gz="346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
        "t10k-labels-idx1-ubyte": FileChecksum(
            gz="67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
    },
}


@dataclass(frozen=True)
class FetchResult:
    folder: Path
    downloaded: tuple[str, ...]  # raw file names fetched now; empty when all were present


class _MirrorFailed(Exception):
    """One mirror could not deliver one verified file; `checksum` tells why."""

    def __init__(self, reason: str, checksum: bool = False):
        super().__init__(reason)
        self.checksum = checksum


def fetch(name: str, dest_dir: str | os.PathLike | None = None, mirrors: Sequence[str] | None = None,
          quiet: bool = False, timeout: float = 30,
          checksums: Mapping[str, FileChecksum] | None = None, archive=None) -> Path:
    """Make sure dataset `name` is on disk and verified; return its folder."""
    return fetch_result(name, dest_dir, mirrors, quiet, timeout, checksums, archive).folder


def fetch_result(name: str, dest_dir: str | os.PathLike | None = None, mirrors: Sequence[str] | None = None,
                 quiet: bool = False, timeout: float = 30,
                 checksums: Mapping[str, FileChecksum] | None = None, archive=None) -> FetchResult:
    """`fetch`, also saying which files were downloaded.

    Verified files anywhere in the search path win, so fetch works offline once
    the data exists. Downloads go to `dest_dir`, else $EDGECNN_DATA, else
    ~/.cache/edgecnn, into `<root>/<name>/`. Tarball datasets (cifar10) go
    through `fetch_archive`; `archive` overrides their published file, hash and size.
    """
    from edgecnn.data.fetch_archive import ARCHIVES, fetch_archive

    if name in ARCHIVES or archive is not None:
        return fetch_archive(name, dest_dir, mirrors, quiet, timeout, archive)
    mirrors = list(mirrors) if mirrors is not None else MIRRORS.get(name)
    checksums = dict(checksums) if checksums is not None else CHECKSUMS.get(name)
    if not mirrors or not checksums:
        raise DatasetNotFoundError(
            f"edgecnn cannot fetch {name!r}; it knows {', '.join([*MIRRORS, *ARCHIVES])}")
    say = teller(quiet)

    for folder in candidate_folders(name, dest_dir):
        if _verified_sums(folder, checksums) is not None:
            say(f"{name}: verified files already in {folder}")
            return FetchResult(folder, ())

    raw_sums, downloaded = {}, []
    with download_folder(dest_dir, name) as folder:
        try:
            for raw_name, expected in checksums.items():
                present = _verify_present(folder, raw_name, expected, _read_sums(folder))
                if present is not None and (folder / raw_name).is_file():
                    raw_sums[raw_name] = present
                    continue
                raw_sums[raw_name] = _download_file(folder, raw_name, expected, mirrors, timeout, quiet)
                downloaded.append(raw_name)
        except ChecksumError:
            raise
        except DownloadError as exc:
            raise DownloadError(f"{exc}. {_by_hand(folder, checksums)}") from None
        _write_sums(folder, raw_sums)
    say(f"{name}: verified files in {folder}")
    return FetchResult(folder, tuple(downloaded))


def _by_hand(folder: Path, checksums: Mapping[str, FileChecksum]) -> str:
    """What to do offline: which files, under which names, go where."""
    names = ", ".join(checksums)
    return (f"Offline? Copy {names} (raw or .gz, e.g. from another machine's "
            f"`edgecnn data fetch`) into {folder} and run again")


def teller(quiet: bool):
    """The progress-line printer: stderr, or nothing when quiet."""
    return (lambda msg: None) if quiet else (lambda msg: print(msg, file=sys.stderr))


@contextlib.contextmanager
def download_folder(dest_dir, name: str) -> Iterator[Path]:
    """`<root>/<name>/`, made if missing; the folders made here are removed again when still empty on the way
    out, so a failed first download leaves nothing behind."""
    folder = _download_root(dest_dir) / name
    created = [p for p in (folder, *folder.parents) if not p.exists()]  # deepest first
    folder.mkdir(parents=True, exist_ok=True)
    try:
        yield folder
    finally:
        for made in created:
            if any(made.iterdir()):
                break
            made.rmdir()


def _download_root(dest_dir) -> Path:
    if dest_dir:
        return Path(dest_dir).expanduser()
    if os.environ.get("EDGECNN_DATA"):
        return Path(os.environ["EDGECNN_DATA"]).expanduser()
    return Path.home() / ".cache" / "edgecnn"


# ---- verifying what is already on disk -------------------------------------------------

def _sha256_file(path: Path, decompress: bool = False) -> str:
    h = hashlib.sha256()
    opener = gzip.open if decompress else open
    with opener(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _read_sums(folder: Path) -> dict[str, str]:
    """The folder's own `SHA256SUMS` (sha256sum format), written by an earlier verified fetch."""
    try:
        text = (folder / SUMS_FILE).read_text()
    except OSError:
        return {}
    sums = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            sums[parts[1].lstrip("*")] = parts[0].lower()
    return sums


def _verify_present(folder: Path, raw_name: str, expected: FileChecksum,
                    folder_sums: Mapping[str, str]) -> str | None:
    """The raw SHA-256 of `raw_name` in `folder` if it (or its .gz) is verified, else None.

    A raw file is trusted on the published raw hash, or, when only a gz hash is
    published, on the folder's SHA256SUMS (written after a gz-verified download).
    A lone .gz (as Debian packages install) is trusted on either published hash.
    """
    raw, gz = folder / raw_name, folder / (raw_name + ".gz")
    try:
        if raw.is_file():
            known = expected.raw or folder_sums.get(raw_name)
            if known and _sha256_file(raw) == known:
                return known
        elif gz.is_file():
            if expected.gz and _sha256_file(gz) != expected.gz:
                return None
            raw_sha = _sha256_file(gz, decompress=True)
            if expected.raw and raw_sha != expected.raw:
                return None
            return raw_sha
    except (OSError, EOFError, zlib.error):
        return None
    return None


def _verified_sums(folder: Path, checksums: Mapping[str, FileChecksum]) -> dict[str, str] | None:
    if not folder.is_dir():
        return None
    folder_sums = _read_sums(folder)
    sums = {}
    for raw_name, expected in checksums.items():
        sha = _verify_present(folder, raw_name, expected, folder_sums)
        if sha is None:
            return None
        sums[raw_name] = sha
    return sums


def _write_sums(folder: Path, raw_sums: Mapping[str, str]) -> None:
    lines = "".join(f"{sha}  {n}\n" for n, sha in sorted(raw_sums.items()))
    atomic_write_bytes(folder / SUMS_FILE, lines.encode())


# ---- downloading -----------------------------------------------------------------------

def _download_file(folder: Path, raw_name: str, expected: FileChecksum, mirrors: Sequence[str],
                   timeout: float, quiet: bool) -> str:
    """Fetch `raw_name`.gz from the first mirror that delivers a verified file; return its raw SHA-256."""
    failures = []
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + raw_name + ".gz"
        try:
            return _download_from(url, folder, raw_name, expected, timeout, quiet)
        except _MirrorFailed as exc:
            failures.append((url, exc))
    error = ChecksumError if all(f.checksum for _, f in failures) else DownloadError
    tried = "; ".join(f"{url} ({exc})" for url, exc in failures)
    raise error(f"could not fetch a verified {raw_name}.gz; tried {tried}")


def _download_from(url: str, folder: Path, raw_name: str, expected: FileChecksum,
                   timeout: float, quiet: bool) -> str:
    gz_tmp = temp_file_beside(folder / (raw_name + ".gz"))
    try:
        with open(gz_tmp, "wb") as out:
            gz_sha = _stream(url, out, raw_name + ".gz", timeout, quiet)
        if expected.gz and gz_sha != expected.gz:
            raise _MirrorFailed(f"checksum mismatch: got {gz_sha[:12]}…, want {expected.gz[:12]}…",
                                checksum=True)
        with atomic_path(folder / raw_name) as raw_tmp:
            raw_sha = _decompress(Path(gz_tmp), raw_tmp)
            if expected.raw and raw_sha != expected.raw:
                raise _MirrorFailed(f"checksum mismatch after gunzip: got {raw_sha[:12]}…, "
                                    f"want {expected.raw[:12]}…", checksum=True)
        return raw_sha
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(gz_tmp)


def _stream(url: str, out, label: str, timeout: float, quiet: bool) -> str:
    """Copy `url` into `out` with a progress bar; return the SHA-256 of what was received."""
    from edgecnn import __version__

    request = urllib.request.Request(url, headers={"User-Agent": f"edgecnn/{__version__}"})
    h = hashlib.sha256()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            received = 0
            with _progress(total, label, quiet) as bar:
                while chunk := response.read(CHUNK):
                    h.update(chunk)
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as exc:
        raise _MirrorFailed(f"HTTP {exc.code}") from None
    except urllib.error.URLError as exc:
        raise _MirrorFailed(str(getattr(exc.reason, "strerror", None) or exc.reason)) from None
    except (OSError, http.client.HTTPException) as exc:  # timeouts, resets
        raise _MirrorFailed(f"{type(exc).__name__}: {exc}") from None
    # http.client does not raise when the server closes early, so count the bytes.
    if total is not None and received != total:
        raise _MirrorFailed(f"connection closed after {received} of {total} bytes")
    return h.hexdigest()


def _decompress(gz_path: Path, raw_path: Path) -> str:
    h = hashlib.sha256()
    try:
        with gzip.open(gz_path, "rb") as src, open(raw_path, "wb") as dst:
            while chunk := src.read(CHUNK):
                h.update(chunk)
                dst.write(chunk)
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise _MirrorFailed(f"corrupt gzip: {exc}") from None
    return h.hexdigest()


def _progress(total: int | None, label: str, quiet: bool):
    """A byte-counting bar on stderr when it is a terminal (tqdm decides), none when quiet."""
    return progress_bar(total, label, False if quiet else None, unit="B", unit_scale=True, unit_divisor=1024,
                        file=sys.stderr, leave=False)
