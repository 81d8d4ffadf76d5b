"""IDX reader/writer: round trips for every dtype, and every malformed file it must refuse."""

import gzip

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from edgecnn.data.idx import IDX_DTYPES, encode_idx, read_idx, write_idx
from edgecnn.errors import IdxFormatError

NATIVE_DTYPES = [dt.newbyteorder("=") for dt in IDX_DTYPES.values()]


@st.composite
def idx_arrays(draw):
    dtype = draw(st.sampled_from(NATIVE_DTYPES))
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=5))
    # Big-endian input must come back native with the same values.
    if dtype.itemsize > 1:
        dtype = draw(st.sampled_from([dtype, dtype.newbyteorder(">"), dtype.newbyteorder("<")]))
    return draw(hnp.arrays(dtype, shape))


@settings(max_examples=60, deadline=None)
@given(array=idx_arrays(), compress=st.booleans())
def test_round_trip_every_dtype_and_rank(tmp_path_factory, array, compress):
    path = tmp_path_factory.mktemp("rt") / ("a.idx.gz" if compress else "a.idx")
    write_idx(path, array)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == compress
    back = read_idx(path)
    assert back.dtype == array.dtype.newbyteorder("=")
    assert back.dtype.isnative
    assert back.shape == array.shape
    # Bit patterns, so NaNs with payloads and -0.0 count too.
    assert back.tobytes() == array.astype(back.dtype).tobytes()
    assert back.flags.writeable


def test_header_layout_is_big_endian(tmp_path):
    path = tmp_path / "x"
    write_idx(path, np.array([[1, -2, 3]], dtype=np.int16))
    assert path.read_bytes() == bytes([0, 0, 0x0B, 2, 0, 0, 0, 1, 0, 0, 0, 3, 0, 1, 0xFF, 0xFE, 0, 3])


def test_compress_flag_overrides_name(tmp_path):
    a = np.arange(10, dtype=np.uint8)
    write_idx(tmp_path / "plain.gz", a, compress=False)
    write_idx(tmp_path / "packed", a, compress=True)
    assert (tmp_path / "plain.gz").read_bytes() == encode_idx(a)
    assert gzip.decompress((tmp_path / "packed").read_bytes()) == encode_idx(a)
    np.testing.assert_array_equal(read_idx(tmp_path / "plain.gz"), a)
    np.testing.assert_array_equal(read_idx(tmp_path / "packed"), a)


def test_gzip_output_is_reproducible(tmp_path):
    a = np.arange(100, dtype=np.int32)
    write_idx(tmp_path / "a.gz", a)
    first = (tmp_path / "a.gz").read_bytes()
    write_idx(tmp_path / "a.gz", a)
    assert (tmp_path / "a.gz").read_bytes() == first


@pytest.fixture
def images_file(tmp_path):
    path = tmp_path / "t10k-images-idx3-ubyte"
    write_idx(path, np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4))
    return path


def _expect(path, *fragments):
    with pytest.raises(IdxFormatError) as info:
        read_idx(path)
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message
    return message


def test_truncated_data(images_file):
    data = images_file.read_bytes()
    images_file.write_bytes(data[:-1])
    _expect(images_file, "truncated", f"header says {len(data)} bytes", f"file has {len(data) - 1}")


def test_truncated_header(images_file):
    images_file.write_bytes(images_file.read_bytes()[:10])
    _expect(images_file, "truncated", "3 dimensions")


def test_shorter_than_magic(tmp_path):
    path = tmp_path / "tiny"
    path.write_bytes(b"\x00\x00")
    _expect(path, "truncated")


def test_empty_file(tmp_path):
    path = tmp_path / "empty"
    path.write_bytes(b"")
    _expect(path, "truncated")


def test_trailing_bytes(images_file):
    data = images_file.read_bytes()
    images_file.write_bytes(data + b"\x00")
    _expect(images_file, "trailing bytes", f"header says {len(data)} bytes", f"file has {len(data) + 1}")


