"""SUB, int8: naive == Numba on drawn shapes, broadcasts and qparams; Numba, C and ONNX == LiteRT BUILTIN_REF;
version 3 for broadcasts beyond four dimensions; refusals."""

from __future__ import annotations

import numpy as np
import pytest
from elementwise_cases import (
    assert_exports_match, assert_runtime_matches_litert, assert_runtime_matches_naive, binary_cases, binary_graph,
    random_inputs,
)  # fmt: skip
from hypothesis import HealthCheck, given, settings

from edgecnn.deploy.ops import lookup
from edgecnn.deploy.runtime.prepare import prepare_graph
from edgecnn.deploy.tflite import read_tflite, to_bytes
from edgecnn.errors import ModelError
from edgecnn.int8.graph import Int8Graph

KIND = "SUB"
SLOW_DRAWS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def example_graph(rng) -> Int8Graph:
    """A constant minus a computed tensor (the order matters for SUB), fused RELU6."""
    mean = rng.integers(-128, 128, size=(1, 1, 1, 4), dtype=np.int8)
    return binary_graph(KIND, (1, 1, 1, 4), (1, 3, 5, 4), (0.02, 5), (0.05, -3), (0.04, -128), "RELU6",
                        (mean, None))  # fmt: skip


@SLOW_DRAWS
@given(binary_cases(KIND))
def test_runtime_matches_naive(case):
    graph, seed = case
    assert_runtime_matches_naive(graph, seed)


@SLOW_DRAWS
@given(binary_cases(KIND))
def test_runtime_matches_litert(case):
    graph, seed = case
    assert_runtime_matches_litert(graph, seed)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(binary_cases(KIND))
def test_c_and_onnx_equal_litert(case):
    graph, seed = case
    assert_exports_match(graph, random_inputs(graph, np.random.default_rng(seed), 2))


def test_order_of_the_operands_matters():
    graph = binary_graph(KIND, (1, 5), (1, 5), (0.1, 0), (0.1, 0), (0.1, 0))
    x = [np.array([[10, 20, -30, 127, -128]], np.int8), np.array([[1, 2, 3, -128, 127]], np.int8)]
    from elementwise_cases import runtime_outputs

    assert runtime_outputs(graph, x)[0].tolist() == [[9, 18, -33, 127, -128]]


@pytest.mark.parametrize("shape1, shape2, version", [
    ((1, 2, 3, 4), (1, 1, 1, 4), 2), ((1, 2, 3, 4, 2), (1, 2, 3, 4, 2), 2), ((1, 2, 3, 1, 2), (1, 1, 3, 4, 1), 3),
    ((1, 2, 1, 2, 1, 3), (1, 1, 3, 1, 2, 1), 3),
])  # fmt: skip
def test_version_3_for_broadcasts_beyond_four_dimensions(shape1, shape2, version):
    graph = binary_graph(KIND, shape1, shape2, (0.05, -128), (0.07, 127), (0.1, 0), "RELU")
    assert lookup(KIND).version(graph, graph.ops[0]) == version
    assert_runtime_matches_litert(graph, 3, batch=2)


def test_options_round_trip():
    graph = example_graph(np.random.default_rng(0))
    assert read_tflite(to_bytes(graph)).ops[0].options == {"fused_activation_function": "RELU6",
                                                           "pot_scale_int16": True}  # fmt: skip


def test_refuses_an_output_scale_too_fine_for_the_inputs():
    with pytest.raises(ModelError, match=r"op 0 \(SUB\).*must be below 1"):
        prepare_graph(binary_graph(KIND, (1, 4), (1, 4), (0.5, 0), (1.0, 0), (1.5e-6, 0)))
