"""What CONV_2D and DEPTHWISE_CONV_2D share: window options, the per-channel prepare, the params record."""

from __future__ import annotations

import numpy as np

from edgecnn.deploy.export.c_source import CSource, c_block, per_image
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
    """ConvPerChannel / DepthwiseConvPerChannel's load-time checks and multipliers (docs/int8.md 3)."""
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


# ---------------------------------------------------------------- C (kernels: conv_2d.py, depthwise_conv_2d.py)

C_PARAMS = {"conv_params": c_block((), r"""
/* CONV_2D and DEPTHWISE_CONV_2D. Offsets follow TFLite: input_offset = -input zero point,
   output_offset = +output zero point. Multipliers and shifts are per output channel. */
typedef struct {
    int input_h, input_w, input_depth;
    int output_h, output_w, output_depth;
    int filter_h, filter_w, filter_depth;
    int stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_left;
    int32_t input_offset, output_offset, act_min, act_max;
    const int8_t *filter;      /* conv [out][h][w][filter_depth]; depthwise [1][h][w][out] */
    const int32_t *bias;       /* [out], or NULL */
    const int32_t *multiplier; /* [out] */
    const int32_t *shift;      /* [out] */
    int reverse;               /* conv: output pixels last to first (a 1x1 conv widening in place) */
    const int32_t *filter_sum; /* conv: [out] sum of each filter's weights; depthwise: NULL */
} ec_conv_params;
""")}


def c_conv(emit, step, depthwise: bool) -> CSource:
    """The params struct and call of CONV_2D / DEPTHWISE_CONV_2D; conv needs one window as int8 scratch."""
    p, name = step.params, emit.prefix(step)
    (filter_shape, filter_data), (_, bias_data) = step.constants
    _, in_h, in_w, in_depth = emit.shape(step.inputs[0])
    _, out_h, out_w, out_depth = emit.shape(step.outputs[0])
    _, filter_h, filter_w, filter_depth = filter_shape
    data = emit.array("int8_t", f"{name}_filter", filter_data)
    data += emit.array("int32_t", f"{name}_multiplier", p.output_multiplier)
    data += emit.array("int32_t", f"{name}_shift", p.output_shift)
    if bias_data.size:
        data += emit.array("int32_t", f"{name}_bias", bias_data)
    fields = [
        ("input_h", in_h), ("input_w", in_w), ("input_depth", in_depth),
        ("output_h", out_h), ("output_w", out_w), ("output_depth", out_depth),
        ("filter_h", filter_h), ("filter_w", filter_w), ("filter_depth", 1 if depthwise else filter_depth),
        ("stride_h", p.stride_height), ("stride_w", p.stride_width),
        ("dilation_h", p.dilation_height), ("dilation_w", p.dilation_width),
        ("pad_top", p.padding_top), ("pad_left", p.padding_left),
        ("input_offset", p.input_offset), ("output_offset", p.output_offset),
        ("act_min", p.activation_min), ("act_max", p.activation_max),
        ("filter", f"{name}_filter"), ("bias", f"{name}_bias" if bias_data.size else "NULL"),
        ("multiplier", f"{name}_multiplier"), ("shift", f"{name}_shift"),
    ]  # fmt: skip
    if not depthwise:
        sums = np.asarray(filter_data, dtype=np.int64).reshape(out_depth, -1).sum(axis=1)
        data += emit.array("int32_t", f"{name}_filter_sum", sums)
        fields.append(("filter_sum", f"{name}_filter_sum"))
    data += emit.struct("ec_conv_params", f"{name}_params", fields)
    nbytes = filter_data.size + 4 * (bias_data.size + (2 if depthwise else 3) * out_depth)
    images, in_size, out_size = emit.shape(step.inputs[0])[0], in_h * in_w * in_depth, out_h * out_w * out_depth
    same_grid = (images == 1 and p.stride_height == p.stride_width == 1 and (out_h, out_w) == (in_h, in_w)
                 and p.dilation_height == p.dilation_width == 1)  # fmt: skip
    if depthwise:
        call = per_image(f"ec_depthwise_conv_2d(&{name}_params, @IN0@, @OUT0@);", images, in_size, out_size)
        if same_grid and out_depth == in_depth and 0 <= p.padding_top < filter_h:
            # In place with a ring of pad_top + 1 input rows (ec_depthwise_conv_2d_in_place).
            ring = (p.padding_top + 1) * in_w * in_depth
            return CSource(call, data, ("depthwise_conv_2d",), nbytes, in_place=0,
                           in_place_call=f"ec_depthwise_conv_2d_in_place(&{name}_params, @OUT0@, "
                                         "(int8_t *)@SCRATCH@);",
                           in_place_blocks=("depthwise_conv_2d_in_place",), in_place_scratch=ring)  # fmt: skip
        return CSource(call, data, ("depthwise_conv_2d",), nbytes)
    pointwise = same_grid and filter_h == filter_w == 1 and filter_depth == in_depth
    if pointwise and out_depth > in_depth:
        # Widening 1x1 conv in place: last pixel first, so pixel q's bytes are overwritten only by pixels <= q.
        data = data.replace(f"    .shift = {name}_shift,\n", f"    .shift = {name}_shift,\n    .reverse = 1,\n")
    call = per_image(f"ec_conv_2d(&{name}_params, @IN0@, @OUT0@, @SCRATCH@);", images, in_size, out_size)
    # A 1x1 conv copies each input pixel into the patch before writing that output pixel, so it runs in place.
    # A stride-1 conv keeping the channel count runs in place with its output starting pad_top rows and
    # pad_left pixels before its input: output pixel o then overwrites input pixel o - (pad_top*W + pad_left),
    # whose last reader in raster order is o itself, and o copies its window into the patch first.
    if not pointwise and same_grid and filter_depth == in_depth == out_depth:
        return CSource(call, data, ("conv_2d",), nbytes, filter_h * filter_w * filter_depth, in_place=0,
                       in_place_offset=(p.padding_top * in_w + p.padding_left) * in_depth)
    return CSource(call, data, ("conv_2d",), nbytes, filter_h * filter_w * filter_depth,
                   in_place=0 if pointwise else None)


