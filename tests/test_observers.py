"""Calibration observers: ranges on synthetic distributions, batching, references, edge cases."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from edgecnn.errors import CalibrationError
from edgecnn.quantize.observers import (
    OBSERVERS,
    EntropyObserver,
    MinMaxObserver,
    MSEObserver,
    PercentileObserver,
    SymmetricHistogram,
    entropy_divergences,
    entropy_divergences_naive,
    make_observer,
    quantization_mse,
    quantization_mse_naive,
    weight_observer,
)
from edgecnn.quantize.qparams import choose_qparams

NAMES = ["minmax", "percentile", "mse", "entropy"]
FINITE32 = st.floats(width=32, allow_nan=False, allow_infinity=False)


def fake_quant(x, scale, zp):
    """Quantize-dequantize with per-tensor qparams (round half away from zero, clamp to int8)."""
    s, z = float(scale[0]), int(zp[0])
    v = x / s
    q = np.clip(np.sign(v) * np.floor(np.abs(v) + 0.5) + z, -128, 127)
    return (q - z) * s


def quant_mse(x, observer):
    return float(np.mean((x - fake_quant(x, *observer.qparams())) ** 2))


def split(x, parts):
    return np.array_split(x, parts)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    return {
        "uniform": rng.uniform(-1.0, 3.0, 50_000).astype(np.float32),
        # two outliers in a million: clipping them beats spreading 256 levels over [-50, 50]
        "gauss_outliers": np.concatenate([rng.standard_normal(1_000_000), [50.0, -50.0]]).astype(np.float32),
        "relu": np.maximum(rng.standard_normal(200_000), 0.0).astype(np.float32),
        "student_t": rng.standard_t(3, 200_000).astype(np.float32),
    }


# --- shared behaviour --------------------------------------------------------

def test_registry_and_factory():
    assert list(OBSERVERS) == NAMES
    for name in NAMES:
        o = make_observer(name)
        assert type(o) is OBSERVERS[name] and not o.symmetric
    assert make_observer("percentile", percentile=99.9).percentile == 99.9
    assert make_observer("mse", symmetric=True).symmetric
    with pytest.raises(CalibrationError, match="unknown calibration method 'kl'.*minmax, percentile, mse, entropy"):
        make_observer("kl")


@pytest.mark.parametrize("name", NAMES)
def test_qparams_come_from_choose_qparams(name, data):
    for sym in (False, True):
        o = make_observer(name, symmetric=sym)
        assert o.update(data["uniform"]) is o
        scale, zp = o.qparams()
        ref_s, ref_zp = choose_qparams(*o.range(), symmetric=sym)
        assert scale.dtype == np.float32 and zp.dtype == np.int64 and scale.shape == zp.shape == (1,)
        np.testing.assert_array_equal(scale, ref_s)
        np.testing.assert_array_equal(zp, ref_zp)
        if sym:
            assert zp[0] == 0


@pytest.mark.parametrize("name", NAMES)
def test_no_data_is_an_error(name):
    o = make_observer(name)
    for call in (o.range, o.qparams):
        with pytest.raises(CalibrationError, match="observer saw no data"):
            call()
    o.update(np.zeros((0, 3), np.float32)).update([])  # empty batches record nothing
    assert o.count_ == 0
    with pytest.raises(CalibrationError, match="saw no data"):
        o.qparams()


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bad, problem", [(np.nan, "NaN"), (np.inf, "infinite"), (-np.inf, "infinite"),
                                          (1e39, "float32 range")])
def test_bad_values_are_named_and_not_recorded(name, bad, problem):
    o = make_observer(name, name="conv1")
    x = np.linspace(-1, 1, 50)
    x[17] = bad
    with pytest.raises(CalibrationError, match=f"'conv1'.*{problem}"):
        o.update(x)
    assert o.count_ == 0
    o.update(np.linspace(-1, 1, 50))  # the observer is still usable
    assert np.isfinite(o.qparams()[0]).all()


@pytest.mark.parametrize("bad", [["a", "b"], np.array([1 + 2j]), [[1.0], [1.0, 2.0]]])
def test_non_numeric_input_is_an_error(bad):
    with pytest.raises(CalibrationError, match="input"):
        MinMaxObserver().update(bad)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("value", [0.0, 3.5, -2.25, 1e-3])
@pytest.mark.parametrize("size", [1, 1000])
def test_constant_data(name, value, size):
    """min == max (a dead channel, a single value, all zeros): well-defined qparams that
    represent the value to within half a step, and the value itself as the range end."""
    o = make_observer(name).update(np.full(size, value, np.float32))
    lo, hi = o.range()
    scale, zp = o.qparams()
    assert np.isfinite(scale[0]) and scale[0] > 0 and -128 <= zp[0] <= 127
    v = np.float32(value)
    assert abs(fake_quant(np.array([v]), scale, zp)[0] - v) <= scale[0] / 2 * (1 + 1e-6)
    if value == 0:
        assert (lo[0], hi[0], scale[0]) == (0.0, 0.0, 1.0)
    elif value > 0:
        assert hi[0] == pytest.approx(v, rel=1e-12)
    else:
        assert lo[0] == pytest.approx(v, rel=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_zeros_then_data_then_zeros(name):
    o = make_observer(name).update(np.zeros(500)).update(np.linspace(0, 2, 101)).update(np.zeros(10))
    lo, hi = o.range()
    assert lo[0] == 0.0 and 1.5 < hi[0] <= 2.0
    assert o.count_ == 611


def test_tiny_ranges_get_scale_one():
    """A scale that would underflow float32 is replaced by choose_qparams' 0-span case."""
    scale, zp = MinMaxObserver().update([-1e-40, 1e-40]).qparams()
    assert (scale[0], zp[0]) == (1.0, -128)
    scale, _ = MinMaxObserver().update([0.0, 1e-30]).qparams()
    assert scale[0] == np.float32(1e-30 / 255)


