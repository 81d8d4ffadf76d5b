"""PADV2: PAD with the border value given as a constant int8 scalar (which must share the output's qparams)."""

from __future__ import annotations

import numpy as np

from edgecnn.deploy.ops.base import ACTIVATION, CONSTANT, OPTIONAL, OpDef, Operand
from edgecnn.deploy.ops.pad_common import C_BLOCKS, MIN_RUNTIME, c_pad, empty_options, onnx_pad, prepare_pad, version
from edgecnn.deploy.runtime import naive_reduce_copy as naive
from edgecnn.errors import ShapeError, UnsupportedOpError

_decode, _encode = empty_options("PadV2Options")


def _prepare(ctx):
    constant = ctx.optional(2)
    if constant is None:  # two inputs: LiteRT pads with the output zero point, as PAD does
        return prepare_pad(ctx)
    value = ctx.constant(constant, "constant_values", "int8", None)
    if value.size != 1:
        raise ctx.fail(f"constant_values {constant.name} holds {value.size} values; expected one", ShapeError)
    output = ctx.output()
    if constant.scale.size != 1 or np.float32(constant.scale[0]) != np.float32(output.scale[0]) \
            or int(constant.zero_point[0]) != int(output.zero_point[0]):  # fmt: skip
        raise ctx.fail(f"constant_values {constant.name} must have the output's scale and zero point "
                       "(LiteRT does not rescale the pad value)", UnsupportedOpError)  # fmt: skip
    return prepare_pad(ctx, int(value[0]))


OP = OpDef(
    name="PADV2",
    operands=(Operand("input", ACTIVATION), Operand("paddings", CONSTANT), Operand("constant_values", OPTIONAL)),
    options_table="PadV2Options",
    decode=_decode,
    encode=_encode,
    options_required=False,
    version=version,
    min_runtime=MIN_RUNTIME,
    prepare=_prepare,
    kernel="edgecnn.deploy.runtime.copy_ops:padv2",
    naive=naive.padv2,
    c=c_pad,
    c_blocks=C_BLOCKS,
    onnx=onnx_pad,
)
