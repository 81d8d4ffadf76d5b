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
MAX_DIMS = 32  # numpy's limit is 64 (32 before numpy 2); no dataset needs more than 4
MAX_DEFLATE_RATIO = 1032  # deflate cannot expand one byte into more than 1032
CHUNK = 1 << 20


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (raw or gzip) into a writable array in native byte order.

    Gzip is recognised by its magic bytes, not the name: IDX data always starts
    with two zero bytes, so the two can never be confused. The header is read
    and checked first; a file whose header promises more data than it can hold
    is refused before any large buffer is allocated.
    """
    path = Path(path)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if f.read(2) == _GZIP_MAGIC:
            f.seek(0)
            data = _gunzip_idx(f, size, path)
            return decode_idx(data, path, decompressed=True)
        f.seek(0)
        head = f.read(4 + 4 * 255)
        shape, dtype, offset = _parse_header(head, path, total=size)
        _check_length(size, offset + dtype.itemsize * math.prod(shape), path)
        f.seek(0)
        data = bytearray(size)
        got = f.readinto(data)
    return decode_idx(data if got == size else data[:got], path)


def _check_length(actual: int, expected: int, name, what: str = "") -> None:
    if actual != expected:
        problem = "truncated" if actual < expected else "trailing bytes"
        raise IdxFormatError(f"{name}: {problem}: header says {expected} bytes, file has {actual}{what}")


def _gunzip_idx(f, compressed_size: int, name) -> bytearray:
    """Decompress a gzip'd IDX file, checking its header before inflating the data.

    Never inflates more than the header promises (+1 byte to detect trailing data),
    and refuses a header promising more than deflate can expand `compressed_size`
    bytes into. Concatenated gzip members are accepted, as gzip(1) does.
    """
    stream = _GzipStream(f, name)
    head = stream.read_exactly(4, "the 4-byte IDX magic")
    if len(head) == 4 and head[0] == 0 and head[1] == 0 and head[2] in IDX_DTYPES:
        head += stream.read_exactly(4 * head[3], "the IDX header")
    shape, dtype, offset = _parse_header(head, name, decompressed=True)
    expected = offset + dtype.itemsize * math.prod(shape)
    if expected > MAX_DEFLATE_RATIO * compressed_size + offset + 1024:
        raise IdxFormatError(f"{name}: truncated: header says {expected} bytes, more than {compressed_size} "
                             "compressed bytes can hold")
    out = bytearray(head)  # grows as data arrives: a lying header costs no memory up front
    while len(out) < expected:
        chunk = stream.read(min(CHUNK, expected - len(out)))
        if not chunk:
            _check_length(len(out), expected, name, " (decompressed)")
        out += chunk
    if stream.read(1):
        raise IdxFormatError(f"{name}: trailing bytes: the decompressed data is longer than the header's "
                             f"{expected} bytes")
    return out


class _GzipStream:
    """Inflate a gzip file a bounded piece at a time; corrupt data becomes IdxFormatError."""

    def __init__(self, f, name):
        self.f, self.name = f, name
        self.z = zlib.decompressobj(wbits=31)
        self.pending = b""
        self.members_done = False

    def read(self, n: int) -> bytes:
        out = bytearray()
        try:
            while len(out) < n:
                if self.z.eof:  # checked first: a finished member keeps its leftovers in unused_data
                    rest = self.z.unused_data or self.f.read(CHUNK)
                    if not rest.strip(b"\0"):  # padding after the last member, as gzip(1) allows
                        break
                    self.z = zlib.decompressobj(wbits=31)  # another gzip member follows
                    out += self.z.decompress(rest, n - len(out))
                    continue
                if self.z.unconsumed_tail:
                    out += self.z.decompress(self.z.unconsumed_tail, n - len(out))
                    continue
                chunk = self.f.read(CHUNK)
                if not chunk:
                    raise IdxFormatError(f"{self.name}: corrupt gzip: compressed data ends early")
                out += self.z.decompress(chunk, n - len(out))
        except zlib.error as exc:
            raise IdxFormatError(f"{self.name}: corrupt gzip: {exc}") from None
        return bytes(out)

    def read_exactly(self, n: int, what: str) -> bytes:
        data = self.read(n)
        if len(data) < n:
            raise IdxFormatError(f"{self.name}: truncated: the decompressed data ends inside {what}")
        return data


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


def _parse_header(data, name, decompressed: bool = False,
                  total: int | None = None) -> tuple[tuple[int, ...], np.dtype, int]:
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
    if ndim > MAX_DIMS:
        raise IdxFormatError(f"{name}: IDX header has {ndim} dimensions; edgecnn reads at most {MAX_DIMS}")
    offset = 4 + 4 * ndim
    have = len(data) if total is None else total
    if have < offset or len(data) < offset:
        raise IdxFormatError(
            f"{name}: truncated: header says {ndim} dimensions ({offset} header bytes), file has {have}")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    return shape, IDX_DTYPES[code], offset


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
