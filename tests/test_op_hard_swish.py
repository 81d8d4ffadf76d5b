"""HARD_SWISH, int8: its int16 fixed-point helpers against their definitions; naive == Numba; Numba == LiteRT
BUILTIN_REF on every int8 value, including the multiplier exponents' corners; C and ONNX == LiteRT."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from elementwise_cases import (
    assert_exports_match, assert_unary_runtime_matches, unary_cases, unary_graph, unary_inputs,
)  # fmt: skip
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgecnn.deploy.ops import hard_swish as hard_swish_op
from edgecnn.deploy.runtime import activation_ops, naive_elementwise
from edgecnn.deploy.runtime.prepare import prepare_graph
from edgecnn.errors import ModelError
from edgecnn.int8.graph import Int8Graph

KIND = "HARD_SWISH"
DRAWS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
int16s = st.one_of(st.sampled_from([-32768, -32767, -1, 0, 1, 32767, 16384, -16384]), st.integers(-32768, 32767))


def example_graph(rng) -> Int8Graph:
    """MobileNetV3's activation: input around [-6, 6], output at its own finer scale."""
    return unary_graph(KIND, (1, 4, 4, 8), (0.05, int(rng.integers(-10, 10))), (0.03, -108))


def test_doctests():
    assert doctest.testmod(activation_ops).failed == 0
    assert doctest.testmod(hard_swish_op).failed == 0


@settings(max_examples=500, deadline=None)
@given(int16s, int16s)
def test_int16_products_match_their_definitions(a, b):
    assert activation_ops.saturating_rounding_doubling_high_mul_int16.py_func(a, b) == naive_elementwise.srdhm16(a, b)
    assert activation_ops.saturating_doubling_high_mul_int16.py_func(a, b) == naive_elementwise.sdhm16(a, b)


@settings(max_examples=500, deadline=None)
@given(int16s, st.integers(0, 31))
def test_int16_shifts_match_their_definitions(x, exponent):
    assert (activation_ops.rounding_divide_by_pot_int16.py_func(x, exponent)
            == naive_elementwise.rounding_divide_by_pot16(x, exponent))  # fmt: skip
    if exponent < 31:
        assert (activation_ops.saturating_left_shift_int16.py_func(x, exponent)
                == naive_elementwise.saturating_left_shift16(x, exponent))  # fmt: skip


@DRAWS
@given(unary_cases(KIND))
def test_runtime_matches_naive(graph):
    assert_unary_runtime_matches(graph, "naive")


@DRAWS
@given(unary_cases(KIND))
def test_runtime_matches_litert(graph):
    assert_unary_runtime_matches(graph, "litert")


# (input qparams, output qparams): ordinary, a left-shifting reluish multiplier, a right shift by 16 or more
# (the int16 mask quirk), an output multiplier in [1/2, 1) whose zero point overflows int16, extreme zero points.
CORNERS = [
    ((0.05, 3), (0.02, -100)),
    ((3.0, 0), (0.5, 127)),
    ((1e-4, -128), (1e-4, 127)),
    ((1e-8, 0), (1e-5, 0)),
    ((0.1, 0), (0.1 / 120, 127)),
    ((0.02, 127), (0.01, -128)),
]


@pytest.mark.parametrize("q_in, q_out", CORNERS)
def test_corners_match_litert(q_in, q_out):
    graph = unary_graph(KIND, (1, 256), q_in, q_out)
    assert_unary_runtime_matches(graph, "litert", batch=1)
    assert_unary_runtime_matches(graph, "naive", batch=1)


def test_corners_reach_the_exponents_they_are_for():
    exponents = [(p.reluish_exponent, p.output_exponent) for p in
                 (prepare_graph(unary_graph(KIND, (1, 4), q_in, q_out))[0].params for q_in, q_out in CORNERS)]
    assert exponents[1][0] > 0 and exponents[3][0] <= -16 and exponents[4][1] == 0


def test_refuses_an_output_scale_finer_than_the_input_scale_over_128():
    with pytest.raises(ModelError, match=r"op 0 \(HARD_SWISH\).*below 1"):
        prepare_graph(unary_graph(KIND, (1, 4), (0.1, 0), (0.1 / 256, 0)))


@pytest.mark.parametrize("q_in, q_out", CORNERS)
def test_c_and_onnx_equal_litert(q_in, q_out):
    graph = unary_graph(KIND, (1, 2, 8, 16), q_in, q_out)
    assert assert_exports_match(graph, unary_inputs(graph, 1)) == 256
