"""Plain-Python integer references for every kernel, written straight from docs/int8.md.

Slow and obvious on purpose: Python ints, TFLite's loop order, rounding
defined with exact fractions. They share no arithmetic with the Numba
kernels (only the params records and table builders), so the tests that set
one against the other check the fast code, not a copy of it. Each takes the
same arguments as its kernel but returns the output as a new int8 array.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from edgecnn.deploy.runtime.params import RESCALE_FLOAT

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


# --- arithmetic, from the definitions ------------------------------------------------------


def wrap_int32(x: int) -> int:
    """Two's-complement int32 wrap of a Python int."""
    return (x + 2**31) % 2**32 - 2**31


def round_half_away(q: Fraction) -> int:
    """Nearest integer to an exact rational, halves away from zero."""
    sign = -1 if q < 0 else 1
    return sign * math.floor(abs(q) + Fraction(1, 2))


def srdhm(a: int, b: int) -> int:
    """floor((a*b + 2^30) / 2^31), with the single saturating case a == b == INT32_MIN."""
    if a == b == INT32_MIN:
        return INT32_MAX
    return math.floor(Fraction(a * b + 2**30, 2**31))


def rounding_divide_by_pot(x: int, exponent: int) -> int:
    """x / 2^exponent to nearest, ties away from zero."""
    return round_half_away(Fraction(x, 2**exponent))


def multiply_by_quantized_multiplier(x: int, multiplier: int, shift: int) -> int:
    """Double rounding: SRDHM(x * 2^left, M), then divide by 2^right rounding half away."""
    left, right = max(shift, 0), max(-shift, 0)
    return rounding_divide_by_pot(srdhm(wrap_int32(x * 2**left), multiplier), right)


def clamp(v: int, lo: int, hi: int) -> int:
    return min(max(v, lo), hi)


# --- CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED -----------------------------------------


def _as_list(data, shape):
    return np.asarray(data).reshape(shape).astype(np.int64).tolist()


def conv_2d(params, input_shape, input_data, filter_shape, filter_data, bias_shape, bias_data, output_shape):
    """TFLite's ConvPerChannel loop nest: batch, out_y, out_x, out_channel, filter_y, filter_x, in_channel."""
    x = _as_list(input_data, input_shape)
    w = _as_list(filter_data, filter_shape)
    bias = np.asarray(bias_data).astype(np.int64).tolist()
    batches, in_h, in_w, in_depth = input_shape
    out_depth, f_h, f_w, f_depth = filter_shape
    _, out_h, out_w, _ = output_shape
    groups = in_depth // f_depth
    per_group = out_depth // groups
    out = np.zeros(output_shape, dtype=np.int8)
    for b in range(batches):
        for oy in range(out_h):
            for ox in range(out_w):
                for oc in range(out_depth):
                    group = oc // per_group
                    acc = 0
                    for fy in range(f_h):
                        iy = oy * params.stride_height - params.padding_top + params.dilation_height * fy
                        for fx in range(f_w):
                            ix = ox * params.stride_width - params.padding_left + params.dilation_width * fx
                            if not (0 <= iy < in_h and 0 <= ix < in_w):
                                continue
                            for ic in range(f_depth):
                                acc += w[oc][fy][fx][ic] * (x[b][iy][ix][group * f_depth + ic] + params.input_offset)
                    acc = wrap_int32(acc + bias[oc])
                    acc = multiply_by_quantized_multiplier(
                        acc, int(params.output_multiplier[oc]), int(params.output_shift[oc])
                    )
                    out[b, oy, ox, oc] = clamp(acc + params.output_offset, params.activation_min, params.activation_max)
    return out


