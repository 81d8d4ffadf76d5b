"""GATHER of shape values, folded by the reader (Keras' Dense on a 4-D tensor picks dimensions this way).

The converter writes `x @ kernel` on an (N, H, W, C) tensor as RESHAPE to
(N*H*W, C), FULLY_CONNECTED, RESHAPE back, and computes both shapes at run
time: SHAPE(x) -> GATHER(indices [0, 1, 2]) -> REDUCE_PROD -> PACK, and
GATHER(indices [0, 1, 2]) -> CONCATENATION([..., units]). edgecnn's shapes
are static, so the reader evaluates the chain; GATHER is never run.
"""

from __future__ import annotations

import numpy as np

from edgecnn.deploy.ops.base import ANY, OpDef, Operand
from edgecnn.errors import UnsupportedOpError


def _decode(o) -> dict:
    # TFLite's parser leaves axis 0 / batch_dims 0 when the table is absent.
    if o is None:
        return {"axis": 0, "batch_dims": 0}
    return {"axis": int(o.Axis()), "batch_dims": int(o.BatchDims())}


def fold(values, options):
    """params gathered along `axis` at `indices`: shape params[:axis] + indices + params[axis+1:].

    Refuses (so the op stays unfolded and the runtime names it) what the
    reference kernel refuses: an axis outside the params' rank, an index
    outside [0, size of that axis), and batch_dims other than 0, which no
    shape chain uses.
    """
    if len(values) != 2:
        raise UnsupportedOpError("GATHER takes params and indices")
    params, indices = values
    if options["batch_dims"] != 0:
        raise UnsupportedOpError("GATHER with batch_dims is not folded")
    if params.ndim == 0:
        raise UnsupportedOpError("GATHER from a scalar")
    axis = int(options["axis"])
    if axis < 0:
        axis += params.ndim  # as the kernel does
    if not 0 <= axis < params.ndim:
        raise UnsupportedOpError(f"GATHER axis {options['axis']} outside a rank-{params.ndim} tensor")
    size = params.shape[axis]
    if indices.size and (indices.min() < 0 or indices.max() >= size):
        raise UnsupportedOpError(f"GATHER index outside [0, {size})")
    return [np.take(params, indices.astype(np.int64), axis=axis)]


OP = OpDef(
    name="GATHER",
    operands=(Operand("params", ANY), Operand("indices", ANY)),
    options_table="GatherOptions",
    decode=_decode,
    options_required=False,
    fold=fold,
)
