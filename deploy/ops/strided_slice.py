"""STRIDED_SLICE on a 1-D shape vector, folded by the reader (Keras' Flatten takes the batch this way)."""

from __future__ import annotations

import numpy as np

from edgecnn.deploy.ops.base import ANY, CONSTANT, OpDef, Operand
from edgecnn.errors import UnsupportedOpError


def _decode(o) -> dict:
    return {"begin_mask": o.BeginMask(), "end_mask": o.EndMask(), "ellipsis_mask": o.EllipsisMask(),
            "new_axis_mask": o.NewAxisMask(), "shrink_axis_mask": o.ShrinkAxisMask(),
            "offset": bool(getattr(o, "Offset", lambda: False)())}  # fmt: skip


def fold(values, options):
    """Only the 1-D case with one begin/end/stride: what shape chains use."""
    x, begin, end, strides = values
    if options["ellipsis_mask"] or options["new_axis_mask"] or options["offset"]:
        raise UnsupportedOpError("STRIDED_SLICE with ellipsis, new-axis or offset masks cannot be folded")
    if x.ndim != 1 or begin.shape != (1,) or end.shape != (1,) or strides.shape != (1,) or strides[0] == 0:
        raise UnsupportedOpError("STRIDED_SLICE is folded only on 1-D shape vectors")
    b = None if options["begin_mask"] & 1 else int(begin[0])
    e = None if options["end_mask"] & 1 else int(end[0])
    if options["shrink_axis_mask"] & 1:
        if b is None or not -x.size <= b < x.size:
            raise UnsupportedOpError("STRIDED_SLICE shrinks to an index outside the vector")
        return [np.array(x[b], dtype=np.int64)]
    return [x[b:e:int(strides[0])]]


OP = OpDef(
    name="STRIDED_SLICE",
    operands=(Operand("input", ANY), Operand("begin", CONSTANT), Operand("end", CONSTANT),
              Operand("strides", CONSTANT)),  # fmt: skip
    options_table="StridedSliceOptions",
    decode=_decode,
    fold=fold,
)
