"""gemmlowp-style tests of the fixed-point primitives: float64 references with LSB tolerances,
int32 extremes, powers of two +-1, docs/int8.md's worked examples, exact (Fraction) and independent
(naive.py) implementations, and hypothesis values. The jitted functions are what is tested."""

import doctest
import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgecnn.deploy.runtime import fixedpoint as fp
from edgecnn.deploy.runtime import naive

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
int32s = st.integers(INT32_MIN, INT32_MAX)
POWERS = sorted({s * (2**k + d) for k in range(31) for d in (-1, 0, 1) for s in (1, -1)} | {INT32_MIN, INT32_MAX, 0})
EXTREMES = [v for v in POWERS if INT32_MIN <= v <= INT32_MAX]


def test_doctests():
    result = doctest.testmod(fp)
    assert result.attempted > 20 and result.failed == 0


def test_worked_examples_from_int8_md():
    srdhm, rdbpot, mbqm = (
        fp.saturating_rounding_doubling_high_mul,
        fp.rounding_divide_by_pot,
        fp.multiply_by_quantized_multiplier,
    )
    assert (srdhm(1000, 1518500250), srdhm(-1000, 1518500250)) == (707, -707)
    assert (srdhm(3, 2**30), srdhm(-3, 2**30), srdhm(-1, 2**30)) == (2, -1, 0)
    assert srdhm(INT32_MIN, INT32_MIN) == INT32_MAX
    assert [rdbpot(5, 1), rdbpot(-5, 1), rdbpot(-6, 2), rdbpot(-5, 2), rdbpot(-7, 2)] == [3, -3, -2, -1, -2]
    m, s = 1099511562, -8
    assert [mbqm(x, m, s) for x in (12345, -12345, 250, -250, 1250)] == [25, -25, 1, -1, 3]
    single = fp.multiply_by_quantized_multiplier_single_rounding
    assert single(250, m, s) == 0 and single(1250, m, s) == 2
    assert [mbqm(x, 2**30, -1) for x in (1, 5, -2, -6)] == [1, 2, -1, -2]
    assert [single(x, 2**30, -1) for x in (1, 5, -2, -6)] == [0, 1, 0, -1]
    # A whole conv output: (5*13 + -7*-17 + 100) = 284 -> SRDHM 145 -> RDBPOT 1 -> + zp 7 = 8.
    acc = 5 * (10 + 3) + (-7) * (-20 + 3) + 100
    assert acc == 284 and srdhm(acc, m) == 145 and rdbpot(145, 8) == 1
    assert mbqm(acc, m, s) + 7 == 8


# --- SRDHM ---------------------------------------------------------------------------------------


def check_srdhm(a, b):
    got = fp.saturating_rounding_doubling_high_mul(a, b)
    assert got == naive.srdhm(a, b)
    if not a == b == INT32_MIN:
        exact = Fraction(a * b, 2**31)
        assert abs(got - exact) <= Fraction(1, 2)  # within half an LSB of a*b/2^31
        assert abs(got - a * b / 2.0**31) <= 0.5 + 1e-6  # and of the float64 product
    assert INT32_MIN <= got <= INT32_MAX


@pytest.mark.parametrize("a", EXTREMES[::3])
def test_srdhm_extremes(a):
    for b in EXTREMES[::2]:
        check_srdhm(a, b)


@settings(max_examples=300, deadline=None)
@given(int32s, int32s)
def test_srdhm_random(a, b):
    check_srdhm(a, b)


def test_srdhm_ties_round_up():
    # a*b/2^31 = k + 1/2 exactly: ties go toward +inf for both signs.
    assert fp.saturating_rounding_doubling_high_mul(1, 2**30) == 1  # 0.5 -> 1
    assert fp.saturating_rounding_doubling_high_mul(-1, 2**30) == 0  # -0.5 -> 0
    assert fp.saturating_rounding_doubling_high_mul(3, 2**30) == 2  # 1.5 -> 2
    assert fp.saturating_rounding_doubling_high_mul(-3, 2**30) == -1  # -1.5 -> -1


# --- RoundingDivideByPOT, MBQM -------------------------------------------------------------------


@pytest.mark.parametrize("exponent", range(32))
def test_rounding_divide_by_pot_all_exponents(exponent):
    for x in EXTREMES:
        got = fp.rounding_divide_by_pot(x, exponent)
        assert got == naive.round_half_away(Fraction(x, 2**exponent))
        assert abs(got - x / 2.0**exponent) <= 0.5


@settings(max_examples=300, deadline=None)
@given(int32s, st.integers(0, 31))
def test_rounding_divide_by_pot_random(x, exponent):
    assert fp.rounding_divide_by_pot(x, exponent) == naive.round_half_away(Fraction(x, 2**exponent))


