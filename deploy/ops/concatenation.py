"""CONCATENATION: joins tensors along an axis. Folded by the reader when its inputs are shape values."""

from __future__ import annotations

import numpy as np

from edgecnn.deploy.ops.base import ANY, FUSED_CODES, OpDef, Operand, decode_activation, options_builder
from edgecnn.errors import UnsupportedOpError


def _decode(o) -> dict:
    return {"axis": o.Axis(), "fused_activation_function": decode_activation(o.FusedActivationFunction())}


def _encode(b, o, graph, op) -> int:
    start, end, add = options_builder("ConcatenationOptions")
    start(b)
    add(b, "Axis", int(o["axis"]))
    add(b, "FusedActivationFunction", FUSED_CODES[o.get("fused_activation_function", "NONE")])
    return end(b)


def fold(values, options):
    if options["fused_activation_function"] != "NONE" or not values or values[0].ndim == 0:
        raise UnsupportedOpError("CONCATENATION of shape values with an activation or of scalars")
    return [np.concatenate(values, axis=int(options["axis"]))]


OP = OpDef(
    name="CONCATENATION",
    operands=(Operand("values", ANY),),
    variadic=True,
    options_table="ConcatenationOptions",
    decode=_decode,
    encode=_encode,
    fold=fold,
)
