"""gemmlowp-style fixed-point primitives, bit-exact with TFLite's reference kernels.

Every function is a tiny `@njit` scalar routine on int32 values that Numba
carries in int64 registers (Python ints in `.py_func`). Products of two int32
fit an int64, so nothing here overflows unless stated; the few places where
TFLite's C++ would wrap an int32 do so explicitly through `wrap_int32`.

A raw int32 `r` in Qm.n format (m integer bits, n = 31 - m fractional bits)
stands for r / 2^n. The doctests call `.py_func`, so importing this module or
running its doctests compiles nothing.
"""

from __future__ import annotations

from numba import njit

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1


@njit(cache=True)
def wrap_int32(x):
    """x modulo 2^32, as a signed int32 (what C's int32 overflow does in practice).

    >>> wrap_int32.py_func(2**31), wrap_int32.py_func(-(2**31) - 1)
    (-2147483648, 2147483647)
    """
    return ((x + 2147483648) & 0xFFFFFFFF) - 2147483648


@njit(cache=True)
def saturating_rounding_doubling_high_mul(a, b):
    """round(a * b / 2^31), ties toward +inf, for int32 a, b (gemmlowp SRDHM, NEON VQRDMULH).

    Exactly (a*b + 2^30) >> 31 in int64. Saturates in one case only:
    a == b == INT32_MIN gives INT32_MAX (1 is not representable in Q0.31).
    Result range: int32.

    >>> f = saturating_rounding_doubling_high_mul.py_func
    >>> f(1000, 1518500250), f(-1000, 1518500250), f(3, 2**30), f(-3, 2**30), f(-1, 2**30)
    (707, -707, 2, -1, 0)
    >>> f(-2**31, -2**31)
    2147483647
    """
    if a == INT32_MIN and b == INT32_MIN:
        return INT32_MAX
    return (a * b + 1073741824) >> 31


@njit(cache=True)
def rounding_divide_by_pot(x, exponent):
    """x / 2^exponent rounded to nearest, ties away from zero (gemmlowp RoundingDivideByPOT).

    0 <= exponent <= 31. The remainder is compared with half the divisor,
    nudged by one for negative x so that ties go away from zero.

    >>> f = rounding_divide_by_pot.py_func
    >>> f(5, 1), f(-5, 1), f(-6, 2), f(-5, 2), f(-7, 2)
    (3, -3, -2, -1, -2)
    """
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


@njit(cache=True)
def saturating_left_shift(x, exponent):
    """x * 2^exponent, exponent in [0, 31), saturated to int32 (gemmlowp SaturatingRoundingMultiplyByPOT, exponent > 0).

    >>> f = saturating_left_shift.py_func
    >>> f(3, 2), f(2**29, 2), f(-(2**29), 2), f(-(2**29) - 1, 2)
    (12, 2147483647, -2147483648, -2147483648)
    """
    if exponent == 0:
        return x
    threshold = (1 << (31 - exponent)) - 1
    if x > threshold:
        return INT32_MAX
    if x < -threshold:
        return INT32_MIN
    return x << exponent


@njit(cache=True)
def rounding_half_sum(a, b):
    """(a + b) / 2 rounded to nearest, ties away from zero (gemmlowp RoundingHalfSum, NEON VRHADD).

    Computed as (sum ± 1) / 2 with C's truncating division. No overflow: the
    int32 sum is formed in int64.

    >>> f = rounding_half_sum.py_func
    >>> f(1, 2), f(-1, -2), f(2**31 - 1, 2**31 - 1), f(0, 0)
    (2, -2, 2147483647, 0)
    """
    s = a + b
    t = s + 1 if s >= 0 else s - 1
    return t >> 1 if t >= 0 else -((-t) >> 1)


