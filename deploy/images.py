"""Image files for `edgecnn predict`: PNG (8-bit gray/RGB/RGBA, via zlib), PGM (P2/P5) and .npy.

Only the standard library and numpy, so the device install needs no Pillow.
RGB is converted to gray with the ITU-R 601 weights.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from edgecnn.errors import EdgecnnError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class ImageError(EdgecnnError):
    """An image file is unreadable or in a form edgecnn does not take."""


def read_image(path) -> np.ndarray:
    """uint8 grayscale (H, W)."""
    path = Path(path)
    data = path.read_bytes()
    try:
        if data.startswith(PNG_MAGIC):
            img = _read_png(data)
        elif data[:2] in (b"P2", b"P5"):
            img = _read_pgm(data)
        elif path.suffix.lower() == ".npy":
            import io

            img = np.load(io.BytesIO(data), allow_pickle=False)
        else:
            raise ImageError("not a PNG, PGM or .npy file")
    except ImageError as exc:
        raise ImageError(f"{path.name}: {exc}") from None
    except (ValueError, zlib.error, struct.error, IndexError, EOFError) as exc:
        raise ImageError(f"{path.name}: corrupt image ({exc})") from None
    img = np.asarray(img)
    if img.dtype.kind not in "uif":
        raise ImageError(f"{path.name}: pixels must be numbers, not {img.dtype}")
    if img.size == 0:
        raise ImageError(f"{path.name}: the image is empty")
    if img.dtype.kind == "f" and not np.all(np.isfinite(img)):
        raise ImageError(f"{path.name}: the image holds NaN or infinite values")
    if img.dtype.kind in "iu" and (img.min() < 0 or img.max() > 255):
        raise ImageError(f"{path.name}: pixel values must lie in 0..255")
    if img.dtype.kind == "f" and (img.min() < 0 or img.max() > 255):
        raise ImageError(f"{path.name}: pixel values must lie in 0..1 or 0..255")
    if img.ndim == 3 and img.shape[2] in (3, 4):
        img = img[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
        img = np.floor(img + 0.5)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.ndim != 2:
        raise ImageError(f"{path.name}: expected a 2-D grayscale image, got shape {img.shape}")
    if img.dtype.kind == "f" and img.size and img.max() <= 1.0:
        img = img * 255.0
    return np.clip(np.floor(np.asarray(img, np.float64) + 0.5) if img.dtype.kind == "f" else img, 0, 255).astype(np.uint8)


def _read_pgm(data: bytes) -> np.ndarray:
    tokens, pos = [], 2
    while len(tokens) < 3:
        while pos < len(data) and data[pos:pos + 1].isspace():
            pos += 1
        if pos >= len(data):
            raise ImageError("truncated PGM header")
        if data[pos:pos + 1] == b"#":
            pos = data.find(b"\n", pos)
            if pos < 0:
                raise ImageError("truncated PGM header")
            pos += 1
            continue
        start = pos
        while pos < len(data) and not data[pos:pos + 1].isspace():
            pos += 1
        tokens.append(int(data[start:pos]))
    w, h, maxval = tokens
    if not 0 < maxval <= 255:
        raise ImageError(f"PGM maxval {maxval} is not in 1..255 (16-bit PGM is not supported)")
    if data[:2] == b"P5" and len(data) < pos + 1 + w * h:
        raise ImageError("truncated PGM")
    if data[:2] == b"P5":
        px = np.frombuffer(data, np.uint8, count=w * h, offset=pos + 1)
    else:
        px = np.array(data[pos:].split()[: w * h], dtype=np.int64)
        if px.size != w * h:
            raise ImageError("truncated PGM")
    img = px.reshape(h, w).astype(np.float64)
    return np.floor(img * 255.0 / maxval + 0.5).astype(np.uint8) if maxval != 255 else img.astype(np.uint8)


def _read_png(data: bytes) -> np.ndarray:
    pos, idat, header = 8, [], None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if len(body) != length:
            raise ImageError("truncated PNG")
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        pos += 12 + length
    if header is None:
        raise ImageError("PNG without a header")
    w, h, depth, color, _, _, interlace = header
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(color)
    if depth != 8 or channels is None or interlace:
        raise ImageError("only 8-bit, non-interlaced gray/RGB/RGBA PNG is supported")
    raw = zlib.decompress(b"".join(idat))
    stride = w * channels
    if len(raw) != h * (stride + 1):
        raise ImageError("truncated PNG data")
    rows = np.frombuffer(raw, np.uint8).reshape(h, stride + 1)
    out = np.zeros((h, stride), np.int32)
    prev = np.zeros(stride, np.int32)
    for y in range(h):
        f, line = rows[y, 0], rows[y, 1:].astype(np.int32)
        cur = np.zeros(stride, np.int32)
        if f == 0:
            cur = line
        elif f == 2:
            cur = (line + prev) & 255
        else:
            for x in range(stride):  # sub, average, paeth depend on the pixel to the left
                a = cur[x - channels] if x >= channels else 0
                b = prev[x]
                c = prev[x - channels] if x >= channels else 0
                if f == 1:
                    pred = a
                elif f == 3:
                    pred = (a + b) // 2
                elif f == 4:
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                else:
                    raise ImageError(f"bad PNG filter {f}")
                cur[x] = (line[x] + pred) & 255
        out[y] = cur
        prev = cur
    img = out.reshape(h, w, channels).astype(np.uint8)
    if channels == 2:  # gray + alpha
        img = img[..., 0]
    return img


def write_png(path, img: np.ndarray) -> None:
    """8-bit grayscale PNG, filter 0: enough for tests and examples."""
    img = np.asarray(img, np.uint8)
    h, w = img.shape

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + img[y].tobytes() for y in range(h))
    png = PNG_MAGIC + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)) + \
        chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    Path(path).write_bytes(png)
