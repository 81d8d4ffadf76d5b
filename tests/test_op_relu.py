"""RELU, int8 with its own output qparams: naive == Numba, Numba == LiteRT BUILTIN_REF on every int8 value;
C and ONNX == LiteRT."""

from __future__ import annotations

import numpy as np
from elementwise_cases import (
    assert_exports_match, assert_unary_runtime_matches, runtime_outputs, unary_cases, unary_graph, unary_inputs,
)  # fmt: skip
from hypothesis import HealthCheck, given, settings

from edgecnn.deploy.ops import lookup
from edgecnn.deploy.runtime.prepare import prepare_graph
from edgecnn.int8.graph import Int8Graph

KIND = "RELU"
DRAWS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def example_graph(rng) -> Int8Graph:
    """RELU requantizing to a finer output scale whose zero point is the int8 minimum."""
    return unary_graph(KIND, (1, 4, 4, 16), (0.05, int(rng.integers(-20, 20))), (0.025, -128))


@DRAWS
@given(unary_cases(KIND))
def test_runtime_matches_naive(graph):
    assert_unary_runtime_matches(graph, "naive")


@DRAWS
@given(unary_cases(KIND))
def test_runtime_matches_litert(graph):
    assert_unary_runtime_matches(graph, "litert")


def test_clamps_at_the_output_zero_point_and_requantizes():
    graph = unary_graph(KIND, (1, 256), (0.1, 10), (0.05, -100))
    step = prepare_graph(graph)[0]
    assert (step.params.activation_min, step.params.activation_max) == (-100, 127)
    (x,) = unary_inputs(graph, 1)
    (y,) = runtime_outputs(graph, [x])
    assert np.all(y[x <= 10] == -100)  # everything at or below the input zero point is real 0
    assert y[0, 10 + 128 + 1] == -98  # one input step of 0.1 is two output steps of 0.05
    assert lookup(KIND).version(graph, graph.ops[0]) == 2


def test_c_and_onnx_equal_litert():
    for q_in, q_out in (((0.05, 3), (0.03, -20)), ((0.3, -128), (0.002, 127)), ((1e-4, 127), (2.0, -128))):
        graph = unary_graph(KIND, (1, 3, 5, 7), q_in, q_out)
        assert assert_exports_match(graph, unary_inputs(graph, 2)) == 210
