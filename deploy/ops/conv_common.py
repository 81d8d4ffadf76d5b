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

C_PARAMS = {"conv_params": c_block(("channel_out",), r"""
/* CONV_2D and DEPTHWISE_CONV_2D. Offsets follow TFLite: input_offset = -input zero point,
   output_offset = +output zero point. Each output channel's bias and requantization: channel[out]. */
typedef struct {
    int input_h, input_w, input_depth;
    int output_h, output_w, output_depth;
    int filter_h, filter_w, filter_depth;
    int stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_left;
    int32_t input_offset, output_offset, act_min, act_max;
    const int8_t *filter;      /* depthwise with depth multiplier > 1: [1][h][w][out]; else NULL */
    const uint32_t *pairs;     /* conv: conv_filter_pairs' words (ec_dot_2x2); depthwise, multiplier 1: depthwise_pairs' */
    const ec_channel *channel; /* [out] */
    int fast;                  /* ec_channel_out's mode for every channel (channel_mode) */
    int reverse;               /* conv: output pixels last to first (a 1x1 conv widening in place) */
    int pointwise;             /* conv: 1x1, stride 1, no padding, one group (ec_pointwise; 4 bytes of scratch per tap) */
    int run4;                  /* conv through ec_conv_runs: a window row's taps rounded up to 4; else 0 */
    int packed;                /* ec_conv_runs with the rows one after the other (ec_conv_packed_window) */
} ec_conv_params;
""")}


