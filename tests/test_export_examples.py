"""Every op's example graph (`example_graph(rng)` in tests/test_op_<op>.py), exported to C and ONNX,
gives LiteRT BUILTIN_REF's output element for element."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest

from test_export_graphs import assert_exports_match_litert, random_inputs

MODULES = sorted(p.stem for p in Path(__file__).parent.glob("test_op_*.py"))


def example_graphs():
    for name in MODULES:
        module = importlib.import_module(name)
        if name != "test_op_registry" and hasattr(module, "example_graph"):
            yield pytest.param(module.example_graph, id=name[len("test_op_"):])


@pytest.mark.parametrize("example_graph", list(example_graphs()))
def test_example_graph_exports_match_litert(example_graph):
    graph = example_graph(np.random.default_rng(0))
    assert assert_exports_match_litert(graph, random_inputs(graph, 8, seed=1)) > 0
