"""`fetch("cifar10")` and `edgecnn data fetch cifar10` on small tarballs served locally; hostile tarballs."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import io
import json
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest

from cifar10_data import cifar_tarball, tar_gz
from test_fetch import isolated, refused_mirror  # noqa: F401  (fixtures: no data root visible; a dead mirror)
from edgecnn.cli import main
from edgecnn.data import fetch_archive
from edgecnn.data.cifar import TARBALL_FOLDER
from edgecnn.data.datasets import load_split
from edgecnn.data.fetch import fetch_result
from edgecnn.data.fetch_archive import ARCHIVES
from edgecnn.data.safe_tar import TarLimits, UnsafeArchiveError, extract_tar_gz
from edgecnn.errors import ChecksumError, DataError, DownloadError

FILE = "cifar-10-binary.tar.gz"
TARBALL, BATCHES = cifar_tarball()
IMPOSTOR = TARBALL[:-100] + bytes([TARBALL[-100] ^ 1]) + TARBALL[-99:]  # same size, one bit off


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def archive_for(data: bytes, **changes) -> fetch_archive.Archive:
    """The published CIFAR-10 entry with the test tarball's hash and size."""
    return dataclasses.replace(ARCHIVES["cifar10"], sha256=sha(data), size=len(data), **changes)


GOOD = archive_for(TARBALL)


class Server:
    """/good/ serves TARBALL, /impostor/ another tarball, /short/ half of it, /long/ too much, /h/<k>/ hostile[k]."""

    def __init__(self):
        self.hostile: dict[str, bytes] = {}
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                mirror, _, rest = self.path.strip("/").partition("/")
                body = {"good": TARBALL, "short": TARBALL, "impostor": IMPOSTOR, "long": TARBALL + b"x" * 4096}.get(mirror)
                if mirror == "h":
                    key, _, rest = rest.partition("/")
                    body = server.hostile.get(key)
                if rest != FILE or body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if mirror == "short" else body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def mirror(self, name: str) -> str:
        return f"{self.url}/{name}/"


@pytest.fixture(scope="module")
def server():
    s = Server()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


