"""FULLY_CONNECTED: int8 dense layer, per-tensor or per-channel weights, either rescale (INT8.md 3)."""

from __future__ import annotations

import numpy as np

from edgecnn.deploy.ops.base import (
    ACTIVATION, CONSTANT, FUSED_CODES, OPTIONAL, OpDef, Operand, Prepared, decode_activation, options_builder,
)  # fmt: skip
from edgecnn.deploy.runtime import naive
from edgecnn.deploy.runtime.params import RESCALE_FLOAT, RESCALE_INTEGER, FullyConnectedParams
from edgecnn.errors import QuantizationError, ShapeError, UnsupportedOpError
from edgecnn.int8.rules import quantize_multiplier

FC_RESCALE_MODES = {"float": RESCALE_FLOAT, "integer": RESCALE_INTEGER}
_NO_BIAS = np.zeros(0, dtype=np.int32)


def _decode(o) -> dict:
    if o is None:
        return {"fused_activation_function": "NONE", "keep_num_dims": False}
    if o.WeightsFormat() != 0:
        raise UnsupportedOpError("FULLY_CONNECTED with shuffled weights is not supported")
    return {"fused_activation_function": decode_activation(o.FusedActivationFunction()),
            "keep_num_dims": bool(o.KeepNumDims())}  # fmt: skip


def _encode(b, o, graph, op) -> int:
    start, end, add = options_builder("FullyConnectedOptions")
    start(b)
    add(b, "FusedActivationFunction", FUSED_CODES[o.get("fused_activation_function", "NONE")])
    add(b, "KeepNumDims", bool(o.get("keep_num_dims", False)))
    return end(b)


def _version(graph, op) -> int:
    """4; 5 with keep_num_dims; 6 with exactly two inputs (no bias slot at all)."""
    if len(op.inputs) == 2:
        return 6
    return 5 if op.options.get("keep_num_dims", False) else 4


def _prepare(ctx) -> Prepared:
    if ctx.fc_rescale not in FC_RESCALE_MODES:
        raise ValueError(f"fc_rescale must be one of {sorted(FC_RESCALE_MODES)}, got {ctx.fc_rescale!r}")
    x = ctx.activation(ctx.tensor(0, "input"), "input")
    output = ctx.activation(ctx.output(), "output")
    weights = ctx.tensor(1, "filter")
    filter_data = ctx.constant(weights, "filter", "int8", 2)
    units, depth = weights.shape
    size = int(np.prod(x.shape))
    if depth <= 0 or size % depth != 0:
        raise ctx.fail(f"input {x.name} {x.shape} does not flatten into rows of {depth}", ShapeError)
    bias = ctx.optional(2)
    bias_data = ctx.bias(bias, units) if bias is not None else _NO_BIAS
    if ctx.op.options.get("keep_num_dims", False):
        if x.shape[-1] != depth:
            raise ctx.fail(f"keep_num_dims needs the input's last dimension to be {depth}", ShapeError)
        expected = tuple(x.shape[:-1]) + (units,)
    else:
        expected = (size // depth, units)
    ctx.check_output_shape(output, expected)

    in_s, out_s = ctx.scale(x), ctx.scale(output)
    if weights.scale.size > 1:
        if weights.quantized_dimension != 0 or weights.scale.size != units:
            raise ctx.fail(f"per-channel weights {weights.name} need quantized_dimension 0 and {units} scales, "
                           f"have {weights.quantized_dimension} and {weights.scale.size}")  # fmt: skip
        effective = in_s * ctx.weight_scales(weights, units) / out_s
        multiplier, shift = ctx.multipliers(effective)
        weights_offset = 0  # TFLite ignores a per-channel weights zero point
    else:
        w_s = float(ctx.weight_scales(weights, 1)[0])
        if bias is not None:
            if bias.scale.size != 1:
                raise ctx.fail(f"bias {bias.name} of per-tensor weights needs one scale, has {bias.scale.size}")
            bias_s = float(bias.scale[0])
            if not abs(in_s * w_s - bias_s) / out_s <= 0.02:
                raise ctx.fail(f"bias scale {bias_s} is not input scale x weight scale ({in_s * w_s}) "
                               "within 2% of the output scale (TFLite refuses this)")  # fmt: skip
        effective = np.full(units, in_s * w_s / out_s)
        # The older integer path rounds in_s * w_s to float32 before dividing (GetQuantizedConvolutionMultipler).
        try:
            m, s = quantize_multiplier(float(np.float32(in_s) * np.float32(w_s)) / out_s)
        except QuantizationError as e:
            raise ctx.fail(str(e)) from None
        multiplier, shift = np.full(units, m, dtype=np.int32), np.full(units, s, dtype=np.int32)
        weights_offset = -ctx.zero_point(weights)
    act_min, act_max = ctx.fused_range(output)
    params = FullyConnectedParams(
        input_offset=-ctx.zero_point(x),
        weights_offset=weights_offset,
        output_offset=ctx.zero_point(output),
        rescale=FC_RESCALE_MODES[ctx.fc_rescale],
        output_multiplier=multiplier,
        output_shift=shift,
        effective_scale=np.ascontiguousarray(effective, dtype=np.float64),
        activation_min=act_min,
        activation_max=act_max,
    )
    constants = ((tuple(weights.shape), filter_data), ((bias_data.size,), bias_data))
    return Prepared(params, (ctx.op.inputs[0],), constants)


OP = OpDef(
    name="FULLY_CONNECTED",
    operands=(Operand("input", ACTIVATION), Operand("filter", CONSTANT), Operand("bias", OPTIONAL)),
    options_table="FullyConnectedOptions",
    decode=_decode,
    encode=_encode,
    options_required=False,
    version=_version,
    min_runtime={4: "1.14.0", 5: "2.0.0", 6: "2.1.0"},
    prepare=_prepare,
    kernel="edgecnn.deploy.runtime.fully_connected:fully_connected",
    naive=naive.fully_connected,
)
