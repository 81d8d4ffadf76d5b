"""Per-layer shapes, parameters, connections and MACs, as `edgecnn summary` prints them.

Rows follow the graph's topological order; `inputs` names the nodes each layer
reads ("input" is the model input), so a branching model reads as one.
"""

from __future__ import annotations

from edgecnn.model.graph import Graph


def summarize(model: Graph) -> dict:
    layers = [
        {
            "name": node.layer.name,
            "kind": node.layer.kind,
            "activation": node.layer.activation,
            "output_shape": list(node.layer.output_shape),
            "params": node.layer.param_count(),
            "connections": node.layer.connections(),
            "macs": node.layer.macs(),
            "inputs": list(node.inputs),
        }
        for node in model.nodes
    ]
    return {"arch": model.arch, "input_shape": list(model.input_shape),
            "total_params": model.total_params, "total_macs": model.total_macs, "layers": layers}


def format_summary(s: dict) -> str:
    branching = any(layer.get("inputs") not in (None, [prev]) for layer, prev in
                    zip(s["layers"], ["input"] + [layer["name"] for layer in s["layers"]]))
    head = ("layer", "kind", "output", "params", "connections", "MACs") + (("inputs",) if branching else ())
    rows = [head]
    for layer in s["layers"]:
        kind = layer["kind"] + (f"+{layer['activation']}" if layer["activation"] not in ("none", "") else "")
        row = (layer["name"], kind, "x".join(map(str, layer["output_shape"])),
               f"{layer['params']:,}", f"{layer['connections']:,}", f"{layer.get('macs', 0):,}")
        rows.append(row + ((", ".join(layer.get("inputs", [])),) if branching else ()))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = [f"{s['arch']}: input {'x'.join(map(str, s['input_shape']))}"]
    for role in ("input", "output"):  # int8 graphs: every input and output with its dtype and qparams
        lines += [_io_line(role, io) for io in s.get(role + "s", [])]
    for j, r in enumerate(rows):
        lines.append("  ".join(c.ljust(widths[i]) if i < 3 or i == 6 else c.rjust(widths[i])
                               for i, c in enumerate(r)).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines.append(f"total parameters: {s['total_params']:,}")
    if "total_macs" in s:
        lines.append(f"total MACs: {s['total_macs']:,}")
    return "\n".join(lines)


def summarize_graph(graph, arch: str | None = None) -> dict:
    """The same summary for an int8 graph (.tflite): one row per op, constants counted as parameters.

    Every op is a row, named after its first output; `inputs` names the rows
    (or graph inputs) each op reads, so branches read as in a float model.
    `inputs` / `outputs` at the top list the graph's inputs and outputs with
    dtype, shape and qparams (None for float32); `input_shape` is the first input's.

    Zero weights count (an int8 file cannot tell a pruned C3 connection from a
    weight that quantized to 0), so lenet5-classic's C3 shows the full 16x6 table.
    """
    layers = []
    total = total_macs = 0
    one_input = len(graph.inputs) == 1
    source = {t: ("input" if one_input else graph.tensors[t].name) for t in graph.inputs}
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
            macs = (int(np_prod(w.shape)) // channels) * n_out
        elif op.kind in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
            connections, macs = op.options["filter_height"] * op.options["filter_width"] * n_out, 0
        else:
            connections = macs = 0
        total += params
        total_macs += macs
        reads = [source[t] for t in op.inputs if t >= 0 and t in source]
        layers.append({"name": out.name, "kind": op.kind.lower(),
                       "activation": op.options.get("fused_activation_function", "NONE").lower(),
                       "output_shape": list(out.shape[1:]), "params": params, "connections": connections,
                       "macs": macs, "inputs": list(dict.fromkeys(reads))})
        for t in op.outputs:
            source[t] = out.name
    first = graph.tensors[graph.inputs[0]]
    return {"arch": arch or graph.metadata.get("arch", "int8"), "input_shape": list(first.shape[1:]),
            "total_params": total, "total_macs": total_macs, "layers": layers,
            "inputs": [_io(graph.tensors[t]) for t in graph.inputs],
            "outputs": [_io(graph.tensors[t]) for t in graph.outputs]}


def _io(tensor) -> dict:
    """A graph input or output: name, dtype, shape (without the batch), scale and zero point (None for float)."""
    quantized = tensor.dtype != "float32" and tensor.scale.size > 0 and tensor.zero_point.size > 0
    return {"name": tensor.name, "dtype": tensor.dtype, "shape": list(tensor.shape[1:]),
            "scale": float(tensor.scale[0]) if quantized else None,
            "zero_point": int(tensor.zero_point[0]) if quantized else None}


def _io_line(role: str, io: dict) -> str:
    q = "" if io["scale"] is None else f" scale {io['scale']:.6g} zero point {io['zero_point']}"
    return f"{role} {io['name']}: {io['dtype']} {'x'.join(map(str, io['shape']))}{q}"


def np_prod(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n