def conv_filter_pairs(filter_data: np.ndarray, out_depth: int, groups: int) -> tuple[np.ndarray, int]:
    """CONV_2D's weights as ec_dot_2x2 reads them (uint32 words), and the taps per filter rounded up to 4.

    Within each group, filters go in pairs (a zero filter completes an odd group); per 4 taps
    (w0..w3) a pair is 4 words: filter 0's (w0 | w2 << 16) and (w1 | w3 << 16), then filter 1's,
    16-bit two's complement lanes in SXTB16's order; zero weights pad the taps (they add nothing)."""
    w = np.asarray(filter_data, dtype=np.int64).reshape(out_depth, -1)
    taps = w.shape[1]
    taps4 = -(-taps // 4) * 4
    per_group = out_depth // groups
    pairs = -(-per_group // 2)
    padded = np.zeros((groups, pairs * 2, taps4), dtype=np.int64)
    padded[:, :per_group, :taps] = w.reshape(groups, per_group, taps)  # [g][pair][chunk][f][4] below
    return lane_words(padded.reshape(groups, pairs, 2, taps4 // 4, 4).transpose(0, 1, 3, 2, 4)), taps4


def lane_words(fours: np.ndarray) -> np.ndarray:
    """Weights in fours (last axis: w0..w3) as the uint32 words SXTB16's lane order needs, flattened:
    (w0 | w2 << 16), (w1 | w3 << 16), 16-bit two's complement lanes."""
    lanes = np.asarray(fours, dtype=np.int64) & 0xFFFF
    words = np.stack([lanes[..., 0] | lanes[..., 2] << 16, lanes[..., 1] | lanes[..., 3] << 16], axis=-1)
    return words.reshape(-1).astype(np.uint32)


def depthwise_pairs(filter_data: np.ndarray, depth: int) -> np.ndarray:
    """DEPTHWISE_CONV_2D's weights (multiplier 1) as ec_depthwise_row reads them: channels in groups of
    four (zero weights fill the last group), each group's taps in order, per tap two words
    (w[c] | w[c+2] << 16) and (w[c+1] | w[c+3] << 16), 16-bit two's complement lanes."""
    w = np.asarray(filter_data, dtype=np.int64).reshape(-1, depth)  # [taps][channel]
    quads = -(-depth // 4)
    padded = np.zeros((w.shape[0], quads * 4), dtype=np.int64)
    padded[:, :depth] = w
    return lane_words(padded.reshape(-1, quads, 4).transpose(1, 0, 2))  # [group][tap][4]


def channel_table(emit, name: str, bias, multiplier, shift, offset: int = 0) -> tuple[str, bool]:
    """`static const ec_channel name[]` (bias, TFLite's multiplier and shift, the merged rounding) and
    whether every channel takes ec_channel_out's one-multiply path (1 <= -shift <= 31, multiplier >= 0).
    offset: the output offset mode 3 folds into half (channel_mode), else 0."""
    multiplier = np.asarray(multiplier, dtype=np.int64)
    r = -np.asarray(shift, dtype=np.int64)
    fast = bool(np.all((r >= 1) & (r <= 31) & (multiplier >= 0)))
    rows = []
    for b, m, s, rr in zip(np.asarray(bias, dtype=np.int64), multiplier, np.asarray(shift, dtype=np.int64), r):
        rounding = (1 << 30) + (1 << int(30 + rr)) if 1 <= rr <= 31 else 0
        post = int(rr) - 1 if 1 <= rr <= 31 else 0
        half = (1 << (int(rr) - 1)) + (offset << int(rr)) if 1 <= rr <= 31 else 0
        rows.append(f"    {{{emit.int_literal(rounding)}, {emit.int_literal(int(b))}, {emit.int_literal(int(m))}, "
                    f"{emit.int_literal(half)}, {post + 1 if 1 <= rr <= 31 else 0}, {emit.int_literal(int(s))}, {post}}},")
    return f"static const ec_channel {name}[{len(rows)}] = {{\n" + "\n".join(rows) + "\n};\n", fast


def channel_mode(multiplier, shift, bound, act_min: int, act_max: int) -> int:
    """ec_channel_out's mode for a conv op (c_source "channel_out"): 3 or 2 (one SMMLAR; 3 with the clamp
    [-128, 127] and r <= 22, the output offset then inside half) when every channel has 1 <= r <= 31, a
    multiplier in [2^30, 2^31) and |accumulator| <= bound < 2^29; else 1 (one SMLAL) when 1 <= r <= 31 and
    multiplier >= 0; else 0 (TFLite's steps)."""
    multiplier = np.asarray(multiplier, dtype=np.int64)
    r = -np.asarray(shift, dtype=np.int64)
    if not np.all((r >= 1) & (r <= 31) & (multiplier >= 0)):
        return 0
    if np.all(multiplier >= 2**30) and np.all(np.asarray(bound, dtype=np.int64) < 2**29):
        return 3 if (act_min, act_max) == (-128, 127) and np.all(r <= 22) else 2
    return 1


def _wrap_int32(v) -> np.ndarray:
    """Integers modulo 2^32 as int32 (TFLite's wrapping accumulator)."""
    return ((np.asarray(v, dtype=np.int64) + 2**31) % 2**32 - 2**31).astype(np.int64)


def c_conv(emit, step, depthwise: bool) -> CSource:
    """The params struct and call of CONV_2D / DEPTHWISE_CONV_2D; conv needs two windows as int8 scratch."""
    p, name = step.params, emit.prefix(step)
    (filter_shape, filter_data), (_, bias_data) = step.constants
    _, in_h, in_w, in_depth = emit.shape(step.inputs[0])
    _, out_h, out_w, out_depth = emit.shape(step.outputs[0])
    _, filter_h, filter_w, filter_depth = filter_shape
    bias = np.asarray(bias_data, dtype=np.int64) if bias_data.size else np.zeros(out_depth, dtype=np.int64)
    weights = np.asarray(filter_data, dtype=np.int64)
    pointwise = runs = packed = False
    if not depthwise:
        groups = in_depth // filter_depth
        taps4 = -(-filter_h * filter_w * filter_depth // 4) * 4
        run4 = -(-filter_w * filter_depth // 4) * 4  # a window row's taps, rounded up to 4
        pointwise = (emit.shape(step.inputs[0])[0] == 1 and p.stride_height == p.stride_width == 1
                     and (out_h, out_w) == (in_h, in_w) and filter_h == filter_w == 1 and filter_depth == in_depth)  # fmt: skip
        # ec_conv_runs: one group, window rows as runs of the input row, each padded to a multiple of 4 taps
        # with zero weights; its patch (16-bit lanes) takes 4 bytes per tap, so only where that stays small.
        runs = (not pointwise and groups == 1 and p.dilation_width == 1
                and 4 * filter_h * run4 <= max(2 * taps4, 256))  # fmt: skip
        # sum(w * (x + input_offset)) = sum(w * x) + input_offset * sum(w), modulo 2^32: the second term
        # and the bias are where the sum starts.
        bias = _wrap_int32(bias + p.input_offset * weights.reshape(out_depth, -1).sum(axis=1))
    # The largest |accumulator|: conv sums w * x (|x| <= 128) onto the folded bias; depthwise w * (x + input_offset)
    # (|x + input_offset| <= 255) onto the bias.
    w_abs = np.abs(weights)
    w_abs = w_abs.reshape(-1, out_depth).sum(axis=0) if depthwise else w_abs.reshape(out_depth, -1).sum(axis=1)
    bound = np.abs(bias) + (255 if depthwise else 128) * w_abs
    fast = channel_mode(p.output_multiplier, p.output_shift, bound, p.activation_min, p.activation_max)
    if depthwise and out_depth != in_depth:
        fast = min(fast, 2)  # the int8 filter of a depth multiplier > 1 cannot hold doubled weights
    # Mode 3 sums twice the accumulator (weights and bias doubled: |2w| <= 254 fits the 16-bit lanes, and
    # |2 * accumulator| < 2^30), which ec_channel_out_q's SMMLAR then takes without a shift.
    twice = 2 if fast == 3 else 1
    if depthwise and out_depth == in_depth:
        arranged = depthwise_pairs(twice * weights, out_depth)
        data = emit.array("uint32_t", f"{name}_pairs", arranged)
        taps4 = 0
    elif depthwise:
        data = emit.array("int8_t", f"{name}_filter", filter_data)
        taps4, arranged = 0, filter_data
    else:
        # The rows one after the other when that takes fewer taps than each padded to run4 (MobileNet's 3x3x3:
        # 28 taps, not 36); the window then goes through a byte buffer first.
        packed = runs and taps4 < filter_h * run4
        if packed:
            arranged, taps4 = conv_filter_pairs(twice * weights, out_depth, 1)
        elif runs:
            rows = np.zeros((out_depth, filter_h, run4), dtype=np.int64)
            rows[:, :, : filter_w * filter_depth] = weights.reshape(out_depth, filter_h, -1)
            arranged, taps4 = conv_filter_pairs(twice * rows, out_depth, 1)
        else:
            arranged, taps4 = conv_filter_pairs(twice * weights, out_depth, groups)
        data = emit.array("uint32_t", f"{name}_pairs", arranged)
    table, _ = channel_table(emit, f"{name}_channel", twice * bias, p.output_multiplier, p.output_shift,
                             p.output_offset if fast == 3 else 0)
    data += table
    fields = [
        ("input_h", in_h), ("input_w", in_w), ("input_depth", in_depth),
        ("output_h", out_h), ("output_w", out_w), ("output_depth", out_depth),
        ("filter_h", filter_h), ("filter_w", filter_w), ("filter_depth", 1 if depthwise else filter_depth),
        ("stride_h", p.stride_height), ("stride_w", p.stride_width),
        ("dilation_h", p.dilation_height), ("dilation_w", p.dilation_width),
        ("pad_top", p.padding_top), ("pad_left", p.padding_left),
        ("input_offset", p.input_offset), ("output_offset", p.output_offset),
        ("act_min", p.activation_min), ("act_max", p.activation_max),
        ("filter", f"{name}_filter" if depthwise and out_depth != in_depth else "NULL"),
        ("pairs", "NULL" if depthwise and out_depth != in_depth else f"{name}_pairs"),
        ("channel", f"{name}_channel"), ("fast", int(fast)),
    ]  # fmt: skip
    nbytes = arranged.nbytes + 32 * out_depth  # + the ec_channel table
    images, in_size, out_size = emit.shape(step.inputs[0])[0], in_h * in_w * in_depth, out_h * out_w * out_depth
    same_grid = (images == 1 and p.stride_height == p.stride_width == 1 and (out_h, out_w) == (in_h, in_w)
                 and p.dilation_height == p.dilation_width == 1)  # fmt: skip
    if depthwise:
        data += emit.struct("ec_conv_params", f"{name}_params", fields)
        # The scratch starts with filter_h row pointers (8 bytes each, whatever the target's pointer size).
        rows, pointers = "(const int8_t **)@SCRATCH@", 8 * filter_h
        call = per_image(f"ec_depthwise_conv_2d(&{name}_params, @IN0@, @OUT0@, {rows});", images, in_size, out_size)
        if same_grid and out_depth == in_depth and 0 <= p.padding_top < filter_h:
            # In place with a ring of pad_top + 1 input rows after the pointers (ec_depthwise_conv_2d_in_place).
            ring = (p.padding_top + 1) * in_w * in_depth
            return CSource(call, data, ("depthwise_conv_2d",), nbytes, pointers, in_place=0,
                           in_place_call=f"ec_depthwise_conv_2d_in_place(&{name}_params, @OUT0@, {rows}, "
                                         f"(int8_t *)@SCRATCH@ + {pointers});",
                           in_place_blocks=("depthwise_conv_2d_in_place",), in_place_scratch=pointers + ring)  # fmt: skip
        lead = in_place_lead(p, (in_h, in_w, in_depth), (out_h, out_w, out_depth), (filter_h, filter_w), 1)
        if images == 1 and out_depth == in_depth and lead is not None:
            return CSource(call, data, ("depthwise_conv_2d",), nbytes, pointers, in_place=0, in_place_offset=lead)
        return CSource(call, data, ("depthwise_conv_2d",), nbytes, pointers)
    # Widening 1x1 conv in place: last pixel first, so pixel q's bytes are overwritten only by pixels <= q.
    fields.append(("reverse", int(pointwise and out_depth > in_depth)))
    fields.append(("pointwise", int(pointwise)))
    fields.append(("run4", run4 if runs else 0))
    fields.append(("packed", int(packed)))
    data += emit.struct("ec_conv_params", f"{name}_params", fields)
    call = per_image(f"ec_conv_2d(&{name}_params, @IN0@, @OUT0@, (int8_t *)@SCRATCH@);", images, in_size, out_size)
    # two output pixels' windows: int8 (ec_conv_2d), or 16-bit lanes in 32-bit words (ec_pointwise, ec_conv_runs)
    scratch = 6 * taps4 if packed else 4 * taps4 if pointwise or runs else 2 * taps4  # packed: + a byte buffer
    # A 1x1 conv copies its two input pixels into the patch before writing their output pixels, so it runs
    # in place. A stride-1 conv keeping the channel count runs in place with its output starting pad_top
    # rows and pad_left pixels before its input: output pixel o then overwrites input pixel o - (pad_top*W +
    # pad_left), whose last reader in raster order is o itself, and o copies its window into the patch first.
    # Any other one-group conv runs in place with its output starting in_place_lead bytes before its input
    # (for a stride-1 conv keeping its channels: pad_top rows + pad_left pixels).
    lead = in_place_lead(p, (in_h, in_w, in_depth), (out_h, out_w, out_depth), (filter_h, filter_w), 2)
    if not pointwise and images == 1 and filter_depth == in_depth and lead is not None:
        return CSource(call, data, ("conv_2d",), nbytes, scratch, in_place=0, in_place_offset=lead)
    return CSource(call, data, ("conv_2d",), nbytes, scratch, in_place=0 if pointwise else None)


def in_place_lead(p, in_hwc, out_hwc, filter_hw, block: int) -> int | None:
    """How many bytes before its input a conv's output may start so that ec_conv_2d (block=2: both windows
    of a pixel pair read before either pixel is written) or ec_depthwise_row (block=1: a pixel's channels
    written in increasing order, each after the reads of the channels before it) never overwrites an input
    byte it still reads; None when the two would not overlap, or the output is the larger.

    Output pixels o go in raster order; what is written before pixel q's reads ends at w(q) * C_out bytes
    after the output's start (w(q) = q, or 2 * (q // 2) for pairs), and pixel q reads nothing below its
    first tap inside the image, at b(q) bytes after the input's start. So the output may start at most
    min over q of (b(q) - w(q) * C_out) bytes after the input's start (negative: before it); pixels whose
    window misses the image read nothing. For depthwise the channel offsets cancel (channel c is written
    at +c and read at +c)."""
    (in_h, in_w, in_depth), (out_h, out_w, out_depth), (filter_h, filter_w) = in_hwc, out_hwc, filter_hw

    def first_tap(origin, dilation, taps, size):  # ec_depthwise_taps' lo, vectorized: the first tap inside
        lo = np.where(origin < 0, (-origin + dilation - 1) // dilation, 0)
        hi = np.minimum(np.where(size - origin <= 0, 0, (size - origin + dilation - 1) // dilation), taps)
        return origin + dilation * np.minimum(lo, hi), lo < hi

    rows, rows_in = first_tap(np.arange(out_h) * p.stride_height - p.padding_top, p.dilation_height, filter_h, in_h)
    cols, cols_in = first_tap(np.arange(out_w) * p.stride_width - p.padding_left, p.dilation_width, filter_w, in_w)
    first = ((rows[:, None] * in_w + cols[None, :]) * in_depth).reshape(-1).astype(np.int64)
    reads = (rows_in[:, None] & cols_in[None, :]).reshape(-1)
    q = np.arange(out_h * out_w, dtype=np.int64)
    written = (q if block == 1 else 2 * (q // 2)) * out_depth
    if not reads.size or not reads.any():
        return None
    shift = int(np.min((first - written)[reads]))  # the output's start minus the input's start, at most
    in_size, out_size = in_h * in_w * in_depth, out_h * out_w * out_depth
    overlap = min(in_size, shift + out_size) - max(0, shift)
    # Only where the output is no larger than its input (a stride-2 layer, say): tying a larger output to its
    # input's place can cost the planner more than the overlap saves (LeNet-5's second conv: +768 bytes).
    return -shift if overlap > 0 and out_size <= in_size else None


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
