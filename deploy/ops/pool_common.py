"""What MAX_POOL_2D and AVERAGE_POOL_2D share: Pool2DOptions and the window prepare (no rescaling)."""

from __future__ import annotations

import numpy as np

from edgecnn.deploy.export.c_source import CSource, c_block, per_image
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


# ---------------------------------------------------------------- C (kernels: max_pool_2d.py, average_pool_2d.py)

C_PARAMS = {"pool_params": c_block((), r"""
/* MAX_POOL_2D and AVERAGE_POOL_2D: no rescaling, only the window (clipped to the image) and the clamp. */
typedef struct {
    int input_h, input_w, depth, output_h, output_w;
    int filter_h, filter_w, stride_h, stride_w, pad_top, pad_left;
    int32_t act_min, act_max;
} ec_pool_params;
""")}


def c_pool(emit, step, kernel: str) -> CSource:
    """The params struct and the call of `kernel` (ec_max_pool_2d or ec_average_pool_2d, a block of that name)."""
    p, name = step.params, emit.prefix(step)
    _, in_h, in_w, depth = emit.shape(step.inputs[0])
    _, out_h, out_w, _ = emit.shape(step.outputs[0])
    fields = [
        ("input_h", in_h), ("input_w", in_w), ("depth", depth), ("output_h", out_h), ("output_w", out_w),
        ("filter_h", p.filter_height), ("filter_w", p.filter_width),
        ("stride_h", p.stride_height), ("stride_w", p.stride_width),
        ("pad_top", p.padding_top), ("pad_left", p.padding_left),
        ("act_min", p.activation_min), ("act_max", p.activation_max),
    ]  # fmt: skip
    data = emit.struct("ec_pool_params", f"{name}_params", fields)
    call = per_image(f"ec_{kernel}(&{name}_params, @IN0@, @OUT0@);", emit.shape(step.inputs[0])[0],
                     in_h * in_w * depth, out_h * out_w * depth)  # fmt: skip
    return CSource(call, data, (kernel,))


# ---------------------------------------------------------------- ONNX


def onnx_max_pool(lw, step) -> None:
    """Pad with -128 (TFLite's max starts there and skips padding, so it changes nothing), int8 MaxPool."""
    b, p = lw.b, step.params
    pads = lw.window_pads(step, (p.filter_height, p.filter_width), (p.stride_height, p.stride_width))
    x = b.pad_nchw(lw.nchw(step.inputs[0]), pads, -128, np.int8)
    pooled = b.node("MaxPool", [x], "maxpool", kernel_shape=[p.filter_height, p.filter_width],
                    strides=[p.stride_height, p.stride_width])  # fmt: skip
    if (p.activation_min, p.activation_max) != (-128, 127):
        pooled = b.node("Clip", [pooled, b.const(p.activation_min, np.int8), b.const(p.activation_max, np.int8)],
                        "clamp")  # fmt: skip
    lw.set(step.outputs[0], pooled, "NCHW")


def window_counts(size: int, window: int, stride: int, pad_before: int, out_size: int) -> np.ndarray:
    """In-bounds taps of each output position's window along one axis."""
    start = np.arange(out_size) * stride - pad_before
    return np.minimum(start + window, size) - np.maximum(start, 0)


def onnx_average_pool(lw, step) -> None:
    """Window sums with a ConvInteger of ones (pad value = int8 0), then TFLite's rounding division by the
    in-bounds count of each position."""
    from onnx import TensorProto

    b, p = lw.b, step.params
    _, height, width, depth = lw.shape(step.inputs[0])
    _, out_h, out_w, _ = lw.shape(step.outputs[0])
    pads = lw.window_pads(step, (p.filter_height, p.filter_width), (p.stride_height, p.stride_width))
    counts = window_counts(height, p.filter_height, p.stride_height, p.padding_top, out_h)[:, None] * \
        window_counts(width, p.filter_width, p.stride_width, p.padding_left, out_w)[None, :]
    if np.any(counts <= 0):
        raise lw.fail(step, "a window lies entirely in the padding")
    # Sum of the raw int8 values over the in-bounds window: uint8 (q + 128) with zero point 128,
    # padded with 128 (q = 0), times a filter of ones. |sum| <= 128 * taps stays far inside int32.
    x = b.pad_nchw(b.int8_to_uint8(lw.nchw(step.inputs[0])), pads, 128, np.uint8)
    ones = b.const(np.ones((depth, 1, p.filter_height, p.filter_width)), np.uint8, "ones")
    total = b.node("ConvInteger", [x, ones, b.const(128, np.uint8), b.const(0, np.uint8)], "window_sum",
                   kernel_shape=[p.filter_height, p.filter_width], strides=[p.stride_height, p.stride_width],
                   group=depth)  # fmt: skip
    averaged = b.divide_round_half_away(b.cast(total, TensorProto.INT64),
                                        b.const(counts[None, None], np.int64, "counts"),
                                        b.const(counts[None, None] // 2, np.int64, "half_counts"))  # fmt: skip
    lw.set(step.outputs[0], b.clip_to_int8(averaged, p.activation_min, p.activation_max, np.int64), "NCHW")
