"""TFLite's int8 arithmetic rules on the float side, each written once (numpy only).

The integer kernels never see these floats: the prepare step of each op turns
scales into Q0.31 multipliers and shifts with these functions before anything
runs, and the quantizer uses the same ones, so both sides agree by
construction.
"""

from __future__ import annotations

import math

import numpy as np

from edgecnn.errors import QuantizationError

INT8_MIN, INT8_MAX = -128, 127



_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1


def round_half_away(x):
    """C `round()`: nearest integer, halves away from zero.

    `np.round` and Python's `round` send halves to even, which is not what
    TFLite computes. floor(|x|) and |x| - floor(|x|) are both exact in binary
    floating point, so the 0.5 test below has no rounding error of its own
    (unlike `floor(x + 0.5)`, which is wrong for 0.49999999999999994).
    Returns a float64 (array or scalar, like the input).

    >>> [float(round_half_away(v)) for v in (0.5, 1.5, 2.5, -0.5, -2.5, 0.49999999999999994)]
    [1.0, 2.0, 3.0, -1.0, -3.0, 0.0]
    """
    x = np.asarray(x, dtype=np.float64)
    a = np.abs(x)
    r = np.floor(a)
    r = r + (a - r >= 0.5)
    out = np.copysign(r, x)
    return out[()] if out.ndim == 0 else out


def quantize_multiplier(m: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplier: m = M * 2^(shift - 31), M a Q0.31 int in [2^30, 2^31).

    m is a float64 (compute it from the float32 scales in float64 first).
    Rules (docs/int8.md 2.1): m == 0 -> (0, 0); frexp gives m = q * 2^shift with
    q in [0.5, 1); M = round_half_away(q * 2^31), exact in float64; M == 2^31
    folds to (2^30, shift + 1); shift < -31 flushes to (0, 0).

    >>> quantize_multiplier(float(np.float32(0.02)) * float(np.float32(0.005)) / float(np.float32(0.05)))
    (1099511562, -8)
    >>> quantize_multiplier(1.0), quantize_multiplier(2.0**-32), quantize_multiplier(2.0**-33)
    ((1073741824, 1), (1073741824, -31), (0, 0))
    """
    m = float(m)
    if not math.isfinite(m):
        raise QuantizationError(f"cannot quantize the multiplier {m}")
    if m == 0.0:
        return 0, 0
    q, shift = math.frexp(m)
    fixed = int(round_half_away(q * 2.0**31))
    if fixed == 2**31:
        fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    if shift > 31:
        # x * 2^shift is undefined behaviour in TFLite's int32 code from here on; refuse rather than guess.
        raise QuantizationError(f"the multiplier {m} is too large for int8 requantization (needs 2^{shift})")
    return fixed, shift


def quantize_multipliers(multipliers) -> tuple[np.ndarray, np.ndarray]:
    """`quantize_multiplier` over an array: (int32 multipliers, int32 shifts)."""
    flat = np.asarray(multipliers, dtype=np.float64).ravel()
    pairs = [quantize_multiplier(m) for m in flat]
    fixed = np.array([p[0] for p in pairs], dtype=np.int32)
    shift = np.array([p[1] for p in pairs], dtype=np.int32)
    return fixed, shift


def _quantize_real(f: float, scale, zero_point: int) -> int:
    # TFLite's Quantize(): float32 division, roundf, then a range check that
    # fails model loading when the result would not fit an int32.
    q = float(round_half_away(np.float32(f) / np.float32(scale)))
    if not _INT32_MIN <= q <= _INT32_MAX:
        raise QuantizationError(f"{f} / scale {float(scale)} does not fit an int32")
    return int(zero_point) + int(q)


def activation_range(fused_activation: str, scale, zero_point, qmin: int = INT8_MIN, qmax: int = INT8_MAX):
    """(act_min, act_max) of a fused activation on a quantized output (CalculateActivationRangeQuantized).

    Qz(f) = zero_point + roundf(float32(f) / float32(scale)), halves away from
    zero. RELU -> [max(qmin, Qz(0)), qmax]; RELU6 -> [max(qmin, Qz(0)),
    min(qmax, Qz(6))]; RELU_N1_TO_1 -> [max(qmin, Qz(-1)), min(qmax, Qz(1))].
    NONE, and any activation the kernel cannot clamp (TFLite's TANH and
    SIGN_BIT fused codes), give the full [qmin, qmax].

    >>> activation_range("RELU6", np.float32(6 / 255), -128)
    (-128, 127)
    >>> activation_range("RELU", np.float32(0.1), 3)
    (3, 127)
    """
    if fused_activation == "RELU":
        return max(qmin, _quantize_real(0.0, scale, zero_point)), qmax
    if fused_activation == "RELU6":
        return (max(qmin, _quantize_real(0.0, scale, zero_point)), min(qmax, _quantize_real(6.0, scale, zero_point)))
    if fused_activation == "RELU_N1_TO_1":
        return (max(qmin, _quantize_real(-1.0, scale, zero_point)), min(qmax, _quantize_real(1.0, scale, zero_point)))
    if fused_activation in ("NONE", "TANH", "SIGN_BIT"):
        return qmin, qmax
    raise QuantizationError(f"unknown fused activation {fused_activation!r}")


def quantize_input(x, scale, zero_point, qmin: int = INT8_MIN, qmax: int = INT8_MAX) -> np.ndarray:
    """Float input -> int8 the way TFLite's QUANTIZE does (reference AffineQuantize).

    q = clamp(roundf(float32(x) / float32(scale)) + zero_point): the division
    is float32, the rounding is half away from zero, and the zero point is
    added after rounding. Adding it before rounding is wrong at halves:
    x/s = 127.5 with zero point -128 gives 0 here (round 128, then -128),
    where rounding 127.5 - 128 = -0.5 would give -1.

    >>> quantize_input(np.float32(127.5), np.float32(1.0), -128).tolist()
    0
    >>> quantize_input(np.array([0.0, 1.0, -1.0]), np.float32(1 / 255), -128).tolist()
    [-128, 127, -128]
    """
    q = round_half_away(np.asarray(x, dtype=np.float32) / np.float32(scale)) + int(zero_point)
    return np.clip(q, qmin, qmax).astype(np.int8 if qmin < 0 else np.uint8)
