"""PACK of shape values, folded by the reader ([batch, -1] in Keras' Flatten)."""

from __future__ import annotations

import numpy as np

from edgecnn.deploy.ops.base import ANY, OpDef, Operand
from edgecnn.errors import UnsupportedOpError


def fold(values, options):
    axis = int(options["axis"])
    if not values or len({v.shape for v in values}) != 1 or not -values[0].ndim - 1 <= axis <= values[0].ndim:
        raise UnsupportedOpError("PACK of values with different shapes, or on an axis they lack")
    return [np.stack(values, axis=axis)]


OP = OpDef(
    name="PACK",
    operands=(Operand("values", ANY),),
    variadic=True,
    options_table="PackOptions",
    decode=lambda o: {"axis": o.Axis(), "values_count": o.ValuesCount()},
    fold=fold,
)
