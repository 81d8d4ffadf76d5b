"""Int8Graph -> ONNX, bit-exact with the Numba runtime (and so LiteRT BUILTIN_REF).

    from edgecnn.deploy.export.onnx import to_onnx, write_onnx
    write_onnx(graph, "model.onnx")     # the .tflite's inputs in, its outputs out, same types and layout

Every graph input and output becomes an ONNX input and output with the
tensor's name and element type (int8, uint8 or float32) in TFLite's layout
(NHWC). Inside, convolutions run in NCHW (the layout ONNX's Conv family
needs) and each tensor is transposed only where a layout matters.

This module names no op: each op's registration (`deploy/ops/<op>.py`)
gives an ONNX hook, `onnx(lw, step)`, that reads its inputs through the
`OnnxLowering` below and sets its outputs (docs/ops.md). Standard
QLinear/QDQ graphs round in float; the hooks spell TFLite's integer
requantization out in int64 ops instead (onnx_builder.py), so
accumulators are int32 like TFLite's and wrap the same way.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from edgecnn.deploy.export.onnx_builder import OnnxGraphBuilder
from edgecnn.deploy.ops import REGISTRY
from edgecnn.deploy.runtime.prepare import PreparedOp, prepare_graph
from edgecnn.errors import UnsupportedOpError
from edgecnn.fileio import atomic_write_bytes
from edgecnn.int8.graph import Int8Graph
from edgecnn.int8.padding import compute_padding

OPSET = 17  # MaxPool int8 (12), Clip on integers (12), Gather with negative indices (11)
IR_VERSION = 8  # the IR that goes with opset 17: loads in onnxruntime >= 1.11
EXACTNESS_NOTE = ("integer-exact: every output equals LiteRT's BUILTIN_REF int8 kernels (and edgecnn's Numba "
                  "runtime) bit for bit; requantization is spelled out in int64 ops, not QLinear/QDQ.")  # fmt: skip
ELEMENT_TYPES = {"int8": TensorProto.INT8, "uint8": TensorProto.UINT8, "int16": TensorProto.INT16,
                 "int32": TensorProto.INT32, "int64": TensorProto.INT64, "float32": TensorProto.FLOAT}  # fmt: skip
TO_NCHW, TO_NHWC = [0, 3, 1, 2], [0, 2, 3, 1]


def supported() -> list[str]:
    """The builtins with an ONNX lowering."""
    return [name for name, opdef in REGISTRY.items() if opdef.onnx is not None]


class OnnxLowering:
    """What an op's ONNX hook gets: the graph being lowered, each tensor's ONNX value(s), the builder.

    Tensor t's value may exist in TFLite's layout ("NHWC", which for ranks
    other than 4 means the tensor's own order) and/or, for rank 4, in
    "NCHW"; `nhwc(t)` / `nchw(t)` add the one transpose needed. A constant
    read as an input becomes an initializer on first use.
    """

    def __init__(self, graph: Int8Graph, fc_rescale: str, reserved=()):
        self.graph = graph
        self.fc_rescale = fc_rescale
        self.b = OnnxGraphBuilder(reserved=reserved)
        self.values: dict[int, dict[str, str]] = {}  # tensor index -> {"NHWC"|"NCHW": value name}

    # ------------------------------------------------------------ tensors

    def shape(self, t: int) -> tuple[int, ...]:
        return tuple(self.graph.tensors[t].shape)

    def _views(self, t: int) -> dict[str, str]:
        if t not in self.values:
            tensor = self.graph.tensors[t]
            if not tensor.is_constant:
                raise RuntimeError(f"tensor {tensor.name} is read before any op sets it")
            data = np.asarray(tensor.data).reshape(tensor.shape)
            self.values[t] = {"NHWC": self.b.const(data, data.dtype, "tensor")}
        return self.values[t]

    def nhwc(self, t: int) -> str:
        """The value of tensor t in TFLite's own layout (NHWC for rank 4)."""
        views = self._views(t)
        if "NHWC" not in views:
            views["NHWC"] = self.b.node("Transpose", [views["NCHW"]], "to_nhwc", perm=TO_NHWC)
        return views["NHWC"]

    def nchw(self, t: int) -> str:
        """The value of a rank-4 tensor t in NCHW."""
        views = self._views(t)
        if "NCHW" not in views:
            views["NCHW"] = self.b.node("Transpose", [views["NHWC"]], "to_nchw", perm=TO_NCHW)
        return views["NCHW"]

    def any_layout(self, t: int) -> tuple[str, str]:
        """(value, layout) of t in whichever layout exists: for element-wise ops that keep the layout."""
        views = self._views(t)
        layout = "NHWC" if "NHWC" in views else "NCHW"
        return views[layout], layout

    def set(self, t: int, value: str, layout: str = "NHWC") -> None:
        """Tensor t (an output of the op being lowered) is `value`, in `layout`."""
        if layout not in ("NHWC", "NCHW"):
            raise ValueError(f"unknown layout {layout!r}")
        if layout == "NCHW" and len(self.graph.tensors[t].shape) != 4:
            raise ValueError(f"tensor {self.graph.tensors[t].name} has rank {len(self.graph.tensors[t].shape)}; "
                             "only rank-4 tensors have an NCHW view")  # fmt: skip
        self.values[t] = {layout: value}

    # ------------------------------------------------------------ helpers several ops share

    def window_pads(self, step: PreparedOp, filter_hw: tuple[int, int], stride_hw: tuple[int, int],
                    dilation_hw: tuple[int, int] = (1, 1)) -> tuple[int, int, int, int]:  # fmt: skip
        """(top, left, bottom, right) of the op's SAME/VALID padding over its NHWC input (docs/int8.md 4)."""
        padding = self.graph.ops[step.index].options.get("padding", "SAME")
        _, height, width, _ = self.shape(step.inputs[0])
        _, top, bottom = compute_padding(padding, height, filter_hw[0], stride_hw[0], dilation_hw[0])
        _, left, right = compute_padding(padding, width, filter_hw[1], stride_hw[1], dilation_hw[1])
        return top, left, bottom, right

    def reshape_to(self, x: str, t: int) -> str:
        """x reshaped to tensor t's shape; the leading -1 absorbs the run-time batch, as in the runtime."""
        shape = [-1] + list(self.shape(t)[1:])
        return self.b.node("Reshape", [x, self.b.const(shape, np.int64, "shape")], "reshape")

    @staticmethod
    def fail(step: PreparedOp, message: str) -> UnsupportedOpError:
        return UnsupportedOpError(f"op {step.index} ({step.kind}): not exportable to ONNX: {message}")


# ---------------------------------------------------------------- the model


def _value_info(name: str, tensor) -> onnx.ValueInfoProto:
    shape = tensor.shape
    dims = (["batch" if shape[0] == 1 else f"batch_x{shape[0]}"] + list(shape[1:])) if shape else []
    return helper.make_tensor_value_info(name, ELEMENT_TYPES[tensor.dtype], dims)


def _metadata(graph: Int8Graph, fc_rescale: str) -> dict[str, str]:
    import edgecnn

    props = {
        "edgecnn_version": edgecnn.__version__,
        "exactness": EXACTNESS_NOTE,
        "fc_rescale": fc_rescale,
        "layout": "NHWC",
    }
    for role, indices in (("input", graph.inputs), ("output", graph.outputs)):
        for k, t in enumerate(indices):
            tensor = graph.tensors[t]
            if tensor.dtype == "float32" or not tensor.scale.size or not tensor.zero_point.size:
                continue
            suffix = "" if len(indices) == 1 else str(k)
            props[f"{role}{suffix}_scale"] = repr(float(tensor.scale[0]))
            props[f"{role}{suffix}_zero_point"] = str(int(tensor.zero_point[0]))
    for key, value in graph.metadata.items():
        if key not in props:
            props[key] = value if isinstance(value, str) else json.dumps(value)
    return props


def _output_names(graph: Int8Graph) -> list[str]:
    """Each graph output's ONNX name: its tensor's name, made unique against the inputs and each other."""
    taken = {graph.tensors[t].name for t in graph.inputs}
    names = []
    for t in graph.outputs:
        name, k = graph.tensors[t].name, 0
        while name in taken:
            k += 1
            name = f"{graph.tensors[t].name}_out" + ("" if k == 1 else str(k))
        taken.add(name)
        names.append(name)
    return names


def to_onnx(graph: Int8Graph, fc_rescale: str = "float") -> onnx.ModelProto:
    """The graph as an ONNX model: one ONNX input per graph input, one output per graph output.

    fc_rescale picks FULLY_CONNECTED's rescale like Runtime's: "float" (LiteRT
    >= 1.3, the default) or "integer" (older runtimes).
    """
    for i, op in enumerate(graph.ops):
        opdef = REGISTRY.get(op.kind)
        if opdef is None or opdef.onnx is None:
            raise UnsupportedOpError(f"op {i} ({op.kind}): {op.kind} is not supported by the ONNX exporter "
                                     f"(supported: {', '.join(supported())})")  # fmt: skip
    steps = prepare_graph(graph, fc_rescale)  # LiteRT's load-time checks, and every multiplier and table
    input_names = [graph.tensors[t].name for t in graph.inputs]
    if len(set(input_names)) != len(input_names):
        raise UnsupportedOpError(f"graph inputs share a name ({input_names}); ONNX needs distinct names")
    output_names = _output_names(graph)
    lw = OnnxLowering(graph, fc_rescale, reserved=input_names + output_names)
    for t, name in zip(graph.inputs, input_names):
        lw.values[t] = {"NHWC": name}
    for step in steps:
        step.opdef.onnx(lw, step)
        missing = [graph.tensors[t].name for t in step.outputs if t not in lw.values]
        if missing:
            raise RuntimeError(f"op {step.index} ({step.kind}): the ONNX lowering left outputs {missing} unset")
    b = lw.b
    for t, name in zip(graph.outputs, output_names):
        b.nodes.append(helper.make_node("Identity", [lw.nhwc(t)], [name], name=f"output_{name}"))
    onnx_graph = helper.make_graph(b.nodes, "edgecnn_int8",
                                   [_value_info(n, graph.tensors[t]) for t, n in zip(graph.inputs, input_names)],
                                   [_value_info(n, graph.tensors[t]) for t, n in zip(graph.outputs, output_names)],
                                   b.initializers)  # fmt: skip
    model = helper.make_model(onnx_graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="edgecnn", producer_version=_version(),
                              doc_string=f"edgecnn int8 model. {EXACTNESS_NOTE}")  # fmt: skip
    model.ir_version = IR_VERSION
    helper.set_model_props(model, _metadata(graph, fc_rescale))
    return model


def _version() -> str:
    import edgecnn

    return edgecnn.__version__


def to_bytes(graph: Int8Graph, fc_rescale: str = "float") -> bytes:
    return to_onnx(graph, fc_rescale).SerializeToString()


def write_onnx(graph: Int8Graph, out_path, fc_rescale: str = "float") -> Path:
    """Export and write atomically; the model is checked (onnx.checker, full) before it is written."""
    model = to_onnx(graph, fc_rescale)
    onnx.checker.check_model(model, full_check=True)
    out_path = Path(out_path)
    atomic_write_bytes(out_path, model.SerializeToString())
    return out_path
