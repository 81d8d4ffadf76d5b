"""QUANTIZE: float32 -> int8/uint8 (AffineQuantize), or int8/uint8 -> int8/uint8 (Requantize).

The TensorFlow converter writes it at a model's float or uint8 input (and
int8 -> uint8 at a uint8 output), without an options table. Per-channel and
int16/int4 outputs are not supported. Kernels: deploy/runtime/quantize_ops.py.
"""

from __future__ import annotations

import numpy as np

from edgecnn.deploy.ops.base import ACTIVATION, OpDef, Operand, Prepared
from edgecnn.deploy.runtime import quantize_naive
from edgecnn.deploy.runtime.quantize_ops import AffineQuantizeParams, RequantizeParams
from edgecnn.errors import UnsupportedOpError

_QUANTIZED = ("int8", "uint8")


def _range(dtype: str) -> tuple[int, int]:
    info = np.iinfo(dtype)
    return int(info.min), int(info.max)


def _per_tensor(ctx, tensor, role: str) -> None:
    if tensor.scale.size > 1:
        raise ctx.fail(f"{role} {tensor.name} is quantized per channel; edgecnn supports per-tensor QUANTIZE only",
                       UnsupportedOpError)  # fmt: skip


def _prepare(ctx) -> Prepared:
    x = ctx.tensor(0, "input")
    output = ctx.output()
    if output.dtype not in _QUANTIZED:
        raise ctx.fail(f"output {output.name} is {output.dtype}; edgecnn quantizes to int8 or uint8",
                       UnsupportedOpError)  # fmt: skip
    if x.dtype not in ("float32",) + _QUANTIZED:
        raise ctx.fail(f"input {x.name} is {x.dtype}; edgecnn quantizes float32, int8 or uint8", UnsupportedOpError)
    _per_tensor(ctx, output, "output")
    if x.dtype != "float32":
        _per_tensor(ctx, x, "input")
    ctx.activation(x, "input", x.dtype)
    ctx.activation(output, "output", output.dtype)
    ctx.check_output_shape(output, x.shape)
    qmin, qmax = _range(output.dtype)
    out_zp = ctx.zero_point(output, qmin, qmax)
    if x.dtype == "float32":
        # The kernel divides by float32(scale): keep the float32 value, exactly, as a Python float.
        params = AffineQuantizeParams(float(np.float32(output.scale[0])), out_zp, qmin, qmax)
    else:
        in_zp = ctx.zero_point(x, *_range(x.dtype))
        # effective = double(in_s) / double(out_s), as quantize.cc computes it.
        multiplier, shift = ctx.multipliers([ctx.scale(x) / ctx.scale(output)])
        params = RequantizeParams(-in_zp, int(multiplier[0]), int(shift[0]), out_zp, qmin, qmax)
    return Prepared(params, (ctx.op.inputs[0],))


def _version(graph, op) -> int:
    """1 for per-tensor int8/uint8 outputs (op_version.cc: 2 is int16, 3 per-channel, 4 int4)."""
    return 1


OP = OpDef(
    name="QUANTIZE",
    operands=(Operand("input", ACTIVATION),),
    version=_version,
    min_runtime={1: "1.14.0"},
    prepare=_prepare,
    kernel="edgecnn.deploy.runtime.quantize_ops:quantize",
    naive=quantize_naive.quantize,
)
