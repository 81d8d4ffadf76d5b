"""RESHAPE: TFLite copies the bytes and ignores every quantization parameter."""

from __future__ import annotations

import math

import numpy as np


def reshape(params, input_shape, input_data: np.ndarray, output_shape, output_data: np.ndarray) -> None:
    """output_data[:] = input_data (flat buffers of equal size); the shapes only have to agree in size."""
    if math.prod(input_shape) != math.prod(output_shape) or input_data.size != output_data.size:
        raise ValueError(f"reshape: cannot view {tuple(input_shape)} as {tuple(output_shape)}")
    output_data[:] = input_data
