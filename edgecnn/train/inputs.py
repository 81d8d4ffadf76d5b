"""Float model input from raw uint8 images, per architecture.

LeNets keep their historical input: 28x28 digits zero-padded to 32x32x1. Every
other architecture takes the dataset's own shape (28x28x1 for MNIST, 32x32x3
for CIFAR-10); both are pixel / 255 in float32, which the int8 input
(scale 1/255, zero point -128) represents exactly.
"""

from __future__ import annotations

import numpy as np

from edgecnn.errors import ShapeError

PADDED_TO_32 = ("lenet5", "lenet5-classic")


def float_input(images: np.ndarray) -> np.ndarray:
    """float32 NHWC pixel / 255 from uint8 (N,H,W) grey or (N,H,W,C) colour images, unpadded."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim not in (3, 4):
        raise ShapeError(f"images must be uint8 (N,H,W) or (N,H,W,C), got {images.dtype} {images.shape}")
    if images.ndim == 3:
        images = images[..., None]
    out = np.empty(images.shape, dtype=np.float32)
    # a float32 divide is correctly rounded, so this equals float32(pixel) / 255 exactly
    np.divide(images, np.float32(255), out=out, dtype=np.float32)
    return out


def model_input(arch: str, images: np.ndarray) -> np.ndarray:
    """The float input `arch` trains on: LeNets pad grey images to 32x32, the rest take them as they are."""
    if arch in PADDED_TO_32:
        from edgecnn.data.datasets import lenet_input

        return lenet_input(images)
    return float_input(images)