@settings(max_examples=30, deadline=None)
@given(name=st.sampled_from(NAMES), symmetric=st.booleans(),
       x=hnp.arrays(np.float32, st.integers(1, 300), elements=FINITE32), parts=st.integers(1, 4))
def test_any_finite_data_gives_valid_qparams(name, symmetric, x, parts):
    o = make_observer(name, symmetric=symmetric)
    for batch in split(x, parts):
        o.update(batch)
    lo, hi = o.range()
    amax = float(np.max(np.abs(x.astype(np.float64))))
    assert -amax <= lo[0] <= hi[0] <= amax
    scale, zp = o.qparams()
    assert np.isfinite(scale[0]) and scale[0] > 0 and -128 <= zp[0] <= 127


# --- minmax and the weight preset --------------------------------------------

@settings(max_examples=40, deadline=None)
@given(batches=st.lists(hnp.arrays(np.float32, st.integers(0, 40), elements=FINITE32), min_size=1, max_size=5))
def test_minmax_batches_equal_one_update(batches):
    allx = np.concatenate(batches)
    inc = MinMaxObserver()
    for b in batches:
        inc.update(b)
    if allx.size == 0:
        with pytest.raises(CalibrationError):
            inc.range()
        return
    one = MinMaxObserver().update(allx)
    assert inc.range() == one.range() == (np.array([allx.min()]), np.array([allx.max()]))


def test_minmax_uniform(data):
    x = data["uniform"]
    lo, hi = MinMaxObserver().update(x).range()
    assert (lo[0], hi[0]) == (x.min(), x.max())


def test_weight_observer_per_channel_conv():
    rng = np.random.default_rng(3)
    w = rng.standard_normal((6, 5, 5, 1)) * np.array([0.1, 1, 5, 0, 0.3, 2])[:, None, None, None]
    o = weight_observer()
    assert o.symmetric and o.per_channel_axis == 0
    scale, zp = o.update(w).qparams()
    amax = np.abs(w).reshape(6, -1).max(axis=1)
    np.testing.assert_array_equal(scale[[0, 1, 2, 4, 5]], (amax / 127).astype(np.float32)[[0, 1, 2, 4, 5]])
    assert scale[3] == 1.0  # dead channel
    assert zp.tolist() == [0] * 6
    q = np.round(w / scale[:, None, None, None])
    assert np.abs(q).max(axis=(1, 2, 3)).tolist() == [127, 127, 127, 0, 127, 127]


