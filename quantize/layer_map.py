"""Which int8 tensor of a .tflite stands for which float layer, for a graph read back from a file.

`build_graph` records this map while it quantizes (`QuantizedModel.layer_tensors`);
a .tflite loaded later has only its tensor names. edgecnn names each layer's
output tensor after the float node it represents, so the map is rebuilt from the
float model's plan and those names. This lets `layer_sqnr` (the quantize
report) measure a float checkpoint against an int8 file made from it.
"""

from __future__ import annotations

from types import SimpleNamespace

from edgecnn.quantize.fold import scaled_tanh_factors
from edgecnn.quantize.ptq import PARAMETRIC, SAME_QPARAMS, _inference_graph, _plan


def layer_tensors(model, graph) -> list[tuple[str, int, float]]:
    """[(float node name, int8 tensor index, factor)] with float output ~= factor * dequant(tensor).

    Layers whose tensor is missing from `graph` (or has another element count)
    are left out: a converter-made file or another model's file gives [].
    """
    model = _inference_graph(model)
    produced = {}
    for op in graph.ops:
        for t in op.outputs:
            produced.setdefault(graph.tensors[t].name, t)
    factor = {}
    found = []
    for step in _plan(model):
        layer = step.layer
        if isinstance(layer, PARAMETRIC):
            factor[step.name] = scaled_tanh_factors(step.act, "none")[0]
        elif isinstance(layer, SAME_QPARAMS):
            factor[step.name] = factor.get(step.inputs[0], 1.0)
        else:
            factor[step.name] = 1.0
        t = produced.get(step.name)
        if t is None:
            continue
        tensor = graph.tensors[t]
        if tensor.dtype != "int8" or _elements(tensor.shape) != _elements((1, *layer.output_shape)):
            continue
        found.append((step.name, t, factor[step.name]))
    return found


def _elements(shape) -> int:
    n = 1
    for d in shape[1:]:
        n *= int(d)
    return n


def quantized_view(model, graph):
    """An object `layer_sqnr` accepts in place of the QuantizedModel that made `graph`."""
    return SimpleNamespace(graph=graph, float_model=_inference_graph(model), layer_tensors=layer_tensors(model, graph))
