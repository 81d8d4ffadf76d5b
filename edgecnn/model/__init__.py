"""The float model: layers with shape inference, graphs of them, named architectures, checkpoints."""

from edgecnn.model.archs import ARCHS, build
from edgecnn.model.graph import INPUT, Graph, GraphBuilder, Node
from edgecnn.model.sequential import Sequential

__all__ = ["ARCHS", "INPUT", "Graph", "GraphBuilder", "Node", "Sequential", "build"]