@njit(cache=True)
def multiply_by_quantized_multiplier(x, quantized_multiplier, shift):
    """round(x * M * 2^(shift - 31)) the way TFLite does by default: two roundings.

    SRDHM(x * 2^max(shift, 0), M), then RoundingDivideByPOT by max(-shift, 0).
    The first step rounds ties up, the second rounds ties away from zero, so
    an exact value just below a half can round up (see the 250 example).
    Like TFLite's int32 code, x * 2^left wraps on overflow.

    >>> f = multiply_by_quantized_multiplier.py_func
    >>> f(12345, 1099511562, -8), f(-12345, 1099511562, -8)
    (25, -25)
    >>> f(250, 1099511562, -8), f(-250, 1099511562, -8), f(1250, 1099511562, -8)
    (1, -1, 3)
    >>> [f(x, 2**30, -1) for x in (1, 5, -2, -6)]
    [1, 2, -1, -2]
    """
    left_shift = shift if shift > 0 else 0
    right_shift = -shift if shift < 0 else 0
    shifted = wrap_int32(x << left_shift) if left_shift > 0 else x
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted, quantized_multiplier), right_shift)


@njit(cache=True)
def multiply_by_quantized_multiplier_single_rounding(x, quantized_multiplier, shift):
    """round(x * M * 2^(shift - 31)) with one rounding, ties toward +inf (TFLITE_SINGLE_ROUNDING builds).

    (x*M + 2^(30 - shift)) >> (31 - shift), exact in int64 for shift in [-31, 30].

    >>> f = multiply_by_quantized_multiplier_single_rounding.py_func
    >>> f(250, 1099511562, -8), f(1250, 1099511562, -8), [f(x, 2**30, -1) for x in (1, 5, -2, -6)]
    (0, 2, [0, 1, 0, -1])
    """
    total_shift = 31 - shift
    return (x * quantized_multiplier + (1 << (total_shift - 1))) >> total_shift


@njit(cache=True)
def multiply_by_quantized_multiplier_greater_than_one(x, quantized_multiplier, left_shift):
    """SRDHM(x * 2^left_shift, M): a multiplier >= 1, no final rounding shift (softmax's input scaling).

    The caller keeps |x| * 2^left_shift inside int32 (softmax's diff_min does).

    >>> multiply_by_quantized_multiplier_greater_than_one.py_func(-3, 2**30, 4)
    -24
    """
    return saturating_rounding_doubling_high_mul(wrap_int32(x << left_shift), quantized_multiplier)


@njit(cache=True)
def count_leading_zeros_u32(x):
    """Leading zero bits of x read as a uint32 (32 for 0).

    >>> f = count_leading_zeros_u32.py_func
    >>> f(0), f(1), f(2**19), f(-1)
    (32, 31, 12, 0)
    """
    u = x & 0xFFFFFFFF
    n = 32
    while u != 0:
        u >>= 1
        n -= 1
    return n


# exp(-2^k) in Q0.31 for k = -2..4: the factors of the barrel shifter in exp_on_negative_values.
_EXP_BARREL = (1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242)


@njit(cache=True)
def exp_on_interval_between_negative_one_quarter_and_0_excl(a):
    """exp(a) for a Q0.31 raw a in [-2^29, 0), i.e. a in [-1/4, 0); result Q0.31.

    A 4th-order Taylor expansion around -1/8: with x = a + 1/8,
    exp(a) = e^(-1/8) * (1 + x + x^2/2 + x^3/6 + x^4/24). Every product is an
    SRDHM and every halving a RoundingDivideByPOT, in gemmlowp's order;
    intermediates stay well inside int32.

    The worst error is at the ends of the interval, about (1/8)^5/120 * 2^31
    = 546 LSB: exp(-1/4) * 2^31 = 1672461947.1, the polynomial gives

    >>> exp_on_interval_between_negative_one_quarter_and_0_excl.py_func(-(2**29))
    1672462419
    """
    constant_term = 1895147668  # exp(-1/8) in Q0.31
    constant_1_over_3 = 715827883  # 1/3 in Q0.31
    x = a + (1 << 28)
    x2 = saturating_rounding_doubling_high_mul(x, x)
    x3 = saturating_rounding_doubling_high_mul(x2, x)
    x4 = saturating_rounding_doubling_high_mul(x2, x2)
    x4_over_4 = rounding_divide_by_pot(x4, 2)
    poly = rounding_divide_by_pot(saturating_rounding_doubling_high_mul(x4_over_4 + x3, constant_1_over_3) + x2, 1)
    return constant_term + saturating_rounding_doubling_high_mul(constant_term, x + poly)


