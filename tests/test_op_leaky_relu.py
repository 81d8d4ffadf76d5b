"""LEAKY_RELU, int8: naive == Numba, Numba == LiteRT BUILTIN_REF for alphas of either sign and any size; C, ONNX."""

from __future__ import annotations

import numpy as np
import pytest
from elementwise_cases import (
    assert_exports_match, assert_unary_runtime_matches, unary_cases, unary_graph, unary_inputs,
)  # fmt: skip
from hypothesis import HealthCheck, given, settings

from edgecnn.deploy.ops import lookup
from edgecnn.deploy.runtime.prepare import prepare_graph
from edgecnn.deploy.tflite import read_tflite, to_bytes
from edgecnn.int8.graph import Int8Graph

KIND = "LEAKY_RELU"
DRAWS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def example_graph(rng) -> Int8Graph:
    """Keras' default LeakyReLU slope (0.3, as its float32) with asymmetric qparams on both sides."""
    return unary_graph(KIND, (1, 6, 6, 4), (0.05, int(rng.integers(-30, 30))), (0.04, 40),
                       {"alpha": float(np.float32(0.3))})  # fmt: skip


@DRAWS
@given(unary_cases(KIND))
def test_runtime_matches_naive(graph):
    assert_unary_runtime_matches(graph, "naive")


@DRAWS
@given(unary_cases(KIND))
def test_runtime_matches_litert(graph):
    assert_unary_runtime_matches(graph, "litert")


@pytest.mark.parametrize("alpha", [0.2, -0.3, 0.0, 1.0, 2.5, -1.75])
def test_alphas_match_litert_on_every_input(alpha):
    graph = unary_graph(KIND, (1, 256), (0.0625, 17), (0.03125, -3), {"alpha": alpha})
    assert_unary_runtime_matches(graph, "litert", batch=1)


def test_negative_alpha_rounds_its_magnitude_then_negates():
    """LiteRT rescales by |alpha| and negates afterwards, which differs from a negative multiplier at ties."""
    graph = unary_graph(KIND, (1, 8), (0.5, 0), (0.5, 0), {"alpha": -0.5})
    params = prepare_graph(graph)[0].params
    assert params.alpha_negative == 1 and params.alpha_multiplier > 0
    assert_unary_runtime_matches(graph, "litert", batch=32)  # every input: -1 * -0.5 = 0.5 is a tie


def test_options_round_trip_and_version():
    graph = example_graph(np.random.default_rng(0))
    assert read_tflite(to_bytes(graph)).ops[0].options == {"alpha": float(np.float32(0.3))}
    assert lookup(KIND).version(graph, graph.ops[0]) == 1


def test_c_and_onnx_equal_litert():
    for alpha in (0.1, -0.3, 1.5):
        graph = unary_graph(KIND, (1, 4, 9, 7), (0.05, 127), (0.02, -128), {"alpha": alpha})
        assert assert_exports_match(graph, unary_inputs(graph, 2)) == 504
