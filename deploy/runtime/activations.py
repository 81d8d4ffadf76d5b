"""LOGISTIC and TANH, int8: output = table[input + 128] (tables built in lookup.py, docs/int8.md section 3)."""

from __future__ import annotations

import numpy as np
from numba import njit



@njit(cache=True)
def _lookup(table, input_data, output_data):
    if input_data.size != output_data.size:
        raise ValueError("lookup: input and output sizes differ")
    if table.size != 256:
        raise ValueError("lookup: the table must have 256 entries")
    for i in range(input_data.size):
        output_data[i] = table[np.int64(input_data[i]) + 128]


@njit(cache=True)
def logistic(params, input_shape, input_data, output_shape, output_data):
    """output = params.table[input + 128], element-wise (any shape)."""
    _lookup(params.table, input_data, output_data)


@njit(cache=True)
def tanh(params, input_shape, input_data, output_shape, output_data):
    """output = params.table[input + 128], element-wise (any shape)."""
    _lookup(params.table, input_data, output_data)
