"""DEQUANTIZE: int8/uint8 -> float32, y = float32(scale) * (q - zero_point), as LiteRT's reference rounds it.

The TensorFlow converter writes it at a model's float output, without an
options table. Per-channel inputs (dequantized weights) are not supported:
edgecnn reads no float model. Kernel: deploy/runtime/quantize_ops.py.
"""

from __future__ import annotations

import numpy as np

from edgecnn.deploy.export.c_source import CSource, c_block
from edgecnn.deploy.ops.base import ACTIVATION, OpDef, Operand, Prepared
from edgecnn.deploy.runtime import quantize_naive
from edgecnn.deploy.runtime.quantize_params import DequantizeParams
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


# ---------------------------------------------------------------- C and ONNX lowerings

C_BLOCKS = {
    "dequantize": c_block((), r"""
/* DEQUANTIZE int8/uint8 -> float32 (TFLite Dequantize): (float)((double)scale * (q - zero_point)).
   The product of a float32 and an integer below 2^9 is exact in double, so the one rounding is the cast. */
static void ec_dequantize(const void *input, int input_unsigned, float *output, int32_t n, float scale,
                          int32_t zero_point)
{
    int32_t i;
    for (i = 0; i < n; ++i) {
        const int32_t q = input_unsigned ? (int32_t)((const uint8_t *)input)[i] : (int32_t)((const int8_t *)input)[i];
        output[i] = (float)((double)scale * (double)(q - zero_point));
    }
}
"""),
}


def _c(emit, step) -> CSource:
    from edgecnn.deploy.export.c import float_literal

    p, x = step.params, step.inputs[0]
    unsigned = int(emit.c_type(x) == "uint8_t")
    return CSource(f"ec_dequantize(@IN0@, {unsigned}, @OUT0@, {emit.size(x)}, {float_literal(p.scale)}, "
                   f"{p.zero_point});", blocks=("dequantize",))  # fmt: skip


def _onnx(lw, step) -> None:
    """float32(q - zp) * float32(scale): both factors exact, so ONNX's float32 Mul rounds once, like the reference."""
    from onnx import TensorProto

    b, p = lw.b, step.params
    x, layout = lw.any_layout(step.inputs[0])
    centered = b.node("Sub", [b.cast(x, TensorProto.INT32), b.const(p.zero_point, np.int32, "zero_point")])
    value = b.node("Mul", [b.cast(centered, TensorProto.FLOAT), b.const(np.float32(p.scale), np.float32, "scale")],
                   "dequantized")  # fmt: skip
    lw.set(step.outputs[0], value, layout)


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
    c=_c,
    c_blocks=C_BLOCKS,
    onnx=_onnx,
)
