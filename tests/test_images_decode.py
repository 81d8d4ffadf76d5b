"""Image decoding for `edgecnn predict`: every kind of PNG, JPEG, PGM; alpha, polarity, framing; limits."""

from __future__ import annotations

import io
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from edgecnn.deploy.images import (ImageError, fit_image, light_background, mnist_frame, read_image,
                                   write_png)


def digit(side=28, seed=0) -> np.ndarray:
    """A white blob 'stroke' on black, off-centre, like an MNIST digit."""
    img = np.zeros((side, side), np.uint8)
    s = side // 28
    img[6 * s:20 * s, 10 * s:14 * s] = 255
    img[6 * s:9 * s, 10 * s:20 * s] = 200
    return img


def save(im: Image.Image, tmp_path, name, **kw):
    p = tmp_path / name
    im.save(p, **kw)
    return p


@pytest.mark.parametrize("mode", ["L", "RGB", "P", "I;16", "LA"])
def test_every_png_kind_reads_as_the_same_gray(tmp_path, mode):
    img = digit()
    if mode == "I;16":
        im = Image.fromarray(img.astype(np.uint16) * 257)
    elif mode == "LA":
        im = Image.fromarray(np.stack([img, np.full_like(img, 255)], -1), "LA")
    else:
        im = Image.fromarray(img).convert(mode)
    np.testing.assert_array_equal(read_image(save(im, tmp_path, f"{mode.replace(';', '')}.png")), img)


def test_interlaced_png_and_pgm_kinds(tmp_path):
    img = digit()
    np.testing.assert_array_equal(read_image(save(Image.fromarray(img), tmp_path, "i.png", interlace=1)), img)
    p5 = tmp_path / "b.pgm"
    p5.write_bytes(b"P5\n# comment\n28 28\n255\n" + img.tobytes())
    np.testing.assert_array_equal(read_image(p5), img)
    p2 = tmp_path / "a.pgm"
    p2.write_bytes(b"P2\n28 28\n255\n" + " ".join(map(str, img.ravel())).encode() + b"\n")
    np.testing.assert_array_equal(read_image(p2), img)


def test_jpeg_reads_close(tmp_path):
    img = digit(56)
    got = read_image(save(Image.fromarray(img).convert("RGB"), tmp_path, "d.jpg", quality=95))
    assert got.shape == img.shape and np.abs(got.astype(int) - img).mean() < 6


def test_transparent_background_is_not_black(tmp_path):
    """Black ink on a transparent canvas (what drawing apps save): composited onto white."""
    img = digit()
    rgba = np.zeros((28, 28, 4), np.uint8)
    rgba[..., 3] = img  # ink where the digit is, fully transparent elsewhere; RGB all black
    gray = read_image(save(Image.fromarray(rgba, "RGBA"), tmp_path, "t.png"))
    np.testing.assert_array_equal(gray, 255 - img)
    assert light_background(gray)


def test_white_ink_on_transparent_composites_onto_black(tmp_path):
    img = digit()
    rgba = np.zeros((28, 28, 4), np.uint8)
    rgba[..., :3] = 255
    rgba[..., 3] = img
    np.testing.assert_array_equal(read_image(save(Image.fromarray(rgba, "RGBA"), tmp_path, "w.png")), img)


def test_polarity():
    img = digit()
    auto = fit_image(255 - img, 32, 32, "auto", content=(28, 28))
    assert auto.inverted and np.array_equal(auto.pixels, img)
    assert not fit_image(img, 32, 32, "auto").inverted
    assert fit_image(img, 32, 32, "yes").inverted
    assert not fit_image(255 - img, 32, 32, "no").inverted
    with pytest.raises(ImageError):
        fit_image(img, 32, 32, "maybe")


def test_small_images_are_only_padded():
    img = digit()
    fitted = fit_image(img, 32, 32, content=(28, 28))
    assert fitted.framing == "as-is" and fitted.pixels is img


@pytest.mark.parametrize("side", [64, 128, 280])
def test_large_images_get_mnist_framing(side):
    fitted = fit_image(digit(side), 32, 32, content=(28, 28))
    assert fitted.framing == "mnist" and fitted.pixels.shape == (28, 28)
    px = fitted.pixels.astype(float)
    rows, cols = np.nonzero(px)
    assert rows.max() - rows.min() + 1 <= 20 and cols.max() - cols.min() + 1 <= 20  # the 20x20 box
    ys, xs = np.mgrid[0:28, 0:28]
    cy, cx = (px * ys).sum() / px.sum(), (px * xs).sum() / px.sum()
    assert abs(cy - 14) <= 1 and abs(cx - 14) <= 1  # centred by mass, as MNIST


def test_resize_framing_for_non_digit_inputs():
    fitted = fit_image(digit(100), 40, 40, framing="auto", content=(40, 40))
    assert fitted.framing == "resize" and fitted.pixels.shape == (40, 40)


def test_blank_image_does_not_crash():
    assert mnist_frame(np.zeros((100, 100), np.uint8)).shape == (28, 28)


def _png(width: int, height: int, idat: bytes, depth=8, color=0) -> bytes:
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def test_huge_dimensions_refused_before_decoding(tmp_path):
    """A few hundred bytes claiming 20000x20000 pixels: refused at once, no memory spent."""
    p = tmp_path / "bomb.png"
    p.write_bytes(_png(20000, 20000, zlib.compress(b"\x00" * 20001 * 4)))
    t0 = time.perf_counter()
    with pytest.raises(ImageError, match="bomb.png: .*(20000x20000|bomb)"):
        read_image(p)
    assert time.perf_counter() - t0 < 1.0


def test_png_crc_is_checked(tmp_path):
    good = io.BytesIO()
    Image.fromarray(digit()).save(good, format="PNG")
    data = bytearray(good.getvalue())
    idat = data.index(b"IDAT")
    data[idat + 10] ^= 0x01  # one flipped bit inside the compressed pixels
    p = tmp_path / "flip.png"
    p.write_bytes(bytes(data))
    with pytest.raises(ImageError, match="CRC"):
        read_image(p)


@pytest.mark.parametrize("content, needle", [
    (b"P5\n2 2\n100\n\x00\x32\x64\xff", "maxval"),          # a sample above maxval
    (b"P5\n2 -2\n255\n\x00\x00\x00\x00", "h.pgm"),          # negative height
    (b"P2\n2 2\n255\n0 1 2 99999999999999999999999\n", "h.pgm"),  # a huge value
    (b"P2\n2 2\n100\n0 50 100 200\n", "h.pgm"),             # plain sample above maxval
    (b"P5\n3000000 3000000\n255\n\x00", "h.pgm"),           # huge claimed size
])
def test_bad_pgm(tmp_path, content, needle):
    p = tmp_path / "h.pgm"
    p.write_bytes(content)
    with pytest.raises(ImageError, match=needle):
        read_image(p)


def test_write_png_round_trip(tmp_path):
    for img in (digit(), np.stack([digit()] * 3, -1)):
        write_png(tmp_path / "x.png", img)
        np.testing.assert_array_equal(read_image(tmp_path / "x.png"), digit())
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]