def every_file(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def assert_cifar(folder: Path):
    """The batches as served, the sums file, and nothing else (no tarball, no temp files)."""
    unpacked = folder / TARBALL_FOLDER
    for name, (images, labels) in BATCHES.items():
        assert (unpacked / name).is_file()
    assert sorted(p.name for p in folder.iterdir()) == ["SHA256SUMS", TARBALL_FOLDER]
    sums = dict(reversed(line.split()) for line in (folder / "SHA256SUMS").read_text().splitlines())
    assert set(sums) == {f"{TARBALL_FOLDER}/{n}" for n in [*BATCHES, "batches.meta.txt", "readme.html"]}
    assert all(sha((folder / n).read_bytes()) == h for n, h in sums.items())


def test_published_tarball_is_the_binary_version():
    a = ARCHIVES["cifar10"]
    assert a.file == FILE and "python" not in a.file
    assert a.sha256 == "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd"
    assert a.size == 170_052_171
    assert a.mirrors[0] + a.file == "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
    assert a.limits.max_total_bytes >= 6 * 10_000 * 3_073  # the real batches fit


def test_download_unpack_verify_and_load(isolated, server):
    result = fetch_result("cifar10", isolated / "data", mirrors=[server.mirror("good")], quiet=True, archive=GOOD)
    assert result.folder == isolated / "data" / "cifar10" and result.downloaded == (FILE,)
    assert_cifar(result.folder)
    x, y = load_split("cifar10", "train", isolated / "data")
    assert x.shape == (20, 32, 32, 3) and x.dtype == np.uint8
    np.testing.assert_array_equal(x[:4], BATCHES["data_batch_1.bin"][0])
    xt, yt = load_split("cifar10", "test", isolated / "data")
    np.testing.assert_array_equal(yt, BATCHES["test_batch.bin"][1])
    # a second fetch finds the verified files and downloads nothing
    again = fetch_result("cifar10", isolated / "data", mirrors=[], quiet=True, archive=GOOD)
    assert again.folder == result.folder and again.downloaded == ()


def test_file_url_and_default_root(isolated, monkeypatch):
    (isolated / "www").mkdir()
    (isolated / "www" / FILE).write_bytes(TARBALL)
    monkeypatch.setenv("EDGECNN_DATA", str(isolated / "env"))
    folder = fetch_result("cifar10", mirrors=[(isolated / "www").as_uri()], quiet=True, archive=GOOD).folder
    assert folder == isolated / "env" / "cifar10"
    assert_cifar(folder)


@pytest.mark.parametrize("bad", ["impostor", "short", "long", "missing"])
def test_bad_mirror_then_good(isolated, server, bad):
    result = fetch_result("cifar10", isolated / "d", mirrors=[server.mirror(bad), server.mirror("good")],
                          quiet=True, archive=GOOD)
    assert_cifar(result.folder)


@pytest.mark.parametrize("bad,error,why", [
    ("impostor", ChecksumError, "checksum mismatch"),
    ("long", ChecksumError, "more than"),
    ("short", DownloadError, "closed after"),
    ("missing", DownloadError, "HTTP 404"),
])
def test_a_bad_download_never_becomes_the_dataset(isolated, server, bad, error, why):
    with pytest.raises(error, match=why):
        fetch_result("cifar10", isolated / "d", mirrors=[server.mirror(bad)], quiet=True, archive=GOOD)
    assert not (isolated / "d").exists()  # not even the folders it made


def test_offline_error_says_where_the_tarball_goes(isolated, refused_mirror):
    with pytest.raises(DownloadError, match=f"Copy {FILE} .* into {isolated / 'd' / 'cifar10'}"):
        fetch_result("cifar10", isolated / "d", mirrors=[refused_mirror], quiet=True, archive=GOOD)


def test_a_tarball_copied_by_hand_is_verified_and_unpacked(isolated, refused_mirror):
    folder = isolated / "d" / "cifar10"
    folder.mkdir(parents=True)
    (folder / FILE).write_bytes(TARBALL)
    result = fetch_result("cifar10", isolated / "d", mirrors=[refused_mirror], quiet=True, archive=GOOD)
    assert result.downloaded == ()
    assert (folder / TARBALL_FOLDER / "test_batch.bin").is_file()
    # a tampered one is not trusted: the (dead) mirror is asked instead
    (folder / "SHA256SUMS").unlink()
    (folder / FILE).write_bytes(IMPOSTOR)
    with pytest.raises(DownloadError):
        fetch_result("cifar10", isolated / "d", mirrors=[refused_mirror], quiet=True, archive=GOOD)


def test_a_modified_batch_is_replaced(isolated, server):
    folder = fetch_result("cifar10", isolated / "d", mirrors=[server.mirror("good")], quiet=True,
                          archive=GOOD).folder
    batch = folder / TARBALL_FOLDER / "data_batch_3.bin"
    data = bytearray(batch.read_bytes())
    data[100] ^= 1
    batch.write_bytes(bytes(data))
    (folder / TARBALL_FOLDER / "stray.txt").write_text("left by hand")
    result = fetch_result("cifar10", isolated / "d", mirrors=[server.mirror("good")], quiet=True, archive=GOOD)
    assert result.downloaded == (FILE,)
    assert_cifar(folder)
    assert not (folder / TARBALL_FOLDER / "stray.txt").exists()  # replaced, never merged


# ---- hostile tarballs -------------------------------------------------------------------

def _add(kind: str, name: str = "cifar-10-batches-bin/evil", **attrs):
    def extra(tar: tarfile.TarFile):
        info = tarfile.TarInfo(name)
        info.type = kind
        for k, v in attrs.items():
            setattr(info, k, v)
        data = attrs.get("size", 0)
        tar.addfile(info, io.BytesIO(b"x" * data) if kind == tarfile.REGTYPE else None)
    return extra


def _good_members():
    return [(f"{TARBALL_FOLDER}/{name}", bytes(3073)) for name in BATCHES]


HOSTILE = {
    "absolute": (_add(tarfile.REGTYPE, "/tmp/edgecnn-evil-absolute", size=3), "an absolute path"),
    "dotdot": (_add(tarfile.REGTYPE, "cifar-10-batches-bin/../../escaped", size=3), "'\\.\\.'"),
    "symlink": (_add(tarfile.SYMTYPE, linkname="/etc/passwd"), "a symlink"),
    "symlink-dir": (_add(tarfile.SYMTYPE, "cifar-10-batches-bin/up", linkname=".."), "a symlink"),
    "hardlink": (_add(tarfile.LNKTYPE, linkname="/etc/passwd"), "a hard link"),
    "chardev": (_add(tarfile.CHRTYPE, devmajor=1, devminor=3), "a device or FIFO"),
    "fifo": (_add(tarfile.FIFOTYPE), "a device or FIFO"),
    "big": (_add(tarfile.REGTYPE, size=40 << 10), "over the"),
    "duplicate": (_add(tarfile.REGTYPE, f"{TARBALL_FOLDER}/test_batch.bin", size=3073), "twice"),
    "backslash": (_add(tarfile.REGTYPE, "cifar-10-batches-bin\\..\\..\\x", size=3), "not a plain"),
}
SMALL = TarLimits(max_members=12, max_file_bytes=32 << 10, max_total_bytes=64 << 10)


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_tarball_writes_nothing(isolated, server, case):
    extra, why = HOSTILE[case]
    body = tar_gz(_good_members(), extra)
    server.hostile[case] = body
    before = every_file(isolated)
    with pytest.raises(DataError, match=why):
        fetch_result("cifar10", isolated / "d", mirrors=[f"{server.url}/h/{case}/"], quiet=True,
                     archive=archive_for(body, limits=SMALL))
    # the dataset folder keeps nothing: no batches, no staging folder, no temp tarball
    assert every_file(isolated) in (before, sorted(before + ["d", "d/cifar10"]))
    assert not Path("/tmp/edgecnn-evil-absolute").exists()
    assert not (isolated / "escaped").exists() and not (isolated / "d" / "escaped").exists()


@pytest.mark.parametrize("limits,why", [
    (dataclasses.replace(SMALL, max_members=3), "more than 3 members"),
    (dataclasses.replace(SMALL, max_total_bytes=3 * 3073), "unpacks to over"),
])
def test_member_count_and_total_size_limits(tmp_path, limits, why):
    (tmp_path / "t.tar.gz").write_bytes(tar_gz(_good_members()))
    (tmp_path / "out").mkdir()
    with pytest.raises(UnsafeArchiveError, match=why):
        extract_tar_gz(tmp_path / "t.tar.gz", tmp_path / "out", limits)


def test_dot_slash_names_and_folder_entries_unpack(tmp_path):
    def root_dirs(tar):
        for name in ("./", "./sub/"):
            info = tarfile.TarInfo(name)
            info.type = tarfile.DIRTYPE
            tar.addfile(info)
    (tmp_path / "t.tar.gz").write_bytes(tar_gz([("./sub/a.bin", b"abc"), ("./b.txt", b"d")], root_dirs))
    (tmp_path / "out").mkdir()
    assert extract_tar_gz(tmp_path / "t.tar.gz", tmp_path / "out") == ["sub/a.bin", "b.txt"]
    assert (tmp_path / "out" / "sub" / "a.bin").read_bytes() == b"abc"
    assert every_file(tmp_path / "out") == ["b.txt", "sub", "sub/a.bin"]


@pytest.mark.parametrize("data", [b"", b"not a gzip at all", TARBALL[: len(TARBALL) // 2],
                                  b"\x1f\x8b" + b"\0" * 64])
def test_corrupt_archive_is_a_data_error(tmp_path, data):
    (tmp_path / "t.tar.gz").write_bytes(data)
    (tmp_path / "out").mkdir()
    with pytest.raises(DataError, match="corrupt|cut short"):
        extract_tar_gz(tmp_path / "t.tar.gz", tmp_path / "out")


def test_a_tarball_without_the_batches_is_refused(isolated, server):
    body = tar_gz([("cifar-10-batches-py/data_batch_1", b"pickled")])  # the Python version's layout
    server.hostile["python"] = body
    with pytest.raises(DataError, match="does not hold cifar-10-batches-bin/data_batch_1.bin"):
        fetch_result("cifar10", isolated / "d", mirrors=[f"{server.url}/h/python/"], quiet=True,
                     archive=archive_for(body))
    assert not (isolated / "d").exists()


# ---- the CLI ------------------------------------------------------------------------------

def test_cli_fetch_cifar10_json(isolated, server, monkeypatch, capsys):
    monkeypatch.setitem(ARCHIVES, "cifar10", dataclasses.replace(GOOD, mirrors=(server.mirror("good"),)))
    assert main(["data", "fetch", "cifar10", "--dir", str(isolated / "d"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == {"dataset": "cifar10", "path": str(isolated / "d" / "cifar10"), "downloaded": [FILE]}
    assert main(["data", "fetch", "cifar10", "--dir", str(isolated / "d"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["downloaded"] == []


def test_cli_bad_hash_is_one_line(isolated, server, monkeypatch, capsys):
    monkeypatch.setitem(ARCHIVES, "cifar10", dataclasses.replace(GOOD, mirrors=(server.mirror("impostor"),)))
    assert main(["data", "fetch", "cifar10", "--dir", str(isolated / "d")]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "checksum mismatch" in lines[0] and "Traceback" not in captured.err
