"""Colour image decoding for 3-channel models: R, G, B order from every file kind, EXIF rotation, alpha on white,
grey repeated, sizes fitted; per-channel normalisation checked against the input's channels."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from edgecnn.deploy.images import ImageError, fit_image_rgb, pixels_from_array, read_image_rgb
from edgecnn.errors import ShapeError
from edgecnn.int8.preprocessing import fit_pixels, pixels_to_float


@pytest.fixture
def rgb():
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (12, 20, 3), dtype=np.uint8)
    img[0, 0] = [255, 0, 0]  # top-left pure red: channel 0 is R
    return img


def test_png_ppm_bmp_tiff_webp_give_the_same_rgb(tmp_path, rgb):
    for fmt, ext, kw in [("PNG", "png", {}), ("PPM", "ppm", {}), ("BMP", "bmp", {}), ("TIFF", "tiff", {}),
                         ("WEBP", "webp", {"lossless": True})]:
        Image.fromarray(rgb).save(tmp_path / f"x.{ext}", format=fmt, **kw)
        got = read_image_rgb(tmp_path / f"x.{ext}")
        assert got.dtype == np.uint8 and got.shape == (12, 20, 3), fmt
        np.testing.assert_array_equal(got, rgb, err_msg=fmt)
    assert list(read_image_rgb(tmp_path / "x.png")[0, 0]) == [255, 0, 0]


def test_palette_grey_16bit_and_cmyk(tmp_path, rgb):
    Image.fromarray(rgb).quantize(16).save(tmp_path / "p.png")
    pal = Image.open(tmp_path / "p.png")
    np.testing.assert_array_equal(read_image_rgb(tmp_path / "p.png"), np.asarray(pal.convert("RGB")))
    grey = rgb[..., 1]
    Image.fromarray(grey).save(tmp_path / "g.png")
    np.testing.assert_array_equal(read_image_rgb(tmp_path / "g.png"), np.repeat(grey[..., None], 3, axis=2))
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "g16.png")  # 16-bit grey: scaled to 8 bits
    np.testing.assert_array_equal(read_image_rgb(tmp_path / "g16.png"), np.repeat(grey[..., None], 3, axis=2))
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "c.jpg", quality=100)
    cmyk = read_image_rgb(tmp_path / "c.jpg")
    assert cmyk.shape == (12, 20, 3) and np.abs(cmyk.astype(int) - rgb).mean() < 12


def test_alpha_lands_on_white(tmp_path, rgb):
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    rgba[0, :, 3] = 0  # transparent top row
    rgba[1, :, 3] = 128
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    got = read_image_rgb(tmp_path / "a.png").astype(int)
    assert (got[0] == 255).all()
    expected_row1 = np.floor(rgb[1] * (128 / 255) + 255 * (1 - 128 / 255) + 0.5)
    np.testing.assert_array_equal(got[1], expected_row1)
    np.testing.assert_array_equal(got[2:], rgb[2:])


def test_exif_orientation_is_applied(tmp_path, rgb):
    im = Image.fromarray(rgb)
    exif = im.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to view"
    buf = io.BytesIO()
    im.save(buf, format="PNG", exif=exif)
    (tmp_path / "o.png").write_bytes(buf.getvalue())
    got = read_image_rgb(tmp_path / "o.png")
    np.testing.assert_array_equal(got, np.rot90(rgb, k=-1))


@pytest.mark.parametrize("array,expected", [
    (np.full((4, 5, 3), 7, np.uint8), np.full((4, 5, 3), 7, np.uint8)),
    (np.full((4, 5, 3), 0.5, np.float32), np.full((4, 5, 3), 128, np.uint8)),
    (np.full((4, 5), 9, np.uint8), np.full((4, 5, 3), 9, np.uint8)),
    (np.full((4, 5, 1), 9, np.uint8), np.full((4, 5, 3), 9, np.uint8)),
])
def test_npy_arrays(array, expected):
    np.testing.assert_array_equal(pixels_from_array(array, "x.npy", channels=3), expected)


@pytest.mark.parametrize("array", [np.zeros((4, 5, 4), np.uint8), np.zeros((2, 4, 5, 3), np.uint8),
                                   np.full((4, 5, 3), np.nan), np.full((4, 5, 3), -1)])
def test_bad_npy_arrays(array):
    with pytest.raises(ImageError, match="x.npy"):
        pixels_from_array(array, "x.npy", channels=3)


def test_fit_pads_small_and_scales_large_images(rgb):
    small = fit_image_rgb(rgb, 32, 32)
    assert small.framing == "as-is" and not small.inverted
    padded = fit_pixels(small.pixels[None], (32, 32, 3))[0]
    np.testing.assert_array_equal(padded[10:22, 6:26], rgb)
    assert padded[:10].sum() == 0
    big = fit_image_rgb(np.kron(rgb, np.ones((4, 4, 1), np.uint8)), 32, 32)  # 48x80 -> 19x32 in 32x32
    assert big.framing == "resize" and big.pixels.shape == (32, 32, 3)
    assert big.pixels[:6].sum() == 0 and big.pixels[7:25].sum() > 0
    assert fit_image_rgb(rgb, 32, 32, invert="yes").pixels[0, 0].tolist() == [0, 255, 255]
    assert fit_image_rgb(np.full_like(rgb, 250), 32, 32).inverted is False  # light images stay as they are
    with pytest.raises(ImageError, match="one-channel"):
        fit_image_rgb(rgb, 32, 32, framing="mnist")


def test_normalisation_per_channel_and_channel_count():
    px = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(1, 2, 3, 3)
    x = pixels_to_float(px, [0.1, 0.2, 0.3], [0.5, 0.25, 2.0])
    for c, (m, s) in enumerate([(0.1, 0.5), (0.2, 0.25), (0.3, 2.0)]):
        np.testing.assert_array_equal(
            x[..., c], (px[..., c].astype(np.float32) / np.float32(255) - np.float32(m)) / np.float32(s))
    np.testing.assert_array_equal(pixels_to_float(px, [0.5], [0.25]), pixels_to_float(px, [0.5] * 3, [0.25] * 3))
    with pytest.raises(ShapeError, match="3 mean .* 1 channels"):
        pixels_to_float(px[..., :1], [0.1, 0.2, 0.3], [1, 1, 1])
