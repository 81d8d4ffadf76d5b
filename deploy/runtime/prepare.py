"""Turn each Op of an Int8Graph into a kernel call with a frozen params record.

Everything float happens here, once: multipliers from float32 scales in
float64 (INT8.md 2.1), activation ranges (2.5), lookup tables, softmax
scaling. The checks are the ones TFLite makes when it loads a model
(INT8.md section 1, "Load-time checks"), so a graph that LiteRT refuses is
refused here too, with a message that names the op and the problem.

Activation tensors carry a batch of 1 in the graph; at run time tensor t
holds N images as an array of shape (N * t.shape[0], *t.shape[1:]).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from edgecnn.deploy.graph import Int8Graph, Op, Tensor
from edgecnn.deploy.runtime import activations, conv, depthwise_conv, fully_connected, pooling, reshape, softmax
from edgecnn.deploy.runtime.padding import compute_padding
from edgecnn.deploy.runtime.params import (
    RESCALE_FLOAT,
    RESCALE_INTEGER,
    ConvParams,
    FullyConnectedParams,
    LookupTableParams,
    PoolParams,
    ReshapeParams,
    SoftmaxParams,
)
from edgecnn.errors import ModelError, QuantizationError, ShapeError, UnsupportedOpError
from edgecnn.quantize.qparams import activation_range, quantize_multiplier, quantize_multipliers

FC_RESCALE_MODES = {"float": RESCALE_FLOAT, "integer": RESCALE_INTEGER}

KERNELS: dict[str, Callable] = {
    "CONV_2D": conv.conv_2d,
    "DEPTHWISE_CONV_2D": depthwise_conv.depthwise_conv_2d,
    "FULLY_CONNECTED": fully_connected.fully_connected,
    "MAX_POOL_2D": pooling.max_pool_2d,
    "AVERAGE_POOL_2D": pooling.average_pool_2d,
    "RESHAPE": reshape.reshape,
    "SOFTMAX": softmax.softmax,
    "LOGISTIC": activations.logistic,
    "TANH": activations.tanh,
}

_NO_BIAS = ((0,), np.zeros(0, dtype=np.int32))


@dataclass(frozen=True)
class PreparedOp:
    """One kernel call: kernel(params, input_shape, input, *constant (shape, data) pairs, output_shape, output)."""

    index: int
    kind: str
    kernel: Callable
    params: tuple
    input: int  # tensor index of the activation input
    constants: tuple  # ((shape, flat data), ...) for filter and bias, in TFLite's order
    output: int  # tensor index written


class _OpContext:
    """The op being prepared, for lookups and error messages that name it."""

    def __init__(self, graph: Int8Graph, index: int, op: Op):
        self.graph, self.index, self.op = graph, index, op

    def fail(self, message: str, error=ModelError):
        return error(f"op {self.index} ({self.op.kind}): {message}")

    def tensor(self, position: int, role: str) -> Tensor:
        if position >= len(self.op.inputs) or self.op.inputs[position] == -1:
            raise self.fail(f"the {role} input is missing")
        return self.graph.tensors[self.op.inputs[position]]

    def optional(self, position: int) -> Tensor | None:
        if position >= len(self.op.inputs) or self.op.inputs[position] == -1:
            return None
        return self.graph.tensors[self.op.inputs[position]]

    def output(self) -> Tensor:
        if len(self.op.outputs) != 1:
            raise self.fail(f"expected 1 output, got {len(self.op.outputs)}")
        return self.graph.tensors[self.op.outputs[0]]

    def option(self, name: str, default=None):
        value = self.op.options.get(name, default)
        if value is None:
            raise self.fail(f"option {name} is missing")
        return value

    def positive_option(self, name: str, default=None) -> int:
        value = int(self.option(name, default))
        if value <= 0:
            raise self.fail(f"{name} must be positive, got {value}")
        return value


def _scale(ctx: _OpContext, tensor: Tensor) -> float:
    """The single float32 scale of an activation tensor, as a float64."""
    if tensor.scale.size != 1:
        raise ctx.fail(f"tensor {tensor.name} needs one scale, has {tensor.scale.size}")
    s = float(tensor.scale[0])
    if not (math.isfinite(s) and s > 0):
        raise ctx.fail(f"tensor {tensor.name} has scale {s}; scales must be positive and finite")
    return s


def _zero_point(ctx: _OpContext, tensor: Tensor) -> int:
    zp = int(tensor.zero_point[0])
    if not -128 <= zp <= 127:
        raise ctx.fail(f"tensor {tensor.name} has zero point {zp}, outside int8")
    return zp


def _activation_tensor(ctx: _OpContext, tensor: Tensor, role: str) -> Tensor:
    if tensor.dtype != "int8":
        raise ctx.fail(f"{role} {tensor.name} is {tensor.dtype}, not int8", UnsupportedOpError)
    if tensor.is_constant:
        raise ctx.fail(f"{role} {tensor.name} is a constant; only computed activations are supported",
                       UnsupportedOpError)  # fmt: skip
    _scale(ctx, tensor)
    _zero_point(ctx, tensor)
    return tensor


def _constant(ctx: _OpContext, tensor: Tensor, role: str, dtype: str, rank: int | None) -> np.ndarray:
    if not tensor.is_constant:
        raise ctx.fail(f"{role} {tensor.name} must be a constant tensor", UnsupportedOpError)
    if tensor.dtype != dtype:
        raise ctx.fail(f"{role} {tensor.name} is {tensor.dtype}, expected {dtype}", UnsupportedOpError)
    if rank is not None and len(tensor.shape) != rank:
        raise ctx.fail(f"{role} {tensor.name} has shape {tensor.shape}, expected rank {rank}", ShapeError)
    if tensor.data.size != int(np.prod(tensor.shape)):
        raise ctx.fail(f"{role} {tensor.name} holds {tensor.data.size} values for shape {tensor.shape}", ShapeError)
    return np.ascontiguousarray(tensor.data).reshape(-1)


def _weight_scales(ctx: _OpContext, weights: Tensor, channels: int) -> np.ndarray:
    """Per-channel float32 weight scales as float64, a single scale broadcast (TFLite expands it)."""
    scales = weights.scale.astype(np.float64)
    if not np.all(np.isfinite(scales) & (scales > 0)):
        raise ctx.fail(f"weights {weights.name} have a scale that is not positive and finite")
    if scales.size == 1:
        return np.full(channels, scales[0])
    if scales.size != channels:
        raise ctx.fail(f"weights {weights.name} have {scales.size} scales for {channels} output channels")
    dim = weights.quantized_dimension
    if not 0 <= dim < len(weights.shape) or weights.shape[dim] != scales.size:
        raise ctx.fail(f"weights {weights.name}: quantized_dimension {dim} of shape {weights.shape} "
                       f"does not have {scales.size} entries")  # fmt: skip
    return scales


def _check_bias(ctx: _OpContext, bias: Tensor, channels: int) -> np.ndarray:
    data = _constant(ctx, bias, "bias", "int32", None)
    if data.size != channels:
        raise ctx.fail(f"bias {bias.name} has {data.size} values for {channels} output channels", ShapeError)
    if np.any(bias.zero_point != 0):
        raise ctx.fail(f"bias {bias.name} must have zero point 0")
    return data


def _check_output_shape(ctx: _OpContext, output: Tensor, expected: tuple) -> None:
    if tuple(output.shape) != tuple(expected):
        raise ctx.fail(f"output {output.name} has shape {output.shape}, the op produces {tuple(expected)}",
                       ShapeError)  # fmt: skip


def _fused_range(ctx: _OpContext, output: Tensor) -> tuple[int, int]:
    try:
        return activation_range(ctx.op.options.get("fused_activation_function", "NONE"),
                                np.float32(output.scale[0]), _zero_point(ctx, output))  # fmt: skip
    except QuantizationError as e:
        raise ctx.fail(str(e)) from None


def _windowed_output(ctx, input_tensor, filter_h, filter_w, stride_h, stride_w, dilation_h, dilation_w):
    padding = ctx.option("padding", "SAME")
    if padding not in ("SAME", "VALID"):
        raise ctx.fail(f"unknown padding {padding!r}")
    if len(input_tensor.shape) != 4:
        raise ctx.fail(f"input {input_tensor.name} must be NHWC, has shape {input_tensor.shape}", ShapeError)
    _, height, width, _ = input_tensor.shape
    out_h, pad_top, _ = compute_padding(padding, height, filter_h, stride_h, dilation_h)
    out_w, pad_left, _ = compute_padding(padding, width, filter_w, stride_w, dilation_w)
    if out_h <= 0 or out_w <= 0:
        raise ctx.fail(f"a {filter_h}x{filter_w} window does not fit the {height}x{width} input", ShapeError)
    return out_h, out_w, pad_top, pad_left


def _conv_multipliers(ctx, input_tensor, output, weight_scales):
    # eff[c] = float64(in_s) * float64(w_s[c]) / float64(out_s), left to right (TFLite's order).
    effective = _scale(ctx, input_tensor) * weight_scales / _scale(ctx, output)
    return quantize_multipliers(effective)


def _prepare_conv(ctx: _OpContext, depthwise: bool):
    x = _activation_tensor(ctx, ctx.tensor(0, "input"), "input")
    output = _activation_tensor(ctx, ctx.output(), "output")
    weights = ctx.tensor(1, "filter")
    filter_data = _constant(ctx, weights, "filter", "int8", 4)
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
            # Two inputs mean "no bias"; a third slot of -1 fails LiteRT's prepare (docs/tflite.md).
            raise ctx.fail("the bias slot is -1, which LiteRT refuses ('Tensor at index 2 was optional but was "
                           "expected'); leave the slot out or give a zero bias")  # fmt: skip
        bias = ctx.optional(2)
    else:
        out_depth, filter_h, filter_w, filter_depth = weights.shape
        if filter_depth <= 0 or in_depth % filter_depth != 0:
            raise ctx.fail(f"input depth {in_depth} is not a multiple of the filter depth {filter_depth}", ShapeError)
        if out_depth % (in_depth // filter_depth) != 0:
            raise ctx.fail(f"{out_depth} filters do not split into {in_depth // filter_depth} groups", ShapeError)
        if np.any(weights.zero_point != 0):
            raise ctx.fail(f"filter {weights.name} must have zero points 0 (per-channel int8 weights)")
        bias = ctx.optional(2)
        if bias is None:
            # LiteRT refuses this at load: "has_bias was not true" / "Tensor at index 2 was optional".
            raise ctx.fail("a bias tensor is mandatory for CONV_2D")
    bias_data = _check_bias(ctx, bias, out_depth) if bias is not None else _NO_BIAS[1]

    stride_h, stride_w = ctx.positive_option("stride_h", 1), ctx.positive_option("stride_w", 1)
    dilation_h = ctx.positive_option("dilation_h_factor", 1)
    dilation_w = ctx.positive_option("dilation_w_factor", 1)
    out_h, out_w, pad_top, pad_left = _windowed_output(ctx, x, filter_h, filter_w, stride_h, stride_w,
                                                       dilation_h, dilation_w)  # fmt: skip
    _check_output_shape(ctx, output, (x.shape[0], out_h, out_w, out_depth))
    multiplier, shift = _conv_multipliers(ctx, x, output, _weight_scales(ctx, weights, out_depth))
    act_min, act_max = _fused_range(ctx, output)
    params = ConvParams(
        input_offset=-_zero_point(ctx, x),
        output_offset=_zero_point(ctx, output),
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
    return params, constants


def _prepare_fully_connected(ctx: _OpContext, fc_rescale: int):
    x = _activation_tensor(ctx, ctx.tensor(0, "input"), "input")
    output = _activation_tensor(ctx, ctx.output(), "output")
    weights = ctx.tensor(1, "filter")
    filter_data = _constant(ctx, weights, "filter", "int8", 2)
    units, depth = weights.shape
    size = int(np.prod(x.shape))
    if depth <= 0 or size % depth != 0:
        raise ctx.fail(f"input {x.name} {x.shape} does not flatten into rows of {depth}", ShapeError)
    bias = ctx.optional(2)
    bias_data = _check_bias(ctx, bias, units) if bias is not None else _NO_BIAS[1]
    if ctx.op.options.get("keep_num_dims", False):
        if x.shape[-1] != depth:
            raise ctx.fail(f"keep_num_dims needs the input's last dimension to be {depth}", ShapeError)
        expected = tuple(x.shape[:-1]) + (units,)
    else:
        expected = (size // depth, units)
    _check_output_shape(ctx, output, expected)

    in_s, out_s = _scale(ctx, x), _scale(ctx, output)
    if weights.scale.size > 1:
        if weights.quantized_dimension != 0 or weights.scale.size != units:
            raise ctx.fail(f"per-channel weights {weights.name} need quantized_dimension 0 and {units} scales, "
                           f"have {weights.quantized_dimension} and {weights.scale.size}")  # fmt: skip
        weight_scales = _weight_scales(ctx, weights, units)
        effective = in_s * weight_scales / out_s
        multiplier, shift = quantize_multipliers(effective)
        weights_offset = 0  # TFLite ignores a per-channel weights zero point
    else:
        w_s = float(_weight_scales(ctx, weights, 1)[0])
        if bias is not None:
            bias_s = float(bias.scale[0])
            if abs(in_s * w_s - bias_s) / out_s > 0.02:
                raise ctx.fail(f"bias scale {bias_s} is not input scale x weight scale ({in_s * w_s}) "
                               "within 2% of the output scale (TFLite refuses this)")  # fmt: skip
        effective = np.full(units, in_s * w_s / out_s)
        # The older integer path rounds in_s * w_s to float32 before dividing (GetQuantizedConvolutionMultipler).
        m, s = quantize_multiplier(float(np.float32(in_s) * np.float32(w_s)) / out_s)
        multiplier, shift = np.full(units, m, dtype=np.int32), np.full(units, s, dtype=np.int32)
        weights_offset = -int(weights.zero_point[0])
    act_min, act_max = _fused_range(ctx, output)
    params = FullyConnectedParams(
        input_offset=-_zero_point(ctx, x),
        weights_offset=weights_offset,
        output_offset=_zero_point(ctx, output),
        rescale=fc_rescale,
        output_multiplier=multiplier,
        output_shift=shift,
        effective_scale=np.ascontiguousarray(effective, dtype=np.float64),
        activation_min=act_min,
        activation_max=act_max,
    )
    constants = ((tuple(weights.shape), filter_data), ((bias_data.size,), bias_data))
    return params, constants


def _prepare_pool(ctx: _OpContext):
    x = _activation_tensor(ctx, ctx.tensor(0, "input"), "input")
    output = _activation_tensor(ctx, ctx.output(), "output")
    filter_h, filter_w = ctx.positive_option("filter_height"), ctx.positive_option("filter_width")
    stride_h, stride_w = ctx.positive_option("stride_h", 1), ctx.positive_option("stride_w", 1)
    out_h, out_w, pad_top, pad_left = _windowed_output(ctx, x, filter_h, filter_w, stride_h, stride_w, 1, 1)
    _check_output_shape(ctx, output, (x.shape[0], out_h, out_w, x.shape[3]))
    act_min, act_max = _fused_range(ctx, output)
    return PoolParams(stride_h, stride_w, filter_h, filter_w, pad_top, pad_left, act_min, act_max), ()


def _prepare_reshape(ctx: _OpContext):
    x = _activation_tensor(ctx, ctx.tensor(0, "input"), "input")
    output = _activation_tensor(ctx, ctx.output(), "output")
    if int(np.prod(x.shape)) != int(np.prod(output.shape)):
        raise ctx.fail(f"cannot reshape {x.shape} into {output.shape}", ShapeError)
    return ReshapeParams(), ()


def _prepare_softmax(ctx: _OpContext):
    x = _activation_tensor(ctx, ctx.tensor(0, "input"), "input")
    output = _activation_tensor(ctx, ctx.output(), "output")
    if len(x.shape) < 1:
        raise ctx.fail("input must have at least one dimension", ShapeError)
    _check_output_shape(ctx, output, x.shape)
    if _zero_point(ctx, output) != -128:
        raise ctx.fail(f"output {output.name} must have zero point -128, has {_zero_point(ctx, output)}")
    out_s = np.float32(output.scale[0])
    if abs(out_s - np.float32(1.0 / 256)) > np.float32(0.001) * np.float32(1.0 / 256):
        raise ctx.fail(f"output {output.name} must have scale 1/256 (within 0.1%), has {float(out_s)}")
    beta = float(np.float32(ctx.op.options.get("beta", 1.0)))
    # beta * in_s * 2^26 (Q5.26 differences), capped at 2^31 - 1 (PreprocessSoftmaxScaling).
    real = min(beta * _scale(ctx, x) * 2.0**26, 2.0**31 - 1.0)
    if not real > 1.0:
        raise ctx.fail(f"beta * input scale = {beta * _scale(ctx, x)} is too small for the int8 softmax")
    multiplier, left_shift = quantize_multiplier(real)
    # CalculateInputRadius(5, left_shift): the largest |diff| whose shifted value still fits an int32.
    diff_min = -math.floor(31.0 * 2.0**26 / 2.0**left_shift)
    return SoftmaxParams(multiplier, left_shift, diff_min), ()


def _prepare_lookup(ctx: _OpContext, kind: str):
    x = _activation_tensor(ctx, ctx.tensor(0, "input"), "input")
    output = _activation_tensor(ctx, ctx.output(), "output")
    _check_output_shape(ctx, output, x.shape)
    in_s, in_zp = np.float32(x.scale[0]), _zero_point(ctx, x)
    out_s, out_zp = np.float32(output.scale[0]), _zero_point(ctx, output)
    if kind == "LOGISTIC":
        if float(out_s) != 1.0 / 256:  # LiteRT checks the scale exactly, and not the zero point
            raise ctx.fail(f"output {output.name} must have scale exactly 1/256, has {float(out_s)}")
        table = activations.logistic_table(in_s, in_zp, out_s, out_zp)
    else:
        table = activations.tanh_table(in_s, in_zp, out_s, out_zp)
    return LookupTableParams(table), ()


def prepare_op(graph: Int8Graph, index: int, fc_rescale: str = "float") -> PreparedOp:
    """Validate one op as LiteRT does at load time and build its kernel call."""
    op = graph.ops[index]
    ctx = _OpContext(graph, index, op)
    if op.kind not in KERNELS:
        raise ctx.fail("unsupported operator", UnsupportedOpError)
    if fc_rescale not in FC_RESCALE_MODES:
        raise ValueError(f"fc_rescale must be one of {sorted(FC_RESCALE_MODES)}, got {fc_rescale!r}")
    if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        params, constants = _prepare_conv(ctx, depthwise=op.kind == "DEPTHWISE_CONV_2D")
    elif op.kind == "FULLY_CONNECTED":
        params, constants = _prepare_fully_connected(ctx, FC_RESCALE_MODES[fc_rescale])
    elif op.kind in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
        params, constants = _prepare_pool(ctx)
    elif op.kind == "RESHAPE":
        params, constants = _prepare_reshape(ctx)
    elif op.kind == "SOFTMAX":
        params, constants = _prepare_softmax(ctx)
    else:
        params, constants = _prepare_lookup(ctx, op.kind)
    return PreparedOp(index, op.kind, KERNELS[op.kind], params, op.inputs[0], constants, op.outputs[0])


def prepare_graph(graph: Int8Graph, fc_rescale: str = "float") -> list[PreparedOp]:
    """Every op in order, checking that each reads a tensor already computed (the graph input or an earlier op's)."""
    graph.validate()
    for t in graph.inputs + graph.outputs:
        if graph.tensors[t].shape[:1] != (1,):
            tensor = graph.tensors[t]
            raise ShapeError(f"graph input/output {tensor.name} must have batch 1, has shape {tensor.shape}")
    if len(graph.inputs) != 1:
        raise UnsupportedOpError(f"graphs with {len(graph.inputs)} inputs are not supported (expected 1)")
    available = set(graph.inputs)
    prepared = []
    for index in range(len(graph.ops)):
        step = prepare_op(graph, index, fc_rescale)
        if step.input not in available:
            name = graph.tensors[step.input].name
            raise ModelError(f"op {index} ({step.kind}) reads tensor {name} before any op computes it")
        if step.output in available:
            raise ModelError(f"op {index} ({step.kind}) writes tensor {graph.tensors[step.output].name} a second time")
        available.add(step.output)
        prepared.append(step)
    for t in graph.outputs:
        if t not in available:
            raise ModelError(f"graph output {graph.tensors[t].name} is never computed")
    return prepared
