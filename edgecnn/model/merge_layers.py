"""Layers that join branches of the graph: Add (residual shortcuts) and Concatenate (channels)."""

from __future__ import annotations

from edgecnn.errors import ShapeError
from edgecnn.model.layers import Layer


class Add(Layer):
    """Elementwise sum of two or more inputs of one shape (TFLite's ADD, with its fused activation)."""

    kind = "add"
    arity = None
    fused_activations = ("relu",)  # Add-ReLU in one pass (reference/merge.py)

    def _infer(self, shapes):
        if len(shapes) < 2 or any(s != shapes[0] for s in shapes):
            raise ShapeError(f"{self.name}: add needs two or more inputs of one shape, got {shapes}")
        return shapes[0]

    def _forward(self, xs):
        from edgecnn.reference.merge import add_forward

        return add_forward(xs, relu=self.activation in self.fused_activations)

    def _backward(self, dy):
        from edgecnn.reference.merge import add_backward

        return add_backward(dy, self._cache)


class Concatenate(Layer):
    """Inputs side by side along the channel (last) axis (TFLite's CONCATENATION)."""

    kind = "concatenate"
    arity = None

    def _infer(self, shapes):
        if len(shapes) < 2 or any(len(s) != len(shapes[0]) or s[:-1] != shapes[0][:-1] for s in shapes):
            raise ShapeError(f"{self.name}: concatenate needs two or more inputs that differ only in "
                             f"channels, got {shapes}")
        return (*shapes[0][:-1], sum(s[-1] for s in shapes))

    def _forward(self, xs):
        from edgecnn.reference.merge import concatenate_forward

        return concatenate_forward(xs, axis=-1)

    def _backward(self, dy):
        from edgecnn.reference.merge import concatenate_backward

        return concatenate_backward(dy, self._cache)
