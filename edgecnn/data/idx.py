"""IDX files (LeCun's MNIST format), raw or gzip-compressed.

Layout: two zero bytes, a type code, the number of dimensions, then one
big-endian uint32 per dimension, then the data, big-endian, C order.
The reader trusts nothing: magic, type code, header and exact length are all
checked, because a truncated download must fail loudly rather than train on
a dataset with its last images silently missing.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np

from edgecnn.errors import IdxFormatError
from edgecnn.fileio import atomic_path

# Type code -> big-endian numpy dtype, as in the IDX spec.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_TYPE_NAMES = {0x08: "ubyte", 0x09: "sbyte", 0x0B: "int16", 0x0C: "int32", 0x0D: "float32", 0x0E: "float64"}
_CODE_OF_KIND = {(dt.kind, dt.itemsize): code for code, dt in IDX_DTYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (raw or gzip) into a writable array in native byte order.

    Gzip is recognised by its magic bytes, not the name: IDX data always starts
    with two zero bytes, so the two can never be confused.
    """
    path = Path(path)
    data = _read_bytes(path)
    if data[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise IdxFormatError(f"{path}: corrupt gzip: {exc}") from None
        return decode_idx(data, path, decompressed=True)
    return decode_idx(data, path)


def decode_idx(data: bytes | bytearray, name: str | os.PathLike = "<bytes>",
               decompressed: bool = False) -> np.ndarray:
    """Parse the bytes of an uncompressed IDX file; `name` is only for messages."""
    shape, dtype, offset = _parse_header(data, name)
    expected = offset + dtype.itemsize * math.prod(shape)  # Python ints: no overflow on hostile dims
    if len(data) != expected:
        problem = "truncated" if len(data) < expected else "trailing bytes"
        what = " (decompressed)" if decompressed else ""
        raise IdxFormatError(f"{name}: {problem}: header says {expected} bytes, file has {len(data)}{what}")
    flat = np.frombuffer(data, dtype=dtype, offset=offset)
    # astype copies into native order; the copy also makes bytes-backed data writable.
    if dtype.itemsize == 1 and isinstance(data, bytearray):
        array = flat.view(dtype.newbyteorder("="))
    else:
        array = flat.astype(dtype.newbyteorder("="))
    return array.reshape(shape)


def _parse_header(data, name) -> tuple[tuple[int, ...], np.dtype, int]:
    if len(data) < 4:
        raise IdxFormatError(f"{name}: truncated: {len(data)} bytes is shorter than the 4-byte IDX magic")
    if data[0] != 0 or data[1] != 0:
        raise IdxFormatError(
            f"{name}: not an IDX file: magic {bytes(data[:4]).hex(' ')} does not start with two zero bytes")
    code, ndim = data[2], data[3]
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X} {n}" for c, n in _TYPE_NAMES.items())
        raise IdxFormatError(f"{name}: unknown IDX type code 0x{code:02X} (known: {known})")
    if ndim == 0:
        raise IdxFormatError(f"{name}: IDX header has 0 dimensions; at least 1 is required")
    offset = 4 + 4 * ndim
    if len(data) < offset:
        raise IdxFormatError(
            f"{name}: truncated: header says {ndim} dimensions ({offset} header bytes), file has {len(data)}")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    return shape, IDX_DTYPES[code], offset


def _read_bytes(path: Path) -> bytearray:
    # readinto a bytearray: one copy from the OS and a writable buffer for frombuffer.
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        buf = bytearray(size)
        got = f.readinto(buf)
    return buf if got == size else buf[:got]


def encode_idx(array: np.ndarray) -> bytes:
    """The bytes of an uncompressed IDX file holding `array`."""
    array = np.asarray(array)
    code = _CODE_OF_KIND.get((array.dtype.kind, array.dtype.itemsize))
    if code is None:
        names = ", ".join(_TYPE_NAMES.values())
        raise IdxFormatError(f"cannot store dtype {array.dtype} in IDX; supported: {names}")
    if not 1 <= array.ndim <= 255:
        raise IdxFormatError(f"cannot store a {array.ndim}-d array in IDX; it needs 1 to 255 dimensions")
    if any(d > 0xFFFFFFFF for d in array.shape):
        raise IdxFormatError(f"cannot store shape {array.shape} in IDX; each dimension must fit in uint32")
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    return header + np.ascontiguousarray(array, dtype=IDX_DTYPES[code]).tobytes()


def write_idx(path: str | os.PathLike, array: np.ndarray, compress: bool | None = None) -> None:
    """Write `array` as IDX, atomically. `compress=None` gzips when the name ends in `.gz`.

    The gzip header carries mtime 0 so the same array always gives the same bytes
    (and the same SHA-256).
    """
    path = Path(path)
    data = encode_idx(array)
    if compress is None:
        compress = path.name.endswith(".gz")
    if compress:
        data = gzip.compress(data, compresslevel=6, mtime=0)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
