"""Float-side preparation of quantization parameters (numpy, runs once).

The integer kernels never see these floats: `deploy.runtime.prepare` turns
them into Q0.31 multipliers and shifts before anything runs.
"""

from __future__ import annotations

import math

import numpy as np

from edgecnn.errors import QuantizationError

INT8_MIN, INT8_MAX = -128, 127


def choose_qparams(lo, hi, *, symmetric: bool = False, qmin: int = INT8_MIN, qmax: int = INT8_MAX):
    """Scale and zero point that map [lo, hi] onto [qmin, qmax].

    real = scale * (q - zero_point). Works element-wise, so per-channel ranges
    pass as arrays. The range is widened to hold 0 so that zero (padding,
    ReLU's floor) is exact. Symmetric mode (weights) uses zero point 0 and
    scale = max|x| / qmax over the narrow range [-127, 127].

    Edge cases, all well defined rather than errors:
    - min == max == 0 (a dead channel or a constant-zero activation): scale 1.0;
    - the asymmetric zero point is rounded half away from zero and clamped.

    >>> s, z = choose_qparams(0.0, 1.0)
    >>> bool(s[0] == np.float32(1 / 255)), int(z[0])
    (True, -128)
    """
    lo = np.atleast_1d(np.asarray(lo, dtype=np.float64))
    hi = np.atleast_1d(np.asarray(hi, dtype=np.float64))
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        raise QuantizationError("cannot choose qparams for a range that is NaN or infinite")
    if np.any(lo > hi):
        raise QuantizationError("cannot choose qparams: min > max")
    lo = np.minimum(lo, 0.0)
    hi = np.maximum(hi, 0.0)
    if symmetric:
        amax = np.maximum(-lo, hi)
        scale = np.where(amax > 0, amax / qmax, 1.0).astype(np.float32)
        return scale, np.zeros(scale.shape, dtype=np.int64)
    span = hi - lo
    scale = np.where(span > 0, span / (qmax - qmin), 1.0).astype(np.float32)
    zp_real = qmin - lo / scale.astype(np.float64)
    zp = np.sign(zp_real) * np.floor(np.abs(zp_real) + 0.5)
    zp = np.clip(zp, qmin, qmax).astype(np.int64)
    return scale, zp


# --- Integer multipliers and activation ranges (INT8.md section 2) ---------------------------

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
    Rules (INT8.md 2.1): m == 0 -> (0, 0); frexp gives m = q * 2^shift with
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