def depthwise_conv_2d(params, input_shape, input_data, filter_shape, filter_data, bias_shape, bias_data, output_shape):
    """TFLite's DepthwiseConvPerChannel: out_channel = m + in_channel * depth_multiplier."""
    x = _as_list(input_data, input_shape)
    w = _as_list(filter_data, filter_shape)
    bias = np.asarray(bias_data).astype(np.int64).tolist()
    batches, in_h, in_w, in_depth = input_shape
    _, f_h, f_w, out_depth = filter_shape
    _, out_h, out_w, _ = output_shape
    multiplier = out_depth // in_depth
    out = np.zeros(output_shape, dtype=np.int8)
    for b in range(batches):
        for oy in range(out_h):
            for ox in range(out_w):
                for ic in range(in_depth):
                    for m in range(multiplier):
                        oc = m + ic * multiplier
                        acc = 0
                        for fy in range(f_h):
                            iy = oy * params.stride_height - params.padding_top + params.dilation_height * fy
                            for fx in range(f_w):
                                ix = ox * params.stride_width - params.padding_left + params.dilation_width * fx
                                if 0 <= iy < in_h and 0 <= ix < in_w:
                                    acc += w[0][fy][fx][oc] * (x[b][iy][ix][ic] + params.input_offset)
                        if bias:
                            acc = wrap_int32(acc + bias[oc])
                        acc = multiply_by_quantized_multiplier(
                            acc, int(params.output_multiplier[oc]), int(params.output_shift[oc])
                        )
                        out[b, oy, ox, oc] = clamp(
                            acc + params.output_offset, params.activation_min, params.activation_max
                        )
    return out


def fully_connected(params, input_shape, input_data, filter_shape, filter_data, bias_shape, bias_data, output_shape):
    """acc = sum (w + weights_offset)(x + input_offset) + bias, then the float64 or the integer rescale."""
    units, depth = filter_shape
    x = np.asarray(input_data).reshape(-1, depth).astype(np.int64).tolist()
    w = _as_list(filter_data, filter_shape)
    bias = np.asarray(bias_data).astype(np.int64).tolist()
    out = np.zeros((len(x), units), dtype=np.int8)
    for r, row in enumerate(x):
        for u in range(units):
            acc = sum((w[u][d] + params.weights_offset) * (row[d] + params.input_offset) for d in range(depth))
            if bias:
                acc = wrap_int32(acc + bias[u])
            if params.rescale == RESCALE_FLOAT:
                # C: (int32_t)round((double)acc * effective_scale); the product is a double, rounded exactly here.
                y = round_half_away(Fraction(float(acc) * float(params.effective_scale[u])))
            else:
                y = multiply_by_quantized_multiplier(acc, int(params.output_multiplier[u]), int(params.output_shift[u]))
            out[r, u] = clamp(y + params.output_offset, params.activation_min, params.activation_max)
    return out.reshape(output_shape)


# --- pooling --------------------------------------------------------------------------------


def _windows(params, input_shape, output_shape):
    """Yield (b, oy, ox, [(iy, ix) in bounds]) in TFLite's order."""
    batches, in_h, in_w, _ = input_shape
    _, out_h, out_w, _ = output_shape
    for b in range(batches):
        for oy in range(out_h):
            for ox in range(out_w):
                taps = []
                for fy in range(params.filter_height):
                    for fx in range(params.filter_width):
                        iy = oy * params.stride_height - params.padding_top + fy
                        ix = ox * params.stride_width - params.padding_left + fx
                        if 0 <= iy < in_h and 0 <= ix < in_w:
                            taps.append((iy, ix))
                yield b, oy, ox, taps


def max_pool_2d(params, input_shape, input_data, output_shape):
    x = _as_list(input_data, input_shape)
    out = np.zeros(output_shape, dtype=np.int8)
    for b, oy, ox, taps in _windows(params, input_shape, output_shape):
        for c in range(input_shape[3]):
            value = max([-128] + [x[b][iy][ix][c] for iy, ix in taps])
            out[b, oy, ox, c] = clamp(value, params.activation_min, params.activation_max)
    return out


