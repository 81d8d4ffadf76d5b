"""Float-side preparation of quantization parameters (numpy, runs once).

How scales and zero points are chosen from observed ranges. The TFLite rules
that turn them into integers (multipliers, ranges, rounding) live in
`edgecnn.int8.rules`, shared with the deploy side.
"""

from __future__ import annotations

import numpy as np

from edgecnn.errors import QuantizationError
from edgecnn.int8.rules import INT8_MAX, INT8_MIN, round_half_away


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
    zp = round_half_away(zp_real)
    zp = np.clip(zp, qmin, qmax).astype(np.int64)
    return scale, zp
