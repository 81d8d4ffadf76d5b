"""CONV_2D: int8 per-channel convolution (TFLite reference_integer_ops::ConvPerChannel)."""

from edgecnn.deploy.ops.base import ACTIVATION, CONSTANT, OPTIONAL, OpDef, Operand
from edgecnn.deploy.ops.conv_common import decode_conv, encode_conv, prepare_conv
from edgecnn.deploy.runtime import naive


def version(graph, op) -> int:
    """3 for int8; 6 when grouped (the filter is shallower than the input)."""
    in_ch = graph.tensors[op.inputs[0]].shape[-1]
    filter_in = graph.tensors[op.inputs[1]].shape[-1]
    return 6 if filter_in != in_ch else 3


OP = OpDef(
    name="CONV_2D",
    # LiteRT 2.3 insists on the bias: a -1 slot or two inputs fail to load.
    operands=(Operand("input", ACTIVATION), Operand("filter", CONSTANT), Operand("bias", OPTIONAL)),
    min_written_inputs=3,
    options_table="Conv2DOptions",
    decode=lambda o: decode_conv(o, depthwise=False),
    encode=lambda b, o, graph, op: encode_conv(b, o, "Conv2DOptions"),
    version=version,
    min_runtime={3: "1.14.0", 6: "2.9.0"},
    prepare=lambda ctx: prepare_conv(ctx, depthwise=False),
    kernel="edgecnn.deploy.runtime.conv:conv_2d",
    naive=naive.conv_2d,
)
