"""SUB: int8 - int8 with broadcasting; ADD's arithmetic with the second rescaled input subtracted."""

from __future__ import annotations

from edgecnn.deploy.ops.base import ANY, OpDef, Operand
from edgecnn.deploy.ops.binary_common import (
    C_BLOCKS, c_binary, decode_add_sub, encoder, needs_broadcast, onnx_binary, prepare_add_sub,
)  # fmt: skip
from edgecnn.deploy.runtime import naive_elementwise
from edgecnn.deploy.runtime.elementwise_params import OP_SUB


def version(graph, op) -> int:
    """2 for int8; 3 when the inputs broadcast and one has more than four dimensions (op_version.cc)."""
    ranks = [len(graph.tensors[t].shape) for t in op.inputs[:2]]
    return 3 if needs_broadcast(graph, op) and max(ranks) > 4 else 2


OP = OpDef(
    name="SUB",
    operands=(Operand("input1", ANY), Operand("input2", ANY)),
    options_table="SubOptions",
    decode=decode_add_sub,
    encode=encoder("SubOptions", pot_scale=True),
    version=version,
    min_runtime={2: "1.14.0", 3: "2.3.0"},
    prepare=lambda ctx: prepare_add_sub(ctx, OP_SUB),
    kernel="edgecnn.deploy.runtime.elementwise:binary",
    naive=naive_elementwise.sub,
    c=c_binary,
    c_blocks=C_BLOCKS,
    onnx=onnx_binary,
)
