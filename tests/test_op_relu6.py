"""RELU6, int8 with its own output qparams: naive == Numba, Numba == LiteRT BUILTIN_REF on every int8 value;
C and ONNX == LiteRT."""

from __future__ import annotations

import pytest
from elementwise_cases import (
    assert_exports_match, assert_unary_runtime_matches, unary_cases, unary_graph, unary_inputs,
)  # fmt: skip
from hypothesis import HealthCheck, given, settings

from edgecnn.deploy.runtime.prepare import prepare_graph
from edgecnn.errors import ModelError
from edgecnn.int8.graph import Int8Graph

KIND = "RELU6"
DRAWS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def example_graph(rng) -> Int8Graph:
    """RELU6 onto the usual [0, 6] output quantization (6/255, -128)."""
    return unary_graph(KIND, (1, 5, 5, 8), (0.04, int(rng.integers(-10, 10))), (6 / 255, -128))


@DRAWS
@given(unary_cases(KIND))
def test_runtime_matches_naive(graph):
    assert_unary_runtime_matches(graph, "naive")


@DRAWS
@given(unary_cases(KIND))
def test_runtime_matches_litert(graph):
    assert_unary_runtime_matches(graph, "litert")


def test_range_is_the_output_quantization_of_0_and_6():
    step = prepare_graph(unary_graph(KIND, (1, 8), (0.1, 0), (0.01, -50)))[0]
    assert (step.params.activation_min, step.params.activation_max) == (-50, 127)
    step = prepare_graph(unary_graph(KIND, (1, 8), (0.1, 0), (0.1, -50)))[0]
    assert (step.params.activation_min, step.params.activation_max) == (-50, 10)


def test_refuses_a_scale_whose_6_does_not_fit_an_int32():
    with pytest.raises(ModelError, match=r"op 0 \(RELU6\)"):
        prepare_graph(unary_graph(KIND, (1, 8), (0.1, 0), (1e-12, 0)))


def test_c_and_onnx_equal_litert():
    for q_in, q_out in (((0.05, -128), (6 / 255, -128)), ((0.3, 127), (0.01, 0)), ((1e-3, 0), (0.5, 127))):
        graph = unary_graph(KIND, (1, 2, 3, 5, 7), q_in, q_out)
        assert assert_exports_match(graph, unary_inputs(graph, 2)) == 420
