"""What MAX_POOL_2D and AVERAGE_POOL_2D share: Pool2DOptions and the window prepare (no rescaling)."""

from __future__ import annotations

from edgecnn.deploy.ops.base import FUSED_CODES, Prepared, decode_activation, decode_padding, options_builder
from edgecnn.deploy.runtime.params import PoolParams


def decode_pool(o) -> dict:
    return {
        "padding": decode_padding(o.Padding()),
        "stride_h": o.StrideH(),
        "stride_w": o.StrideW(),
        "filter_height": o.FilterHeight(),
        "filter_width": o.FilterWidth(),
        "fused_activation_function": decode_activation(o.FusedActivationFunction()),
    }


def encode_pool(b, o, graph, op) -> int:
    start, end, add = options_builder("Pool2DOptions")
    start(b)
    add(b, "Padding", 0 if o["padding"] == "SAME" else 1)
    add(b, "StrideW", int(o["stride_w"]))
    add(b, "StrideH", int(o["stride_h"]))
    add(b, "FilterWidth", int(o["filter_width"]))
    add(b, "FilterHeight", int(o["filter_height"]))
    add(b, "FusedActivationFunction", FUSED_CODES[o.get("fused_activation_function", "NONE")])
    return end(b)


def prepare_pool(ctx) -> Prepared:
    x = ctx.activation(ctx.tensor(0, "input"), "input")
    output = ctx.activation(ctx.output(), "output")
    filter_h, filter_w = ctx.positive_option("filter_height"), ctx.positive_option("filter_width")
    stride_h, stride_w = ctx.positive_option("stride_h", 1), ctx.positive_option("stride_w", 1)
    out_h, out_w, pad_top, pad_left = ctx.window(x, filter_h, filter_w, stride_h, stride_w)
    ctx.check_output_shape(output, (x.shape[0], out_h, out_w, x.shape[3]))
    act_min, act_max = ctx.fused_range(output)
    params = PoolParams(stride_h, stride_w, filter_h, filter_w, pad_top, pad_left, act_min, act_max)
    return Prepared(params, (ctx.op.inputs[0],))
