"""RELU6 on int8: requantize to the output's own qparams, clamp to [Qz(0), Qz(6)] (QuantizedReluX)."""

from __future__ import annotations

from edgecnn.deploy.ops.base import ACTIVATION, OpDef, Operand
from edgecnn.deploy.ops.relu import C_BLOCKS, c_requantize_clamp, onnx_requantize_clamp, prepare_requantize_clamp
from edgecnn.deploy.runtime import naive_elementwise

OP = OpDef(
    name="RELU6",
    operands=(Operand("input", ACTIVATION),),
    version=lambda graph, op: 2,  # int8 (op_version.cc)
    min_runtime={2: "1.14.0"},
    prepare=lambda ctx: prepare_requantize_clamp(ctx, "RELU6"),
    kernel="edgecnn.deploy.runtime.activation_ops:requantize_clamp",
    naive=naive_elementwise.requantize_clamp,
    c=c_requantize_clamp,
    c_blocks=C_BLOCKS,
    onnx=onnx_requantize_clamp,
)