def test_weight_observer_axes_and_batches():
    rng = np.random.default_rng(4)
    dw = rng.standard_normal((1, 3, 3, 8))
    lo, hi = weight_observer(axis=3).update(dw).range()
    np.testing.assert_array_equal(lo, dw.min(axis=(0, 1, 2)))
    np.testing.assert_array_equal(hi, dw.max(axis=(0, 1, 2)))
    dense = rng.standard_normal((120, 400))
    inc = weight_observer().update(dense[:, :150]).update(dense[:, 150:])
    np.testing.assert_array_equal(inc.range()[0], dense.min(axis=1))
    scale, _ = weight_observer(per_tensor=True).update(dense).qparams()
    assert scale.shape == (1,) and scale[0] == np.float32(np.abs(dense).max() / 127)


def test_weight_observer_shape_errors():
    o = weight_observer().update(np.ones((6, 4)))
    with pytest.raises(CalibrationError, match="7 channels.*had 6"):
        o.update(np.ones((7, 4)))
    with pytest.raises(CalibrationError, match="axis 3 is out of range"):
        weight_observer(axis=3).update(np.ones((6, 4)))
    with pytest.raises(CalibrationError, match="NaN"):
        weight_observer().update(np.array([[1.0, np.nan], [0.0, 1.0]]))


# --- the histogram ------------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(batches=st.lists(hnp.arrays(np.float64, st.integers(1, 30),
                                   elements=st.floats(-1e6, 1e6, allow_subnormal=False)), min_size=1, max_size=5))
def test_histogram_doubling_is_exact(batches):
    """Batched counts equal binning every value once at the final radius."""
    h = SymmetricHistogram(bins_per_side=8)
    for b in batches:
        h.add(b, float(np.abs(b).max()))
    allx = np.concatenate(batches)
    np.testing.assert_array_equal(h.counts, h.naive_counts(allx))
    assert h.counts.sum() == allx.size
    assert h.radius == 0.0 or np.abs(allx).max() < h.radius


def test_histogram_grows_by_doubling():
    h = SymmetricHistogram(bins_per_side=4)
    h.add(np.array([0.0, 0.0]), 0.0)
    h.add(np.array([1.0, -0.5]), 1.0)
    r0 = h.radius
    assert r0 > 1.0 and h.counts.tolist() == [0, 0, 1, 0, 2, 0, 0, 1]
    h.add(np.array([3.0]), 3.0)
    assert h.radius == 4 * r0
    assert h.counts.tolist() == [0, 0, 0, 1, 3, 0, 1, 0]
    assert h.abs_counts().tolist() == [4, 0, 1, 0]


# --- percentile -----------------------------------------------------------------

def test_percentile_clips_outliers(data):
    x = data["gauss_outliers"]
    o = PercentileObserver(99.99).update(x)
    w = o.hist_.bin_width
    lo, hi = o.range()
    assert lo[0] == pytest.approx(np.percentile(x, 0.01), abs=w)
    assert hi[0] == pytest.approx(np.percentile(x, 99.99), abs=w)
    assert hi[0] < 4.5 and lo[0] > -4.5
    lo, hi = PercentileObserver(99.9, symmetric=True).update(x).range()
    assert hi[0] == -lo[0] == pytest.approx(np.percentile(np.abs(x), 99.9), abs=w)


def test_percentile_100_is_minmax_and_relu_keeps_zero(data):
    x = data["student_t"]
    assert PercentileObserver(100).update(x).range() == MinMaxObserver().update(x).range()
    lo, hi = PercentileObserver().update(data["relu"]).range()
    assert lo[0] == 0.0 and hi[0] < data["relu"].max()
    with pytest.raises(ValueError):
        PercentileObserver(40)


# --- MSE and entropy ------------------------------------------------------------