def average_pool_2d(params, input_shape, input_data, output_shape):
    """Sum of raw int8 over the in-bounds window / count, rounded half away from zero."""
    x = _as_list(input_data, input_shape)
    out = np.zeros(output_shape, dtype=np.int8)
    for b, oy, ox, taps in _windows(params, input_shape, output_shape):
        for c in range(input_shape[3]):
            total = sum(x[b][iy][ix][c] for iy, ix in taps)
            value = round_half_away(Fraction(total, len(taps)))
            out[b, oy, ox, c] = clamp(value, params.activation_min, params.activation_max)
    return out


# --- element-wise ---------------------------------------------------------------------------


def reshape(params, input_shape, input_data, output_shape):
    return np.asarray(input_data, dtype=np.int8).reshape(output_shape).copy()


def logistic(params, input_shape, input_data, output_shape):
    return np.asarray(params.table)[np.asarray(input_data).astype(np.int64) + 128].reshape(output_shape)


tanh = logistic


def lookup_entry(kind: str, v: int, in_scale, in_zp: int, out_scale, out_zp: int) -> int:
    """One table entry from float32 scalars, for checking the vectorized table builders."""
    f32 = np.float32
    dq = f32(in_scale) * f32(v - in_zp)
    with np.errstate(over="ignore"):
        t = f32(1) / (f32(1) + np.exp(-dq)) if kind == "LOGISTIC" else np.tanh(dq)
    r = round_half_away(Fraction(float(f32(t * (f32(1) / f32(out_scale))))))
    return clamp(int(f32(r) + f32(out_zp)), -128, 127)


# --- SOFTMAX: gemmlowp fixed point with the Q format carried along ----------------------------


class Fixed:
    """A raw int32 with `bits` integer bits: value = raw / 2^(31 - bits). Mirrors gemmlowp::FixedPoint."""

    def __init__(self, raw: int, bits: int):
        self.raw, self.bits = raw, bits

    def __mul__(self, other: "Fixed") -> "Fixed":  # integer bits add up
        return Fixed(srdhm(self.raw, other.raw), self.bits + other.bits)

    def __add__(self, other: "Fixed") -> "Fixed":
        assert self.bits == other.bits
        return Fixed(self.raw + other.raw, self.bits)

    def __sub__(self, other: "Fixed") -> "Fixed":
        assert self.bits == other.bits
        return Fixed(self.raw - other.raw, self.bits)

    def rescale(self, bits: int) -> "Fixed":
        """Change integer bits: rounding right shift, or saturating left shift."""
        exponent = self.bits - bits
        if exponent < 0:
            return Fixed(rounding_divide_by_pot(self.raw, -exponent), bits)
        return Fixed(clamp(self.raw * 2**exponent, INT32_MIN, INT32_MAX), bits)

    @staticmethod
    def one(bits: int) -> "Fixed":
        return Fixed(INT32_MAX if bits == 0 else 2 ** (31 - bits), bits)


def _exp_quarter(a: Fixed) -> Fixed:
    """exp(a) for a in [-1/4, 0), Q0.31: Taylor series around -1/8 (gemmlowp's)."""
    x = a + Fixed(2**28, 0)  # + 1/8
    x2 = x * x
    x3 = x2 * x
    x4 = x2 * x2
    x4_over_4 = Fixed(rounding_divide_by_pot(x4.raw, 2), 0)
    inner = (x4_over_4 + x3) * Fixed(715827883, 0) + x2  # * 1/3
    poly = Fixed(rounding_divide_by_pot(inner.raw, 1), 0)
    e_minus_eighth = Fixed(1895147668, 0)
    return e_minus_eighth + e_minus_eighth * (x + poly)


