"""A small ONNX graph builder with the exact integer arithmetic the int8 kernels need.

onnxruntime's quantized operators (QLinearConv, QLinearMatMul, QDQ) rescale
in float and round half to even, so they drift from TFLite's integer
requantization by one step here and there. This builder spells the
requantization out in int64 elementwise ops instead (docs/int8.md 2.2-2.4), where
every value is an exact integer and the only rounding is the one we write.

Traps, each handled below:
- ONNX integer Div truncates toward zero; `floor_div` uses Mod (fmod=0,
  whose result takes the divisor's sign) to subtract the remainder first.
- MLAS's u8 x s8 and s8 x s8 integer GEMMs can saturate int16 pair sums on
  x86 CPUs without VNNI; its u8 x u8 kernel widens first and is exact. So
  every ConvInteger / MatMulInteger here takes uint8 on both sides: int8
  values are shifted by +128 and their zero points with them.
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


class OnnxGraphBuilder:
    """Collects nodes and constant initializers; every value name is unique."""

    def __init__(self, reserved=()):
        self.reserved = set(reserved)  # the graph's input and output names
        self.nodes = []
        self.initializers = []
        self._count = 0
        self._constants: dict[tuple, str] = {}

    def fresh(self, hint: str) -> str:
        while True:
            self._count += 1
            name = f"{hint}_{self._count}"
            if name not in self.reserved:
                return name

    def node(self, op_type: str, inputs: list[str], hint: str | None = None, **attrs) -> str:
        out = self.fresh(hint or op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=out, **attrs))
        return out

    def const(self, value, dtype, hint: str = "const") -> str:
        """An initializer holding `value` as `dtype`; identical constants are stored once."""
        array = np.ascontiguousarray(np.asarray(value, dtype=dtype))
        key = (array.dtype.str, array.shape, array.tobytes())
        if key not in self._constants:
            name = self.fresh(hint)
            self.initializers.append(numpy_helper.from_array(array, name))
            self._constants[key] = name
        return self._constants[key]

    # ------------------------------------------------------------ casts and shifts

    def cast(self, x: str, to: int) -> str:
        return self.node("Cast", [x], "cast", to=to)

    def int8_to_uint8(self, x: str) -> str:
        """q + 128 as uint8: the int8 range mapped onto uint8 without loss."""
        wide = self.cast(x, TensorProto.INT16)
        shifted = self.node("Add", [wide, self.const(128, np.int16)], "plus128")
        return self.cast(shifted, TensorProto.UINT8)

    def clip_to_int8(self, x: str, lo: int, hi: int, dtype) -> str:
        """Clamp an integer tensor of `dtype` to [lo, hi] (within int8) and cast it to int8."""
        clipped = self.node("Clip", [x, self.const(lo, dtype), self.const(hi, dtype)], "clamp")
        return self.cast(clipped, TensorProto.INT8)

    def pad_nchw(self, x: str, pads: tuple[int, int, int, int], value: int, dtype) -> str:
        """x (NCHW) padded by (top, left, bottom, right) with the constant `value` of `dtype`."""
        top, left, bottom, right = pads
        if not any(pads):
            return x
        widths = self.const([0, 0, top, left, 0, 0, bottom, right], np.int64, "pads")
        return self.node("Pad", [x, widths, self.const(value, dtype, "pad_value")], "pad", mode="constant")

    def output_stage(self, x: str, output_offset: int, act_min: int, act_max: int) -> str:
        """TFLite's tail after the rescale, on int64 x: + output zero point, clamp to [act_min, act_max], int8."""
        x = self.node("Add", [x, self.const(output_offset, np.int64, "output_zp")], "plus_zp")
        return self.clip_to_int8(x, act_min, act_max, np.int64)

    def lookup_int8(self, x: str, table, hint: str = "lookup") -> str:
        """table[q + 128] for every int8 q of x: Gather counts negative indices from the end, so the table
        rolled by -128 is indexed by q itself."""
        rolled = np.roll(np.asarray(table, np.int8), -128)
        return self.node("Gather", [self.const(rolled, np.int8, "table"), self.cast(x, TensorProto.INT32)], hint)

    # ------------------------------------------------------------ exact integer arithmetic (int64)

    def floor_div(self, x: str, divisor: str) -> str:
        """floor(x / d) for int64 x and positive int64 d: (x - mod(x, d)) / d divides exactly."""
        remainder = self.node("Mod", [x, divisor], "mod", fmod=0)
        return self.node("Div", [self.node("Sub", [x, remainder]), divisor], "floordiv")

    def divide_round_half_away(self, x: str, divisor: str, half: str) -> str:
        """x / d rounded to nearest, ties away from zero: sign(x) * ((|x| + d//2) // d), d > 0.

        This is gemmlowp's RoundingDivideByPOT for d = 2^e (docs/int8.md 2.3) and
        TFLite's average-pool division for any d (docs/int8.md section 3).
        """
        magnitude = self.node("Div", [self.node("Add", [self.node("Abs", [x]), half]), divisor], "rounded")
        return self.node("Mul", [self.node("Sign", [x]), magnitude], "signed")

    def wrap_int32(self, x: str) -> str:
        """int64 -> the int32 it wraps to, as TFLite's int32 arithmetic would: mod 2^32 into [-2^31, 2^31)."""
        offset = self.const(2**31, np.int64)
        wrapped = self.node("Mod", [self.node("Add", [x, offset]), self.const(2**32, np.int64)], "mod", fmod=0)
        return self.node("Sub", [wrapped, offset], "wrapped")

    def multiply_by_quantized_multiplier(self, acc: str, multiplier: np.ndarray, shift: np.ndarray,
                                         channel_shape: tuple) -> str:  # fmt: skip
        """TFLite's default MultiplyByQuantizedMultiplier on int64 `acc` (int32 values), per channel.

        left = max(shift, 0), right = max(-shift, 0) (docs/int8.md 2.4):
        1. x = wrap_int32(acc * 2^left)   (TFLite's int32 shift wraps too)
        2. SRDHM(x, M) = floor((x*M + 2^30) / 2^31); |x*M| < 2^62, so int64 is exact.
           Its one saturating case needs M = INT32_MIN, and M >= 0 here.
        3. RDBPOT(., right): round half away from zero by 2^right.
        """
        multiplier = np.asarray(multiplier, np.int64).reshape(channel_shape)
        shift = np.asarray(shift, np.int64).reshape(channel_shape)
        left, right = np.maximum(shift, 0), np.maximum(-shift, 0)
        x = acc
        if np.any(left > 0):
            x = self.wrap_int32(self.node("Mul", [x, self.const(2**left, np.int64, "pow2_left")], "shl"))
        product = self.node("Mul", [x, self.const(multiplier, np.int64, "multiplier")], "product")
        rounded = self.node("Add", [product, self.const(2**30, np.int64)])
        x = self.floor_div(rounded, self.const(2**31, np.int64))
        if np.any(right > 0):
            divisor = 2**right
            x = self.divide_round_half_away(x, self.const(divisor, np.int64, "pow2_right"),
                                            self.const(divisor // 2, np.int64, "half"))  # fmt: skip
        return x

    def round_half_away_double(self, v: str) -> str:
        """C round() on float64: floor(|v|), +1 if the exact fraction |v| - floor(|v|) >= 0.5, sign restored."""
        magnitude = self.node("Abs", [v])
        whole = self.node("Floor", [magnitude])
        fraction = self.node("Sub", [magnitude, whole], "fraction")
        up = self.cast(self.node("GreaterOrEqual", [fraction, self.const(0.5, np.float64)], "ge_half"),
                       TensorProto.DOUBLE)  # fmt: skip
        return self.node("Mul", [self.node("Sign", [v]), self.node("Add", [whole, up])], "rounded")
