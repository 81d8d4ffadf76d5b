"""The float model: layers with shape inference, named architectures, checkpoints."""

from edgecnn.model.archs import ARCHS, build
from edgecnn.model.sequential import Sequential

__all__ = ["ARCHS", "Sequential", "build"]
