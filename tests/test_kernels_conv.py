"""conv_2d and depthwise_conv_2d (Numba) against the plain-Python references, exactly."""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from edgecnn.deploy.runtime import naive
from edgecnn.deploy.runtime.conv import conv_2d
from edgecnn.deploy.runtime.depthwise_conv import depthwise_conv_2d
from edgecnn.int8.padding import compute_padding
from edgecnn.deploy.runtime.params import ConvParams
from edgecnn.deploy.runtime.windows import band_rows


@st.composite
def window(draw):
    """Input size, filter, stride, dilation and padding giving at least one output pixel."""
    padding = draw(st.sampled_from(["SAME", "VALID"]))
    dims = []
    for _ in range(2):
        size, k = draw(st.integers(1, 9)), draw(st.integers(1, 4))
        stride, dilation = draw(st.integers(1, 3)), draw(st.integers(1, 3))
        out, before, _ = compute_padding(padding, size, k, stride, dilation)
        assume(out >= 1)
        dims.append((size, k, stride, dilation, out, before))
    return dims


@st.composite
def requant(draw, channels):
    """Per-channel multipliers (incl. 0) and shifts across the whole range, offsets and a clamp range."""
    multiplier = draw(st.lists(st.one_of(st.integers(2**30, 2**31 - 1), st.just(0)), min_size=channels,
                               max_size=channels))  # fmt: skip
    shift = draw(st.lists(st.one_of(st.integers(-12, 0), st.integers(-31, 3)), min_size=channels, max_size=channels))
    lo = draw(st.integers(-128, 127))
    hi = draw(st.integers(lo, 127))
    return dict(
        input_offset=draw(st.integers(-127, 128)),
        output_offset=draw(st.integers(-128, 127)),
        output_multiplier=np.array(multiplier, dtype=np.int32),
        output_shift=np.array(shift, dtype=np.int32),
        activation_min=lo,
        activation_max=hi,
    )


def params_for(dims, q):
    (_, _, sh, dh, _, pt), (_, _, sw, dw, _, pl) = dims
    return ConvParams(q["input_offset"], q["output_offset"], sh, sw, dh, dw, pt, pl, q["output_multiplier"],
                      q["output_shift"], q["activation_min"], q["activation_max"])  # fmt: skip


def int8s(rng, shape, low=-128):
    return rng.integers(low, 128, shape, dtype=np.int8)


@settings(max_examples=60, deadline=None)
@given(window(), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.data(),
       st.integers(0, 2**32 - 1))  # fmt: skip
def test_conv_2d_matches_naive(dims, batches, groups, filter_depth, per_group, data, seed):
    rng = np.random.default_rng(seed)
    (h, kh, _, _, oh, _), (w, kw, _, _, ow, _) = dims
    in_depth, out_depth = groups * filter_depth, groups * per_group
    params = params_for(dims, data.draw(requant(out_depth)))
    x = int8s(rng, (batches, h, w, in_depth))
    filt = int8s(rng, (out_depth, kh, kw, filter_depth), low=-127)
    bias = rng.integers(-(2**20), 2**20, out_depth).astype(np.int32)
    out_shape = (batches, oh, ow, out_depth)
    out = np.full(out_shape, 99, dtype=np.int8)
    conv_2d(params, x.shape, x.ravel(), filt.shape, filt.ravel(), bias.shape, bias, out_shape, out.ravel())
    expected = naive.conv_2d(params, x.shape, x.ravel(), filt.shape, filt.ravel(), bias.shape, bias, out_shape)
    np.testing.assert_array_equal(out, expected)


@settings(max_examples=50, deadline=None)
@given(window(), st.integers(1, 3), st.integers(1, 4), st.integers(1, 3), st.booleans(), st.data(),
       st.integers(0, 2**32 - 1))  # fmt: skip
def test_depthwise_conv_2d_matches_naive(dims, batches, in_depth, multiplier, has_bias, data, seed):
    rng = np.random.default_rng(seed)
    (h, kh, _, _, oh, _), (w, kw, _, _, ow, _) = dims
    out_depth = in_depth * multiplier
    params = params_for(dims, data.draw(requant(out_depth)))
    x = int8s(rng, (batches, h, w, in_depth))
    filt = int8s(rng, (1, kh, kw, out_depth), low=-127)
    bias = rng.integers(-(2**20), 2**20, out_depth).astype(np.int32) if has_bias else np.zeros(0, np.int32)
    out_shape = (batches, oh, ow, out_depth)
    out = np.full(out_shape, 99, dtype=np.int8)
    depthwise_conv_2d(params, x.shape, x.ravel(), filt.shape, filt.ravel(), bias.shape, bias, out_shape, out.ravel())
    expected = naive.depthwise_conv_2d(params, x.shape, x.ravel(), filt.shape, filt.ravel(), bias.shape, bias,
                                       out_shape)  # fmt: skip
    np.testing.assert_array_equal(out, expected)


