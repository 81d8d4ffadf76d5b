"""Fold every foldable BatchNorm of a float graph into the conv or dense layer before it.

This is the inference graph a quantizer wants: conv -> BN -> ReLU becomes one conv
with a fused ReLU, whose weights are w * scale and bias b * scale + shift (per output
channel, eval-mode statistics). The result computes what the eval-mode model does,
up to float rounding.
"""

from __future__ import annotations

import numpy as np

from edgecnn.model.layers import Conv2D, Dense, layer_from_config
from edgecnn.model.norm_layers import BatchNorm, fold_batchnorm


def foldable_into(graph, bn_node):
    """The Conv2D/Dense node `bn_node` can fold into, or None.

    It must be BN's only input, have no activation of its own, and feed nothing but the BN.
    """
    (src,) = bn_node.inputs
    if src == "input":
        return None
    prev = graph.node(src)
    if not isinstance(prev.layer, (Conv2D, Dense)) or prev.layer.activation != "none":
        return None
    return prev if len(graph.consumers(src)) == 1 else None


def fold_graph_batchnorms(graph):
    """A new graph (same class as `graph` where it stays a chain) with BNs folded; `graph` is unchanged."""
    from edgecnn.model.graph import Graph, Node
    from edgecnn.model.sequential import Sequential

    dtype = graph._dtype()
    fold_target = {}  # BN name -> the conv/dense name it folds into
    for n in graph.nodes:
        if isinstance(n.layer, BatchNorm):
            prev = foldable_into(graph, n)
            if prev is not None:
                fold_target[n.name] = prev.name
    folded_by = {v: k for k, v in fold_target.items()}

    def rename(name):
        return fold_target.get(name, name)

    nodes = []
    for n in graph.nodes:
        if n.name in fold_target:
            continue
        layer = layer_from_config(n.layer.config())
        params = {k: v.copy() for k, v in n.layer.params.items()}
        buffers = {k: v.copy() for k, v in n.layer.buffers.items()}
        if n.name in folded_by:
            bn = graph.node(folded_by[n.name]).layer
            scale, shift = bn.scale_shift()
            w, b = fold_batchnorm(params["w"], params.get("b"), scale, shift)
            params = {"w": w.astype(dtype), "b": b.astype(dtype)}
            layer.activation = bn.activation
            layer.use_bias = True
        nodes.append((layer, params, buffers, tuple(rename(s) for s in n.inputs)))
    kwargs = dict(arch=graph.arch, labels=graph.labels)
    if isinstance(graph, Sequential):
        new = Sequential([layer for layer, *_ in nodes], graph.input_shape, **kwargs)
    else:
        new = Graph([Node(layer.name, layer, ins) for layer, _, _, ins in nodes], graph.input_shape,
                    output=rename(graph.output), **kwargs)
    for layer, params, buffers, _ in nodes:
        layer.params, layer.buffers = params, buffers
    return new