def test_truncated_inside_gzip(tmp_path):
    path = tmp_path / "a.gz"
    payload = encode_idx(np.zeros((4, 4), np.float32))
    path.write_bytes(gzip.compress(payload[:-3]))
    _expect(path, "truncated", "decompressed")


@pytest.mark.parametrize("magic", [b"\x01\x00\x08\x01", b"\x00\x01\x08\x01", b"PK\x03\x04"])
def test_bad_magic(tmp_path, magic):
    path = tmp_path / "bad"
    path.write_bytes(magic + b"\x00\x00\x00\x01" + b"\x07")
    _expect(path, "not an IDX file", "two zero bytes")


@pytest.mark.parametrize("code", [0x00, 0x07, 0x0A, 0x0F, 0xFF])
def test_bad_dtype_code(tmp_path, code):
    path = tmp_path / "bad"
    path.write_bytes(bytes([0, 0, code, 1, 0, 0, 0, 1, 7]))
    _expect(path, f"0x{code:02X}", "unknown IDX type code")


def test_zero_dimensions_refused(tmp_path):
    path = tmp_path / "scalar"
    path.write_bytes(bytes([0, 0, 0x08, 0, 42]))
    _expect(path, "0 dimensions")


def test_zero_sized_dimension_is_an_empty_array(tmp_path):
    path = tmp_path / "empty-images"
    write_idx(path, np.zeros((0, 28, 28), np.uint8))
    assert read_idx(path).shape == (0, 28, 28)
    path.write_bytes(path.read_bytes() + b"\x01")
    _expect(path, "trailing bytes")


def test_huge_dims_do_not_overflow(tmp_path):
    path = tmp_path / "huge"
    path.write_bytes(bytes([0, 0, 0x0E, 4]) + b"\xff\xff\xff\xff" * 4)
    expected = 4 + 16 + 8 * (2**32 - 1) ** 4  # far past 2**64: must not wrap around
    _expect(path, "truncated", f"header says {expected} bytes")


@pytest.mark.parametrize("damage", ["flip_crc", "flip_body", "cut", "bad_header"])
def test_corrupt_gzip(tmp_path, damage):
    path = tmp_path / "a.gz"
    data = bytearray(gzip.compress(encode_idx(np.arange(1000, dtype=np.int32)), mtime=0))
    if damage == "flip_crc":
        data[-8] ^= 0xFF
    elif damage == "flip_body":
        data[len(data) // 2] ^= 0xFF
    elif damage == "cut":
        data = data[: len(data) // 2]
    else:
        data[2] = 0x07  # compression method other than deflate
    path.write_bytes(bytes(data))
    _expect(path, "gzip")


@pytest.mark.parametrize("array, why", [
    (np.zeros(3, np.uint16), "uint16"),
    (np.zeros(3, np.int64), "int64"),
    (np.zeros(3, bool), "bool"),
    (np.float32(1.0), "0-d"),
])
def test_writer_refuses_what_idx_cannot_hold(tmp_path, array, why):
    with pytest.raises(IdxFormatError, match=why):
        write_idx(tmp_path / "x", array)
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_real_mnist_shapes(mnist_root):
    folder = mnist_root / "mnist"
    expected = {
        "train-images-idx3-ubyte": (60000, 28, 28),
        "train-labels-idx1-ubyte": (60000,),
        "t10k-images-idx3-ubyte": (10000, 28, 28),
        "t10k-labels-idx1-ubyte": (10000,),
    }
    for name, shape in expected.items():
        array = read_idx(folder / name)
        assert array.shape == shape and array.dtype == np.uint8
    labels = read_idx(folder / "t10k-labels-idx1-ubyte")
    assert labels.max() == 9 and np.bincount(labels).min() > 800
    # The first MNIST test digit is a 7.
    assert labels[0] == 7


def test_real_mnist_through_gzip(tmp_path, mnist_root):
    raw = (mnist_root / "mnist" / "t10k-labels-idx1-ubyte").read_bytes()
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(raw))
    np.testing.assert_array_equal(read_idx(path), np.frombuffer(raw, np.uint8, offset=8))