def test_conv_worked_example_from_int8_md():
    # input zp -3, inputs [10, -20], weights [5, -7], bias 100, M = 1099511562, shift -8, output zp 7 -> 8.
    params = ConvParams(3, 7, 1, 1, 1, 1, 0, 0, np.array([1099511562], np.int32), np.array([-8], np.int32), -128, 127)
    x = np.array([10, -20], np.int8)
    filt = np.array([5, -7], np.int8)
    out = np.zeros(1, np.int8)
    conv_2d(params, (1, 1, 1, 2), x, (1, 1, 1, 2), filt, (1,), np.array([100], np.int32), (1, 1, 1, 1), out)
    assert out[0] == 8


def test_conv_large_accumulators_and_padding_zero_point():
    # Extreme int8 values over a 5x5x8 window (|acc| up to ~2^22.5), SAME padding and a far-off
    # input zero point: padded taps must add nothing (not w * (0 - zero_point)).
    rng = np.random.default_rng(7)
    x = np.where(rng.random((2, 6, 6, 8)) < 0.5, -128, 127).astype(np.int8)
    filt = np.where(rng.random((3, 5, 5, 8)) < 0.5, -127, 127).astype(np.int8)
    bias = np.array([2**20, -(2**20), 0], np.int32)
    out_h, pad, _ = compute_padding("SAME", 6, 5, 1)
    shifts = np.array([-15, -16, -17], np.int32)
    params = ConvParams(-100, -5, 1, 1, 1, 1, pad, pad, np.full(3, 2**30, np.int32), shifts, -128, 127)
    out_shape = (2, out_h, out_h, 3)
    out = np.zeros(out_shape, np.int8)
    conv_2d(params, x.shape, x.ravel(), filt.shape, filt.ravel(), (3,), bias, out_shape, out.ravel())
    expected = naive.conv_2d(params, x.shape, x.ravel(), filt.shape, filt.ravel(), (3,), bias, out_shape)
    np.testing.assert_array_equal(out, expected)
    assert len(np.unique(out)) > 20  # mostly unclamped


@pytest.mark.parametrize("depthwise", [False, True])
def test_large_images_split_into_bands(depthwise):
    # Taps matrices beyond TAPS_BUDGET are built band by band; bands of rows must tile the output exactly.
    rng = np.random.default_rng(11)
    h, w, c, k = (100, 97, 2, 3) if depthwise else (40, 31, 8, 5)
    out_h, pad_h, _ = compute_padding("SAME", h, k, 1)
    out_w, pad_w, _ = compute_padding("SAME", w, k, 1)
    taps = k * k * (1 if depthwise else c)
    assert band_rows(taps, out_h, out_w) < out_h  # really more than one band
    out_depth = 2 * c if depthwise else 3
    params = ConvParams(-7, 3, 1, 1, 1, 1, pad_h, pad_w, np.full(out_depth, 1500000000, np.int32),
                        np.full(out_depth, -10 if depthwise else -13, np.int32), -128, 127)  # fmt: skip
    x = int8s(rng, (1, h, w, c))
    filt = int8s(rng, (1, k, k, out_depth) if depthwise else (out_depth, k, k, c), low=-127)
    bias = rng.integers(-5000, 5000, out_depth).astype(np.int32)
    out_shape = (1, out_h, out_w, out_depth)
    out = np.zeros(out_shape, np.int8)
    kernel, reference = (depthwise_conv_2d, naive.depthwise_conv_2d) if depthwise else (conv_2d, naive.conv_2d)
    kernel(params, x.shape, x.ravel(), filt.shape, filt.ravel(), bias.shape, bias, out_shape, out.ravel())
    expected = reference(params, x.shape, x.ravel(), filt.shape, filt.ravel(), bias.shape, bias, out_shape)
    np.testing.assert_array_equal(out, expected)
    assert len(np.unique(out)) > 20


@pytest.mark.parametrize("kernel", [conv_2d, depthwise_conv_2d])
def test_conv_kernels_reject_mismatched_shapes(kernel):
    params = ConvParams(0, 0, 1, 1, 1, 1, 0, 0, np.ones(2, np.int32), np.zeros(2, np.int32), -128, 127)
    x = np.zeros(2 * 4 * 4 * 2, np.int8)
    filt_shape = (2, 3, 3, 2) if kernel is conv_2d else (1, 3, 3, 2)
    filt = np.zeros(int(np.prod(filt_shape)), np.int8)
    bias = np.zeros(2, np.int32)
    with pytest.raises(ValueError):  # output depth 3 != 2 filters
        kernel(params, (2, 4, 4, 2), x, filt_shape, filt, (2,), bias, (2, 2, 2, 3), np.zeros(24, np.int8))
    with pytest.raises(ValueError):  # output buffer too small for its shape
        kernel(params, (2, 4, 4, 2), x, filt_shape, filt, (2,), bias, (2, 2, 2, 2), np.zeros(7, np.int8))
