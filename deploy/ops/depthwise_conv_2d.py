"""DEPTHWISE_CONV_2D: int8 per-channel depthwise convolution (DepthwiseConvPerChannel)."""

from edgecnn.deploy.ops.base import ACTIVATION, CONSTANT, OPTIONAL, OpDef, Operand
from edgecnn.deploy.export.c_source import c_block
from edgecnn.deploy.ops.conv_common import C_PARAMS, c_conv, decode_conv, encode_conv, onnx_conv, prepare_conv
from edgecnn.deploy.runtime import naive


def _encode(b, o, graph, op):
    if "depth_multiplier" in o:
        multiplier = int(o["depth_multiplier"])
    else:  # the kernel reads it from the filter shape anyway
        multiplier = graph.tensors[op.inputs[1]].shape[3] // graph.tensors[op.inputs[0]].shape[3]
    return encode_conv(b, o, "DepthwiseConv2DOptions", depth_multiplier=multiplier)


C_BLOCKS = {**C_PARAMS, "depthwise_taps": c_block(("conv_params",), r"""
/* The filter taps of a depthwise window that fall inside the image, as [lo, hi) along one axis:
   origin + tap * dilation in [0, size). */
static void ec_depthwise_taps(int origin, int dilation, int taps, int size, int *lo, int *hi)
{
    *lo = origin < 0 ? (-origin + dilation - 1) / dilation : 0;
    *hi = size - origin <= 0 ? 0 : (size - origin + dilation - 1) / dilation;
    if (*hi > taps) *hi = taps;
    if (*lo > *hi) *lo = *hi;
}
"""), "depthwise_conv_2d": c_block(("conv_params", "requantize", "depthwise_taps"), r"""
/* DEPTHWISE_CONV_2D (TFLite reference_integer_ops::DepthwiseConvPerChannel): output channel
   m + in_channel * depth_multiplier reads only its input channel. The taps inside the image are found
   once per output pixel (TFLite skips the others, as if they added w * 0). Overflow: |w| <= 128 and
   |x + input_offset| <= 255, so each product is below 2^16; the sum runs in uint32_t, which wraps like
   TFLite's int32 accumulator. */
static void ec_depthwise_conv_2d(const ec_conv_params *p, const int8_t *input, int8_t *output)
{
    const int depth_multiplier = p->output_depth / p->input_depth;
    const size_t row = (size_t)p->input_w * (size_t)p->input_depth;
    int out_y, out_x, in_channel, m, filter_y, filter_x, y_lo, y_hi, x_lo, x_hi;
    for (out_y = 0; out_y < p->output_h; ++out_y) {
        const int in_y_origin = out_y * p->stride_h - p->pad_top;
        ec_depthwise_taps(in_y_origin, p->dilation_h, p->filter_h, p->input_h, &y_lo, &y_hi);
        for (out_x = 0; out_x < p->output_w; ++out_x) {
            const int in_x_origin = out_x * p->stride_w - p->pad_left;
            int8_t *out = output + ((size_t)out_y * p->output_w + out_x) * p->output_depth;
            ec_depthwise_taps(in_x_origin, p->dilation_w, p->filter_w, p->input_w, &x_lo, &x_hi);
            for (in_channel = 0; in_channel < p->input_depth; ++in_channel) {
                for (m = 0; m < depth_multiplier; ++m) {
                    const int out_channel = m + in_channel * depth_multiplier;
                    uint32_t acc = 0;
                    for (filter_y = y_lo; filter_y < y_hi; ++filter_y) {
                        const int8_t *x = input + (size_t)(in_y_origin + p->dilation_h * filter_y) * row
                                          + (size_t)(in_x_origin + p->dilation_w * x_lo) * p->input_depth + in_channel;
                        const int8_t *w = p->filter + ((size_t)filter_y * p->filter_w + x_lo) * p->output_depth
                                          + out_channel;
                        for (filter_x = x_lo; filter_x < x_hi; ++filter_x) {
                            acc += (uint32_t)(*w * (*x + p->input_offset));
                            x += (size_t)p->dilation_w * p->input_depth;
                            w += p->output_depth;
                        }
                    }
                    out[out_channel] = ec_requantize(acc, p->bias ? p->bias[out_channel] : 0,
                                                     p->multiplier[out_channel], p->shift[out_channel],
                                                     p->output_offset, p->act_min, p->act_max);
                }
            }
        }
    }
}
""")}

C_BLOCKS["depthwise_conv_2d_in_place"] = c_block(("conv_params", "requantize", "depthwise_taps"), r"""
/* DEPTHWISE_CONV_2D in place: stride 1, dilation 1, depth multiplier 1, output shape = input shape.
   Output row y overwrites input row y, and the input rows still needed (y - pad_top .. y) are kept in a
   ring of pad_top + 1 rows, each copied just before the output overwrites it; rows below y are read in
   place. The same sums and requantization as ec_depthwise_conv_2d (overflow likewise). */
static void ec_depthwise_conv_2d_in_place(const ec_conv_params *p, int8_t *data, int8_t *ring)
{
    const size_t row = (size_t)p->input_w * (size_t)p->input_depth;
    const int rows = p->pad_top + 1;
    int out_y, out_x, channel, filter_y, filter_x, y_lo, y_hi, x_lo, x_hi;
    size_t i;
    for (out_y = 0; out_y < p->output_h; ++out_y) {
        int8_t *saved = ring + (size_t)(out_y % rows) * row;
        const int in_y_origin = out_y - p->pad_top;
        for (i = 0; i < row; ++i) saved[i] = data[(size_t)out_y * row + i];
        ec_depthwise_taps(in_y_origin, 1, p->filter_h, p->input_h, &y_lo, &y_hi);
        for (out_x = 0; out_x < p->output_w; ++out_x) {
            const int in_x_origin = out_x - p->pad_left;
            int8_t *out = data + (size_t)out_y * row + (size_t)out_x * p->output_depth;
            ec_depthwise_taps(in_x_origin, 1, p->filter_w, p->input_w, &x_lo, &x_hi);
            for (channel = 0; channel < p->input_depth; ++channel) {
                uint32_t acc = 0;
                for (filter_y = y_lo; filter_y < y_hi; ++filter_y) {
                    const int in_y = in_y_origin + filter_y;
                    const int8_t *x = (in_y <= out_y ? ring + (size_t)(in_y % rows) * row : data + (size_t)in_y * row)
                                      + (size_t)(in_x_origin + x_lo) * p->input_depth + channel;
                    const int8_t *w = p->filter + ((size_t)filter_y * p->filter_w + x_lo) * p->output_depth + channel;
                    for (filter_x = x_lo; filter_x < x_hi; ++filter_x) {
                        acc += (uint32_t)(*w * (*x + p->input_offset));
                        x += p->input_depth;
                        w += p->output_depth;
                    }
                }
                out[channel] = ec_requantize(acc, p->bias ? p->bias[channel] : 0, p->multiplier[channel],
                                             p->shift[channel], p->output_offset, p->act_min, p->act_max);
            }
        }
    }
}
""")

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
    c=lambda emit, step: c_conv(emit, step, depthwise=True),
    c_blocks=C_BLOCKS,
    onnx=lambda lw, step: onnx_conv(lw, step, depthwise=True),
)
