"""Pixels -> a model's float input, written once for the quantizer, `eval`, `predict` and the device runner.

A model takes uint8 images fitted to its input size (zero-padded, centred:
28x28 MNIST in LeNet-5's 32x32), as float32 pixel / 255, and, where it was
trained that way (PyTorch's usual transforms.Normalize), then (x - mean) / std
per channel. The `.tflite` metadata's `preprocessing` dict records mean and
std, so every consumer computes the same float32 values and quantizes them
with the input's qparams (rules.quantize_input): the int8 input the device
makes from pixels is the one the quantizer evaluated.
"""

from __future__ import annotations

import numpy as np

from edgecnn.errors import ShapeError


def fit_pixels(images: np.ndarray, input_shape) -> np.ndarray:
    """uint8 (N, H, W) or (N, H, W, C) images zero-padded (centred) to the model's (H, W, C), NHWC."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    h, w, c = (int(d) for d in input_shape)
    if images.ndim != 4 or images.shape[3] != c:
        raise ShapeError(f"images of shape {images.shape[1:]} do not fit the model's input {h}x{w}x{c}")
    n, h0, w0, _ = images.shape
    if h0 > h or w0 > w:
        raise ShapeError(f"images are {h0}x{w0}, larger than the model's {h}x{w} input")
    if (h0, w0) == (h, w):
        return images
    top, left = (h - h0) // 2, (w - w0) // 2
    out = np.zeros((n, h, w, c), dtype=images.dtype)
    out[:, top:top + h0, left:left + w0] = images
    return out


def pixels_to_float(pixels: np.ndarray, mean=None, std=None) -> np.ndarray:
    """float32 pixel / 255 (correctly rounded, so exact to float32), then (x - mean) / std in float32.

    `pixels` is NHWC (uint8 or integer values 0..255); mean and std are per channel (or one value).
    """
    x = np.empty(np.shape(pixels), dtype=np.float32)
    np.divide(pixels, np.float32(255), out=x, dtype=np.float32)
    if mean is not None:
        mean, std = np.asarray(mean, dtype=np.float32).ravel(), np.asarray(std, dtype=np.float32).ravel()
        channels = x.shape[-1] if x.ndim else 1
        if mean.size not in (1, channels) or std.size not in (1, channels):
            raise ShapeError(f"the normalisation has {mean.size} mean and {std.size} std values; "
                             f"the input has {channels} channels (give 1 or {channels})")
        x -= mean  # per channel: the last (C) axis of NHWC, R G B for colour
        x /= std
    return x


def normalization(preprocessing) -> tuple[list[float], list[float]] | None:
    """(mean, std) from a metadata `preprocessing` dict; None if it has none."""
    if not isinstance(preprocessing, dict):
        return None
    mean, std = preprocessing.get("mean"), preprocessing.get("std")
    if mean is None and std is None:
        return None
    ok = all(isinstance(v, list) and v and all(isinstance(e, (int, float)) and not isinstance(e, bool)
                                               and np.isfinite(e) for e in v) for v in (mean, std))
    if not ok or len(mean) != len(std) or any(s <= 0 for s in std):
        raise ShapeError("the model's preprocessing 'mean' and 'std' must be lists of finite numbers of one "
                         "length, std > 0")
    return [float(v) for v in mean], [float(v) for v in std]
