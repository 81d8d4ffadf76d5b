"""ADD, int8: naive == Numba on drawn shapes, broadcasts and qparams; Numba, C and ONNX == LiteRT BUILTIN_REF;
refusals."""

from __future__ import annotations

import numpy as np
import pytest
from elementwise_cases import (
    assert_exports_match, assert_runtime_matches_litert, assert_runtime_matches_naive, binary_cases, binary_graph,
    int8_tensor, random_inputs,
)  # fmt: skip
from hypothesis import HealthCheck, given, settings

from edgecnn.deploy.ops import lookup
from edgecnn.deploy.runtime.prepare import prepare_graph
from edgecnn.deploy.tflite import read_tflite, to_bytes
from edgecnn.errors import ModelError, ShapeError, UnsupportedOpError
from edgecnn.int8.graph import Int8Graph, Op

KIND = "ADD"
SLOW_DRAWS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def example_graph(rng) -> Int8Graph:
    """A residual-style ADD: a computed [1, 4, 5, 3] tensor plus a per-channel constant, fused RELU."""
    bias = rng.integers(-128, 128, size=(1, 1, 1, 3), dtype=np.int8)
    return binary_graph(KIND, (1, 4, 5, 3), (1, 1, 1, 3), (0.05, 3), (0.02, -128), (0.06, 127), "RELU",
                        (None, bias))  # fmt: skip


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


@pytest.mark.parametrize("shape1, shape2", [
    ((1, 7, 9, 5), (1, 7, 9, 5)), ((1, 7, 9, 5), (1, 1, 1, 5)), ((1, 1, 1, 5), (1, 7, 9, 5)),
    ((1, 7, 9, 5), (1, 7, 1, 1)), ((1, 3, 1, 2, 1, 4), (1, 1, 5, 1, 3, 1)), ((1, 6), (1, 1)),
])  # fmt: skip
def test_residual_and_squeeze_excite_shapes_match_litert(shape1, shape2):
    """Two computed inputs, as a ResNet block and a squeeze-and-excite gate have them, with extreme zero points."""
    graph = binary_graph(KIND, shape1, shape2, (0.0123, -128), (0.3, 127), (0.25, -1), "RELU6")
    assert_runtime_matches_litert(graph, 7, batch=3)


def test_scalar_constant_matches_litert():
    """The converter writes `x + c` with a rank-0 constant."""
    graph = binary_graph(KIND, (1, 5, 3), (), (0.1, 0), (0.5, 7), (0.1, -3), "NONE",
                         (None, np.array(100, dtype=np.int8)))  # fmt: skip
    assert_runtime_matches_litert(graph, 1, batch=4)


def test_options_round_trip():
    graph = example_graph(np.random.default_rng(0))
    back = read_tflite(to_bytes(graph))
    assert back.ops[0].options == {"fused_activation_function": "RELU", "pot_scale_int16": True}
    assert lookup(KIND).version(graph, graph.ops[0]) == 2


def _refusal(graph, error, match):
    with pytest.raises(error, match=match):
        prepare_graph(graph)


def test_refuses_an_output_scale_too_fine_for_the_inputs():
    # 2 * 1.0 / (2^20 * 1e-6) > 1: LiteRT aborts in QuantizeMultiplierSmallerThanOneExp.
    graph = binary_graph(KIND, (1, 4), (1, 4), (1.0, 0), (0.5, 0), (1e-6, 0))
    _refusal(graph, ModelError, r"op 0 \(ADD\).*must be below 1")


def test_refuses_shapes_that_do_not_broadcast():
    graph = binary_graph(KIND, (1, 4), (1, 4), (1.0, 0), (0.5, 0), (0.5, 0))
    graph.tensors[1].shape = (1, 3)
    _refusal(graph, ShapeError, r"op 0 \(ADD\).*do not broadcast")


def test_refuses_two_constants_and_a_batched_constant():
    data = np.zeros((1, 4), dtype=np.int8)
    both = binary_graph(KIND, (1, 4), (1, 4), (1.0, 0), (0.5, 0), (0.5, 0), constants=(None, data))
    both.tensors[0].data = data  # now both inputs are constants; give the graph another input
    both.tensors.append(int8_tensor("z", (1, 4), 1.0, 0))
    both.inputs = [3]
    _refusal(both, UnsupportedOpError, r"op 0 \(ADD\).*both inputs are constants")
    batched = binary_graph(KIND, (1, 4), (2, 4), (1.0, 0), (0.5, 0), (0.5, 0),
                           constants=(None, np.zeros((2, 4), dtype=np.int8)))  # fmt: skip
    batched.tensors[2].shape = (2, 4)
    batched.outputs = [2]
    with pytest.raises((UnsupportedOpError, ShapeError)):
        prepare_graph(batched)


def test_refuses_more_than_six_dimensions():
    shape = (1, 2, 1, 2, 1, 2, 1)
    tensors = [int8_tensor(name, shape, 0.1, 0) for name in ("a", "b", "y")]
    graph = Int8Graph(tensors, [Op(KIND, [0, 1], [2], {"fused_activation_function": "NONE"})], [0, 1], [2])
    _refusal(graph, ShapeError, r"op 0 \(ADD\).*1 to 6 dimensions")


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(binary_cases(KIND))
def test_c_and_onnx_equal_litert(case):
    graph, seed = case
    assert_exports_match(graph, random_inputs(graph, np.random.default_rng(seed), 2))


def test_refuses_int16_and_a_computed_input_of_lower_rank():
    graph = binary_graph(KIND, (1, 4), (1, 4), (1.0, 0), (0.5, 0), (0.5, 0), constants=(None, np.ones((1, 4), np.int8)))
    graph.tensors[1].dtype, graph.tensors[1].data = "int16", np.ones((1, 4), np.int16)
    _refusal(graph, UnsupportedOpError, r"op 0 \(ADD\).*int16, not int8")
    # (1, 4) against (1, 3, 4): at run time it holds (N, 4), which no longer lines up with (N, 3, 4).
    lower = binary_graph(KIND, (1, 3, 4), (1, 4), (1.0, 0), (0.5, 0), (0.5, 0))
    _refusal(lower, UnsupportedOpError, r"op 0 \(ADD\).*must have the output's rank")
