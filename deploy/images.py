"""Image files for `edgecnn predict`: decoded by Pillow, then fitted to the model's input.

Pillow reads PNG of every kind, JPEG, PGM/PPM, BMP, GIF, TIFF and WebP. What edgecnn adds:
- limits checked before any pixel is decoded (file bytes, pixel count), so a
  small file claiming 20000x20000 pixels costs nothing;
- the corruption checks Pillow skips: every PNG chunk CRC, and PGM samples
  above the header's maxval;
- alpha composited onto a background that contrasts with the strokes, so a
  digit drawn on a transparent canvas does not read as all black;
- polarity: models trained on MNIST expect white strokes on black, while
  paper and drawing apps give black on white (`invert="auto"` detects it);
- MNIST framing for larger images: the strokes' bounding box scaled into a
  20x20 box and placed in 28x28 by centre of mass, as LeCun's MNIST was made.
Colour models (HxWx3 input, e.g. CIFAR-10) get RGB pixels instead (`read_image_rgb`,
`fit_image_rgb`): channel order R, G, B as the file holds it, EXIF rotation applied,
transparency composited onto white, grey files repeated into three channels; no
polarity guessing and no MNIST framing, only zero padding or a letterboxed resize.
`.npy` files are parsed by `deploy.npy` (no pickle, bounded).
"""

from __future__ import annotations

import io
import stat
import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgecnn.errors import EdgecnnError

MAX_FILE_BYTES = 64 << 20
MAX_PIXELS = 6000 * 6000  # ~36 Mpixel: at most a few hundred MB while converting
FORMATS = ("PNG", "JPEG", "PPM", "BMP", "GIF", "TIFF", "WEBP")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MNIST_BOX, MNIST_SIDE = 20, 28


class ImageError(EdgecnnError):
    """An image file is unreadable or in a form edgecnn does not take."""


@dataclass(frozen=True)
class FittedImage:
    """One image as the model will see it, and what was done to get there."""

    pixels: np.ndarray  # uint8 (H, W), white strokes on black; (H, W, 3) RGB for colour models
    inverted: bool
    framing: str  # "as-is", "mnist" or "resize"


