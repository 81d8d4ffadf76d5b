"""DEPTHWISE_CONV_2D: int8 per-channel depthwise convolution (DepthwiseConvPerChannel)."""

from edgecnn.deploy.ops.base import ACTIVATION, CONSTANT, OPTIONAL, OpDef, Operand
from edgecnn.deploy.ops.conv_common import decode_conv, encode_conv, prepare_conv
from edgecnn.deploy.runtime import naive


def _encode(b, o, graph, op):
    if "depth_multiplier" in o:
        multiplier = int(o["depth_multiplier"])
    else:  # the kernel reads it from the filter shape anyway
        multiplier = graph.tensors[op.inputs[1]].shape[3] // graph.tensors[op.inputs[0]].shape[3]
    return encode_conv(b, o, "DepthwiseConv2DOptions", depth_multiplier=multiplier)


OP = OpDef(
    name="DEPTHWISE_CONV_2D",
    # A depthwise conv with no bias slot at all crashes LiteRT 2.3's optimized kernels: always write three.
    operands=(Operand("input", ACTIVATION), Operand("filter", CONSTANT), Operand("bias", OPTIONAL)),
    min_written_inputs=3,
    options_table="DepthwiseConv2DOptions",
    decode=lambda o: decode_conv(o, depthwise=True),
    encode=_encode,
    version=lambda graph, op: 3,  # int8 is decided before dilation in op_version.cc
    min_runtime={3: "1.14.0"},
    prepare=lambda ctx: prepare_conv(ctx, depthwise=True),
    kernel="edgecnn.deploy.runtime.depthwise_conv:depthwise_conv_2d",
    naive=naive.depthwise_conv_2d,
)
