"""`.tflite` files without TensorFlow: write an Int8Graph, read one back.

    from edgecnn.deploy.tflite import read_tflite, to_bytes, write_tflite
    data = to_bytes(graph)              # bytes
    write_tflite(graph, "model.tflite") # atomic; returns the size
    graph = read_tflite("model.tflite") # or read_tflite(data)

Built on the flatbuffers runtime and the `tflite` package's schema bindings,
both pure Python, so this works on every device, LiteRT or not.
"""

from edgecnn.deploy.tflite.reader import read_tflite
from edgecnn.deploy.tflite.writer import to_bytes, write_tflite

__all__ = ["read_tflite", "to_bytes", "write_tflite"]
