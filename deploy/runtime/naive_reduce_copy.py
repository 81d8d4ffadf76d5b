"""Plain-Python references for MEAN, REDUCE_MAX, CONCATENATION, PAD and PADV2.

Written from the definitions with Python ints and multi-indices
(itertools.product), sharing no loop or offset arithmetic with the Numba
kernels in `reduce.py` / `copy_ops.py`; the rescale is `naive.py`'s
Fraction-based MultiplyByQuantizedMultiplier. Each takes its kernel's
arguments without the output data and returns the output array.
"""

from __future__ import annotations

import itertools

import numpy as np

from edgecnn.deploy.runtime.naive import clamp, multiply_by_quantized_multiplier, wrap_int32


def _reduce(params, input_shape, input_data, output_shape, combine):
    """{kept multi-index: combine(values)} over the dims flagged in params.reduced."""
    x = np.asarray(input_data).reshape(input_shape)
    groups: dict[tuple, list[int]] = {}
    for index in itertools.product(*(range(d) for d in input_shape)):
        kept = tuple(i for i, r in zip(index, params.reduced) if not r)
        groups.setdefault(kept, []).append(int(x[index]))
    out = np.zeros(int(np.prod(output_shape, dtype=np.int64)), dtype=np.int8)
    for position, kept in enumerate(sorted(groups)):  # row-major order of the kept dims
        out[position] = combine(groups[kept])
    return out.reshape(output_shape)


def mean(params, input_shape, input_data, output_shape):
    """Sum in int32, minus zero point * count, one MultiplyByQuantizedMultiplier, plus output zero point."""

    def combine(values):
        assert len(values) == params.count
        total = wrap_int32(wrap_int32(sum(values)) - params.input_zero_point * params.count)
        y = multiply_by_quantized_multiplier(total, params.multiplier, params.shift) + params.output_zero_point
        return clamp(y, -128, 127)

    return _reduce(params, input_shape, input_data, output_shape, combine)


def reduce_max(params, input_shape, input_data, output_shape):
    return _reduce(params, input_shape, input_data, output_shape, max)


def concatenation(params, *operands):
    """Operands: (shape, data) per input, then the output shape."""
    *pairs, output_shape = operands
    arrays = [np.asarray(data, dtype=np.int8).reshape(shape) for shape, data in zip(pairs[0::2], pairs[1::2])]
    out = np.zeros(output_shape, dtype=np.int8)
    for index in itertools.product(*(range(d) for d in output_shape)):
        along = index[params.axis]
        for a in arrays:  # find the input that holds position `along` of the axis
            if along < a.shape[params.axis]:
                out[index] = a[index[: params.axis] + (along,) + index[params.axis + 1 :]]
                break
            along -= a.shape[params.axis]
    return out


def pad(params, input_shape, input_data, output_shape):
    """Every output position outside the input box holds params.pad_value (PADV2's constant already there)."""
    x = np.asarray(input_data, dtype=np.int8).reshape(input_shape)
    out = np.zeros(output_shape, dtype=np.int8)
    for index in itertools.product(*(range(d) for d in output_shape)):
        source = tuple(i - int(b) for i, b in zip(index, params.before))
        inside = all(0 <= s < d for s, d in zip(source, input_shape))
        out[index] = x[source] if inside else params.pad_value
    return out


padv2 = pad
