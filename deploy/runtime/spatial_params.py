"""Params records of the resize and space/batch ops (kernels: spatial_ops.py).

Kept apart from the kernels so that the op registry, the `.tflite` reader and
the exporters, which build and read these records, never import Numba (the
light device install has none).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class ResizeNearestParams(NamedTuple):
    in_y: np.ndarray  # int32 [out_h]: the source row of each output row
    in_x: np.ndarray  # int32 [out_w]: the source column of each output column
    align_corners: bool  # the options, for the naive reference (the tables already apply them)
    half_pixel_centers: bool


class ResizeBilinearParams(NamedTuple):
    y0: np.ndarray  # int32 [out_h]: lower source row
    y1: np.ndarray  # int32 [out_h]: upper source row
    y_frac: np.ndarray  # int32 [out_h]: input_y - 1024 * y0, in (-1024, 1024); weights (1024 - f, f)
    x0: np.ndarray  # int32 [out_w]
    x1: np.ndarray
    x_frac: np.ndarray
    align_corners: bool
    half_pixel_centers: bool


class SpaceToBatchParams(NamedTuple):
    block_height: int
    block_width: int  # 1 for a rank-3 input
    pad_top: int
    pad_left: int  # 0 for a rank-3 input
    pad_value: int  # the output zero point (what memset writes in the reference)
    input_batch: int  # the input tensor's static batch: rows per image


class BatchToSpaceParams(NamedTuple):
    block_height: int
    block_width: int
    crop_top: int
    crop_left: int
    output_batch: int  # the output tensor's static batch: rows per image