@njit(cache=True)
def exp_on_negative_values(a, integer_bits):
    """exp(a) for a raw a <= 0 in Q(integer_bits).(31-integer_bits); result in Q0.31.

    Split a = (a mod 1/4 - 1/4) - r, r a non-negative multiple of 1/4: the
    first part goes to the Taylor step, then each set bit 2^k of r multiplies
    by exp(-2^k) (k = -2..integer_bits-1). With more than 5 integer bits,
    a < -32 gives 0. a == 0 gives exactly INT32_MAX (1 is not representable).

    >>> f = exp_on_negative_values.py_func
    >>> f(0, 5), f(-(1 << 26), 5)  # exp(-1) * 2^31 = 790015084.4, 224 LSB off
    (2147483647, 790015308)
    """
    fractional_bits = 31 - integer_bits
    one_quarter = 1 << (fractional_bits - 2)
    mask = one_quarter - 1
    a_mod_quarter_minus_one_quarter = (a & mask) - one_quarter
    # Q(integer_bits) -> Q0: a saturating left shift; the value is in [-1/4, 0) so it never saturates.
    result = exp_on_interval_between_negative_one_quarter_and_0_excl(
        saturating_left_shift(a_mod_quarter_minus_one_quarter, integer_bits)
    )
    remainder = a_mod_quarter_minus_one_quarter - a
    for i in range(7):
        exponent = i - 2
        if integer_bits > exponent:
            if remainder & (1 << (fractional_bits + exponent)):
                result = saturating_rounding_doubling_high_mul(result, _EXP_BARREL[i])
    if integer_bits > 5:
        if a < -(1 << (36 - integer_bits)):
            result = 0
    if a == 0:
        result = INT32_MAX
    return result


@njit(cache=True)
def one_over_one_plus_x_for_x_in_0_1(a):
    """1 / (1 + x) for a Q0.31 raw x in [0, 1); result Q0.31.

    Newton-Raphson on the half denominator d = (1 + x) / 2 in [1/2, 1):
    start from 48/17 - 32/17 * d, then three steps x += x * (1 - d*x),
    all in Q2.29, and finally 1/(2d) = x/2. The last step doubles Q2.29 into
    Q0.31 with saturation, so 1/(1 + 0) gives INT32_MAX.

    >>> f = one_over_one_plus_x_for_x_in_0_1.py_func
    >>> f(0), f(2**30)  # 1/1.5 * 2^31 = 1431655765.3, 3 LSB off
    (2147483647, 1431655762)
    """
    half_denominator = rounding_half_sum(a, INT32_MAX)
    constant_48_over_17 = 1515870810  # Q2.29
    constant_neg_32_over_17 = -1010580540  # Q2.29
    x = constant_48_over_17 + saturating_rounding_doubling_high_mul(half_denominator, constant_neg_32_over_17)
    one_q2 = 1 << 29
    for _ in range(3):
        half_denominator_times_x = saturating_rounding_doubling_high_mul(half_denominator, x)
        one_minus_half_denominator_times_x = one_q2 - half_denominator_times_x
        # Q2 * Q2 is Q4; back to Q2 is a saturating doubling twice.
        x = x + saturating_left_shift(saturating_rounding_doubling_high_mul(x, one_minus_half_denominator_times_x), 2)
    # x/2 reinterpreted Q2 -> Q1 (exact), then Q1 -> Q0 (saturating doubling).
    return saturating_left_shift(x, 1)


@njit(cache=True)
def get_reciprocal(x, x_integer_digits):
    """1/x for a positive raw x in Q(x_integer_digits): (Q0.31 scale, num_bits_over_unit).

    Normalise x to [1, 2) by its leading zeros, write it as 1 + t, and take
    one_over_one_plus_x(t); the true reciprocal is scale * 2^-num_bits_over_unit.

    >>> get_reciprocal.py_func(1 << 19, 12)  # 1.0 in Q12.19: 1/1, no extra bits
    (2147483647, 0)
    """
    headroom_plus_one = count_leading_zeros_u32(x)
    num_bits_over_unit = x_integer_digits - headroom_plus_one
    shifted_sum_minus_one = wrap_int32(((x << headroom_plus_one) & 0xFFFFFFFF) - 2147483648)
    return one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one), num_bits_over_unit
