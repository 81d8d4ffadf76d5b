"""What CONV_2D and DEPTHWISE_CONV_2D share: window options, the per-channel prepare, the params record."""

from __future__ import annotations

import numpy as np

from edgecnn.deploy.ops.base import FUSED_CODES, PrepareContext, Prepared, decode_activation, decode_padding, options_builder
from edgecnn.deploy.runtime.params import ConvParams
from edgecnn.errors import ShapeError

NO_BIAS = np.zeros(0, dtype=np.int32)


def decode_conv(o, depthwise: bool) -> dict:
    opts = {
        "padding": decode_padding(o.Padding()),
        "stride_h": o.StrideH(),
        "stride_w": o.StrideW(),
        "dilation_h_factor": o.DilationHFactor(),
        "dilation_w_factor": o.DilationWFactor(),
        "fused_activation_function": decode_activation(o.FusedActivationFunction()),
    }
    if depthwise:
        opts["depth_multiplier"] = o.DepthMultiplier()
    return opts


def encode_conv(b, o: dict, table: str, depth_multiplier: int | None = None) -> int:
    start, end, add = options_builder(table)
    start(b)
    add(b, "Padding", 0 if o["padding"] == "SAME" else 1)
    add(b, "StrideW", int(o["stride_w"]))
    add(b, "StrideH", int(o["stride_h"]))
    if depth_multiplier is not None:
        add(b, "DepthMultiplier", depth_multiplier)
    add(b, "FusedActivationFunction", FUSED_CODES[o.get("fused_activation_function", "NONE")])
    add(b, "DilationWFactor", int(o.get("dilation_w_factor", 1)))
    add(b, "DilationHFactor", int(o.get("dilation_h_factor", 1)))
    return end(b)


def prepare_conv(ctx: PrepareContext, depthwise: bool) -> Prepared:
    """ConvPerChannel / DepthwiseConvPerChannel's load-time checks and multipliers (INT8.md 3)."""
    x = ctx.activation(ctx.tensor(0, "input"), "input")
    output = ctx.activation(ctx.output(), "output")
    weights = ctx.tensor(1, "filter")
    filter_data = ctx.constant(weights, "filter", "int8", 4)
    if len(x.shape) != 4:
        raise ctx.fail(f"input {x.name} must be NHWC, has shape {x.shape}", ShapeError)
    in_depth = x.shape[3]
    if in_depth <= 0:
        raise ctx.fail(f"input {x.name} has no channels", ShapeError)
    if depthwise:
        one, filter_h, filter_w, out_depth = weights.shape
        if one != 1:
            raise ctx.fail(f"filter {weights.name} must be [1, H, W, C_out], has {weights.shape}", ShapeError)
        if out_depth % in_depth != 0:
            raise ctx.fail(f"{out_depth} output channels are not a multiple of {in_depth} input channels", ShapeError)
        if len(ctx.op.inputs) > 2 and ctx.op.inputs[2] == -1:
            # Two inputs mean "no bias"; a third slot of -1 fails LiteRT's prepare.
            raise ctx.fail("the bias slot is -1, which LiteRT refuses ('Tensor at index 2 was optional but was "
                           "expected'); leave the slot out or give a zero bias")  # fmt: skip
    else:
        out_depth, filter_h, filter_w, filter_depth = weights.shape
        if filter_depth <= 0 or in_depth % filter_depth != 0:
            raise ctx.fail(f"input depth {in_depth} is not a multiple of the filter depth {filter_depth}", ShapeError)
        if out_depth % (in_depth // filter_depth) != 0:
            raise ctx.fail(f"{out_depth} filters do not split into {in_depth // filter_depth} groups", ShapeError)
        if np.any(weights.zero_point != 0):
            raise ctx.fail(f"filter {weights.name} must have zero points 0 (per-channel int8 weights)")
        if ctx.optional(2) is None:
            # LiteRT refuses this at load: "has_bias was not true" / "Tensor at index 2 was optional".
            raise ctx.fail("a bias tensor is mandatory for CONV_2D")
    bias = ctx.optional(2)
    bias_data = ctx.bias(bias, out_depth) if bias is not None else NO_BIAS

    stride_h, stride_w = ctx.positive_option("stride_h", 1), ctx.positive_option("stride_w", 1)
    dilation_h = ctx.positive_option("dilation_h_factor", 1)
    dilation_w = ctx.positive_option("dilation_w_factor", 1)
    out_h, out_w, pad_top, pad_left = ctx.window(x, filter_h, filter_w, stride_h, stride_w, dilation_h, dilation_w)
    ctx.check_output_shape(output, (x.shape[0], out_h, out_w, out_depth))
    # eff[c] = float64(in_s) * float64(w_s[c]) / float64(out_s), left to right (TFLite's order).
    effective = ctx.scale(x) * ctx.weight_scales(weights, out_depth) / ctx.scale(output)
    multiplier, shift = ctx.multipliers(effective)
    act_min, act_max = ctx.fused_range(output)
    params = ConvParams(
        input_offset=-ctx.zero_point(x),
        output_offset=ctx.zero_point(output),
        stride_height=stride_h,
        stride_width=stride_w,
        dilation_height=dilation_h,
        dilation_width=dilation_w,
        padding_top=pad_top,
        padding_left=pad_left,
        output_multiplier=multiplier,
        output_shift=shift,
        activation_min=act_min,
        activation_max=act_max,
    )
    constants = ((tuple(weights.shape), filter_data), ((bias_data.size,), bias_data))
    return Prepared(params, (ctx.op.inputs[0],), constants)
