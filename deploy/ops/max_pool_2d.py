"""MAX_POOL_2D: int8 max pooling over a clipped window; no rescaling (docs/int8.md 3)."""

from edgecnn.deploy.ops.base import ACTIVATION, OpDef, Operand
from edgecnn.deploy.export.c_source import c_block
from edgecnn.deploy.ops.pool_common import C_PARAMS, c_pool, decode_pool, encode_pool, onnx_max_pool, prepare_pool
from edgecnn.deploy.runtime import naive

C_BLOCKS = {**C_PARAMS, "max_pool_2d": c_block(("pool_params", "saturate"), r"""
/* MAX_POOL_2D: the largest raw int8 in the clipped window, starting from -128, then the clamp. */
static void ec_max_pool_2d(const ec_pool_params *p, const int8_t *input, int8_t *output)
{
    int out_y, out_x, channel, filter_y, filter_x;
    for (out_y = 0; out_y < p->output_h; ++out_y) {
        const int in_y_origin = out_y * p->stride_h - p->pad_top;
        const int y_start = in_y_origin < 0 ? -in_y_origin : 0;
        const int y_end = p->filter_h < p->input_h - in_y_origin ? p->filter_h : p->input_h - in_y_origin;
        for (out_x = 0; out_x < p->output_w; ++out_x) {
            const int in_x_origin = out_x * p->stride_w - p->pad_left;
            const int x_start = in_x_origin < 0 ? -in_x_origin : 0;
            const int x_end = p->filter_w < p->input_w - in_x_origin ? p->filter_w : p->input_w - in_x_origin;
            for (channel = 0; channel < p->depth; ++channel) {
                int32_t max = -128;
                for (filter_y = y_start; filter_y < y_end; ++filter_y) {
                    for (filter_x = x_start; filter_x < x_end; ++filter_x) {
                        const size_t at = ((size_t)(in_y_origin + filter_y) * p->input_w + (in_x_origin + filter_x))
                                          * p->depth + channel;
                        if (input[at] > max) max = input[at];
                    }
                }
                output[((size_t)out_y * p->output_w + out_x) * p->depth + channel] =
                    ec_saturate(max, p->act_min, p->act_max);
            }
        }
    }
}
""")}

OP = OpDef(
    name="MAX_POOL_2D",
    operands=(Operand("input", ACTIVATION),),
    options_table="Pool2DOptions",
    decode=decode_pool,
    encode=encode_pool,
    version=lambda graph, op: 2,
    min_runtime={2: "1.14.0"},
    prepare=prepare_pool,
    kernel="edgecnn.deploy.runtime.pooling:max_pool_2d",
    naive=naive.max_pool_2d,
    c=lambda emit, step: c_pool(emit, step, "max_pool_2d"),
    c_blocks=C_BLOCKS,
    onnx=onnx_max_pool,
)