@pytest.mark.parametrize("symmetric", [False, True])
def test_quantization_mse_matches_naive(symmetric):
    rng = np.random.default_rng(5)
    centers = np.sort(rng.uniform(-3, 5, 60))
    counts = rng.integers(0, 50, 60) * (rng.random(60) < 0.6)
    lo = -rng.uniform(0, 3, 25)
    hi = rng.uniform(0, 5, 25)
    lo[0] = hi[0] = 0.0
    fast = quantization_mse(centers, counts, lo, hi, symmetric=symmetric)
    np.testing.assert_allclose(fast, quantization_mse_naive(centers, counts, lo, hi, symmetric=symmetric),
                               rtol=1e-9, atol=1e-9)


@settings(max_examples=25, deadline=None)
@given(hist=hnp.arrays(np.int64, st.integers(32, 200), elements=st.sampled_from([0, 0, 0, 1, 2, 7, 1000])),
       levels=st.sampled_from([1, 8, 32]))
def test_entropy_divergences_match_naive(hist, levels):
    fast, naive = entropy_divergences(hist, levels), entropy_divergences_naive(hist, levels)
    assert fast.shape == naive.shape
    np.testing.assert_array_equal(np.isinf(fast), np.isinf(naive))
    finite = np.isfinite(naive)
    np.testing.assert_allclose(fast[finite], naive[finite], rtol=1e-9, atol=1e-12)


def test_entropy_divergences_match_naive_full_size():
    rng = np.random.default_rng(6)
    hist = np.histogram(np.abs(rng.standard_normal(20_000)), bins=512)[0]
    np.testing.assert_allclose(entropy_divergences(hist), entropy_divergences_naive(hist), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", ["mse", "entropy"])
def test_heavy_tails_get_narrower_ranges(name, data):
    x = data["student_t"]
    lo, hi = make_observer(name).update(x).range()
    mlo, mhi = MinMaxObserver().update(x).range()
    assert hi[0] - lo[0] < 0.8 * (mhi[0] - mlo[0])


@pytest.mark.parametrize("name", ["mse", "entropy"])
def test_clipping_outliers_lowers_the_error(name, data):
    x = data["gauss_outliers"]
    o = make_observer(name).update(x)
    assert quant_mse(x, o) < 0.5 * quant_mse(x, MinMaxObserver().update(x))
    assert o.range()[1][0] < 20


@pytest.mark.parametrize("kind", ["uniform", "gauss_outliers", "relu", "student_t"])
def test_mse_observer_never_loses_to_minmax(kind, data):
    x = data[kind]
    assert quant_mse(x, MSEObserver().update(x)) <= 1.01 * quant_mse(x, MinMaxObserver().update(x))


def test_mse_keeps_the_range_of_uniform_data(data):
    x = data["uniform"]
    lo, hi = MSEObserver().update(x).range()
    assert lo[0] == pytest.approx(x.min(), rel=0.03) and hi[0] == pytest.approx(x.max(), rel=0.03)


def test_entropy_relu_and_signed_ranges(data):
    x = data["relu"]
    lo, hi = EntropyObserver().update(x).range()
    assert lo[0] == 0.0 and 3.0 < hi[0] <= x.max()  # zeros left out: no pull towards 0
    lo, hi = EntropyObserver().update(data["gauss_outliers"]).range()
    assert lo[0] == -hi[0] and 3.0 < hi[0] < 20.0


@pytest.mark.parametrize("name", ["percentile", "mse", "entropy"])
def test_histogram_observers_batches_approximate_one_update(name, data):
    """The first batch is small, so the radius doubles several times afterwards."""
    x = data["student_t"]
    batches = [x[np.abs(x) < 0.5][:1000], *split(x, 5)]
    inc = make_observer(name)
    for b in batches:
        inc.update(b)
    one = make_observer(name).update(np.concatenate(batches))
    assert inc.count_ == one.count_
    np.testing.assert_allclose(np.ravel(inc.range()), np.ravel(one.range()), rtol=0.03)
    allx = np.concatenate(batches)
    assert quant_mse(allx, inc) == pytest.approx(quant_mse(allx, one), rel=0.05)
