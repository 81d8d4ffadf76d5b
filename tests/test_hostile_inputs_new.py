"""Hostile input to the readers added for CIFAR-10, colour images and `edgecnn compare`.

Each reader must answer bad bytes with its own edgecnn error (the CLI prints it
as one line), never a traceback, a hang or a memory blow-up. The parsers get
hypothesis properties (arbitrary bytes in, only the specific error out); the
bombs are small files that claim or inflate to far more than they hold.
"""

from __future__ import annotations

import gzip
import io
import os
import resource
import tarfile
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgecnn.data.cifar import (MAX_BATCH_BYTES, RECORD_BYTES, CifarFormatError, decode_cifar_batch,
                                read_cifar_batch)
from edgecnn.data.safe_tar import TarLimits, UnsafeArchiveError, extract_tar_gz
from edgecnn.errors import DataError, EdgecnnError
from test_compare import lenet_file  # noqa: F401  (LeNet-5 .tflite with seeded random weights)

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                        HealthCheck.function_scoped_fixture])


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------- CIFAR-10 batches


@FUZZ
@given(st.binary(max_size=3 * RECORD_BYTES + 7))
def test_cifar_arbitrary_bytes_decode_or_raise_cifar_format_error(data):
    try:
        images, labels = decode_cifar_batch(data)
    except CifarFormatError:
        assert len(data) % RECORD_BYTES or not data or max(data[::RECORD_BYTES]) > 9
        return
    assert len(data) % RECORD_BYTES == 0 and images.shape == (len(data) // RECORD_BYTES, 32, 32, 3)
    assert labels.tolist() == list(data[::RECORD_BYTES])


@FUZZ
@given(st.lists(st.integers(0, 255), min_size=1, max_size=4), st.integers(0, 2**32 - 1))
def test_cifar_label_byte_over_9_names_the_record(labels, seed):
    rng = np.random.default_rng(seed)
    records = rng.integers(0, 256, (len(labels), RECORD_BYTES), dtype=np.uint8)
    records[:, 0] = labels
    if max(labels) <= 9:
        _, got = decode_cifar_batch(records.tobytes())
        assert got.tolist() == labels
        return
    bad = next(i for i, v in enumerate(labels) if v > 9)
    with pytest.raises(CifarFormatError, match=f"record {bad} has label {labels[bad]}"):
        decode_cifar_batch(records.tobytes())


@pytest.mark.parametrize("size, needle", [(0, "empty"), (RECORD_BYTES - 1, "whole number"),
                                          (RECORD_BYTES + 1, "whole number"), (2 * (RECORD_BYTES + 1), "CIFAR-100")])
def test_cifar_truncated_empty_or_wrong_record_size(tmp_path, size, needle):
    p = tmp_path / "data_batch_1.bin"
    p.write_bytes(bytes(size))
    with pytest.raises(CifarFormatError, match=needle):
        read_cifar_batch(p)


def test_cifar_huge_file_is_refused_before_reading(tmp_path):
    p = tmp_path / "data_batch_1.bin"
    with open(p, "wb") as f:
        f.truncate(MAX_BATCH_BYTES + RECORD_BYTES)  # sparse: costs no disk
    before = rss_mb()
    with pytest.raises(CifarFormatError, match="more than a CIFAR-10 batch"):
        read_cifar_batch(p)
    assert rss_mb() - before < 50


def test_cifar_fifo_is_refused_not_waited_on(tmp_path):
    p = tmp_path / "data_batch_1.bin"
    os.mkfifo(p)
    with pytest.raises(CifarFormatError, match="not a regular file"):
        read_cifar_batch(p)


# ---------------------------------------------------------------- tar.gz archives


def tar_gz(members, fmt=tarfile.GNU_FORMAT) -> bytes:
    """A .tar.gz of (TarInfo, data or None) members."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=fmt) as tar:
        for info, data in members:
            tar.addfile(info, None if data is None else io.BytesIO(data))
    return buf.getvalue()


def member(name: str, data: bytes | None = b"", kind=tarfile.REGTYPE, **attrs):
    info = tarfile.TarInfo(name)
    info.type, info.size = kind, len(data or b"")
    for k, v in attrs.items():
        setattr(info, k, v)
    return info, data


def unpack(tmp_path, data: bytes, limits: TarLimits = TarLimits()):
    (tmp_path / "a.tar.gz").write_bytes(data)
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    return extract_tar_gz(tmp_path / "a.tar.gz", out, limits)


def empty(folder) -> None:
    """Remove what an unpack wrote, so the next hypothesis example starts from an empty folder."""
    for p in sorted(folder.rglob("*"), reverse=True):
        p.rmdir() if p.is_dir() else p.unlink()


GOOD = tar_gz([member("d/a.bin", b"hello")])


@FUZZ
@given(st.binary(max_size=600), st.booleans())
def test_tar_arbitrary_bytes_raise_only_data_errors(tmp_path, data, wrap):
    """Random bytes, raw or gzip-wrapped (so tarfile's header parser sees them): a DataError or a clean unpack."""
    try:
        written = unpack(tmp_path, gzip.compress(data) if wrap else data)
    except DataError:
        return
    finally:
        empty(tmp_path / "out")
    assert all(not os.path.isabs(w) and ".." not in w.split("/") for w in written)


@FUZZ
@given(st.integers(0, len(GOOD) - 1), st.integers(1, 255))
def test_tar_any_flipped_byte_is_caught_by_gzip_or_tar(tmp_path, at, xor):
    """gzip's CRC-32 and length are checked, so no single corrupted byte unpacks silently into other data."""
    bad = bytearray(GOOD)
    bad[at] ^= xor
    try:
        written = unpack(tmp_path, bytes(bad))
    except DataError:
        return
    finally:
        empty(tmp_path / "out")
    # only header bytes gzip does not cover (mtime, flags, OS) may change; the content may not
    assert written == ["d/a.bin"]


@pytest.mark.parametrize("data, needle", [
    (GOOD[:-8] + bytes([GOOD[-8] ^ 1]) + GOOD[-7:], "CRC"),
    (GOOD[:-4] + b"\xff\xff\xff\x7f", "length"),
    (GOOD + b"trailing", "gzip"),
    (GOOD[: len(GOOD) - 10], "corrupt"),
    (b"", "corrupt"),
    (b"\x1f\x8b\x08\x00" + bytes(20), "corrupt"),
    (tar_gz([member("a", b"x")])[10:], "corrupt"),  # deflate data without its gzip header
], ids=["crc", "length", "trailing", "truncated", "empty", "zero-header", "headerless"])  # fmt: skip
def test_tar_wrong_crc_length_or_not_gzip(tmp_path, data, needle):
    with pytest.raises(DataError, match=needle):
        unpack(tmp_path, data)


def test_tar_plain_uncompressed_tar_is_refused(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.addfile(*member("a.bin", b"abc")[:1], io.BytesIO(b"abc"))
    with pytest.raises(DataError, match="gzip"):
        unpack(tmp_path, buf.getvalue())


@pytest.mark.parametrize("kind, needle", [(tarfile.BLKTYPE, "device"), (tarfile.CHRTYPE, "device"),
                                          (tarfile.FIFOTYPE, "FIFO"), (tarfile.SYMTYPE, "symlink"),
                                          (tarfile.LNKTYPE, "hard link")])
def test_tar_special_members(tmp_path, kind, needle):
    with pytest.raises(UnsafeArchiveError, match=needle):
        unpack(tmp_path, tar_gz([member("x", None, kind, linkname="/etc/passwd")]))
    assert list((tmp_path / "out").iterdir()) == []


def _bomb(header: bytes, inflated: int) -> bytes:
    """A small .tar.gz: `header` then `inflated` zero bytes, streamed through gzip (never held whole)."""
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9) as g:
        g.write(header)
        zeros = bytes(1 << 20)
        for _ in range(inflated >> 20):
            g.write(zeros)
        g.write(bytes(inflated & ((1 << 20) - 1)))
    return out.getvalue()


@pytest.mark.parametrize("kind", [tarfile.GNUTYPE_LONGNAME, tarfile.XHDTYPE, tarfile.XGLTYPE])
def test_tar_huge_long_name_or_pax_header_is_refused_before_it_is_read(tmp_path, kind):
    """Before the fix tarfile read a 1 GiB long name whole: 2.1 GB RSS and 40 s for a 1 MB file."""
    info = tarfile.TarInfo("x")
    info.type, info.size = kind, 1 << 30
    header = info._create_header(info.get_info(), tarfile.GNU_FORMAT, "utf-8", "surrogateescape")
    data = _bomb(header, 8 << 20)  # the claim is what counts: only the first 8 MiB are really there
    before = rss_mb()
    with pytest.raises(UnsafeArchiveError, match="long-name or pax header"):
        unpack(tmp_path, data)
    assert rss_mb() - before < 50


def test_tar_gzip_bomb_stops_at_the_inflate_budget(tmp_path):
    limits = TarLimits(max_members=4, max_file_bytes=1 << 20, max_total_bytes=2 << 20)
    data = _bomb(b"", 64 << 20)  # 64 MiB of zeros: tarfile sees an empty archive; the tail is still inflated
    assert len(data) < 100_000
    before = rss_mb()
    with pytest.raises(UnsafeArchiveError, match="inflates to over"):
        unpack(tmp_path, data, limits)
    assert rss_mb() - before < 50


def test_tar_member_claiming_more_than_the_stream_holds(tmp_path):
    info = tarfile.TarInfo("a.bin")
    info.size = 1 << 20
    header = info._create_header(info.get_info(), tarfile.GNU_FORMAT, "utf-8", "surrogateescape")
    with pytest.raises(DataError, match="corrupt|cut short"):
        unpack(tmp_path, gzip.compress(header + b"abc"))


def test_tar_many_tiny_members(tmp_path):
    many = tar_gz([member(f"f{i}", b"") for i in range(200)])
    with pytest.raises(UnsafeArchiveError, match="more than 64 members"):
        unpack(tmp_path, many)
    assert len(list((tmp_path / "out").iterdir())) <= 64


# ---------------------------------------------------------------- images


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    from PIL import Image

    d = tmp_path_factory.mktemp("hostile-images")
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (24, 30, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(d / "ok.png")
    Image.fromarray(rgb).save(d / "ok.jpg")
    frames = [Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).convert("P") for _ in range(5)]
    frames[0].save(d / "anim.gif", save_all=True, append_images=frames[1:], duration=10)
    Image.fromarray(rgb).convert("CMYK").save(d / "cmyk.jpg")
    Image.fromarray(rgb).convert("P").save(d / "palette.png")
    Image.fromarray(rng.integers(0, 65536, (24, 30)).astype(np.uint16)).save(d / "grey16.png")
    for name in ("ok.png", "ok.jpg"):
        data = (d / name).read_bytes()
        (d / f"truncated-{name}").write_bytes(data[: len(data) // 2])
    (d / "header-only.jpg").write_bytes((d / "ok.jpg").read_bytes()[:30])
    (d / "empty.png").write_bytes(b"")
    (d / "zero.png").write_bytes(png_bytes(0, 0))
    (d / "bomb.png").write_bytes(png_bytes(100_000, 100_000))  # 10 Gpixel claimed in a few bytes
    (d / "over-limit.png").write_bytes(png_bytes(7000, 7000))  # under Pillow's bomb limit, over edgecnn's
    return d


def png_bytes(w: int, h: int, idat: bytes = b"") -> bytes:
    def chunk(kind, body):
        return len(body).to_bytes(4, "big") + kind + body + (zlib.crc32(kind + body) & 0xFFFFFFFF).to_bytes(4, "big")
    ihdr = w.to_bytes(4, "big") + h.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(idat)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("name, needle", [
    ("truncated-ok.png", "truncated"), ("truncated-ok.jpg", "truncated"), ("header-only.jpg", "corrupt"),
    ("empty.png", "not an image"), ("zero.png", "not an image"), ("bomb.png", "decompression bomb"),
    ("over-limit.png", "more than"),
])  # fmt: skip
def test_hostile_images_are_image_errors(image_dir, name, needle):
    from edgecnn.deploy.images import ImageError, read_image, read_image_rgb

    for read in (read_image, read_image_rgb):
        with pytest.raises(ImageError, match=needle):
            read(image_dir / name)


def test_image_fifo_is_refused_not_waited_on(tmp_path):
    from edgecnn.deploy.images import ImageError, read_image, read_image_rgb

    os.mkfifo(tmp_path / "x.png")
    for read in (read_image, read_image_rgb):
        with pytest.raises(ImageError, match="not a regular file"):
            read(tmp_path / "x.png")


@pytest.mark.parametrize("name", ["anim.gif", "cmyk.jpg", "palette.png", "grey16.png", "ok.png"])
def test_odd_but_valid_images_decode_in_both_paths(image_dir, name):
    from edgecnn.deploy.images import read_image, read_image_rgb

    grey, rgb = read_image(image_dir / name), read_image_rgb(image_dir / name)
    assert grey.dtype == rgb.dtype == np.uint8 and rgb.shape == (*grey.shape, 3)


@pytest.mark.parametrize("mode", ["RGBA", "LA", "PA", "I;16", "I", "F"])
def test_conversion_in_row_blocks_equals_one_block(monkeypatch, mode):
    """The bounded-memory conversion (a few rows at a time) gives the same bytes as the whole image at once."""
    from PIL import Image

    from edgecnn.deploy import images

    rng = np.random.default_rng(7)
    if mode in ("RGBA", "LA", "PA"):
        im = Image.fromarray(rng.integers(0, 256, (37, 23, 4), dtype=np.uint8)).convert(mode)
    elif mode == "F":
        im = Image.fromarray(rng.random((37, 23)).astype(np.float32))
    else:
        im = Image.fromarray(rng.integers(0, 60000, (37, 23)).astype(np.uint16 if mode == "I;16" else np.int32))
    whole = images.to_gray(im), images.to_rgb(im)
    monkeypatch.setattr(images, "BLOCK_PIXELS", 50)  # blocks of 2 rows
    assert len(images.row_blocks(37, 23)) == 19
    blocked = images.to_gray(im), images.to_rgb(im)
    for a, b in zip(whole, blocked):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_transparent_image_at_the_pixel_limit_stays_within_memory(tmp_path):
    """A 6000x6000 fully transparent PNG is 140 kB; compositing it in float64 at once took 3.6 GB."""
    from PIL import Image

    from edgecnn.deploy.images import read_image, read_image_rgb

    p = tmp_path / "clear.png"
    Image.new("RGBA", (6000, 6000), (0, 0, 0, 0)).save(p)
    before = rss_mb()
    assert read_image_rgb(p).min() == 255  # transparency is composited onto white
    assert read_image(p).shape == (6000, 6000)
    assert rss_mb() - before < 900


# ---------------------------------------------------------------- compare --inputs


def compare_error(capsys, lenet_file, inputs) -> str:
    from edgecnn.cli import main

    capsys.readouterr()
    assert main(["compare", str(lenet_file), "--backends", "numba,litert-ref", "--inputs", str(inputs),
                 "--quiet"]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize("array, needle", [
    (np.array([{"a": 1}, None], dtype=object), "not a plain number type"),  # would need pickle
    (np.int8(3), "takes (N, 32, 32, 1), got ()"),
    (np.zeros((3, 28, 28), np.int8), "got (3, 28, 28)"),
    (np.zeros((0, 32, 32, 1), np.int8), "non-zero number of images"),
    (np.full((2, 32, 32, 1), np.nan, np.float32), "NaN"),
    (np.zeros((2, 32, 32, 1), np.complex64), "not a plain number type"),
])  # fmt: skip
def test_hostile_compare_inputs_are_one_line(tmp_path, capsys, lenet_file, array, needle):
    for suffix in (".npy", ".npz"):
        path = tmp_path / f"x{suffix}"
        if suffix == ".npy":
            np.save(path, array, allow_pickle=True)
        else:
            np.savez(path, input0=array)
        assert needle in compare_error(capsys, lenet_file, path)


@pytest.mark.parametrize("content, needle", [(b"PK\x03\x04junk", "not a readable .npz"),
                                             (b"\x93NUMPY\x01\x00\xff\xff", "header")])
def test_corrupt_compare_input_files(tmp_path, capsys, lenet_file, content, needle):
    path = tmp_path / ("x.npz" if content.startswith(b"PK") else "x.npy")
    path.write_bytes(content)
    assert needle in compare_error(capsys, lenet_file, path)


def test_compare_random_count_is_bounded_before_allocating(capsys, lenet_file):
    from cli_main import run_main

    rc, _, err = run_main(capsys, "compare", lenet_file, "--backends", "litert-ref,litert", "--random", "10**9",
                          "--quiet")
    assert rc == 2 and "--random" in err  # not a number: argparse
    rc, _, err = run_main(capsys, "compare", lenet_file, "--backends", "litert-ref,litert", "--random",
                          "1000000000", "--quiet")
    assert rc == 1 and "at most 1,048,576 images" in err and len(err.strip().splitlines()) == 1


def test_compare_inputs_fifo_is_refused_not_waited_on(tmp_path, capsys, lenet_file):
    os.mkfifo(tmp_path / "x.npy")
    assert "not a regular file" in compare_error(capsys, lenet_file, tmp_path / "x.npy")


def test_compare_npz_with_a_corrupt_deflate_stream(tmp_path, capsys, lenet_file):
    """Before: zlib.error escaped as a traceback."""
    import zipfile

    path = tmp_path / "x.npz"
    np.savez_compressed(path, input0=np.zeros((3, 32, 32, 1), np.int8))
    data = bytearray(path.read_bytes())
    info = zipfile.ZipFile(path).infolist()[0]
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    data[start + 2:start + 40] = bytes(b ^ 0x55 for b in data[start + 2:start + 40])
    path.write_bytes(bytes(data))
    assert "not a readable .npz" in compare_error(capsys, lenet_file, path)


def test_compare_npz_member_inflating_past_the_limit(tmp_path, capsys, lenet_file):
    import zipfile

    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("input0.npy", b"\x93NUMPY" + bytes(80 << 20))
    assert path.stat().st_size < 1 << 20
    assert "larger than" in compare_error(capsys, lenet_file, path)


def test_read_inputs_never_unpickles(tmp_path):
    from edgecnn.cli.compare_cmd import read_inputs

    np.save(tmp_path / "o.npy", np.array([object()], dtype=object), allow_pickle=True)
    with pytest.raises(EdgecnnError, match="plain number"):
        read_inputs(str(tmp_path / "o.npy"), 1)


@pytest.mark.parametrize("images", [np.full((2, 28, 28), np.nan), np.full((2, 28, 28), 1e9),
                                    np.full((2, 28, 28), -5, np.int16), np.zeros((2, 28, 28), bool)])
def test_compare_api_refuses_images_that_are_not_pixels(lenet_file, images):
    """Before: NaN and 1e9 were cast to int32 and fed as arbitrary int8 (a RuntimeWarning, no error)."""
    from edgecnn.deploy.compare import compare
    from edgecnn.errors import ShapeError

    with pytest.raises(ShapeError, match="pixels 0..255"):
        compare(lenet_file, "litert-ref", "litert", images=images)
    assert compare(lenet_file, "litert-ref", "litert", images=np.full((2, 28, 28), 7, np.int64)).images == 2


def _npz_bytes() -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, input0=np.arange(2 * 32 * 32, dtype=np.int8).reshape(2, 32, 32, 1))
    return buf.getvalue()


NPZ = _npz_bytes()


@FUZZ
@given(st.one_of(st.binary(max_size=400),
                 st.lists(st.tuples(st.integers(0, len(NPZ) - 1), st.integers(1, 255)), min_size=1, max_size=6)
                 .map(lambda flips: bytes(_flip(NPZ, flips)))),
       st.sampled_from([".npz", ".npy"]))
def test_compare_inputs_reader_raises_only_edgecnn_errors(tmp_path, data, suffix):
    """Random and bit-flipped .npz/.npy files: arrays of plain numbers, or an EdgecnnError (never zlib, pickle, ...)."""
    from edgecnn.cli.compare_cmd import read_inputs

    path = tmp_path / f"x{suffix}"
    path.write_bytes(data)
    try:
        arrays = read_inputs(str(path), 1)
    except EdgecnnError:
        return
    assert len(arrays) == 1 and arrays[0].dtype.kind in "biuf"


@pytest.mark.parametrize("bits", [0x01, 0x40, 0x20])  # encrypted, strongly encrypted, "compressed patched"
def test_compare_inputs_with_odd_zip_flags_are_one_clear_error(tmp_path, bits):
    """zipfile raises RuntimeError / NotImplementedError for these members; --inputs says the file is unreadable."""
    from edgecnn.cli.compare_cmd import read_inputs
    from edgecnn.deploy.npy import NpyError

    from zip_flags import with_zip_flags

    path = tmp_path / "x.npz"
    path.write_bytes(with_zip_flags(NPZ, bits))
    with pytest.raises(NpyError, match="not a readable .npz"):
        read_inputs(str(path), 1)


def _flip(data: bytes, flips) -> bytearray:
    out = bytearray(data)
    for at, xor in flips:
        out[at] ^= xor
    return out
