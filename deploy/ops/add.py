"""ADD: int8 + int8 with broadcasting; both inputs rescaled to a common scale after a left shift of 20 bits."""

from __future__ import annotations

from edgecnn.deploy.ops.base import ANY, OpDef, Operand
from edgecnn.deploy.ops.binary_common import C_BLOCKS, c_binary, decode_add_sub, encoder, onnx_binary, prepare_add_sub
from edgecnn.deploy.runtime import naive_elementwise
from edgecnn.deploy.runtime.elementwise_params import OP_ADD

OP = OpDef(
    name="ADD",
    operands=(Operand("input1", ANY), Operand("input2", ANY)),
    options_table="AddOptions",
    decode=decode_add_sub,
    encode=encoder("AddOptions", pot_scale=True),
    version=lambda graph, op: 2,  # int8 (op_version.cc)
    min_runtime={2: "1.14.0"},
    prepare=lambda ctx: prepare_add_sub(ctx, OP_ADD),
    kernel="edgecnn.deploy.runtime.elementwise:binary",
    naive=naive_elementwise.add,
    c=c_binary,
    c_blocks=C_BLOCKS,
    onnx=onnx_binary,
)
