"""fully_connected (Numba) against the plain-Python reference, in both rescale modes."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgecnn.deploy.runtime import naive
from edgecnn.deploy.runtime.fully_connected import fully_connected, round_half_away_to_int32
from edgecnn.deploy.runtime.params import RESCALE_FLOAT, RESCALE_INTEGER, FullyConnectedParams
from edgecnn.int8.rules import quantize_multipliers


def fc_params(rng, units, rescale, weights_offset=0, input_offset=5, output_offset=-3, lo=-128, hi=127):
    effective = np.exp(rng.uniform(np.log(1e-5), np.log(0.05), units))
    multiplier, shift = quantize_multipliers(effective)
    return FullyConnectedParams(input_offset, weights_offset, output_offset, rescale, multiplier, shift,
                                effective, lo, hi)  # fmt: skip


def run_both(params, x, filt, bias, out_shape):
    out = np.full(out_shape, 99, dtype=np.int8)
    fully_connected(params, x.shape, x.ravel(), filt.shape, filt.ravel(), bias.shape, bias, out_shape, out.ravel())
    expected = naive.fully_connected(params, x.shape, x.ravel(), filt.shape, filt.ravel(), bias.shape, bias, out_shape)
    return out, expected


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 140), st.integers(1, 40), st.integers(1, 12), st.sampled_from([RESCALE_FLOAT, RESCALE_INTEGER]),
       st.booleans(), st.integers(-127, 128), st.integers(-128, 127), st.integers(0, 2**32 - 1))  # fmt: skip
def test_fully_connected_matches_naive(rows, depth, units, rescale, has_bias, input_offset, weights_offset, seed):
    rng = np.random.default_rng(seed)
    lo = int(rng.integers(-128, 0))
    params = fc_params(rng, units, rescale, weights_offset, input_offset, int(rng.integers(-128, 128)), lo, 127)
    x = rng.integers(-128, 128, (rows, depth), dtype=np.int8)
    filt = rng.integers(-127, 128, (units, depth), dtype=np.int8)
    bias = rng.integers(-(2**16), 2**16, units).astype(np.int32) if has_bias else np.zeros(0, np.int32)
    out, expected = run_both(params, x, filt, bias, (rows, units))
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("rows", [1, 2, 3, 4, 64, 66, 130])  # dot-product rows, full blocks, short last blocks
@pytest.mark.parametrize("rescale", [RESCALE_FLOAT, RESCALE_INTEGER])
def test_fully_connected_both_layouts(rows, rescale):
    rng = np.random.default_rng(rows)
    params = fc_params(rng, 9, rescale, weights_offset=-4 if rows % 2 else 0)
    x = rng.integers(-128, 128, (rows, 33), dtype=np.int8)
    filt = rng.integers(-127, 128, (9, 33), dtype=np.int8)
    bias = rng.integers(-5000, 5000, 9).astype(np.int32)
    out, expected = run_both(params, x, filt, bias, (rows, 9))
    np.testing.assert_array_equal(out, expected)


def test_fully_connected_flattens_any_input_rank():
    rng = np.random.default_rng(3)
    params = fc_params(rng, 7, RESCALE_FLOAT)
    x = rng.integers(-128, 128, (3, 5, 5, 16), dtype=np.int8)  # 3 rows of 400
    filt = rng.integers(-127, 128, (7, 400), dtype=np.int8)
    bias = rng.integers(-1000, 1000, 7).astype(np.int32)
    out, expected = run_both(params, x, filt, bias, (3, 7))
    np.testing.assert_array_equal(out, expected)


def test_float_and_integer_rescale_differ_as_documented():
    # docs/int8.md: with eff = 0.5 and acc = -3, FULLY_CONNECTED (float) gives -2 where the integer path gives -1.
    x = np.array([[-3]], np.int8)
    filt = np.array([[1]], np.int8)
    no_bias = np.zeros(0, np.int32)
    common = dict(input_offset=0, weights_offset=0, output_offset=0, activation_min=-128, activation_max=127)
    for rescale, expected in ((RESCALE_FLOAT, -2), (RESCALE_INTEGER, -1)):
        params = FullyConnectedParams(rescale=rescale, output_multiplier=np.array([2**30], np.int32),
                                      output_shift=np.array([0], np.int32), effective_scale=np.array([0.5]),
                                      **common)  # fmt: skip
        out, ref = run_both(params, x, filt, no_bias, (1, 1))
        assert out[0, 0] == ref[0, 0] == expected


def test_weights_zero_point_is_subtracted_per_tensor():
    x = np.array([[10, 20]], np.int8)
    filt = np.array([[3, 4]], np.int8)
    params = FullyConnectedParams(0, -2, 0, RESCALE_FLOAT, np.array([2**30], np.int32), np.array([1], np.int32),
                                  np.array([1.0]), -128, 127)  # fmt: skip
    out, ref = run_both(params, x, filt, np.zeros(0, np.int32), (1, 1))
    assert out[0, 0] == ref[0, 0] == (3 - 2) * 10 + (4 - 2) * 20


@pytest.mark.parametrize(
    "v, expected",
    [(0.5, 1), (-0.5, -1), (2.5, 3), (-2.5, -3), (0.49999999999999994, 0), (-1.5000000000000002, -2),
     (1e12, 2**31 - 1)],
)  # fmt: skip
def test_round_half_away_to_int32(v, expected):
    assert round_half_away_to_int32(v) == expected


def test_fully_connected_rejects_bad_shapes():
    params = fc_params(np.random.default_rng(0), 3, RESCALE_FLOAT)
    with pytest.raises(ValueError):  # 10 values are not rows of 4
        fully_connected(params, (10,), np.zeros(10, np.int8), (3, 4), np.zeros(12, np.int8), (0,),
                        np.zeros(0, np.int32), (2, 3), np.zeros(6, np.int8))  # fmt: skip
    with pytest.raises(ValueError):  # 2 units in the params, filter has 3
        bad = params._replace(output_multiplier=params.output_multiplier[:2])
        fully_connected(bad, (1, 4), np.zeros(4, np.int8), (3, 4), np.zeros(12, np.int8), (0,),
                        np.zeros(0, np.int32), (1, 3), np.zeros(3, np.int8))  # fmt: skip