multipliers = st.one_of(st.integers(2**30, 2**31 - 1), st.just(0))


@settings(max_examples=400, deadline=None)
@given(st.integers(-(2**24), 2**24), multipliers, st.integers(-31, 6))
def test_multiply_by_quantized_multiplier(x, m, shift):
    got = fp.multiply_by_quantized_multiplier(x, m, shift)
    assert got == naive.multiply_by_quantized_multiplier(x, m, shift)
    real = Fraction(x * m, 2**31) * Fraction(2) ** shift
    if x * 2 ** max(shift, 0) <= INT32_MAX and x * 2 ** max(shift, 0) >= INT32_MIN:
        # Double rounding: at most one LSB from the real product (just over half in the worst case).
        assert abs(got - real) <= 1
        single = fp.multiply_by_quantized_multiplier_single_rounding(x, m, shift)
        assert single == math.floor(real + Fraction(1, 2))  # one rounding, ties up
        assert abs(got - single) <= 1


def test_multiply_by_quantized_multiplier_extremes():
    for x in EXTREMES:
        for m in (0, 2**30, 2**31 - 1, 1099511562):
            for shift in (-31, -8, -1, 0, 1, 3):
                assert fp.multiply_by_quantized_multiplier(x, m, shift) == naive.multiply_by_quantized_multiplier(
                    x, m, shift
                )


def test_left_shift_wraps_like_int32():
    # TFLite computes x * (1 << left_shift) in int32; overflow wraps in practice.
    x = 2**30 + 5
    assert fp.multiply_by_quantized_multiplier(x, 2**30, 1) == fp.saturating_rounding_doubling_high_mul(
        fp.wrap_int32(2 * x), 2**30
    )
    assert fp.wrap_int32(2 * x) < 0


# --- saturating shifts, half sums, clz -----------------------------------------------------------


@pytest.mark.parametrize("exponent", range(1, 31))
def test_saturating_left_shift(exponent):
    for x in EXTREMES:
        assert fp.saturating_left_shift(x, exponent) == min(max(x * 2**exponent, INT32_MIN), INT32_MAX)


@settings(max_examples=200, deadline=None)
@given(int32s, int32s)
def test_rounding_half_sum(a, b):
    assert fp.rounding_half_sum(a, b) == naive.round_half_away(Fraction(a + b, 2))


def test_count_leading_zeros():
    assert fp.count_leading_zeros_u32(0) == 32
    for k in range(32):
        assert fp.count_leading_zeros_u32(2**k) == 31 - k
        assert fp.count_leading_zeros_u32(2 ** (k + 1) - 1) == 31 - k
    assert fp.count_leading_zeros_u32(-1) == 0


# --- exp, 1/(1+x), reciprocal --------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.integers(-(2**31), 0), st.sampled_from([0, 1, 2, 3, 4, 5, 6, 8]))
def test_exp_on_negative_values(raw, integer_bits):
    got = fp.exp_on_negative_values(raw, integer_bits)
    assert got == naive.exp_on_negative_values(naive.Fixed(raw, integer_bits)).raw
    x = raw / 2.0 ** (31 - integer_bits)
    if integer_bits > 5 and x < -32:
        assert got == 0
    else:
        # gemmlowp's Taylor step is good to ~5e-7 relative; products keep it within 2e-6 absolute.
        assert abs(got / 2.0**31 - math.exp(x)) < 2e-6


def test_exp_on_negative_values_softmax_grid():
    # Every Q5.26 value softmax can feed, on a grid: exact against the independent version.
    for raw in list(range(-(31 << 26), 1, 123457)) + [0, -1, -(1 << 24), -(1 << 26), -(31 << 26)]:
        assert fp.exp_on_negative_values(raw, 5) == naive.exp_on_negative_values(naive.Fixed(raw, 5)).raw


@settings(max_examples=300, deadline=None)
@given(st.integers(0, INT32_MAX))
def test_one_over_one_plus_x(raw):
    got = fp.one_over_one_plus_x_for_x_in_0_1(raw)
    assert got == naive.one_over_one_plus_x(naive.Fixed(raw, 0)).raw
    assert abs(got / 2.0**31 - 1 / (1 + raw / 2.0**31)) < 1e-8  # a few LSB


@settings(max_examples=200, deadline=None)
@given(st.integers(1 << 19, (1 << 31) - 1))
def test_get_reciprocal(total):
    scale, bits_over_unit = fp.get_reciprocal(total, 12)
    value = total / 2.0**19  # Q12.19
    assert 0 <= bits_over_unit <= 11
    assert abs(scale / 2.0**31 * 2.0**-bits_over_unit - 1 / value) < 2e-8 / value
