"""Every runnable op's example graph (the registry-completeness test's: `example_graph(rng)` from
tests/test_op_<op>.py, or built in tests/test_op_registry.py for the first nine), exported to C and
ONNX, gives LiteRT BUILTIN_REF's output element for element."""

from __future__ import annotations

import numpy as np
import pytest

from test_export_graphs import assert_exports_match_litert, random_inputs
from test_op_registry import RUNNABLE, example_graph


@pytest.mark.parametrize("name", RUNNABLE)
def test_example_graph_exports_match_litert(name):
    graph = example_graph(name, np.random.default_rng(0))
    assert name in {op.kind for op in graph.ops}
    assert assert_exports_match_litert(graph, random_inputs(graph, 8, seed=1)) > 0
