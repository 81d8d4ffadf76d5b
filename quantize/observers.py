"""Calibration observers: record activation (or weight) statistics, then pick int8 qparams.

Every observer has `update(x)` (record a float batch, returns self), `range()`
(the clip range [lo, hi] it chose) and `qparams()` (scale, zero point). The
qparams always come from the one shared `choose_qparams`; subclasses differ
only in how they choose [lo, hi]:

    minmax      running min / max (optionally per channel: the weight preset)
    percentile  the p-th percentiles of x (or of |x| when symmetric)
    mse         the range minimising the expected int8 quantization MSE
    entropy     TensorRT's KL-divergence threshold (Migacz 2017)

The histogram observers keep a fixed-size histogram (`SymmetricHistogram`),
so their memory does not grow with the calibration set.
"""

from __future__ import annotations

import numpy as np

from edgecnn.errors import CalibrationError
from edgecnn.int8.rules import INT8_MAX, INT8_MIN
from edgecnn.quantize.qparams import choose_qparams

FLOAT32_MAX = float(np.finfo(np.float32).max)
# Below this magnitude a range's scale (span / 255) is not a normal float32.
# Such values are indistinguishable from 0 at int8, so qparams() treats the range as [0, 0].
TINY_RANGE = (INT8_MAX - INT8_MIN) * float(np.finfo(np.float32).tiny)
_CHUNK = 1 << 20  # values binned per pass: bounds the float64 temporaries


def _as_float_array(x, who: str) -> np.ndarray:
    try:
        a = np.asarray(x)
    except Exception as e:  # ragged lists and the like
        raise CalibrationError(f"{who}: input is not an array of numbers ({e})") from None
    if a.dtype.kind in "biu":
        return a.astype(np.float64)
    if a.dtype.kind != "f":
        raise CalibrationError(f"{who}: input has dtype {a.dtype}, expected real numbers")
    return a if a.dtype.itemsize >= 4 else a.astype(np.float32)


def _check_extremes(lo: float, hi: float, who: str) -> None:
    """lo, hi: a batch's min and max. NaN propagates through min/max, so checking
    them covers every element without another pass over the data."""
    if np.isnan(lo) or np.isnan(hi):
        raise CalibrationError(f"{who}: input contains NaN")
    if np.isinf(lo) or np.isinf(hi):
        raise CalibrationError(f"{who}: input contains an infinite value")
    if max(-lo, hi) > FLOAT32_MAX:  # the scale (a float32) could not span it
        raise CalibrationError(f"{who}: input exceeds the float32 range (|x| > {FLOAT32_MAX:.3g})")


class Observer:
    """Base: validation, bookkeeping and the shared qparams routine.

    update(x): x is any float array; an empty x records nothing. NaN, inf or
    |x| > float32 max raise CalibrationError. range()/qparams() before any
    value was seen raise CalibrationError("... saw no data").
    """

    def __init__(self, *, symmetric: bool = False, name: str = ""):
        self.symmetric = symmetric
        self.name = name
        self.reset()

    def reset(self) -> "Observer":
        """Forget everything seen."""
        self.count_ = 0
        return self

    def _who(self) -> str:
        return f"{type(self).__name__}{f' {self.name!r}' if self.name else ''}"

    def update(self, x) -> "Observer":
        x = _as_float_array(x, self._who())
        if x.size == 0:
            return self
        lo, hi = float(x.min()), float(x.max())
        _check_extremes(lo, hi, self._who())
        self._observe(x, lo, hi)
        self.count_ += x.size
        return self

    def range(self) -> tuple[np.ndarray, np.ndarray]:
        """The clip range (lo, hi) as float64 arrays: shape (1,), or (C,) per channel."""
        if self.count_ == 0:
            raise CalibrationError(f"{self._who()}: observer saw no data")
        lo, hi = self._clip_range()
        return np.atleast_1d(np.asarray(lo, np.float64)), np.atleast_1d(np.asarray(hi, np.float64))

    def qparams(self) -> tuple[np.ndarray, np.ndarray]:
        """(scale float32, zero_point int64) = choose_qparams(*range(), symmetric=self.symmetric).

        A range whose magnitude is below TINY_RANGE would get a zero or
        subnormal float32 scale; it is treated as [0, 0] (scale 1.0).
        """
        lo, hi = self.range()
        tiny = np.maximum(-lo, hi) < TINY_RANGE
        return choose_qparams(np.where(tiny, 0.0, lo), np.where(tiny, 0.0, hi), symmetric=self.symmetric)

    def _observe(self, x: np.ndarray, lo: float, hi: float) -> None:
        raise NotImplementedError

    def _clip_range(self):
        raise NotImplementedError