# ---------------------------------------------------------------- ONNX


def onnx_conv(lw, step, depthwise: bool) -> None:
    """Pad with the input zero point (TFLite skips out-of-image taps, i.e. adds w * 0), ConvInteger in
    uint8 x uint8 -> int32, + int32 bias, MultiplyByQuantizedMultiplier in int64, + zero point, clamp, int8."""
    from onnx import TensorProto

    b, p = lw.b, step.params
    (filter_shape, filter_data), (_, bias) = step.constants
    weights = filter_data.reshape(filter_shape)
    in_depth = lw.shape(step.inputs[0])[3]
    if not depthwise:
        out_depth, filter_h, filter_w, filter_depth = filter_shape
        groups = in_depth // filter_depth
        oihw = weights.transpose(0, 3, 1, 2)
    else:  # [1, H, W, C*M] -> [C*M, 1, H, W]; group = input channel puts channel ic*M + m where TFLite does
        _, filter_h, filter_w, out_depth = filter_shape
        groups = in_depth
        oihw = weights.transpose(3, 0, 1, 2)
    pads = lw.window_pads(step, (filter_h, filter_w), (p.stride_height, p.stride_width),
                          (p.dilation_height, p.dilation_width))  # fmt: skip
    in_zp_u8 = b.const(-p.input_offset + 128, np.uint8, "input_zp_u8")
    x = b.pad_nchw(b.int8_to_uint8(lw.nchw(step.inputs[0])), pads, -p.input_offset + 128, np.uint8)
    # Weights int8 -> uint8 with zero point 128: (w + 128) - 128 = w, and a u8 x u8 GEMM is exact.
    w = b.const(oihw.astype(np.int16) + 128, np.uint8, "filter_u8")
    acc = b.node("ConvInteger", [x, w, in_zp_u8, b.const(128, np.uint8)], "conv",
                 kernel_shape=[filter_h, filter_w], strides=[p.stride_height, p.stride_width],
                 dilations=[p.dilation_height, p.dilation_width], group=groups)  # fmt: skip
    if bias.size:
        acc = b.node("Add", [acc, b.const(bias.reshape(-1, 1, 1), np.int32, "bias")], "plus_bias")
    scaled = b.multiply_by_quantized_multiplier(b.cast(acc, TensorProto.INT64), p.output_multiplier,
                                                p.output_shift, (out_depth, 1, 1))  # fmt: skip
    lw.set(step.outputs[0], b.output_stage(scaled, p.output_offset, p.activation_min, p.activation_max), "NCHW")
