"""LOGISTIC and TANH tables: TFLite's int8 kernels are lookups into 256 entries built in float32.

TFLite's int8 reference kernels are not fixed-point code: at prepare time
they evaluate the float32 function at every int8 input and round. The table
is built here in NumPy float32 (never in Numba, whose float math may differ),
so preparing a model needs no Numba.
"""

from __future__ import annotations

import numpy as np

from edgecnn.int8.rules import round_half_away


def _lookup_table(transform, input_scale, input_zero_point, output_scale, output_zero_point) -> np.ndarray:
    """table[v + 128] for v in -128..127, computed as TFLite's LUTPopulate does, in float32.

    dq = in_s * float32(v - in_zp); t = transform(dq); r = roundf(t * (1/out_s));
    entry = clamp(int(r + out_zp), -128, 127).
    """
    values = np.arange(-128, 128, dtype=np.int32)
    dequantized = np.float32(input_scale) * (values - np.int32(input_zero_point)).astype(np.float32)
    with np.errstate(over="ignore"):  # exp(-dq) overflows to inf for very negative inputs, as in C
        transformed = transform(dequantized).astype(np.float32)
    inverse_scale = np.float32(1.0) / np.float32(output_scale)
    rescaled = round_half_away((transformed * inverse_scale).astype(np.float32)).astype(np.float32)
    quantized = (rescaled + np.float32(output_zero_point)).astype(np.float64)
    return np.clip(quantized, -128, 127).astype(np.int8)


def logistic_table(input_scale, input_zero_point, output_scale, output_zero_point) -> np.ndarray:
    """Table for LOGISTIC: 1 / (1 + expf(-x)) in float32.

    >>> t = logistic_table(np.float32(0.1), 3, np.float32(1 / 256), -128)
    >>> int(t[13 + 128]), int(t[-7 + 128]), int(t[127 + 128])
    (59, -59, 127)
    """
    one = np.float32(1.0)
    return _lookup_table(lambda x: one / (one + np.exp(-x)), input_scale, input_zero_point, output_scale,
                         output_zero_point)  # fmt: skip


def tanh_table(input_scale, input_zero_point, output_scale, output_zero_point) -> np.ndarray:
    """Table for TANH: tanhf(x) in float32.

    >>> t = tanh_table(np.float32(0.1), 3, np.float32(1 / 128), 0)
    >>> int(t[13 + 128]), int(t[-7 + 128])
    (97, -97)
    """
    return _lookup_table(np.tanh, input_scale, input_zero_point, output_scale, output_zero_point)
