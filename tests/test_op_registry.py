"""The op registry is complete: every registered op has every part, and round-trips through writer and reader.

An op that runs needs its options codec, version and minimum runtime, its
prepare step, a Numba kernel, a naive reference, a C lowering and an ONNX
lowering. Its example graph (from `tests/test_op_<name>.py`, or built here
for the first nine ops) must come back from `.tflite` field for field.
Fold-only shape ops need a decode and a fold rule.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from tflite_models import GraphBuilder

from edgecnn.deploy.ops import REGISTRY
from edgecnn.deploy.tflite import read_tflite, to_bytes

RUNNABLE = sorted(name for name, opdef in REGISTRY.items() if opdef.prepare is not None)
FOLD_ONLY = sorted(name for name, opdef in REGISTRY.items() if opdef.prepare is None)

_BUILT_HERE = {
    "CONV_2D": lambda b: b.conv2d(3, 3, 3, padding="SAME", act="RELU"),
    "DEPTHWISE_CONV_2D": lambda b: b.depthwise(2, 3, 3, stride=(2, 2), padding="SAME"),
    "MAX_POOL_2D": lambda b: b.pool("MAX_POOL_2D"),
    "AVERAGE_POOL_2D": lambda b: b.pool("AVERAGE_POOL_2D", padding="SAME", size=(3, 3)),
    "RESHAPE": lambda b: b.flatten(),
    "FULLY_CONNECTED": lambda b: b.flatten().fully_connected(5, act="RELU6"),
    "SOFTMAX": lambda b: b.flatten().softmax(beta=0.5),
    "LOGISTIC": lambda b: b.logistic(),
    "TANH": lambda b: b.tanh(),
}


def example_graph(name: str, rng):
    if name in _BUILT_HERE:
        return _BUILT_HERE[name](GraphBuilder(rng, (1, 6, 6, 2))).build()
    try:
        module = importlib.import_module(f"test_op_{name.lower()}")
    except ModuleNotFoundError:
        pytest.fail(f"{name} has no tests/test_op_{name.lower()}.py with an example_graph(rng)")
    return module.example_graph(rng)


@pytest.mark.parametrize("name", RUNNABLE)
def test_every_runnable_op_has_every_part(name):
    opdef = REGISTRY[name]
    missing = [part for part in ("prepare", "kernel", "naive", "c", "onnx") if getattr(opdef, part) is None]
    if opdef.options_table is not None:
        missing += [part for part in ("decode", "encode") if getattr(opdef, part) is None]
    assert not missing, f"{name} lacks {missing}"
    assert opdef.min_runtime, f"{name} names no minimum runtime"
    assert callable(opdef.numba_kernel())


@pytest.mark.parametrize("name", FOLD_ONLY)
def test_fold_only_ops_can_fold(name):
    opdef = REGISTRY[name]
    assert name == "SHAPE" or opdef.fold is not None  # the reader evaluates SHAPE itself
    assert opdef.options_table is None or opdef.decode is not None


@pytest.mark.parametrize("name", RUNNABLE)
def test_example_round_trips_through_the_writer_and_reader(name):
    graph = example_graph(name, np.random.default_rng(0))
    assert name in {op.kind for op in graph.ops}, f"the example for {name} does not use it"
    back = read_tflite(to_bytes(graph))
    assert [op.kind for op in back.ops] == [op.kind for op in graph.ops]
    for a, b in zip(graph.ops, back.ops):
        assert a.inputs == b.inputs and a.outputs == b.outputs, a.kind
        assert {k: v for k, v in a.options.items()} == {k: b.options[k] for k in a.options}, a.kind
        assert REGISTRY[a.kind].version(graph, a) in REGISTRY[a.kind].min_runtime, a.kind
    assert (back.inputs, back.outputs) == (graph.inputs, graph.outputs)
    for a, b in zip(graph.tensors, back.tensors):
        assert (a.name, a.shape, a.dtype) == (b.name, b.shape, b.dtype)
        assert np.array_equal(a.scale, b.scale) and np.array_equal(a.zero_point, b.zero_point)
        assert (a.data is None) == (b.data is None) and (a.data is None or np.array_equal(a.data, b.data))


def test_unknown_ops_are_refused_by_name():
    from edgecnn.deploy.ops import lookup
    from edgecnn.errors import UnsupportedOpError

    with pytest.raises(UnsupportedOpError, match="unsupported operator GELU"):
        lookup("GELU")
