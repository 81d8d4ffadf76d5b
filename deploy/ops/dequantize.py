"""DEQUANTIZE: int8/uint8 -> float32, y = float32(scale) * (q - zero_point), as LiteRT's reference rounds it.

The TensorFlow converter writes it at a model's float output, without an
options table. Per-channel inputs (dequantized weights) are not supported:
edgecnn reads no float model. Kernel: deploy/runtime/quantize_ops.py.
"""

from __future__ import annotations

import numpy as np

from edgecnn.deploy.ops.base import ACTIVATION, OpDef, Operand, Prepared
from edgecnn.deploy.runtime import quantize_naive
from edgecnn.deploy.runtime.quantize_ops import DequantizeParams
from edgecnn.errors import UnsupportedOpError


def _prepare(ctx) -> Prepared:
    x = ctx.tensor(0, "input")
    output = ctx.output()
    if x.dtype not in ("int8", "uint8"):
        raise ctx.fail(f"input {x.name} is {x.dtype}; edgecnn dequantizes int8 or uint8", UnsupportedOpError)
    if output.dtype != "float32":
        raise ctx.fail(f"output {output.name} is {output.dtype}; DEQUANTIZE gives float32", UnsupportedOpError)
    if x.scale.size > 1:
        raise ctx.fail(f"input {x.name} is quantized per channel; edgecnn dequantizes per-tensor activations only",
                       UnsupportedOpError)  # fmt: skip
    ctx.activation(x, "input", x.dtype)
    ctx.activation(output, "output", "float32")
    ctx.check_output_shape(output, x.shape)
    info = np.iinfo(x.dtype)
    params = DequantizeParams(float(np.float32(x.scale[0])), ctx.zero_point(x, int(info.min), int(info.max)))
    return Prepared(params, (ctx.op.inputs[0],))


def _version(graph, op) -> int:
    """2 for an int8 input, 1 for uint8 (op_version.cc)."""
    return 2 if graph.tensors[op.inputs[0]].dtype == "int8" else 1


OP = OpDef(
    name="DEQUANTIZE",
    operands=(Operand("input", ACTIVATION),),
    version=_version,
    min_runtime={1: "1.13.1", 2: "1.14.0"},
    prepare=_prepare,
    kernel="edgecnn.deploy.runtime.quantize_ops:dequantize",
    naive=quantize_naive.dequantize,
)
