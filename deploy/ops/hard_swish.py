"""HARD_SWISH on int8: x * relu6(x + 3) / 6 in gemmlowp int16 fixed point (reference_ops::HardSwish)."""

from __future__ import annotations

import numpy as np

from edgecnn.deploy.ops.base import ACTIVATION, OpDef, Operand, Prepared, same_shape_unary
from edgecnn.deploy.runtime import naive_elementwise
from edgecnn.deploy.runtime.elementwise_params import HardSwishParams
from edgecnn.errors import QuantizationError
from edgecnn.int8.rules import quantize_multiplier

_F32 = np.float32


def downscale_to_int16(multiplier: int) -> int:
    """A Q0.31 multiplier rounded to Q0.15 (DownScaleInt32ToInt16Multiplier), saturating near 1.

    >>> downscale_to_int16(1518500250), downscale_to_int16(2**31 - 1), downscale_to_int16(0)
    (23170, 32767, 0)
    """
    if multiplier >= 2**31 - 1 - 2**15:
        return 2**15 - 1
    return (multiplier + 2**15) >> 16


def _prepare(ctx) -> Prepared:
    """HardSwishPrepare: every scale ratio in float32, each quantized in Q0.31 then rounded to Q0.15."""
    x, output = same_shape_unary(ctx)
    hires_input_scale = _F32(1.0 / 128.0) * _F32(x.scale[0])  # the input shifted left 7 bits
    reluish_scale = _F32(3.0) / _F32(32768.0)  # 3.0 becomes 32768
    try:
        out_m, out_exponent = quantize_multiplier(float(hires_input_scale / _F32(output.scale[0])))
        reluish_m, reluish_exponent = quantize_multiplier(float(hires_input_scale / reluish_scale))
    except QuantizationError as e:
        raise ctx.fail(str(e)) from None
    if out_exponent > 0:  # LiteRT refuses this at load time
        raise ctx.fail(f"output scale {float(output.scale[0])} is too small for input scale {float(x.scale[0])}: "
                       "input scale / 128 / output scale must be below 1")  # fmt: skip
    params = HardSwishParams(ctx.zero_point(x), ctx.zero_point(output), downscale_to_int16(out_m), out_exponent,
                             downscale_to_int16(reluish_m), reluish_exponent)  # fmt: skip
    return Prepared(params, (ctx.op.inputs[0],))


OP = OpDef(
    name="HARD_SWISH",
    operands=(Operand("input", ACTIVATION),),
    version=lambda graph, op: 1,
    min_runtime={1: "1.15.0"},
    prepare=_prepare,
    kernel="edgecnn.deploy.runtime.activation_ops:hard_swish",
    naive=naive_elementwise.hard_swish,
)
