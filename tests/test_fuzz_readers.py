"""Hostile files against every reader: a short fixed-seed slice of tests/fuzz_long.py, and
hypothesis properties of the small parsers (.npy, IDX, images): only edgecnn errors come out."""

from __future__ import annotations

import gzip
import io
import os
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from edgecnn.data.idx import decode_idx, encode_idx, read_idx
from edgecnn.deploy.images import ImageError, read_image
from edgecnn.deploy.npy import NpyError, npy_shape, read_npy_bytes
from edgecnn.errors import EdgecnnError, IdxFormatError
from fuzz_long import READERS, campaign


def test_short_campaign_over_every_reader(tmp_path):
    report = campaign(inputs=12 * len(READERS), seed=2024, cli_every=24, timeout=10, max_rss_mb=1024,
                      out_dir=tmp_path / "findings", log=lambda msg: None)
    assert report["findings"] == []
    for reader in READERS:
        assert sum(report["per_reader"][reader].values()) == 12
    assert report["cli"]["runs"] >= 3 and report["cli"]["traceback"] == 0


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=300))
def test_npy_random_bytes(data):
    try:
        read_npy_bytes(b"\x93NUMPY" + data)
    except NpyError:
        pass


@FUZZ
@given(hnp.arrays(st.sampled_from([np.uint8, np.int8, np.int16, np.float32, np.float64, np.bool_]),
                  hnp.array_shapes(min_dims=0, max_dims=4, max_side=6)), st.booleans())
def test_npy_round_trip(array, fortran):
    saved = np.asfortranarray(array) if fortran and array.ndim else array
    buf = io.BytesIO()
    np.save(buf, saved)
    back = read_npy_bytes(buf.getvalue())
    assert back.shape == array.shape and back.dtype == array.dtype.newbyteorder("=")
    assert back.tobytes() == np.array(array, order="C").tobytes() and back.flags.writeable


@pytest.mark.parametrize("header", [
    "{'descr': '|O', 'fortran_order': False, 'shape': (2,), }",          # objects: would need pickle
    "{'descr': [('a', '<i4')], 'fortran_order': False, 'shape': (2,), }",  # structured
    "{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000, 100000), }",  # huge
    "{'descr': '<f4', 'fortran_order': False, 'shape': (" + "1," * 40 + "), }",  # too many dims
    "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': " + "[" * 5000 + "]" * 5000 + "}",  # deep
    "{'descr': '<f4', 'fortran_order': False, 'shape': (2,",  # malformed (tokenize error in numpy)
])
def test_npy_hostile_headers(header):
    raw = header.encode("latin-1")
    data = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(raw)) + raw + b"\x00" * 8
    with pytest.raises(NpyError):
        read_npy_bytes(data)


def test_npy_shape_reads_the_header_only(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((1, 4, 5, 3), np.int8))
    with open(tmp_path / "x.npy", "ab") as f:  # data that read_npy would refuse: the header alone is read
        f.write(b"trailing")
    assert npy_shape(tmp_path / "x.npy") == (1, 4, 5, 3)
    with pytest.raises(NpyError, match="trailing"):
        read_npy_bytes((tmp_path / "x.npy").read_bytes())


def test_npy_shape_refuses_what_is_not_a_npy_file(tmp_path):
    (tmp_path / "cut.npy").write_bytes(b"\x93NUMPY\x01\x00\x40\x00{'descr'")
    (tmp_path / "dir.npy").mkdir()
    os.mkfifo(tmp_path / "fifo.npy")  # would block a reader forever
    for name, needle in [("cut.npy", "truncated"), ("dir.npy", "regular file"), ("fifo.npy", "regular file")]:
        with pytest.raises(NpyError, match=needle):
            npy_shape(tmp_path / name)


@FUZZ
@given(st.binary(max_size=200))
def test_idx_random_bytes(data):
    try:
        decode_idx(bytearray(b"\x00\x00" + data))
    except IdxFormatError:
        pass


def test_idx_gz_bomb_is_refused_before_inflating(tmp_path):
    """A 1 MB-class .gz whose header claims 3 images but inflates to far more: never fully inflated."""
    import resource
    import time

    header = bytes([0, 0, 8, 3]) + struct.pack(">III", 3, 28, 28)
    p = tmp_path / "bomb-idx3-ubyte.gz"
    p.write_bytes(gzip.compress(header + bytes(3 * 28 * 28) + bytes(300 << 20), compresslevel=9))
    assert p.stat().st_size < (1 << 20)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    with pytest.raises(IdxFormatError, match="trailing bytes"):
        read_idx(p)
    assert time.perf_counter() - t0 < 2
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50 * 1024  # KB: under 50 MB more


def test_idx_gz_header_claiming_more_than_deflate_can_hold(tmp_path):
    p = tmp_path / "liar.gz"
    p.write_bytes(gzip.compress(bytes([0, 0, 8, 3]) + struct.pack(">III", 60000, 2000, 2000)))
    with pytest.raises(IdxFormatError, match="truncated"):
        read_idx(p)


@pytest.mark.parametrize("ndim", [33, 65, 255])
def test_idx_too_many_dimensions(ndim):
    with pytest.raises(IdxFormatError, match="dimensions"):
        decode_idx(bytearray(bytes([0, 0, 8, ndim]) + b"\x00\x00\x00\x01" * ndim + b"\x00"))


def test_idx_gz_crc_is_checked(tmp_path):
    data = bytearray(gzip.compress(encode_idx(np.arange(100, dtype=np.uint8)), mtime=0))
    data[-8] ^= 0xFF  # the CRC-32 in the gzip trailer
    p = tmp_path / "crc.gz"
    p.write_bytes(bytes(data))
    with pytest.raises(IdxFormatError, match="gzip"):
        read_idx(p)


@FUZZ
@given(st.binary(min_size=1, max_size=400), st.sampled_from([b"\x89PNG\r\n\x1a\n", b"P5\n", b"P2\n", b"\xff\xd8\xff",
                                                              b"GIF89a", b"BM", b"II*\x00", b"RIFF"]))
def test_images_random_bytes(tmp_path_factory, data, magic):
    p = tmp_path_factory.mktemp("img") / "x.img"
    p.write_bytes(magic + data)
    try:
        read_image(p)
    except ImageError:
        pass
    except EdgecnnError as exc:  # pragma: no cover - a wrong class is still a finding
        pytest.fail(f"{type(exc).__name__} instead of ImageError: {exc}")
