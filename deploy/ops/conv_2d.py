"""CONV_2D: int8 per-channel convolution (TFLite reference_integer_ops::ConvPerChannel)."""

from edgecnn.deploy.ops.base import ACTIVATION, CONSTANT, OPTIONAL, OpDef, Operand
from edgecnn.deploy.export.c_source import c_block
from edgecnn.deploy.ops.conv_common import C_PARAMS, c_conv, decode_conv, encode_conv, onnx_conv, prepare_conv
from edgecnn.deploy.runtime import naive


def version(graph, op) -> int:
    """3 for int8; 6 when grouped (the filter is shallower than the input)."""
    in_ch = graph.tensors[op.inputs[0]].shape[-1]
    filter_in = graph.tensors[op.inputs[1]].shape[-1]
    return 6 if filter_in != in_ch else 3


C_BLOCKS = {**C_PARAMS, "conv_2d": c_block(("conv_params", "requantize", "dot_s8_x2"), r"""
/* CONV_2D (TFLite reference_integer_ops::ConvPerChannel), grouped when input_depth > filter_depth.
   Per output pixel and group, the window is copied once into patch[(filter_y*filter_w + filter_x)*filter_depth
   + in_channel] as raw int8, with the input zero point (-input_offset) for taps outside the image, so that
   x + input_offset is 0 there (w * 0 adds nothing, the same as TFLite skipping them). Each filter is then one
   contiguous int8 dot product with the patch (OHWI has the same order), and
   sum(w * (x + input_offset)) = sum(w * x) + input_offset * filter_sum[out_channel] modulo 2^32, which is
   what TFLite's wrapping int32 accumulator holds. Overflow: |w * x| <= 2^14; sums in uint32_t.
   In place (output and input at the same address) for a 1x1 conv: each input pixel is in the patch before
   its output pixel is written, in pixel order when narrowing and in reverse order (p->reverse) when widening. */
static void ec_conv_2d(const ec_conv_params *p, const int8_t *input, int8_t *output, int8_t *patch)
{
    const int groups = p->input_depth / p->filter_depth;
    const int filters_per_group = p->output_depth / groups;
    const int taps = p->filter_h * p->filter_w * p->filter_depth;
    const int8_t pad = (int8_t)(-p->input_offset);
    int out_y, out_x, group, out_channel, filter_y, filter_x, in_channel;
    for (out_y = 0; out_y < p->output_h; ++out_y) {
        const int y = p->reverse ? p->output_h - 1 - out_y : out_y;
        const int in_y_origin = y * p->stride_h - p->pad_top;
        for (out_x = 0; out_x < p->output_w; ++out_x) {
            const int x_out = p->reverse ? p->output_w - 1 - out_x : out_x;
            const int in_x_origin = x_out * p->stride_w - p->pad_left;
            int8_t *out = output + ((size_t)y * p->output_w + x_out) * p->output_depth;
            for (group = 0; group < groups; ++group) {
                int8_t *tap = patch;
                for (filter_y = 0; filter_y < p->filter_h; ++filter_y) {
                    const int in_y = in_y_origin + p->dilation_h * filter_y;
                    for (filter_x = 0; filter_x < p->filter_w; ++filter_x) {
                        const int in_x = in_x_origin + p->dilation_w * filter_x;
                        const int8_t *x;
                        if (in_y < 0 || in_y >= p->input_h || in_x < 0 || in_x >= p->input_w) {
                            for (in_channel = 0; in_channel < p->filter_depth; ++in_channel) *tap++ = pad;
                            continue;
                        }
                        x = input + ((size_t)in_y * p->input_w + in_x) * p->input_depth + group * p->filter_depth;
                        for (in_channel = 0; in_channel < p->filter_depth; ++in_channel) *tap++ = x[in_channel];
                    }
                }
                for (out_channel = group * filters_per_group; out_channel < (group + 1) * filters_per_group;
                     out_channel += 2) {
                    const int8_t *w = p->filter + (size_t)out_channel * taps;
                    const int pair = out_channel + 1 < (group + 1) * filters_per_group;
                    uint32_t acc[2];
                    int k;
                    if (pair) {
                        ec_dot_s8_x2(w, w + taps, patch, taps, &acc[0], &acc[1]); /* two filters, one patch */
                    } else {
                        acc[0] = ec_dot_s8(w, patch, taps);
                        acc[1] = 0;
                    }
                    for (k = 0; k <= pair; ++k)
                        out[out_channel + k] = ec_requantize(
                            acc[k] + (uint32_t)p->input_offset * (uint32_t)p->filter_sum[out_channel + k],
                            p->bias ? p->bias[out_channel + k] : 0, p->multiplier[out_channel + k],
                            p->shift[out_channel + k], p->output_offset, p->act_min, p->act_max);
                }
            }
        }
    }
}
""")}


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
    c=lambda emit, step: c_conv(emit, step, depthwise=False),
    c_blocks=C_BLOCKS,
    onnx=lambda lw, step: onnx_conv(lw, step, depthwise=False),
)
