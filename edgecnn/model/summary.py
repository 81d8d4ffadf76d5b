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
        kind = layer["kind"] + (f"+{layer['activation']}" if layer["activation"] != "none" else "")
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
