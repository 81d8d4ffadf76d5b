"""MAX_POOL_2D: int8 max pooling over a clipped window; no rescaling (INT8.md 3)."""

from edgecnn.deploy.ops.base import ACTIVATION, OpDef, Operand
from edgecnn.deploy.ops.pool_common import decode_pool, encode_pool, prepare_pool
from edgecnn.deploy.runtime import naive

OP = OpDef(
    name="MAX_POOL_2D",
    operands=(Operand("input", ACTIVATION),),
    options_table="Pool2DOptions",
    decode=decode_pool,
    encode=encode_pool,
    version=lambda graph, op: 2,
    min_runtime={2: "1.14.0"},
    prepare=prepare_pool,
    kernel="edgecnn.deploy.runtime.pooling:max_pool_2d",
    naive=naive.max_pool_2d,
)
