"""`.npy` input files, parsed without numpy's header evaluator and never with pickle.

numpy's own reader tokenizes the header as Python source (a malformed one
raises tokenize errors; a deep one recursion errors) and trusts its shape (a
huge one is a MemoryError). Here the header must be the plain dict numpy
writes, the dtype a plain number type, and the data exactly as long as the
shape says, within a size limit.
"""

from __future__ import annotations

import re
import zipfile
import zlib
from pathlib import Path

import numpy as np

from edgecnn.errors import EdgecnnError

MAGIC = b"\x93NUMPY"
MAX_HEADER_BYTES = 1 << 16
MAX_DATA_BYTES = 64 << 20
MAX_DIMS = 8
_DESCR = re.compile(r"""['"]descr['"]\s*:\s*['"]([<>|=]?[uifb][1248])['"]""")
_FORTRAN = re.compile(r"""['"]fortran_order['"]\s*:\s*(True|False)""")
_SHAPE = re.compile(r"""['"]shape['"]\s*:\s*\(\s*((?:\d{1,12}\s*,\s*)*(?:\d{1,12})?\s*,?)\s*\)""")
_KEYS = re.compile(r"""['"](\w+)['"]\s*:""")


# What reading a member of a damaged .npz can raise, besides BadZipFile: a flipped flag bit marks a member
# encrypted (RuntimeError) or "patched"/strongly encrypted (NotImplementedError); a corrupt offset makes zipfile
# seek before the start (OSError); a damaged deflate stream is zlib.error; a cut one EOFError.
ZIP_READ_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError, EOFError, zlib.error,
                   OSError)


class NpyError(EdgecnnError):
    """A .npy file is malformed, too large, or holds something other than plain numbers."""


def read_npy(path, max_bytes: int = MAX_DATA_BYTES) -> np.ndarray:
    path = Path(path)
    size = path.stat().st_size
    if size > max_bytes + MAX_HEADER_BYTES:
        raise NpyError(f"{path.name}: {size:,} bytes is more than the {max_bytes:,} edgecnn reads")
    return read_npy_bytes(path.read_bytes(), path.name, max_bytes)


def npy_shape(path) -> tuple[int, ...]:
    """The shape a .npy file declares, from its header alone (a regular file only: a FIFO is not read)."""
    path = Path(path)
    if not path.is_file():
        raise NpyError(f"{path.name}: not a regular file")
    with open(path, "rb") as f:
        head = f.read(12 + MAX_HEADER_BYTES)
    return _header(head, path.name)[2]


def read_npy_bytes(data: bytes, name: str = "<npy>", max_bytes: int = MAX_DATA_BYTES) -> np.ndarray:
    """The array in a .npy file's bytes (format versions 1 to 3), as a writable native-order copy."""
    dtype, fortran, shape, data_start = _header(data, name)
    count = 1
    for d in shape:
        count *= d
    nbytes = count * dtype.itemsize
    if nbytes > max_bytes:
        raise NpyError(f"{name}: shape {shape} needs {nbytes:,} bytes, more than the {max_bytes:,} edgecnn reads")
    body = memoryview(data)[data_start:]
    if len(body) != nbytes:
        problem = "truncated" if len(body) < nbytes else "trailing bytes"
        raise NpyError(f"{name}: {problem}: shape {shape} of {dtype.str} needs {nbytes} data bytes, "
                       f"the file has {len(body)}")
    flat = np.frombuffer(body, dtype=dtype, count=count)
    array = flat.reshape(shape, order="F" if fortran else "C")
    return np.array(array, dtype=dtype.newbyteorder("="), order="C")  # a copy: writable, native, 0-d stays 0-d


def _header(data: bytes, name: str) -> tuple[np.dtype, bool, tuple[int, ...], int]:
    """(dtype, fortran order, shape, offset of the data) of a .npy file's first bytes."""
    if not data.startswith(MAGIC) or len(data) < 10:
        raise NpyError(f"{name}: not a .npy file (no \\x93NUMPY magic)")
    major = data[6]
    if major == 1:
        header_len, start = int.from_bytes(data[8:10], "little"), 10
    elif major in (2, 3):
        header_len, start = int.from_bytes(data[8:12], "little"), 12
    else:
        raise NpyError(f"{name}: .npy format version {major} is not one edgecnn reads (1, 2 or 3)")
    if header_len > MAX_HEADER_BYTES or start + header_len > len(data):
        raise NpyError(f"{name}: truncated or oversized .npy header ({header_len} bytes)")
    try:
        header = data[start:start + header_len].decode("latin-1" if major < 3 else "utf-8")
    except UnicodeDecodeError:
        raise NpyError(f"{name}: the .npy header is not text") from None
    return (*_parse_header(header.strip(), name), start + header_len)


def _parse_header(header: str, name: str) -> tuple[np.dtype, bool, tuple[int, ...]]:
    if not (header.startswith("{") and header.endswith("}")):
        raise NpyError(f"{name}: the .npy header is not a dict")
    keys = _KEYS.findall(header)
    if sorted(keys) != ["descr", "fortran_order", "shape"]:
        raise NpyError(f"{name}: the .npy header must hold exactly descr, fortran_order and shape")
    descr, fortran, shape = _DESCR.search(header), _FORTRAN.search(header), _SHAPE.search(header)
    if descr is None:
        raise NpyError(f"{name}: the .npy dtype is not a plain number type (bool, int, uint or float)")
    if fortran is None or shape is None:
        raise NpyError(f"{name}: malformed .npy header")
    dims = tuple(int(d) for d in re.findall(r"\d+", shape.group(1)))
    if len(dims) > MAX_DIMS:
        raise NpyError(f"{name}: {len(dims)} dimensions; edgecnn reads at most {MAX_DIMS}")
    try:
        dtype = np.dtype(descr.group(1))
    except TypeError:
        raise NpyError(f"{name}: unknown .npy dtype {descr.group(1)!r}") from None
    if dtype.kind == "f" and dtype.itemsize == 1:
        raise NpyError(f"{name}: unknown .npy dtype {descr.group(1)!r}")
    return dtype, fortran.group(1) == "True", dims