class MinMaxObserver(Observer):
    """[lo, hi] = [min x, max x] over everything seen (per channel if per_channel_axis is set).

    Per channel, the min/max run over every axis but `per_channel_axis`, and
    every batch must have the same channel count. A channel that is all zeros
    gets scale 1.0 (choose_qparams' min == max == 0 case).
    """

    def __init__(self, *, symmetric: bool = False, per_channel_axis: int | None = None, name: str = ""):
        self.per_channel_axis = per_channel_axis
        super().__init__(symmetric=symmetric, name=name)

    def reset(self) -> "MinMaxObserver":
        self.min_, self.max_ = np.inf, -np.inf
        return super().reset()

    def _observe(self, x, lo, hi):
        if self.per_channel_axis is None:
            self.min_, self.max_ = min(self.min_, lo), max(self.max_, hi)
            return
        axis = self.per_channel_axis
        if not -x.ndim <= axis < x.ndim:
            raise CalibrationError(f"{self._who()}: per-channel axis {axis} is out of range for shape {x.shape}")
        channels = np.moveaxis(x, axis, 0).reshape(x.shape[axis], -1)
        if self.count_ and channels.shape[0] != self.min_.shape[0]:
            raise CalibrationError(f"{self._who()}: batch has {channels.shape[0]} channels on axis {axis}, "
                                   f"earlier batches had {self.min_.shape[0]}")
        self.min_ = np.minimum(self.min_, channels.min(axis=1).astype(np.float64))
        self.max_ = np.maximum(self.max_, channels.max(axis=1).astype(np.float64))

    def _clip_range(self):
        return self.min_, self.max_


