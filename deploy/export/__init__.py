"""Exporters from the int8 graph to other formats: ONNX (onnxruntime) and C99 (microcontrollers).

`export_model(src, out)` picks the format from `out`'s suffix. `src` is a
`.tflite` path or an Int8Graph, so every export starts from the same int8
artifact and stays bit-exact with it.
"""

from __future__ import annotations

from pathlib import Path

from edgecnn.errors import EdgecnnError

FORMATS = (".onnx", ".c")


def export_model(src, out) -> Path:
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in FORMATS:
        raise EdgecnnError(f"cannot export to {out.name}: choose a .onnx or .c file")
    if isinstance(src, (str, Path)):
        from edgecnn.deploy.tflite import read_tflite

        graph = read_tflite(Path(src))
    else:
        graph = src
    if suffix == ".onnx":
        from edgecnn.deploy.export.onnx import write_onnx

        write_onnx(graph, out)
    else:
        from edgecnn.deploy.export.c import write_c

        write_c(graph, out)
    return out
