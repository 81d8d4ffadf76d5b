"""Per-layer shapes, parameters and connections, as `edgecnn summary` prints them."""

from __future__ import annotations

from edgecnn.model.sequential import Sequential


def summarize(model: Sequential) -> dict:
    layers = [
        {
            "name": layer.name,
            "kind": layer.kind,
            "activation": layer.activation,
            "output_shape": list(layer.output_shape),
            "params": layer.param_count(),
            "connections": layer.connections(),
        }
        for layer in model.layers
    ]
    return {"arch": model.arch, "input_shape": list(model.input_shape),
            "total_params": model.total_params, "layers": layers}


def format_summary(s: dict) -> str:
    rows = [("layer", "kind", "output", "params", "connections")]
    for layer in s["layers"]:
        kind = layer["kind"] + (f"+{layer['activation']}" if layer["activation"] not in ("none", "") else "")
        rows.append((layer["name"], kind, "x".join(map(str, layer["output_shape"])),
                     f"{layer['params']:,}", f"{layer['connections']:,}"))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = [f"{s['arch']}: input {'x'.join(map(str, s['input_shape']))}"]
    for j, r in enumerate(rows):
        lines.append("  ".join(c.ljust(widths[i]) if i < 3 else c.rjust(widths[i]) for i, c in enumerate(r)))
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines.append(f"total parameters: {s['total_params']:,}")
    return "\n".join(lines)


def summarize_graph(graph, arch: str | None = None) -> dict:
    """The same summary for an int8 graph (.tflite): one row per op, constants counted as parameters.

    Zero weights count (an int8 file cannot tell a pruned C3 connection from a
    weight that quantized to 0), so lenet5-classic's C3 shows the full 16x6 table.
    """
    layers = []
    total = 0
    for op in graph.ops:
        out = graph.tensors[op.outputs[0]]
        consts = [graph.tensors[i] for i in op.inputs[1:] if i >= 0 and graph.tensors[i].is_constant]
        params = int(sum(t.data.size for t in consts)) if op.kind != "RESHAPE" else 0
        n_out = int(np_prod(out.shape[1:]))
        if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            w = graph.tensors[op.inputs[1]]
            channels = w.shape[3] if op.kind == "DEPTHWISE_CONV_2D" else w.shape[0]
            per_out = int(np_prod(w.shape)) // channels + (1 if len(consts) > 1 else 0)
            connections = per_out * n_out
        elif op.kind in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
            connections = op.options["filter_height"] * op.options["filter_width"] * n_out
        else:
            connections = 0
        total += params
        layers.append({"name": out.name, "kind": op.kind.lower(),
                       "activation": op.options.get("fused_activation_function", "NONE").lower(),
                       "output_shape": list(out.shape[1:]), "params": params, "connections": connections})
    return {"arch": arch or graph.metadata.get("arch", "int8"), "input_shape": list(graph.input.shape[1:]),
            "total_params": total, "layers": layers}


def np_prod(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n
