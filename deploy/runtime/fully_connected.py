"""FULLY_CONNECTED, int8 (TFLite reference_integer_ops::FullyConnected / FullyConnectedPerChannel).

For each input row r (the input flattened to [rows, depth]) and unit u:
    acc = sum_d (filter[u, d] + weights_offset) * (input[r, d] + input_offset) + bias[u]
then one of the two rescales (docs/int8.md section 3), + output_offset, clamp, int8:
- RESCALE_FLOAT (current LiteRT reference, the default): round_half_away(float64(acc) * effective_scale[u]).
  This is the one kernel that reads a float, because TFLite's does.
- RESCALE_INTEGER (older runtimes): MultiplyByQuantizedMultiplier(acc, multiplier[u], shift[u]).

Rows are processed in blocks of up to 64: the block's inputs are transposed to
[depth][row] so the multiply-accumulate runs along rows (see windows.py).
Blocks of fewer than 4 rows (batch 1) use plain dot products along depth instead.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from edgecnn.deploy.runtime.fixedpoint import multiply_by_quantized_multiplier, wrap_int32
from edgecnn.deploy.runtime.params import RESCALE_FLOAT
from edgecnn.deploy.runtime.windows import accumulate, requantize, store_nhwc

_BLOCK_ROWS = 64
_DOT_ROWS = 4  # below this many rows, dot products along depth beat the row-vectorized layout
_U = np.uint64


@njit(cache=True)
def round_half_away_to_int32(v):
    """C's (int32_t)round(v) for a float64 v: halves away from zero; saturates outside int32.

    |v| - floor(|v|) is exact, so the 0.5 test has no rounding error of its own.
    (Out of int32 range C is undefined; no real layer gets near it.)
    """
    a = abs(v)
    r = np.floor(a)
    if a - r >= 0.5:
        r += 1.0
    if v < 0:
        r = -r
    r = min(max(r, -2147483648.0), 2147483647.0)
    return np.int64(r)


@njit(cache=True)
def _rescale_float(acc, rows, bias, effective_scale, output_offset, act_min, act_max, out, out_start):
    for r in range(rows):
        v = round_half_away_to_int32(np.float64(wrap_int32(np.int64(acc[_U(r)]) + bias)) * effective_scale)
        v += output_offset
        v = min(max(v, act_min), act_max)
        out[_U(out_start + r)] = v


@njit(cache=True)
def _dot_rows(params, weights, bias_data, has_bias, input_data, depth, units, first_row, rows, output_data):
    """TFLite's loop order for a few rows: per row and unit, one dot product along depth."""
    x = np.empty(depth, np.int32)
    for row in range(first_row, first_row + rows):
        for d in range(depth):
            x[d] = np.int32(input_data[_U(row * depth + d)]) + params.input_offset
        for unit in range(units):
            acc = 0  # int64 here; wrapped to int32 below, which equals TFLite's wrapping int32 sum
            start = _U(unit * depth)
            for d in range(depth):
                acc += np.int32(weights[start + _U(d)]) * x[d]
            acc = wrap_int32(acc + (bias_data[unit] if has_bias else 0))
            if params.rescale == RESCALE_FLOAT:
                v = round_half_away_to_int32(np.float64(acc) * params.effective_scale[unit])
            else:
                v = multiply_by_quantized_multiplier(acc, params.output_multiplier[unit], params.output_shift[unit])
            v += params.output_offset
            v = min(max(v, params.activation_min), params.activation_max)
            output_data[_U(row * units + unit)] = v


@njit(cache=True)
def _rows_block(params, weights, bias_data, has_bias, input_data, depth, units, first_row, rows, output_data):
    """Multiply one block of rows by all units; weights may be int8 or offset-adjusted int32."""
    if rows < _DOT_ROWS:
        _dot_rows(params, weights, bias_data, has_bias, input_data, depth, units, first_row, rows, output_data)
        return
    cols = np.empty(depth * rows, np.int32)
    for r in range(rows):
        src = _U((first_row + r) * depth)
        for d in range(depth):
            cols[_U(d * rows + r)] = np.int32(input_data[src + _U(d)]) + params.input_offset
    acc = np.empty(rows, np.int32)
    result = np.empty(units * rows, np.int8)
    for unit in range(units):
        # Overflow: |w + weights_offset| <= 255 and |x + input_offset| <= 255, so each
        # product is below 2^16: the int32 sum is exact for up to 2^15 terms (LeNet-5's
        # largest layer has 400). Beyond that it wraps like TFLite's int32 accumulator.
        accumulate(acc, cols, weights, unit * depth, 1, depth, rows)
        bias = bias_data[unit] if has_bias else 0
        if params.rescale == RESCALE_FLOAT:
            _rescale_float(acc, rows, bias, params.effective_scale[unit], params.output_offset,
                           params.activation_min, params.activation_max, result, unit * rows)
        else:
            requantize(acc, rows, bias, params.output_multiplier[unit], params.output_shift[unit],
                       params.output_offset, params.activation_min, params.activation_max, result, unit * rows)
    store_nhwc(result, units, rows, output_data, first_row * units)


@njit(parallel=True, cache=True)
def fully_connected(params, input_shape, input_data, filter_shape, filter_data, bias_shape, bias_data,
                    output_shape, output_data):  # fmt: skip
    """Shapes: input [..., depth] (any rank, flattened to rows), filter [units, depth], bias [units] or [0]."""
    # Unpack params.
    weights_offset = params.weights_offset

    # Check shapes.
    units, depth = filter_shape
    if depth <= 0 or input_data.size % depth != 0:
        raise ValueError("fully_connected: input size is not a multiple of the filter depth")
    rows = input_data.size // depth
    if output_shape[len(output_shape) - 1] != units or output_data.size != rows * units:
        raise ValueError("fully_connected: output shape does not match rows x units")
    if filter_data.size != units * depth:
        raise ValueError("fully_connected: filter data does not match its shape")
    has_bias = bias_data.size > 0
    if has_bias and (bias_shape[0] != units or bias_data.size != units):
        raise ValueError("fully_connected: bias needs one int32 per unit")
    if (params.output_multiplier.size != units or params.output_shift.size != units
            or params.effective_scale.size != units):  # fmt: skip
        raise ValueError("fully_connected: params need one rescale entry per unit")

    # A per-tensor weights zero point is subtracted from every weight (per-channel ones are 0).
    shifted_weights = np.empty(0, np.int32)
    if weights_offset != 0:
        shifted_weights = np.empty(units * depth, np.int32)
        for i in range(units * depth):
            shifted_weights[i] = np.int32(filter_data[i]) + weights_offset

    # Loops: blocks of rows in parallel; per unit, the depth taps; bias -> rescale -> offset -> clamp -> cast.
    blocks = (rows + _BLOCK_ROWS - 1) // _BLOCK_ROWS
    for block in prange(blocks):
        first_row = block * _BLOCK_ROWS
        count = min(_BLOCK_ROWS, rows - first_row)
        if weights_offset != 0:
            _rows_block(params, shifted_weights, bias_data, has_bias, input_data, depth, units, first_row, count,
                        output_data)
        else:
            _rows_block(params, filter_data, bias_data, has_bias, input_data, depth, units, first_row, count,
                        output_data)
