"""REDUCE_PROD of shape values, folded by the reader (the converter multiplies dimensions this way).

In Keras' Dense on an (N, H, W, C) tensor, REDUCE_PROD(GATHER(SHAPE(x),
[0, 1, 2]), axes [0]) is the row count N*H*W of the 2-D matrix the
FULLY_CONNECTED sees. The reader evaluates it at batch 1 and 2, so the row
count becomes the -1 of RESHAPE's new_shape; REDUCE_PROD is never run.
"""

from __future__ import annotations

import numpy as np

from edgecnn.deploy.ops.base import ANY, OpDef, Operand
from edgecnn.errors import UnsupportedOpError

_INT32_MAX = 2**31 - 1


def _decode(o) -> dict:
    return {"keep_dims": bool(o.KeepDims()) if o is not None else False}


def fold(values, options):
    """The product over `axes` (negative axes count from the end, repeats allowed, as in the kernel).

    Shape values are int32 in TFLite; a product past int32 would wrap there,
    so it is refused here rather than folded to a different number.
    """
    if len(values) != 2:
        raise UnsupportedOpError("REDUCE_PROD takes an input and its axes")
    x, axes = values
    rank = x.ndim
    resolved = set()
    for a in np.asarray(axes).reshape(-1).tolist():
        if not -rank <= a < max(rank, 1):
            raise UnsupportedOpError(f"REDUCE_PROD axis {a} outside a rank-{rank} tensor")
        resolved.add(a + rank if a < 0 else a)
    if rank == 0:
        return [x.copy()]
    product = np.prod(x.astype(object), axis=tuple(sorted(resolved)), keepdims=bool(options["keep_dims"]))
    product = np.asarray(product, dtype=object)
    if product.size and max(abs(int(v)) for v in product.reshape(-1)) > _INT32_MAX:
        raise UnsupportedOpError("REDUCE_PROD of shape values overflows int32")
    return [product.astype(np.int64)]


OP = OpDef(
    name="REDUCE_PROD",
    operands=(Operand("input", ANY), Operand("axes", ANY)),
    options_table="ReducerOptions",
    decode=_decode,
    options_required=False,
    fold=fold,
)