class SymmetricHistogram:
    """Counts of x over [-radius, radius) in 2*bins_per_side equal bins (bin b = [-r + b*w, -r + (b+1)*w)).

    The radius starts just above the first non-zero max|x| and doubles while
    later data reach it. Doubling merges bin pairs exactly (new bin k holds old
    bins 2k-n and 2k-n+1), and because x * (n / radius) only changes by a
    power of two, the counts equal binning every value once at the final
    radius (`naive_counts`): batching never blurs the histogram. The cost is
    that data may fill only half the bins after a doubling.
    Before any non-zero value the radius is 0 and only bin n (zeros) counts.
    """

    def __init__(self, bins_per_side: int = 4096):
        if bins_per_side < 2 or bins_per_side % 2:
            raise ValueError(f"bins_per_side must be an even number >= 2, got {bins_per_side}")
        self.bins_per_side = bins_per_side
        self.radius = 0.0
        self.counts = np.zeros(2 * bins_per_side, np.int64)

    @property
    def bin_width(self) -> float:
        return self.radius / self.bins_per_side

    def edges(self) -> np.ndarray:
        """The 2n+1 bin edges; edge n is exactly 0."""
        return self.bin_width * np.arange(-self.bins_per_side, self.bins_per_side + 1)

    def abs_edges(self) -> np.ndarray:
        return self.bin_width * np.arange(self.bins_per_side + 1)

    def abs_counts(self) -> np.ndarray:
        """Counts of |x| over [0, radius] in bins_per_side bins (the two halves folded)."""
        n = self.bins_per_side
        return self.counts[n:] + self.counts[n - 1::-1]

    def add(self, x: np.ndarray, amax: float) -> None:
        """Count x, whose max |x| is amax (finite)."""
        n = self.bins_per_side
        if amax == 0.0:  # zeros land in bin n = [0, w) whatever the radius
            self.counts[n] += x.size
            return
        if self.radius == 0.0:
            # Strictly above every value, so the top bin never needs the clip below.
            self.radius = amax * (1.0 + 2.0 ** -16)
        while amax >= self.radius:
            merged = self.counts.reshape(n, 2).sum(axis=1)
            self.counts[:] = 0
            self.counts[n // 2:n // 2 + n] = merged
            self.radius *= 2.0
        flat = x.reshape(-1)
        per_unit = n / self.radius
        for start in range(0, flat.size, _CHUNK):
            chunk = flat[start:start + _CHUNK].astype(np.float64)
            idx = np.floor(chunk * per_unit).astype(np.int64) + n
            np.clip(idx, 0, 2 * n - 1, out=idx)  # safety net only: |x| < radius
            self.counts += np.bincount(idx, minlength=2 * n)

    def naive_counts(self, values: np.ndarray) -> np.ndarray:
        """Reference: bin every value at the current radius, one at a time."""
        n = self.bins_per_side
        out = np.zeros(2 * n, np.int64)
        for v in np.asarray(values, np.float64).reshape(-1):
            b = n if self.radius == 0.0 else int(np.floor(v * (n / self.radius))) + n
            out[min(max(b, 0), 2 * n - 1)] += 1
        return out


class HistogramObserver(Observer):
    """Base of the per-tensor histogram observers: exact min/max, the exact count of zeros, and
    a SymmetricHistogram of x (bins_per_side bins on each side of 0)."""

    def __init__(self, *, symmetric: bool = False, bins_per_side: int = 4096, name: str = ""):
        self.bins_per_side = bins_per_side
        super().__init__(symmetric=symmetric, name=name)

    def reset(self) -> "HistogramObserver":
        self.min_, self.max_ = np.inf, -np.inf
        self.zeros_ = 0
        self.hist_ = SymmetricHistogram(self.bins_per_side)
        return super().reset()

    def _observe(self, x, lo, hi):
        self.min_, self.max_ = min(self.min_, lo), max(self.max_, hi)
        self.zeros_ += int(np.count_nonzero(x == 0))
        self.hist_.add(x, max(-lo, hi))

    @property
    def abs_max_(self) -> float:
        return max(-self.min_, self.max_)

    @property
    def abs_min_(self) -> float:
        """min |x|, which follows from min and max alone."""
        return 0.0 if self.min_ <= 0.0 <= self.max_ else min(abs(self.min_), abs(self.max_))


def split_zeros(counts, edges, k: int, zeros: int):
    """Move the exact zeros out of bin k (whose lower edge is 0) into a bin [0, 0] of their own."""
    counts = np.asarray(counts, np.float64)
    return (np.concatenate([counts[:k], [zeros, counts[k] - zeros], counts[k + 1:]]),
            np.concatenate([edges[:k + 1], [0.0], edges[k + 1:]]))


def histogram_quantile(counts, edges, q: float, lo_bound: float, hi_bound: float) -> float:
    """The value below which a fraction q of the counted data lies, linear within a bin.

    Edges are clamped to the data's known bounds [lo_bound, hi_bound] first, so
    constant data give their exact value and q in {0, 1} gives the bounds.
    """
    counts = np.asarray(counts, np.float64)
    e = np.clip(edges, lo_bound, hi_bound)
    cum = np.cumsum(counts)
    target = q * cum[-1]
    if target <= 0.0:
        return float(lo_bound)
    b = min(int(np.searchsorted(cum, target, side="left")), counts.size - 1)
    frac = (target - (cum[b] - counts[b])) / counts[b]  # counts[b] > 0: cum first reaches target here
    return float(min(e[b] + frac * (e[b + 1] - e[b]), hi_bound))


class PercentileObserver(HistogramObserver):
    """Clip at percentiles: [P_(100-p)(x), P_p(x)], or [-P_p(|x|), P_p(|x|)] when symmetric.

    Percentiles are read off the histogram with linear interpolation inside
    a bin (error below one bin width, 2 * abs max / bins_per_side at worst).
    percentile=100 gives the min/max range.
    """

    def __init__(self, percentile: float = 99.99, *, symmetric: bool = False, bins_per_side: int = 4096,
                 name: str = ""):
        if not 50.0 < percentile <= 100.0:
            raise ValueError(f"percentile must be in (50, 100], got {percentile}")
        self.percentile = percentile
        super().__init__(symmetric=symmetric, bins_per_side=bins_per_side, name=name)

    def _clip_range(self):
        if self.abs_max_ == 0.0:
            return 0.0, 0.0
        h, p = self.hist_, self.percentile / 100.0
        # Exact zeros (half of a ReLU output) sit at 0, not spread over [0, w).
        if self.symmetric:
            counts, edges = split_zeros(h.abs_counts(), h.abs_edges(), 0, self.zeros_)
            t = histogram_quantile(counts, edges, p, self.abs_min_, self.abs_max_)
            return -t, t
        counts, edges = split_zeros(h.counts, h.edges(), h.bins_per_side, self.zeros_)
        lo = histogram_quantile(counts, edges, 1.0 - p, self.min_, self.max_)
        hi = histogram_quantile(counts, edges, p, self.min_, self.max_)
        return lo, hi


def _representable(lo, hi, symmetric: bool):
    """The real interval int8 covers with choose_qparams(lo, hi): (a, b, scale), float64 arrays."""
    scale, zp = choose_qparams(lo, hi, symmetric=symmetric)
    s = scale.astype(np.float64)
    if symmetric:
        return -INT8_MAX * s, INT8_MAX * s, s
    return s * (INT8_MIN - zp), s * (INT8_MAX - zp), s


def quantization_mse(centers, counts, lo, hi, *, symmetric: bool) -> np.ndarray:
    """Expected squared error per candidate range of quantizing a histogram (counts at bin centers).

    With [a, b] the interval the candidate's qparams represent and s its scale:
        err = sum_{c<a} n (a-c)^2 + sum_{c>b} n (c-b)^2 + (sum_{a<=c<=b} n) * s^2/12
    (clipping error + uniform rounding error). Vectorised over candidates with
    prefix sums of n, n c, n c^2. Values exactly representable (zeros) should
    be left out of `counts` by the caller.
    """
    centers = np.asarray(centers, np.float64)
    counts = np.asarray(counts, np.float64)
    a, b, s = _representable(lo, hi, symmetric)
    c0 = np.concatenate([[0.0], np.cumsum(counts)])
    c1 = np.concatenate([[0.0], np.cumsum(counts * centers)])
    c2 = np.concatenate([[0.0], np.cumsum(counts * centers * centers)])
    ka = np.searchsorted(centers, a, side="left")   # bins [0, ka) have c < a
    kb = np.searchsorted(centers, b, side="right")  # bins [kb, end) have c > b
    below = a * a * c0[ka] - 2.0 * a * c1[ka] + c2[ka]
    above = (c2[-1] - c2[kb]) - 2.0 * b * (c1[-1] - c1[kb]) + b * b * (c0[-1] - c0[kb])
    inside = c0[kb] - c0[ka]
    # The prefix-sum differences can cancel to tiny negatives.
    return np.maximum(below, 0.0) + np.maximum(above, 0.0) + inside * s * s / 12.0


def quantization_mse_naive(centers, counts, lo, hi, *, symmetric: bool) -> np.ndarray:
    """Reference for quantization_mse: one candidate and one bin at a time."""
    a, b, s = _representable(lo, hi, symmetric)
    out = np.zeros(a.shape)
    for k in range(a.size):
        for c, n in zip(np.asarray(centers, float), np.asarray(counts, float)):
            if c < a[k]:
                out[k] += n * (a[k] - c) ** 2
            elif c > b[k]:
                out[k] += n * (c - b[k]) ** 2
            else:
                out[k] += n * s[k] ** 2 / 12.0
    return out


class MSEObserver(HistogramObserver):
    """The range minimising the expected int8 quantization MSE (`quantization_mse`) of the histogram.

    Candidates shrink each end of [min(min x, 0), max(max x, 0)] by factors
    f in geomspace(1/bins_per_side, 1, candidates) (steps of ~2%), lo and hi
    independently (a 2-D grid) unless symmetric ([-t, t], t from max|x|).
    Each candidate is scored with the qparams choose_qparams will really give
    it (zero point rounded). Exact zeros are counted apart and cost nothing:
    zero is always representable. Data that are all one value give that value.
    """

    def __init__(self, *, symmetric: bool = False, candidates: int = 384, bins_per_side: int = 4096,
                 name: str = ""):
        if candidates < 2:
            raise ValueError(f"candidates must be >= 2, got {candidates}")
        self.candidates = candidates
        super().__init__(symmetric=symmetric, bins_per_side=bins_per_side, name=name)

    def _clip_range(self):
        h = self.hist_
        if self.abs_max_ == 0.0:
            return 0.0, 0.0
        # Work in units of the radius: keeps the prefix sums of c^2 well scaled.
        r = h.radius
        lo_data, hi_data = self.min_ / r, self.max_ / r
        centers = np.clip(-1.0 + (np.arange(2 * h.bins_per_side) + 0.5) / h.bins_per_side, lo_data, hi_data)
        counts = h.counts.astype(np.float64)
        counts[h.bins_per_side] -= self.zeros_  # x == 0 lands in bin [0, w)
        f = np.geomspace(1.0 / h.bins_per_side, 1.0, self.candidates)
        f[-1] = 1.0
        # Each end shrinks by its own factor: lo = f_lo * min(min x, 0), hi = f_hi * max(max x, 0).
        if self.symmetric:
            ends = -self.abs_max_, self.abs_max_
            f_lo = f_hi = f
        else:
            ends = min(self.min_, 0.0), max(self.max_, 0.0)
            f_lo, f_hi = (g.ravel() for g in np.meshgrid(f if ends[0] < 0 else f[-1:],
                                                         f if ends[1] > 0 else f[-1:], indexing="ij"))
        err = quantization_mse(centers, counts, f_lo * (ends[0] / r), f_hi * (ends[1] / r),
                               symmetric=self.symmetric)
        k = int(np.argmin(err))
        return ends[0] * f_lo[k], ends[1] * f_hi[k]


KL_EPS = 1e-4  # count given to a Q bin that is empty where P is not (TensorRT/MXNet smoothing)


def entropy_divergences(hist, levels: int = 128) -> np.ndarray:
    """KL(P || Q) for every candidate i = levels..len(hist) kept bins (TensorRT calibration).

    P: hist[:i] with the outliers hist[i:] added to bin i-1. Q: hist[:i] merged
    into `levels` groups of i // levels bins (the last group takes the rest),
    each group's count spread evenly over the bins where P is non-zero.
    Smoothing: a Q bin that is empty where P is not gets KL_EPS counts
    (only the outlier bin can be; P's own empty bins add 0 * log 0 = 0).
    Q with no mass at all gives +inf. Vectorised over i with prefix sums:
        KL = sum_j P_j log P_j / N - log N - sum_g (P mass of group g / N) log(q_g / sum Q)
    with q_g the per-bin Q of group g and N = sum(hist).
    """
    h = np.asarray(hist, np.float64)
    total = h.sum()
    i = np.arange(levels, h.size + 1)
    if total <= 0:
        return np.full(i.size, np.inf)
    merged = i // levels
    g = np.arange(levels)
    start = merged[:, None] * g
    stop = np.where(g == levels - 1, i[:, None], start + merged[:, None])
    cum = np.concatenate([[0.0], np.cumsum(h)])
    cum_nonzero = np.concatenate([[0], np.cumsum(h > 0)])
    cum_xlogx = np.concatenate([[0.0], np.cumsum(_xlogx(h))])

    outliers = total - cum[i]
    last = h[i - 1] + outliers                       # P's last bin
    q_mass = cum[stop] - cum[start]                  # (candidates, levels)
    p_mass = q_mass.copy()
    p_mass[:, -1] += outliers
    p_nonzero = cum_nonzero[stop] - cum_nonzero[start]
    p_nonzero[:, -1] += (last > 0).astype(np.int64) - (h[i - 1] > 0)
    # q_mass > 0 implies p_nonzero > 0; a group with q_mass == 0 but P mass is "starved".
    starved = (q_mass == 0) & (p_mass > 0)
    q_bin = np.where(q_mass > 0, q_mass / np.maximum(p_nonzero, 1), KL_EPS)
    q_total = cum[i] + KL_EPS * np.sum(np.where(starved, p_nonzero, 0), axis=1)  # > 0 since total > 0
    log_q = np.log(q_bin / q_total[:, None])
    cross = np.sum(np.where(p_mass > 0, p_mass * log_q, 0.0), axis=1)
    kl = (cum_xlogx[i - 1] + _xlogx(last) - cross) / total - np.log(total)
    return np.where(cum[i] > 0, kl, np.inf)


def _xlogx(v: np.ndarray) -> np.ndarray:
    return v * np.log(np.where(v > 0, v, 1.0))  # 0 log 0 = 0


def entropy_divergences_naive(hist, levels: int = 128) -> np.ndarray:
    """Reference for entropy_divergences: build P and Q for each i with plain loops."""
    h = np.asarray(hist, np.float64)
    out = []
    for i in range(levels, h.size + 1):
        p = h[:i].copy()
        p[-1] += h[i:].sum()
        merged = i // levels
        q = np.zeros(i)
        for g in range(levels):
            a, b = g * merged, (i if g == levels - 1 else (g + 1) * merged)
            nonzero = p[a:b] > 0
            if nonzero.any():
                q[a:b][nonzero] = h[a:b].sum() / nonzero.sum()
        if h[:i].sum() == 0:
            out.append(np.inf)
            continue
        q[(p > 0) & (q == 0)] = KL_EPS
        pn, qn = p / p.sum(), q / q.sum()
        m = pn > 0
        out.append(float(np.sum(pn[m] * np.log(pn[m] / qn[m]))))
    return np.array(out)


def entropy_threshold_bins(hist, levels: int = 128) -> int:
    """The number of kept bins i with the least KL; ties (within rounding) go to the largest i,
    so sparse data that every candidate fits exactly is not clipped."""
    kl = entropy_divergences(hist, levels)
    best = np.flatnonzero(kl <= kl.min() + 1e-12)[-1]
    return levels + int(best)


class EntropyObserver(HistogramObserver):
    """TensorRT's entropy calibrator: the |x| threshold t minimising KL(P || Q) (Migacz 2017).

    |x| is histogrammed into `bins` (2048) bins over [0, max|x|] (re-binned
    from the finer SymmetricHistogram, linear within its bins), and
    t = i * max|x| / bins for the i in levels..bins (128..2048) picked by
    `entropy_threshold_bins`. Exact zeros are left out of the histogram:
    every candidate represents 0 exactly, and ReLU's spike at 0 (often half
    the data) otherwise drags t down to ~2 sigma, the same trap NVIDIA's
    pytorch-quantization avoids by flattening bin 0.
    Range: [0, t] when every value seen is >= 0 (after ReLU: the asymmetric
    zero point then spends all 256 levels on [0, t]); [-t, t] for signed data,
    even if it is lopsided. All-zero data give [0, 0].
    """

    def __init__(self, *, symmetric: bool = False, bins: int = 2048, levels: int = 128,
                 bins_per_side: int = 4096, name: str = ""):
        if not 1 <= levels <= bins:
            raise ValueError(f"need 1 <= levels <= bins, got levels={levels}, bins={bins}")
        self.bins, self.levels = bins, levels
        super().__init__(symmetric=symmetric, bins_per_side=bins_per_side, name=name)

    def abs_histogram(self) -> np.ndarray:
        """Counts of the non-zero |x| in `bins` equal bins over [0, max|x|]."""
        h, amax = self.hist_, self.abs_max_
        native_edges = np.clip(h.abs_edges(), self.abs_min_, amax)
        native = h.abs_counts().astype(np.float64)
        native[0] -= self.zeros_
        cum = np.concatenate([[0.0], np.cumsum(native)])
        # Clamped edges repeat only where cum is flat, so interp stays well defined.
        return np.maximum(np.diff(np.interp(amax * np.arange(self.bins + 1) / self.bins, native_edges, cum)), 0.0)

    def _clip_range(self):
        amax = self.abs_max_
        if amax == 0.0:
            return 0.0, 0.0
        t = amax * entropy_threshold_bins(self.abs_histogram(), self.levels) / self.bins
        return (0.0, t) if self.min_ >= 0.0 else (-t, t)


OBSERVERS = {
    "minmax": MinMaxObserver,
    "percentile": PercentileObserver,
    "mse": MSEObserver,
    "entropy": EntropyObserver,
}


def make_observer(method: str = "minmax", **kw) -> Observer:
    """An activation observer by calibration method (asymmetric, per-tensor by default); kw go to
    the class, e.g. make_observer("percentile", percentile=99.9, name="conv1")."""
    try:
        cls = OBSERVERS[method]
    except KeyError:
        raise CalibrationError(f"unknown calibration method {method!r}; "
                               f"choose one of {', '.join(OBSERVERS)}") from None
    return cls(**kw)


def weight_observer(per_tensor: bool = False, axis: int = 0, name: str = "") -> MinMaxObserver:
    """The weight preset: symmetric min/max, per channel on `axis` (0 for conv OHWI and dense
    [out, in]; 3 for depthwise 1HW(C*M)) unless per_tensor."""
    return MinMaxObserver(symmetric=True, per_channel_axis=None if per_tensor else axis, name=name)