def exp_on_negative_values(a: Fixed) -> Fixed:
    """exp(a) for a <= 0 in any Q format; result Q0.31."""
    frac_bits = 31 - a.bits
    quarter = 2 ** (frac_bits - 2)
    a_mod = Fixed((a.raw & (quarter - 1)) - quarter, a.bits)
    result = _exp_quarter(a_mod.rescale(0))
    remainder = a_mod.raw - a.raw  # a non-negative multiple of 1/4
    factors = {-2: 1672461947, -1: 1302514674, 0: 790015084, 1: 290630308, 2: 39332535, 3: 720401, 4: 242}
    for k, factor in factors.items():  # exp(-2^k) in Q0.31
        if a.bits > k and remainder & (1 << (frac_bits + k)):
            result = result * Fixed(factor, 0)
    if a.bits > 5 and a.raw < -(2 ** (36 - a.bits)):
        result = Fixed(0, 0)
    return Fixed.one(0) if a.raw == 0 else result


def one_over_one_plus_x(a: Fixed) -> Fixed:
    """1/(1+x) for x in [0, 1), Q0.31: Newton-Raphson on d = (1+x)/2, starting at 48/17 - 32/17 d."""
    d = Fixed(round_half_away(Fraction(a.raw + INT32_MAX, 2)), 0)  # (x + 1)/2, ties away from zero
    x = Fixed(1515870810, 2) + d * Fixed(-1010580540, 2)
    for _ in range(3):
        x = x + (x * (Fixed.one(2) - d * x)).rescale(2)
    return Fixed(x.raw, 1).rescale(0)  # x/2, exactly, then into Q0.31


def softmax(params, input_shape, input_data, output_shape):
    depth = input_shape[-1]
    rows = np.asarray(input_data).reshape(-1, depth).astype(np.int64).tolist()
    out = np.zeros((len(rows), depth), dtype=np.int8)
    for r, row in enumerate(rows):
        top = max(row)
        exps = {}
        total = Fixed(0, 12)
        for c, q in enumerate(row):
            d = q - top
            if d >= params.diff_min:
                scaled = Fixed(srdhm(wrap_int32(d * 2**params.input_left_shift), params.input_multiplier), 5)
                exps[c] = exp_on_negative_values(scaled)
                total = total + exps[c].rescale(12)
        # 1/total: normalise total into [1, 2) as 1 + t, t in Q0.31.
        headroom = 32 - int(total.raw).bit_length()
        bits_over_unit = 12 - headroom
        reciprocal = one_over_one_plus_x(Fixed(wrap_int32(total.raw * 2**headroom - 2**31), 0))
        for c in range(depth):
            if c in exps:
                y = rounding_divide_by_pot((reciprocal * exps[c]).raw, bits_over_unit + 31 - 8)
                out[r, c] = clamp(y - 128, -128, 127)
            else:
                out[r, c] = -128
    return out.reshape(output_shape)


# --- whole graphs -------------------------------------------------------------------------------

def run_graph(graph, x, fc_rescale: str = "float") -> dict[int, np.ndarray]:
    """Every tensor of `graph` (inputs and computed) on the batch x, with each op's naive reference.

    x is one array per graph input (a single array, or a list in input order).
    The params come from the registry's prepare steps, as in the runtime.
    """
    from edgecnn.deploy.runtime.prepare import prepare_graph

    arrays = list(x) if isinstance(x, (list, tuple)) else [x]
    images = arrays[0].shape[0]
    tensors = {t: np.asarray(a, dtype=graph.tensors[t].dtype) for t, a in zip(graph.inputs, arrays)}
    for op in prepare_graph(graph, fc_rescale):
        args = [op.params]
        for t in op.inputs:
            tensor = graph.tensors[t]
            value = tensor.data if tensor.is_constant else tensors[t]
            args += [value.shape, value.reshape(-1)]
        for const_shape, data in op.constants:
            args += [const_shape, data]
        out_shapes = [(images * graph.tensors[t].shape[0],) + tuple(graph.tensors[t].shape[1:]) for t in op.outputs]
        result = op.opdef.naive(*args, *out_shapes)
        results = result if isinstance(result, (list, tuple)) else [result]
        for t, shape, value in zip(op.outputs, out_shapes, results):
            tensors[t] = np.asarray(value).reshape(shape)
    return tensors