def read_image(path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """uint8 grayscale (H, W) of an image file; transparency composited, polarity untouched."""
    return _read(Path(path), max_pixels, channels=1)


def read_image_rgb(path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """uint8 RGB (H, W, 3) of an image file or an HxWx3 (or grey HxW) .npy, for colour models."""
    return _read(Path(path), max_pixels, channels=3)


def _read(path: Path, max_pixels: int, channels: int) -> np.ndarray:
    data = _read_bounded(path)
    if path.suffix.lower() == ".npy" or data[:6] == b"\x93NUMPY":
        from edgecnn.deploy.npy import read_npy_bytes

        return pixels_from_array(read_npy_bytes(data, path.name), path.name, channels=channels)
    try:
        return _decode(data, max_pixels, to_rgb if channels == 3 else to_gray)
    except ImageError as exc:
        raise ImageError(f"{path.name}: {exc}") from None


def pixels_from_array(array: np.ndarray, name: str, channels: int = 1) -> np.ndarray:
    """uint8 (H, W) (channels=1) or (H, W, 3) (channels=3, R G B) from a numeric array of pixels:
    0..255, or floats in 0..1. A grey (H, W) array given for 3 channels is repeated into each."""
    img = np.asarray(array)
    if img.dtype.kind not in "uifb":
        raise ImageError(f"{name}: pixels must be numbers, not {img.dtype}")
    if img.size == 0:
        raise ImageError(f"{name}: the image is empty")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if channels == 3:
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        if img.ndim != 3 or img.shape[2] != 3:
            raise ImageError(f"{name}: expected an RGB image of shape (H, W, 3) (or grey (H, W)), "
                             f"got shape {img.shape}")
    elif img.ndim != 2:
        raise ImageError(f"{name}: expected a 2-D grayscale image, got shape {img.shape}")
    img = img.astype(np.float64)
    if not np.all(np.isfinite(img)):
        raise ImageError(f"{name}: the image holds NaN or infinite values")
    if img.min() < 0 or img.max() > 255:
        raise ImageError(f"{name}: pixel values must lie in 0..1 or 0..255")
    if array.dtype.kind == "f" and img.max() <= 1.0:
        img = img * 255.0
    return np.floor(img + 0.5).astype(np.uint8)


def _read_bounded(path: Path) -> bytes:
    """The file's bytes; a FIFO or device is refused before opening (opening a FIFO waits for a writer)."""
    info = path.stat()
    if not stat.S_ISREG(info.st_mode):
        raise ImageError(f"{path.name}: not a regular file")
    if info.st_size > MAX_FILE_BYTES:
        raise ImageError(f"{path.name}: {info.st_size:,} bytes is more than the {MAX_FILE_BYTES:,} edgecnn reads")
    with open(path, "rb") as f:
        data = f.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:  # grew since the stat
        raise ImageError(f"{path.name}: more than the {MAX_FILE_BYTES:,} bytes edgecnn reads")
    return data


def _decode(data: bytes, max_pixels: int, convert) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    if data.startswith(PNG_MAGIC):
        check_png_crcs(data)
    elif data[:2] in (b"P2", b"P5"):
        check_pgm_samples(data)
    with warnings.catch_warnings(record=True):  # Pillow's warnings (corrupt EXIF, ...) must not reach stderr
        warnings.simplefilter("always")
        try:
            with Image.open(io.BytesIO(data), formats=FORMATS) as im:
                w, h = im.size
                if w * h > max_pixels or w <= 0 or h <= 0:
                    raise ImageError(f"{w}x{h} pixels is more than the {max_pixels:,} edgecnn reads")
                im.load()
                return convert(im)
        except UnidentifiedImageError:
            raise ImageError("not an image edgecnn reads (PNG, JPEG, PGM, BMP, GIF, TIFF, WebP or .npy)") from None
        except Image.DecompressionBombError as exc:
            raise ImageError(f"refused as a decompression bomb ({exc})") from None
        except (OSError, ValueError, SyntaxError, EOFError, struct.error, zlib.error, IndexError,
                TypeError, KeyError, OverflowError, MemoryError) as exc:
            # Pillow's plugins raise all of these on malformed files.
            raise ImageError(f"corrupt image ({type(exc).__name__}: {_first_line(exc)})") from None


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else "no details"


def check_png_crcs(data: bytes) -> None:
    """Every PNG chunk's CRC-32, which Pillow does not verify for image data."""
    pos = len(PNG_MAGIC)
    while pos + 12 <= len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        end = pos + 12 + length
        if end > len(data):
            raise ImageError("truncated PNG: a chunk runs past the end of the file")
        kind_and_body = data[pos + 4:end - 4]
        (crc,) = struct.unpack(">I", data[end - 4:end])
        if zlib.crc32(kind_and_body) & 0xFFFFFFFF != crc:
            raise ImageError(f"corrupt PNG: bad CRC in the {kind_and_body[:4].decode('latin-1')!r} chunk")
        if kind_and_body[:4] == b"IEND":
            return
        pos = end
    raise ImageError("truncated PNG: no IEND chunk")


def check_pgm_samples(data: bytes) -> None:
    """Binary PGM samples above the header's maxval: Pillow clips them silently."""
    if data[:2] != b"P5":
        return  # Pillow refuses plain (P2) samples above maxval itself
    tokens, pos = [], 2
    while len(tokens) < 3:
        while pos < len(data) and data[pos:pos + 1].isspace():
            pos += 1
        if data[pos:pos + 1] == b"#":
            pos = data.find(b"\n", pos)
            if pos < 0:
                return
            continue
        start = pos
        while pos < len(data) and data[pos:pos + 1].isdigit():
            pos += 1
        if start == pos or pos - start > 9:
            return  # a malformed header: Pillow gives the error
        tokens.append(int(data[start:pos]))
    w, h, maxval = tokens
    if maxval > 255 or w * h == 0:
        return
    count = min(w * h, len(data) - pos - 1)
    if count <= 0:
        return  # no samples: Pillow reports the truncation
    samples = np.frombuffer(data, np.uint8, count=count, offset=pos + 1)
    if int(samples.max()) > maxval:
        raise ImageError(f"corrupt PGM: a sample of {int(samples.max())} is above maxval {maxval}")


HIGH_DEPTH_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
BLOCK_PIXELS = 1 << 20  # pixels converted to float64 at once: a 36-Mpixel image stays within a few hundred MB


def row_blocks(height: int, width: int) -> list[slice]:
    """Row ranges of about BLOCK_PIXELS pixels: float temporaries of a whole large image would take GBs."""
    step = max(1, BLOCK_PIXELS // max(width, 1))
    return [slice(top, min(height, top + step)) for top in range(0, height, step)]


def has_alpha(im) -> bool:
    return im.mode in ALPHA_MODES or "transparency" in im.info


def to_gray(im) -> np.ndarray:
    """uint8 (H, W) from any Pillow image: 16-bit scaled, colour to ITU-R 601 luma, alpha composited."""
    if im.mode in HIGH_DEPTH_MODES:
        a = np.asarray(im)
        if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
            raise ImageError("the image holds NaN or infinite values")
        peak = float(a.max()) if a.size else 0.0
        top = 65535.0 if im.mode.startswith("I;16") or peak > 255 else 255.0
        if im.mode == "F" and peak <= 1.0:
            top = 1.0
        out = np.empty(a.shape, np.uint8)
        for rows in row_blocks(*a.shape):
            out[rows] = np.clip(np.floor(a[rows].astype(np.float64) * (255.0 / top) + 0.5), 0, 255)
        return out
    if not has_alpha(im):
        return np.asarray(im.convert("L"), dtype=np.uint8)
    rgba = np.asarray(im.convert("RGBA"))
    blocks = row_blocks(*rgba.shape[:2])
    weight = ink = 0.0
    for rows in blocks:
        gray, alpha = _gray_and_alpha(rgba[rows])
        weight += alpha.sum()
        ink += (gray * alpha).sum()
    background = contrasting_background(ink / weight if weight > 0 else 0.0)
    out = np.empty(rgba.shape[:2], np.uint8)
    for rows in blocks:
        gray, alpha = _gray_and_alpha(rgba[rows])
        out[rows] = np.floor(gray * alpha + background * (1.0 - alpha) + 0.5)
    return out


def _gray_and_alpha(rgba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    part = rgba.astype(np.float64)
    return part[..., :3] @ np.array([0.299, 0.587, 0.114]), part[..., 3] / 255.0


def to_rgb(im) -> np.ndarray:
    """uint8 (H, W, 3) R, G, B from any Pillow image: EXIF rotation applied, 16-bit and float grey scaled
    as `to_gray` does, then repeated; palette, CMYK and YCbCr converted; alpha composited onto white."""
    from PIL import ImageOps

    im = ImageOps.exif_transpose(im)  # a phone photo stored sideways is shown upright; so the model sees it
    if im.mode in HIGH_DEPTH_MODES:
        return np.repeat(to_gray(im)[..., None], 3, axis=2)
    if not has_alpha(im):
        return np.asarray(im.convert("RGB"), dtype=np.uint8)
    rgba = np.asarray(im.convert("RGBA"))
    out = np.empty((*rgba.shape[:2], 3), np.uint8)
    for rows in row_blocks(*rgba.shape[:2]):
        part = rgba[rows].astype(np.float64)
        alpha = part[..., 3:] / 255.0
        out[rows] = np.floor(part[..., :3] * alpha + 255.0 * (1.0 - alpha) + 0.5)
    return out


def fit_image_rgb(img: np.ndarray, height: int, width: int, invert: str = "auto",
                  framing: str = "auto") -> FittedImage:
    """Size for a (height, width, 3) colour model input: as-is (zero-padded, centred, by `fit_pixels`) when
    it fits, else scaled to fit keeping the aspect ratio (Lanczos) and centred on black. Colours are
    inverted only with invert="yes"; MNIST framing is for digit models and is refused."""
    _check_invert(invert)
    if framing == "mnist":
        raise ImageError("--framing mnist is for one-channel digit models; a colour model takes auto or resize")
    flip = invert == "yes"
    if flip:
        img = 255 - img
    if img.shape[0] <= height and img.shape[1] <= width:
        return FittedImage(img, flip, "as-is")
    return FittedImage(resize_to_fit(img, height, width), flip, "resize")


def _check_invert(invert: str) -> None:
    if invert not in ("auto", "yes", "no"):
        raise ImageError(f"invert must be auto, yes or no, not {invert!r}")


def contrasting_background(ink: float) -> float:
    """White behind dark ink (mean < 128), black behind light ink."""
    return 255.0 if ink < 128 else 0.0


def light_background(img: np.ndarray) -> bool:
    """True when the border is mostly light: the strokes are dark, as on paper."""
    border = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])
    return float(np.median(border)) > 127


def fit_image(img: np.ndarray, height: int, width: int, invert: str = "auto", framing: str = "auto",
              content: tuple[int, int] | None = None) -> FittedImage:
    """Polarity and size for a (height, width) single-channel model input.

    Images no larger than the model's input are only zero-padded (centred), so a
    28x28 MNIST digit stays bit-identical. Larger ones are framed: `mnist` puts
    the strokes in a 20x20 box centred by mass in 28x28 (`content`, the input
    minus the model's padding); `resize` scales the whole image to fit `content`.
    """
    _check_invert(invert)
    flip = invert == "yes" or (invert == "auto" and light_background(img))
    if flip:
        img = 255 - img
    ch, cw = content or (height, width)
    if img.shape[0] <= height and img.shape[1] <= width:
        return FittedImage(img, flip, "as-is")
    if framing == "auto":
        framing = "mnist" if (ch, cw) == (MNIST_SIDE, MNIST_SIDE) else "resize"
    if framing == "mnist":
        return FittedImage(mnist_frame(img, MNIST_BOX * ch // MNIST_SIDE, ch), flip, "mnist")
    return FittedImage(resize_to_fit(img, ch, cw), flip, "resize")


def resize_to_fit(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """Scale (keeping the aspect ratio, Lanczos) to fit height x width, centred on black; grey or RGB."""
    from PIL import Image

    scale = min(height / img.shape[0], width / img.shape[1])
    h, w = max(1, round(img.shape[0] * scale)), max(1, round(img.shape[1] * scale))
    small = np.asarray(Image.fromarray(img).resize((w, h), Image.Resampling.LANCZOS))
    out = np.zeros((height, width, *img.shape[2:]), np.uint8)
    top, left = (height - h) // 2, (width - w) // 2
    out[top:top + h, left:left + w] = small
    return out


def mnist_frame(img: np.ndarray, box: int = MNIST_BOX, side: int = MNIST_SIDE) -> np.ndarray:
    """The strokes' bounding box scaled into box x box, placed in side x side with the centre of mass in the middle."""
    mask = img >= max(1, int(img.max()) // 5)  # faint noise (JPEG, scanner grey) stays out of the box
    if not mask.any():
        return resize_to_fit(img, side, side)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    crop = img[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    digit = resize_to_fit(crop, box, box).astype(np.float64)
    ys, xs = np.nonzero(digit)
    mass = digit[ys, xs]
    cy, cx = (ys * mass).sum() / mass.sum(), (xs * mass).sum() / mass.sum()
    top = int(np.clip(round(side / 2 - cy), 0, side - box))  # MNIST digits: mass at (14.0, 14.0)
    left = int(np.clip(round(side / 2 - cx), 0, side - box))
    out = np.zeros((side, side), np.uint8)
    out[top:top + box, left:left + box] = digit.astype(np.uint8)
    return out


def write_png(path, img: np.ndarray) -> None:
    """Write a grayscale (H, W) or RGB/RGBA (H, W, C) uint8 PNG, for tests and examples."""
    from PIL import Image

    from edgecnn.fileio import atomic_path

    with atomic_path(path) as tmp:
        Image.fromarray(np.asarray(img, np.uint8)).save(tmp, format="PNG")
