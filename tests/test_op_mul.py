"""MUL, int8: naive == Numba on drawn shapes, broadcasts and qparams (multipliers above and below 1); Numba, C and
ONNX == LiteRT BUILTIN_REF; version 3 when the rescale is >= 1."""

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
from edgecnn.int8.graph import Int8Graph

KIND = "MUL"
SLOW_DRAWS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def example_graph(rng) -> Int8Graph:
    """A squeeze-and-excite gate: a [1, 4, 4, 6] tensor times a computed [1, 1, 1, 6] one."""
    return binary_graph(KIND, (1, 4, 4, 6), (1, 1, 1, 6), (0.05, int(rng.integers(-5, 5))), (1 / 256, -128),
                        (0.04, 2))  # fmt: skip


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


@pytest.mark.parametrize("q_out, version", [((0.02, 0), 2), ((1e-3, -5), 3), ((1e-5, 127), 3), ((1e-7, 0), 3)])
def test_rescales_of_one_and_more_are_version_3_and_match_litert(q_out, version):
    """0.5 * 0.02 / 1e-3 = 10: MultiplyByQuantizedMultiplier shifts left; at 1e-7 (2^17) the shift wraps int32."""
    graph = binary_graph(KIND, (1, 3, 7), (1, 3, 7), (0.5, -128), (0.02, 127), q_out, "RELU")
    assert lookup(KIND).version(graph, graph.ops[0]) == version
    shift = prepare_graph(graph)[0].params.output_shift
    assert shift == 0 if version == 2 else shift > 0
    assert_runtime_matches_litert(graph, 5, batch=4)
    assert_exports_match(graph, random_inputs(graph, np.random.default_rng(5), 4))


def test_multiplier_is_computed_in_float32():
    """s1 * s2 / s_out in float32, as mul.cc computes it (a float64 product would round differently here)."""
    s1, s2, so = np.float32(0.1), np.float32(0.3), np.float32(0.7)
    graph = binary_graph(KIND, (1, 2), (1, 2), (float(s1), 0), (float(s2), 0), (float(so), 0))
    params = prepare_graph(graph)[0].params
    from edgecnn.int8.rules import quantize_multiplier

    assert (params.output_multiplier, params.output_shift) == quantize_multiplier(float(s1 * s2 / so))


def test_options_round_trip():
    graph = example_graph(np.random.default_rng(0))
    assert read_tflite(to_bytes(graph)).ops[0].options == {"fused_activation_function": "NONE"}
