"""Plain-Python references for QUANTIZE and DEQUANTIZE, sharing no arithmetic with quantize_ops.py.

- float32 -> int8/uint8 is `edgecnn.int8.rules.quantize_input`, the one copy
  of TFLite's AffineQuantize rule;
- requantize uses Python ints and the exact-Fraction MultiplyByQuantizedMultiplier of naive.py;
- dequantize forms the product in Python floats (exact, see quantize_ops) and rounds it to float32 once.

Same arguments as the kernels, without the output data; each returns the output array.
"""

from __future__ import annotations

import numpy as np

from edgecnn.deploy.runtime.naive import clamp, multiply_by_quantized_multiplier
from edgecnn.deploy.runtime.quantize_params import AffineQuantizeParams
from edgecnn.int8.rules import quantize_input


def quantize(params, input_shape, input_data, output_shape):
    if isinstance(params, AffineQuantizeParams):
        x = np.asarray(input_data, dtype=np.float32)
        q = quantize_input(x, np.float32(params.scale), params.zero_point, params.quantized_min, params.quantized_max)
        return np.asarray(q).reshape(output_shape)
    dtype = np.int8 if params.quantized_min < 0 else np.uint8
    out = [
        clamp(multiply_by_quantized_multiplier(int(v) + params.input_offset, params.output_multiplier,
                                               params.output_shift) + params.output_offset,
              params.quantized_min, params.quantized_max)
        for v in np.asarray(input_data).reshape(-1).tolist()
    ]  # fmt: skip
    return np.array(out, dtype=dtype).reshape(output_shape)


def dequantize(params, input_shape, input_data, output_shape):
    scale = float(np.float32(params.scale))
    with np.errstate(over="ignore"):  # a product beyond float32 is inf, as in C
        values = np.asarray(input_data).reshape(-1).tolist()
        out = [np.float32(scale * float(int(v) - params.zero_point)) for v in values]
    return np.array(out, dtype=np.float32).reshape(output_shape)
