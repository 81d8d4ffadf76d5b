"""ADD, SUB and MUL, int8, with TFLite's broadcasting (reference_integer_ops add.h / mul.h, reference_ops sub.h).

One params record (`BinaryParams` in elementwise_params.py, TFLite's ArithmeticParams for the 8-bit
path) and one loop serve the three ops; `op` picks the per-element formula:

- ADD / SUB: both inputs are brought to a common scale, 2^20 times finer
  than twice the larger input scale: (q - zp) << 20, then a multiplier
  <= 1/2 each (SRDHM and a rounding right shift). The two int32 values are
  added (or subtracted), then rescaled to the output with a multiplier < 1.
- MUL: (q1 - zp1) * (q2 - zp2), then one MultiplyByQuantizedMultiplier
  (the multiplier may be >= 1: a left shift first, wrapping like TFLite's
  int32 code).

Broadcasting follows numpy/TFLite: shapes are right-aligned and padded with
ones to six dimensions; an input dimension of 1 repeats along the output's.
The static shapes live in the params (a rank-0 constant has no shape tuple
Numba could iterate); at run time the axis holding the output's batch is
multiplied by the number of images, for the output and for every input fed
at run time (prepare guarantees constants are 1 along it). The kernel the
registry names is a plain-Python entry point that drops the shape tuples
and calls one jitted loop, so no combination of ranks compiles anew.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from edgecnn.deploy.runtime.elementwise_params import MAX_RANK, OP_MUL, OP_SUB
from edgecnn.deploy.runtime.fixedpoint import multiply_by_quantized_multiplier


@njit(cache=True)
def _element(params, x, y):
    """One int8 output from two raw int8 inputs: offsets, rescaling, output offset and clamp."""
    a = params.input1_offset + np.int64(x)  # in [-255, 255]
    b = params.input2_offset + np.int64(y)  # in [-255, 255]
    if params.op == OP_MUL:
        # |a * b| <= 65025 < 2^16; the multiplier's left shift wraps like TFLite's int32 code.
        raw = multiply_by_quantized_multiplier(a * b, params.output_multiplier, params.output_shift)
    else:
        # |a| << 20 < 2^28: fits an int32. Each multiplier is <= 1/2, so |scaled| <= 2^27.
        scaled_a = multiply_by_quantized_multiplier(a << params.left_shift, params.input1_multiplier,
                                                    params.input1_shift)  # fmt: skip
        scaled_b = multiply_by_quantized_multiplier(b << params.left_shift, params.input2_multiplier,
                                                    params.input2_shift)  # fmt: skip
        # |sum| <= 2^28: fits an int32.
        total = scaled_a - scaled_b if params.op == OP_SUB else scaled_a + scaled_b
        raw = multiply_by_quantized_multiplier(total, params.output_multiplier, params.output_shift)
    value = raw + params.output_offset
    return min(max(value, params.activation_min), params.activation_max)


@njit(cache=True)
def _strides(dims, output_dims):
    """Element strides of a row-major tensor of `dims` read along `output_dims`: 0 where it is broadcast."""
    strides = np.zeros(MAX_RANK, dtype=np.int64)
    step = 1
    for axis in range(MAX_RANK - 1, -1, -1):
        strides[axis] = 0 if dims[axis] == 1 and output_dims[axis] != 1 else step
        step *= dims[axis]
    return strides


@njit(cache=True)
def _fuse_dims(out_dims, dims1, dims2):
    """The same broadcast over fewer, longer dimensions (TFLite fuses loops the same way).

    Neighbouring output dimensions merge when each input is either full
    along both or broadcast along both; dimensions of 1 merge with anything.
    [N, H, W, C] + [1, 1, 1, C] becomes [N*H*W, C] + [1, C]: one long row
    loop instead of four nested ones. Results are right-aligned, padded with 1.
    """
    fused_out = np.ones(MAX_RANK, dtype=np.int64)
    fused1 = np.ones(MAX_RANK, dtype=np.int64)
    fused2 = np.ones(MAX_RANK, dtype=np.int64)
    group = MAX_RANK  # index of the group being built; MAX_RANK: none yet
    for axis in range(MAX_RANK - 1, -1, -1):
        d = out_dims[axis]
        if d == 1:
            continue
        full1, full2 = dims1[axis] == d, dims2[axis] == d
        if group == MAX_RANK or (fused1[group] != 1) != full1 or (fused2[group] != 1) != full2:
            group -= 1
        fused_out[group] *= d
        if full1:
            fused1[group] *= d
        if full2:
            fused2[group] *= d
    return fused_out, fused1, fused2


@njit(cache=True)
def _row_offsets(row, out_dims, strides1, strides2):
    """Where output row `row` (a run of the innermost dimension) starts in each input."""
    base1, base2, rest = 0, 0, row
    for axis in range(MAX_RANK - 2, -1, -1):
        if out_dims[axis] == 1:
            continue
        coordinate = rest % out_dims[axis]
        rest //= out_dims[axis]
        base1 += coordinate * strides1[axis]
        base2 += coordinate * strides2[axis]
    return base1, base2


def binary(params, input1_shape, input1_data, input2_shape, input2_data, output_shape, output_data):
    """ADD, SUB or MUL of two int8 tensors with broadcasting; shapes come from params (see the module doc).

    A plain-Python entry point on purpose: the shape tuples (any rank, even
    0) are not read, and a jitted entry would compile again for every
    combination of ranks (seconds each); the jitted loops compile once.
    """
    _binary(params, input1_data, input2_data, output_data)


@njit(parallel=True, cache=True)
def _binary(params, input1_data, input2_data, output_data):
    # Unpack params: the run-time dims are the static ones with the batch axis scaled by the images.
    static_size = 1
    for axis in range(MAX_RANK):
        static_size *= params.output_dims[axis]
    images = output_data.size // static_size if static_size > 0 else 0
    out_dims = params.output_dims.copy()
    dims1 = params.input1_dims.copy()
    dims2 = params.input2_dims.copy()
    out_dims[params.batch_axis] *= images
    if params.input1_batched:
        dims1[params.batch_axis] *= images
    if params.input2_batched:
        dims2[params.batch_axis] *= images
    # Check shapes.
    if static_size == 0 or images * static_size != output_data.size:
        raise ValueError("binary: output data is not a whole number of images")
    size1, size2 = 1, 1
    for axis in range(MAX_RANK):
        size1 *= dims1[axis]
        size2 *= dims2[axis]
        for dim in (dims1[axis], dims2[axis]):
            if dim != 1 and dim != out_dims[axis]:
                raise ValueError("binary: input dimensions do not broadcast to the output's")
    if size1 != input1_data.size or size2 != input2_data.size:
        raise ValueError("binary: input data does not match the op's shapes")
    # Loops. Same shapes, or one scalar: one flat loop.
    total = output_data.size
    if size1 == total and size2 == total:
        for i in prange(total):
            output_data[i] = _element(params, input1_data[i], input2_data[i])
        return
    if size2 == 1:
        for i in prange(total):
            output_data[i] = _element(params, input1_data[i], input2_data[0])
        return
    if size1 == 1:
        for i in prange(total):
            output_data[i] = _element(params, input1_data[0], input2_data[i])
        return
    # General broadcast: one row of the innermost (fused) output dimension per iteration.
    out_dims, dims1, dims2 = _fuse_dims(out_dims, dims1, dims2)
    strides1 = _strides(dims1, out_dims)
    strides2 = _strides(dims2, out_dims)
    depth = out_dims[MAX_RANK - 1]
    rows = total // depth
    step1, step2 = strides1[MAX_RANK - 1], strides2[MAX_RANK - 1]
    for row in prange(rows):
        base1, base2 = _row_offsets(np.int64(row), out_dims, strides1, strides2)
        out_base = np.int64(row) * depth
        out_row = output_data[out_base:out_base + depth]
        # Unit and zero strides on row views: LLVM vectorizes these loops, not the indexed general one (about 2x).
        if step1 == 1 and step2 == 1:
            row1, row2 = input1_data[base1:base1 + depth], input2_data[base2:base2 + depth]
            for c in range(depth):
                out_row[c] = _element(params, row1[c], row2[c])
        elif step1 == 1 and step2 == 0:
            row1, y = input1_data[base1:base1 + depth], input2_data[base2]
            for c in range(depth):
                out_row[c] = _element(params, row1[c], y)
        elif step1 == 0 and step2 == 1:
            x, row2 = input1_data[base1], input2_data[base2:base2 + depth]
            for c in range(depth):
                out_row[c] = _element(params, x, row2[c])
        else:
            for c in range(depth):
                out_row[c] = _element(params, input1_data[base1 + c * step1], input2_data[base2 + c * step2])
