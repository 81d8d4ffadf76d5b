"""A sequential float model: the chain special case of Graph, layers applied in order."""

from __future__ import annotations

from edgecnn.errors import ModelError
from edgecnn.model.graph import INPUT, Graph, Node
from edgecnn.model.layers import Layer, layer_from_config


class Sequential(Graph):
    """Layers applied in order to an NHWC batch; `forward` returns logits.

    Unnamed layers are called KIND + index. The spec keeps the chain form
    ({"layers": [...]}) that format-1 checkpoints hold.
    """

    def __init__(self, layers: list[Layer], input_shape, arch: str = "custom", labels=None):
        layers = list(layers)
        nodes, prev = [], INPUT
        for i, layer in enumerate(layers):
            if layer.arity != 1:
                raise ModelError(f"{layer.name or layer.kind}: a {layer.kind} layer joins branches; build a Graph")
            if layer.name is None:
                layer.name = f"{layer.kind}{i}"
            nodes.append(Node(layer.name, layer, (prev,)))
            prev = layer.name
        super().__init__(nodes, input_shape, arch=arch, labels=labels)

    def spec(self) -> dict:
        return {
            "arch": self.arch,
            "input_shape": list(self.input_shape),
            "labels": self.labels,
            "layers": [layer.config() for layer in self.layers],
        }

    @classmethod
    def from_spec(cls, spec: dict) -> "Sequential":
        if not isinstance(spec.get("layers"), list):
            raise ModelError("a sequential spec needs a 'layers' list")
        return cls([layer_from_config(c) for c in spec["layers"]], spec["input_shape"],
                   arch=spec.get("arch", "custom"), labels=spec.get("labels"))
