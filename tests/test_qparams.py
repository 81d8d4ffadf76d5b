"""quantize_multiplier, round_half_away and activation_range against docs/int8.md and exact references."""

import doctest
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgecnn.errors import QuantizationError
from edgecnn.int8 import rules
from edgecnn.int8.rules import activation_range, quantize_multiplier, quantize_multipliers, round_half_away

f32 = np.float32


@pytest.mark.parametrize("func", [round_half_away, quantize_multiplier, activation_range])
def test_docstring_examples(func):
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner()
    for test in finder.find(func, globs=vars(rules)):
        runner.run(test)
    assert runner.failures == 0


# --- round_half_away -----------------------------------------------------------------------


def exact_round_half_away(v: float) -> int:
    q = Fraction(v)
    return int(math.copysign(math.floor(abs(q) + Fraction(1, 2)), v))


@pytest.mark.parametrize(
    "v, expected",
    [(0.5, 1), (-0.5, -1), (1.5, 2), (2.5, 3), (-2.5, -3), (0.49999999999999994, 0), (-0.49999999999999994, 0),
     (4503599627370495.5, 4503599627370496), (2.0**53 + 2, 2.0**53 + 2), (0.0, 0), (-1e-300, 0)],
)  # fmt: skip
def test_round_half_away_cases(v, expected):
    assert round_half_away(v) == expected


@settings(max_examples=200, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e15, max_value=1e15))
def test_round_half_away_matches_exact(v):
    assert round_half_away(v) == exact_round_half_away(v)


def test_round_half_away_arrays_keep_shape():
    out = round_half_away(np.array([[0.5, -1.5], [2.5, -0.4]]))
    assert out.shape == (2, 2) and out.tolist() == [[1.0, -2.0], [3.0, -0.0]]


# --- quantize_multiplier ---------------------------------------------------------------------


def test_quantize_multiplier_worked_example():
    eff = float(f32(0.02)) * float(f32(0.005)) / float(f32(0.05))
    assert eff == pytest.approx(0.0019999998807907, abs=1e-16)
    assert quantize_multiplier(eff) == (1099511562, -8)


@pytest.mark.parametrize(
    "m, expected",
    [(1.0, (2**30, 1)), (0.999999999999, (2**30, 1)), (2.0**-32, (2**30, -31)), (2.0**-33, (0, 0)), (0.0, (0, 0)),
     (0.5, (2**30, 0)), (0.75, (3 * 2**29, 0)), (3.0, (3 * 2**29, 2))],
)  # fmt: skip
def test_quantize_multiplier_edges(m, expected):
    assert quantize_multiplier(m) == expected


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=2.0**-31, max_value=2.0**20, allow_nan=False))
def test_quantize_multiplier_reconstructs(m):
    fixed, shift = quantize_multiplier(m)
    assert 2**30 <= fixed < 2**31
    # M = round_half_away(q * 2^31) with q = m / 2^shift exactly, unless it rounded up to 2^31.
    q, e = math.frexp(m)
    expected = exact_round_half_away(q * 2.0**31)
    if expected == 2**31:
        assert (fixed, shift) == (2**30, e + 1)
    else:
        assert (fixed, shift) == (expected, e)
    # Within half a Q0.31 step of the real multiplier.
    assert abs(Fraction(fixed, 2**31) * Fraction(2) ** shift - Fraction(m)) <= Fraction(2) ** (shift - 32)


def test_quantize_multiplier_rejects_nonfinite():
    with pytest.raises(QuantizationError):
        quantize_multiplier(float("inf"))
    with pytest.raises(QuantizationError):
        quantize_multiplier(float("nan"))


def test_quantize_multipliers_vectorized():
    m, s = quantize_multipliers(np.array([1.0, 2.0**-33, 0.0019999998807907]))
    assert m.dtype == np.int32 and s.dtype == np.int32
    assert m.tolist() == [2**30, 0, 1099511562] and s.tolist() == [1, 0, -8]


# --- activation_range ------------------------------------------------------------------------


def test_activation_ranges_from_definition():
    assert activation_range("NONE", f32(0.1), 5) == (-128, 127)
    assert activation_range("RELU", f32(0.1), -20) == (-20, 127)
    assert activation_range("RELU", f32(0.1), -128) == (-128, 127)
    assert activation_range("RELU6", f32(0.05), -128) == (-128, -8)  # 6/0.05 = 120
    assert activation_range("RELU_N1_TO_1", f32(0.01), 0) == (-100, 100)
    assert activation_range("RELU_N1_TO_1", f32(1 / 64), -128) == (-128, -64)  # Qz(-1) = -192 clamps


def test_activation_range_divides_in_float32():
    # 6 / s is exactly 34.5 in float32 (roundf -> 35) but 34.4999999 in float64 (-> 34).
    s = np.uint32(1043469891).view(np.float32)
    assert f32(6) / s == f32(34.5) and 6.0 / float(s) < 34.5
    assert activation_range("RELU6", s, 0) == (0, 35)


def test_activation_range_rounds_half_away():
    # Qz(0) with zp ties is exact; Qz(-1) = -2.5 rounds to -3.
    assert activation_range("RELU_N1_TO_1", f32(0.4), 0) == (-3, 3)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["RELU", "RELU6", "RELU_N1_TO_1"]), st.floats(1e-4, 1.0), st.integers(-128, 127))
def test_activation_range_matches_formula(act, scale, zp):
    s = f32(scale)

    def qz(v):
        return zp + exact_round_half_away(float(f32(v) / s))

    lo = {"RELU": qz(0), "RELU6": qz(0), "RELU_N1_TO_1": qz(-1)}[act]
    hi = {"RELU": 127, "RELU6": qz(6), "RELU_N1_TO_1": qz(1)}[act]
    assert activation_range(act, s, zp) == (max(-128, lo), min(127, hi))


def test_activation_range_errors():
    with pytest.raises(QuantizationError):
        activation_range("SIGMOID", f32(0.1), 0)
    with pytest.raises(QuantizationError):  # 6 / 1e-12 does not fit an int32: LiteRT refuses the model
        activation_range("RELU6", f32(1e-12), 0)
