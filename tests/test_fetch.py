"""fetch against a local HTTP server: mirrors that work, lie, vanish or cut off."""

import gzip
import hashlib
import http.server
import io
import socket
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from edgecnn.data import datasets
from edgecnn.data.datasets import load_split
from edgecnn.data.fetch import CHECKSUMS, FileChecksum, fetch, fetch_result
from edgecnn.data.idx import encode_idx
from edgecnn.errors import ChecksumError, DatasetNotFoundError, DownloadError

NAMES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tiny_raw_files(seed=0) -> dict[str, bytes]:
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, 6, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (4, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, 4, dtype=np.uint8),
    }
    return {name: encode_idx(a) for name, a in arrays.items()}


RAW = tiny_raw_files()
GZ = {name: gzip.compress(data, mtime=0) for name, data in RAW.items()}
RAW_TABLE = {name: FileChecksum(raw=sha(RAW[name])) for name in NAMES}
GZ_TABLE = {name: FileChecksum(gz=sha(GZ[name])) for name in NAMES}
# Valid gzip of other valid IDX bytes: only a checksum can tell it is wrong.
IMPOSTOR_GZ = {name: gzip.compress(data, mtime=0) for name, data in tiny_raw_files(seed=1).items()}


class Server:
    """Mirrors under one local server: /good/, /impostor/, /garbage/, /short/, anything else 404."""

    def __init__(self):
        self.requests = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                mirror, _, file = self.path.strip("/").partition("/")
                stem = file[:-3] if file.endswith(".gz") else None
                body = {"good": GZ, "impostor": IMPOSTOR_GZ}.get(mirror, {}).get(stem)
                if mirror == "garbage" and stem in GZ:
                    body = b"\x1f\x8b" + b"not really gzip" * 10
                if mirror == "short" and stem in GZ:
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(GZ[stem])))
                    self.end_headers()
                    self.wfile.write(GZ[stem][: len(GZ[stem]) // 2])
                    return  # HTTP/1.0: the connection closes here, short of Content-Length
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                       daemon=True)
        self.thread.start()

    def mirror(self, name):
        return f"{self.url}/{name}/"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No real data root is visible, and no proxy stands between us and 127.0.0.1."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("EDGECNN_DATA", raising=False)
    monkeypatch.setattr(datasets, "SYSTEM_DATA_ROOT", tmp_path / "usr-share-datasets")
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


@pytest.fixture(scope="module")
def _shared_server():
    s = Server()
    yield s
    s.close()


@pytest.fixture
def server(_shared_server):
    _shared_server.requests.clear()
    return _shared_server


@pytest.fixture
def refused_mirror():
    """A mirror on a port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/mnist/"


def assert_dataset(folder: Path):
    for name in NAMES:
        assert (folder / name).read_bytes() == RAW[name]
    sums = dict(reversed(line.split()) for line in (folder / "SHA256SUMS").read_text().splitlines())
    assert sums == {name: sha(RAW[name]) for name in NAMES}
    assert sorted(p.name for p in folder.iterdir()) == sorted(NAMES + ["SHA256SUMS"])  # no .part left


@pytest.mark.parametrize("table", [RAW_TABLE, GZ_TABLE], ids=["raw-sha", "gz-sha"])
def test_good_download(isolated, server, table):
    result = fetch_result("tiny", isolated / "dest", mirrors=[server.mirror("good")], quiet=True,
                          checksums=table)
    assert result.folder == isolated / "dest" / "tiny"
    assert sorted(result.downloaded) == sorted(NAMES)
    assert_dataset(result.folder)
    images, labels = load_split("tiny", "test", data_dir=isolated / "dest")
    assert images.shape == (4, 28, 28) and labels.shape == (4,)


@pytest.mark.parametrize("table", [RAW_TABLE, GZ_TABLE], ids=["raw-sha", "gz-sha"])
@pytest.mark.parametrize("bad", ["impostor", "garbage", "short"])
def test_bad_first_mirror_then_good(isolated, server, table, bad):
    folder = fetch("tiny", isolated / "dest", mirrors=[server.mirror(bad), server.mirror("good")],
                   quiet=True, checksums=table)
    assert_dataset(folder)
    assert server.requests[:2] == [f"/{bad}/{NAMES[0]}.gz", f"/good/{NAMES[0]}.gz"]


def test_dead_and_missing_mirrors_then_good(isolated, server, refused_mirror):
    mirrors = [refused_mirror, server.mirror("missing"), server.mirror("good")]
    folder = fetch("tiny", isolated / "dest", mirrors=mirrors, quiet=True, timeout=5, checksums=RAW_TABLE)
    assert_dataset(folder)


def test_default_target_is_env_then_cache(isolated, server, monkeypatch):
    folder = fetch("tiny", mirrors=[server.mirror("good")], quiet=True, checksums=RAW_TABLE)
    assert folder == isolated / "home" / ".cache" / "edgecnn" / "tiny"
    monkeypatch.setenv("EDGECNN_DATA", str(isolated / "env"))
    # $EDGECNN_DATA is the only place later commands look, so the data must land there.
    folder2 = fetch("tiny", mirrors=[server.mirror("good")], quiet=True, checksums=RAW_TABLE)
    assert folder2 == isolated / "env" / "tiny"
    assert load_split("tiny", "train")[0].shape == (6, 28, 28)


def test_all_mirrors_bad(isolated, server, refused_mirror):
    mirrors = [refused_mirror, server.mirror("missing"), server.mirror("impostor"), server.mirror("garbage")]
    with pytest.raises(DownloadError) as info:
        fetch("tiny", isolated / "dest", mirrors=mirrors, quiet=True, timeout=5, checksums=RAW_TABLE)
    message = str(info.value)
    assert "\n" not in message
    assert f"{NAMES[0]}.gz" in message
    for mirror in mirrors:
        assert mirror in message
    assert "HTTP 404" in message and "checksum mismatch" in message and "gzip" in message
    assert not (isolated / "dest").exists()  # folders it made are gone too


def test_short_read_is_reported(isolated, server):
    with pytest.raises(DownloadError, match=r"connection closed after \d+ of \d+ bytes"):
        fetch("tiny", isolated / "dest", mirrors=[server.mirror("short")], quiet=True, checksums=RAW_TABLE)


def test_only_checksum_failures_raise_checksum_error(isolated, server):
    with pytest.raises(ChecksumError, match="checksum mismatch"):
        fetch("tiny", isolated / "dest", mirrors=[server.mirror("impostor")], quiet=True, checksums=GZ_TABLE)
    assert not (isolated / "dest" / "tiny").exists()


def test_failure_keeps_existing_folder_clean(isolated, server):
    folder = isolated / "dest" / "tiny"
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(DownloadError):
        fetch("tiny", isolated / "dest", mirrors=[server.mirror("short")], quiet=True, checksums=RAW_TABLE)
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]


def test_offline_when_present_and_verified(isolated, refused_mirror, capsys):
    folder = isolated / "dest" / "tiny"
    folder.mkdir(parents=True)
    for name in NAMES:
        (folder / name).write_bytes(RAW[name])
    result = fetch_result("tiny", isolated / "dest", mirrors=[refused_mirror], checksums=RAW_TABLE)
    assert result.folder == folder and result.downloaded == ()
    assert str(folder) in capsys.readouterr().err


def test_offline_gz_table_trusts_folder_sums(isolated, server, refused_mirror):
    folder = fetch("tiny", isolated / "dest", mirrors=[server.mirror("good")], quiet=True, checksums=GZ_TABLE)
    assert fetch("tiny", isolated / "dest", mirrors=[refused_mirror], quiet=True, checksums=GZ_TABLE) == folder
    # Without SHA256SUMS the raw files cannot be checked against gz hashes: a download is needed.
    (folder / "SHA256SUMS").unlink()
    with pytest.raises(DownloadError):
        fetch("tiny", isolated / "dest", mirrors=[refused_mirror], quiet=True, checksums=GZ_TABLE)


@pytest.mark.parametrize("table", [RAW_TABLE, GZ_TABLE], ids=["raw-sha", "gz-sha"])
def test_offline_gz_only_folder(isolated, refused_mirror, table):
    """Debian-style folders hold only the .gz files."""
    folder = isolated / "usr-share-datasets" / "tiny"
    folder.mkdir(parents=True)
    for name in NAMES:
        (folder / f"{name}.gz").write_bytes(GZ[name])
    assert fetch("tiny", mirrors=[refused_mirror], quiet=True, checksums=table) == folder
    assert load_split("tiny", "train")[0].shape == (6, 28, 28)


def test_found_in_env_location(isolated, refused_mirror, monkeypatch):
    monkeypatch.setenv("EDGECNN_DATA", str(isolated / "env"))
    folder = isolated / "env" / "tiny"
    folder.mkdir(parents=True)
    for name in NAMES:
        (folder / name).write_bytes(RAW[name])
    assert fetch("tiny", mirrors=[refused_mirror], quiet=True, checksums=RAW_TABLE) == folder


def test_offline_says_which_files_go_where(isolated, refused_mirror):
    with pytest.raises(DownloadError) as info:
        fetch("tiny", isolated / "dest", mirrors=[refused_mirror], quiet=True, timeout=5, checksums=RAW_TABLE)
    message = str(info.value)
    assert "\n" not in message and "Offline?" in message
    assert str(isolated / "dest" / "tiny") in message
    for name in NAMES:
        assert name in message


def test_corrupt_local_file_is_replaced(isolated, server):
    folder = isolated / "dest" / "tiny"
    folder.mkdir(parents=True)
    for name in NAMES:
        (folder / name).write_bytes(RAW[name])
    (folder / NAMES[1]).write_bytes(RAW[NAMES[1]][:-1])
    result = fetch_result("tiny", isolated / "dest", mirrors=[server.mirror("good")], quiet=True,
                          checksums=RAW_TABLE)
    assert result.downloaded == (NAMES[1],)
    assert_dataset(folder)


def test_real_mnist_offline(isolated, refused_mirror, mnist_root):
    """The published MNIST table verifies the reference copy, with no network."""
    folder = isolated / "root" / "mnist"
    folder.mkdir(parents=True)
    for name in NAMES:
        (folder / name).symlink_to(mnist_root / "mnist" / name)
    assert fetch("mnist", isolated / "root", mirrors=[refused_mirror], quiet=True) == folder
    assert set(CHECKSUMS["mnist"]) == set(NAMES) == set(CHECKSUMS["fashion-mnist"])


def test_real_mnist_with_a_flipped_byte_is_not_trusted(isolated, refused_mirror, mnist_root):
    folder = isolated / "root" / "mnist"
    folder.mkdir(parents=True)
    for name in NAMES:
        (folder / name).symlink_to(mnist_root / "mnist" / name)
    (folder / NAMES[3]).unlink()
    data = bytearray((mnist_root / "mnist" / NAMES[3]).read_bytes())
    data[100] ^= 1
    (folder / NAMES[3]).write_bytes(bytes(data))
    with pytest.raises(DownloadError, match=NAMES[3]):
        fetch("mnist", isolated / "root", mirrors=[refused_mirror], quiet=True)


def test_unknown_dataset(isolated):
    with pytest.raises(DatasetNotFoundError, match="mnist, fashion-mnist, cifar10"):
        fetch("cifar100", isolated / "dest")


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_only_on_a_terminal(isolated, server, monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    fetch("tiny", isolated / "dest", mirrors=[server.mirror("good")], checksums=RAW_TABLE)
    assert f"{NAMES[0]}.gz" in terminal.getvalue()  # tqdm's label

    quiet = _Terminal()
    monkeypatch.setattr(sys, "stderr", quiet)
    fetch("tiny", isolated / "dest2", mirrors=[server.mirror("good")], checksums=RAW_TABLE, quiet=True)
    assert quiet.getvalue() == ""

    pipe = io.StringIO()
    monkeypatch.setattr(sys, "stderr", pipe)
    fetch("tiny", isolated / "dest3", mirrors=[server.mirror("good")], checksums=RAW_TABLE)
    assert f"{NAMES[0]}.gz" not in pipe.getvalue() and "verified files in" in pipe.getvalue()
