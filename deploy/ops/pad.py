"""PAD: int8 values copied unchanged, the border filled with the output zero point (Keras ZeroPadding2D)."""

from __future__ import annotations

from edgecnn.deploy.ops.base import ACTIVATION, CONSTANT, OpDef, Operand
from edgecnn.deploy.ops.pad_common import C_BLOCKS, MIN_RUNTIME, c_pad, empty_options, onnx_pad, prepare_pad, version
from edgecnn.deploy.runtime import naive_reduce_copy as naive

_decode, _encode = empty_options("PadOptions")

OP = OpDef(
    name="PAD",
    operands=(Operand("input", ACTIVATION), Operand("paddings", CONSTANT)),
    options_table="PadOptions",
    decode=_decode,
    encode=_encode,
    options_required=False,
    version=version,
    min_runtime=MIN_RUNTIME,
    prepare=prepare_pad,
    kernel="edgecnn.deploy.runtime.copy_ops:pad",
    naive=naive.pad,
    c=c_pad,
    c_blocks=C_BLOCKS,
    onnx=onnx_pad,
)
