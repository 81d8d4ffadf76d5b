"""MUL: int8 * int8 with broadcasting; one multiplier, float32(s1 * s2 / s_out), which may be >= 1."""

from __future__ import annotations

import numpy as np

from edgecnn.deploy.ops.base import ANY, FUSED_CODES, OpDef, Operand, decode_activation, options_builder
from edgecnn.deploy.ops.binary_common import C_BLOCKS, c_binary, onnx_binary, prepare_mul
from edgecnn.deploy.runtime import naive_elementwise


def _encode(b, o, graph, op) -> int:
    start, end, add = options_builder("MulOptions")
    start(b)
    add(b, "FusedActivationFunction", FUSED_CODES[o.get("fused_activation_function", "NONE")])
    return end(b)


def version(graph, op) -> int:
    """2 for int8; 3 when s1 * s2 / s_out (in float32) is at least 1 (op_version.cc)."""
    s1, s2, so = (np.float32(graph.tensors[t].scale[0]) for t in (op.inputs[0], op.inputs[1], op.outputs[0]))
    return 3 if s1 * s2 / so >= np.float32(1.0) else 2


OP = OpDef(
    name="MUL",
    operands=(Operand("input1", ANY), Operand("input2", ANY)),
    options_table="MulOptions",
    decode=lambda o: {"fused_activation_function": decode_activation(o.FusedActivationFunction())},
    encode=_encode,
    version=version,
    min_runtime={2: "1.14.0", 3: "1.15.0"},
    prepare=prepare_mul,
    kernel="edgecnn.deploy.runtime.elementwise:binary",
    naive=naive_elementwise.mul,
    c=c_binary,
    c_blocks=C_BLOCKS,
    onnx=onnx_binary,
)
