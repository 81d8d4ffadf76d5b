"""ONNX float CNN -> edgecnn float model (a `Graph`; a `Sequential` when it is a chain).

    from edgecnn.model.onnx_import import import_onnx
    model = import_onnx("resnet.onnx")        # or the file's bytes

What imports: Conv (incl. grouped and depthwise), Gemm / MatMul, a bias Add
(folded into the Conv/Gemm before it), Add of two or more computed tensors
(residual shortcuts), Concat on the channel axis, BatchNormalization (folded
into the Conv/Gemm before it where that conv feeds nothing else, else kept as
a BatchNorm layer), Relu / Clip(0,6) / Clip(0,inf) / LeakyRelu / HardSwish /
HardSigmoid(1/6, 0.5) * x / Tanh / Sigmoid, MaxPool / AveragePool / their
global forms, ReduceMean over H and W, Pad (constant zero, spatial only),
Flatten / Reshape to 2-D / Squeeze of a pooled [N, C, 1, 1], and a trailing
Softmax or LogSoftmax (dropped: edgecnn models output logits and argmax is
unchanged). Identity and Dropout are skipped; constant subgraphs (Constant,
Reshape of an initializer, the Shape->Gather->Concat chain of
`x.view(x.size(0), -1)`) are evaluated here.

Layout trap: ONNX is NCHW and edgecnn NHWC. Convolutions only need their
filters moved (OIHW -> OHWI) and Concat's axis 1 becomes the last axis, but a
flatten orders features C,H,W in ONNX and H,W,C in edgecnn, so the first dense
layer after a flatten gets its input columns permuted. A convolution whose
explicit pads are neither SAME nor VALID imports as ZeroPadding2D + a VALID
conv (TFLite's PAD + CONV_2D), which computes the same thing.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import NamedTuple

import numpy as np

from edgecnn.errors import BackendUnavailableError, EdgecnnError, ModelError, UnsupportedOpError
from edgecnn.model.global_pooling import GlobalAvgPool2D, GlobalMaxPool2D
from edgecnn.model.graph import INPUT, Graph, Node
from edgecnn.model.layers import Activation, AvgPool2D, Conv2D, Dense, Flatten, Layer, LeakyReLU, MaxPool2D
from edgecnn.model.layers import ZeroPadding2D
from edgecnn.model.merge_layers import Add, Concatenate
from edgecnn.model.norm_layers import BatchNorm
from edgecnn.model.sequential import Sequential


class OnnxImportError(ModelError):
    """An ONNX file is malformed, or not a float CNN edgecnn can import."""


# The batch size inside constant-folded shape values (Shape -> Gather -> Concat -> Reshape).
_BATCH = np.iinfo(np.int64).min + 7

# Hostile-input bounds: far above any LeNet-class CNN, far below what overflows int32 or memory.
MAX_INPUT_SIDE = 4096
MAX_INPUT_ELEMENTS = 1 << 24
MAX_WINDOW = 1024  # kernel sides, strides, dilations and pads
INT32_MAX = 2**31 - 1

_FOLDABLE = ("Constant", "Identity", "Reshape", "Transpose", "Cast", "Unsqueeze", "Squeeze", "Concat", "Gather")
_SKIPPED = ("Identity", "Dropout")
_ACTIVATIONS = {"Relu": "relu", "Tanh": "tanh", "Sigmoid": "sigmoid", "HardSwish": "hard_swish"}
MAX_NODES = 100_000  # far above any CNN; bounds the work a hostile file can ask for
# Which activations fuse into which layer (what the quantizer gives a fused int8 form):
# conv/dense take relu, relu6 and the table activations; add and BN only relu and relu6.
_FUSES_INTO = ((Conv2D, Dense), ("relu", "relu6", "tanh", "sigmoid")), ((Add, BatchNorm), ("relu", "relu6"))


def import_onnx(source, name: str | None = None) -> Graph:
    """Read an ONNX float CNN (path or bytes) into an edgecnn float Graph (Sequential if a chain) with its weights."""
    try:
        import onnx
    except ImportError:
        raise BackendUnavailableError("importing ONNX models needs the onnx package (pip install onnx)") from None
    data, stem = _read(source)
    proto = _parse(onnx, data, stem)
    try:
        onnx.checker.check_model(proto)
    except Exception as exc:  # noqa: BLE001 - checker raises ValidationError and C++ errors alike
        raise OnnxImportError(f"{stem}: invalid ONNX model ({_first_line(exc)})") from None
    graph_name = "" if proto.graph.name == "main_graph" else proto.graph.name  # what every torch export says
    arch = f"onnx:{name or graph_name or Path(stem).stem}"
    try:
        return _Converter(onnx, proto, arch).run()
    except EdgecnnError as exc:
        raise type(exc)(f"{stem}: {exc}") from None
    except (ValueError, TypeError, OverflowError, ArithmeticError, IndexError, KeyError, RecursionError,
            MemoryError) as exc:
        # The named checks above cover every malformation we know; this keeps one we do not from
        # becoming a traceback.
        raise OnnxImportError(f"{stem}: malformed ONNX model ({type(exc).__name__}: {_first_line(exc)})") from None


def _read(source) -> tuple[bytes, str]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), "ONNX model"
    path = Path(source)
    if path.is_dir():
        raise OnnxImportError(f"{path} is a folder, not an ONNX file")
    if not path.is_file():
        raise OnnxImportError(f"{path}: no such ONNX file")
    return path.read_bytes(), path.name


def _parse(onnx, data: bytes, stem: str):
    if not data:
        raise OnnxImportError(f"{stem}: not an ONNX model (the file is empty)")
    try:
        proto = onnx.ModelProto.FromString(data)
    except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError and friends
        raise OnnxImportError(f"{stem}: not an ONNX model (protobuf: {_first_line(exc)})") from None
    if not proto.HasField("graph") or not proto.graph.node:
        raise OnnxImportError(f"{stem}: not an ONNX model (no graph)")
    for init in proto.graph.initializer:
        if init.data_location == onnx.TensorProto.EXTERNAL:
            raise OnnxImportError(f"{stem}: initializer {init.name!r} is stored in an external file; "
                                  f"save the model with its weights inside")
    return proto


def _first_line(exc) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[0] if lines else exc.__class__.__name__


def _torch_module_path(text: str) -> str:
    """PyTorch's "/blocks/blocks.1/a/a.0/Conv" -> "blocks.1.a.0" (its module path); "/blocks/blocks.0/Add" ->
    "blocks.0.Add". Each scope repeats its parent's name, so only the new part of each is kept."""
    parts = [p for p in text.split("/") if p]
    if not text.startswith("/") or len(parts) < 2:
        return text
    path, prev = [], None
    for seg in parts[:-1]:
        path.append(seg[len(prev) + 1:] if prev and seg.startswith(prev + ".") else seg)
        prev = seg
    op = parts[-1].split("_")[0]  # "Conv_1" when a module calls its op twice
    return ".".join(path) if op in ("Conv", "Gemm", "MatMul") and parts[-1] == op else ".".join(path + [parts[-1]])


def _layer_name(text: str, used: set, fallback: str) -> str:
    # PyTorch names nodes "/conv1/Conv"; a '/' would clash with checkpoint keys "layer/param".
    base = re.sub(r"[^A-Za-z0-9_.-]+", "_", _torch_module_path(text)).strip("_.") or fallback
    name, k = base, 1
    while name in used:
        k += 1
        name = f"{base}_{k}"
    used.add(name)
    return name


def _bounded_ints(desc: str, what: str, values, lo: int, hi: int = MAX_WINDOW) -> tuple[int, ...]:
    """Integer attribute values, each in lo..hi (hi <= int32): hostile files get one clear error."""
    try:
        out = tuple(int(v) for v in values)
    except (TypeError, ValueError, OverflowError):
        raise OnnxImportError(f"{desc}: {what} must be integers") from None
    bad = [v for v in out if not lo <= v <= min(hi, INT32_MAX)]
    if bad:
        raise OnnxImportError(f"{desc}: {what} {list(out)} must each lie in {lo}..{min(hi, INT32_MAX)}")
    return out


def _pads_from_attrs(node_desc, attrs, in_hw, kernel, stride, dilation):
    """ONNX auto_pad / pads -> edgecnn padding: "valid", "same" or (top, bottom, left, right)."""
    auto = attrs.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else str(auto)
    if auto == "VALID":
        return "valid"
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        pads = []
        for size, k, s, d in zip(in_hw, kernel, stride, dilation):
            out = -(-size // s)
            total = max(0, (out - 1) * s + (k - 1) * d + 1 - size)
            small, big = total // 2, total - total // 2
            pads.append((small, big) if auto == "SAME_UPPER" else (big, small))  # SAME_UPPER is TFLite's SAME
        pads = (pads[0][0], pads[0][1], pads[1][0], pads[1][1])
    elif auto == "NOTSET":
        p = list(_bounded_ints(node_desc, "pads", attrs.get("pads", [0, 0, 0, 0]), 0))
        if len(p) != 4:
            raise OnnxImportError(f"{node_desc}: pads {p} are not 4 values >= 0 of a 2-D window")
        pads = (p[0], p[2], p[1], p[3])  # ONNX: [top, left, bottom, right]
    else:
        raise OnnxImportError(f"{node_desc}: unknown auto_pad {auto!r}")
    return _named_padding(pads, in_hw, kernel, stride, dilation)


def _named_padding(pads, in_hw, kernel, stride, dilation):
    """Name explicit pads "same"/"valid" when they are: TFLite (and so the quantizer) knows only those."""
    from edgecnn.reference.padding import resolve_padding

    for mode in ("valid", "same"):
        try:
            _, p = resolve_padding(mode, in_hw, kernel, stride, dilation)
        except EdgecnnError:
            continue
        if tuple(p) == tuple(pads):
            return mode
    return list(pads)


def _dense_column_order(c: int, h: int, w: int) -> np.ndarray:
    """perm with edgecnn feature f (H,W,C order) = ONNX feature perm[f] (C,H,W order)."""
    return np.arange(c * h * w).reshape(c, h, w).transpose(1, 2, 0).ravel()


class _Value(NamedTuple):
    """What an ONNX tensor is on the edgecnn side: the output of graph node `node`."""

    node: str  # edgecnn node name, or INPUT
    shape: tuple  # edgecnn shape: (H, W, C) or (D,)
    perm: np.ndarray | None = None  # flat value after a flatten: edgecnn feature f = ONNX feature perm[f]
    pooled: bool = False  # a flat (C,) standing for ONNX's [N, C, 1, 1] (global pooling with keepdims)


def _canonical_names(graph) -> dict[str, str]:
    """ONNX tensor -> the tensor it is an alias of, through Identity and Dropout (which import as nothing)."""
    canon: dict[str, str] = {}
    for node in graph.node:
        if node.op_type in _SKIPPED and node.input and node.output:
            canon[node.output[0]] = canon.get(node.input[0], node.input[0])
    return canon


class _Converter:
    """Walks the (topologically sorted) ONNX nodes once, mapping each computed tensor to a graph node."""

    def __init__(self, onnx, proto, arch: str):
        from onnx import numpy_helper

        self.onnx, self.proto, self.arch, self.nh = onnx, proto, arch, numpy_helper
        g = proto.graph
        self.consts = {t.name: t for t in g.initializer}  # TensorProto until first use, then np.ndarray
        self.values: dict[str, _Value] = {}
        self.nodes: list[Node] = []
        self.layer_of: dict[str, Layer] = {}
        self.names: set[str] = {INPUT}
        self.softmax_of: dict[str, tuple[str, str]] = {}  # dropped Softmax output -> (its input, its desc)
        self.hard_sigmoid: dict[str, tuple[str, str]] = {}  # HardSigmoid(1/6, 0.5) output -> (its input, desc)
        self.canon = _canonical_names(g)
        self.readers: dict[str, int] = {}  # canonical tensor name -> how many nodes (and graph outputs) read it
        for node in g.node:
            if node.op_type not in _SKIPPED:
                for n in node.input:
                    if n:
                        key = self.canon.get(n, n)
                        self.readers[key] = self.readers.get(key, 0) + 1
        for o in g.output:
            key = self.canon.get(o.name, o.name)
            self.readers[key] = self.readers.get(key, 0) + 1

    # -- entry --------------------------------------------------------------------------------------------
    def run(self) -> Graph:
        g = self.proto.graph
        if len(g.node) > MAX_NODES:
            raise OnnxImportError(f"the graph has {len(g.node):,} nodes; edgecnn imports at most {MAX_NODES:,}")
        inputs = [i for i in g.input if i.name not in self.consts]
        if not inputs:
            raise OnnxImportError("the graph has no input (every input is an initializer)")
        inp = inputs[0]
        self.graph_inputs = {i.name for i in inputs}
        self.input_shape = self._input_shape(inp)
        self.values[inp.name] = _Value(INPUT, self.input_shape)
        for i, node in enumerate(g.node):
            self._node(i, node)
        if len(g.output) != 1:
            raise OnnxImportError(f"the graph has {len(g.output)} outputs; edgecnn imports single-output classifiers")
        out = g.output[0].name
        out = self.softmax_of.get(out, (out, ""))[0]
        if out not in self.values:
            raise OnnxImportError(f"the graph output {g.output[0].name!r} is not computed from the input by "
                                  f"layers edgecnn imports")
        v = self.values[out]
        if v.node == INPUT or not self.nodes:
            raise OnnxImportError("the graph has no layers edgecnn can import")
        if len(v.shape) != 1:
            raise OnnxImportError(f"the graph output is {len(v.shape) + 1}-D; edgecnn classifiers end in a flat "
                                  f"[N, classes] output (add a Flatten)")
        return self._finish(v.node, self._labels(v.shape[0]))

    def _finish(self, output: str, labels) -> Graph:
        """Prune what the output does not need, fuse activations, fold BNs; a chain becomes a Sequential."""
        nodes, output = _fuse_activations(_reachable(self.nodes, output), output)
        try:
            graph = Graph(nodes, self.input_shape, output=output, arch=self.arch, labels=labels)
        except EdgecnnError as exc:
            raise OnnxImportError(str(exc)) from None
        if any(isinstance(n.layer, BatchNorm) for n in graph.nodes):
            from edgecnn.model.folding import fold_graph_batchnorms

            graph = fold_graph_batchnorms(graph)
            for key, value in graph.named_params():
                if not np.all(np.isfinite(value)):
                    raise OnnxImportError(f"{key}: folding a BatchNormalization gives NaN or infinite weights "
                                          f"(negative variance?)")
        if graph.is_chain():
            return Sequential(graph.layers, graph.input_shape, arch=graph.arch, labels=graph.labels)
        return graph

    def _input_shape(self, inp):
        t = inp.type.tensor_type
        if not inp.type.HasField("tensor_type") or t.elem_type != self.onnx.TensorProto.FLOAT:
            kind = self.onnx.TensorProto.DataType.Name(t.elem_type).lower() if t.elem_type else "not a tensor"
            raise OnnxImportError(f"input {inp.name!r} is {kind}; edgecnn imports float32 models")
        dims = [d.dim_value if d.HasField("dim_value") else d.dim_param or "?" for d in t.shape.dim]
        if not t.HasField("shape") or len(dims) != 4:
            raise OnnxImportError(f"input {inp.name!r} has shape {dims if t.HasField('shape') else 'unknown'}; "
                                  f"edgecnn imports CNNs with an [N, C, H, W] image input")
        c, h, w = dims[1:]
        if not all(isinstance(d, int) and d > 0 for d in (c, h, w)):
            raise OnnxImportError(f"input {inp.name!r} has shape {dims}; C, H and W must be fixed sizes")
        if max(c, h, w) > MAX_INPUT_SIDE or c * h * w > MAX_INPUT_ELEMENTS:
            raise OnnxImportError(f"input {inp.name!r} has shape {dims}; edgecnn imports inputs of at most "
                                  f"{MAX_INPUT_SIDE} per side and {MAX_INPUT_ELEMENTS:,} values")
        self.batch = dims[0] if isinstance(dims[0], int) and dims[0] > 0 else None
        return (h, w, c)

    def _labels(self, classes: int):
        props = {p.key: p.value for p in self.proto.metadata_props}
        if "labels" not in props:
            return [str(i) for i in range(classes)]
        try:
            labels = json.loads(props["labels"])
        except (ValueError, RecursionError):  # RecursionError: deeply nested JSON
            labels = None
        if not isinstance(labels, list) or not all(isinstance(s, str) for s in labels):
            raise OnnxImportError("metadata 'labels' is not a JSON list of strings")
        if len(labels) != classes:
            raise OnnxImportError(f"metadata 'labels' names {len(labels)} classes but the model outputs {classes}")
        return labels

    # -- helpers ------------------------------------------------------------------------------------------
    def _desc(self, i, node) -> str:
        return f"{node.op_type} node {node.name!r}" if node.name else f"{node.op_type} node #{i}"

    def _const(self, name):
        v = self.consts.get(name)
        if v is not None and not isinstance(v, np.ndarray):
            try:
                v = self.nh.to_array(v)
            except Exception as exc:  # noqa: BLE001 - malformed raw_data
                raise OnnxImportError(f"initializer {name!r} cannot be read ({_first_line(exc)})") from None
            self.consts[name] = v
        return v

    def _weight(self, desc, node, k, what, optional=False):
        """A float constant input of `node`, as float32, checked finite."""
        name = node.input[k] if k < len(node.input) else ""
        if not name:
            if optional:
                return None
            raise OnnxImportError(f"{desc}: the {what} input is missing")
        v = self._const(name)
        if v is None:
            raise OnnxImportError(f"{desc}: the {what} {name!r} is not a constant initializer; edgecnn imports "
                                  f"models whose weights are stored in the file")
        if v.dtype.kind != "f":
            raise OnnxImportError(f"{desc}: the {what} {name!r} is {v.dtype}, not float (quantized ONNX models "
                                  f"do not import; import the float model)")
        if not np.all(np.isfinite(v)):
            raise OnnxImportError(f"{desc}: the {what} {name!r} holds NaN or infinite values")
        return v.astype(np.float32)

    def _attrs(self, node) -> dict:
        return {a.name: self.onnx.helper.get_attribute_value(a) for a in node.attribute}

    def _data(self, desc, node, k=0) -> _Value:
        """The computed (non-constant) tensor input k of `node`."""
        name = node.input[k] if k < len(node.input) else ""
        if not name or name not in self.values:
            raise OnnxImportError(f"{desc}: input {k} is {'missing' if not name else 'a constant'}; it must be "
                                  f"computed from the model's input")
        return self.values[name]

    def _sole_reader(self, name) -> bool:
        """Whether the node being imported is the only reader of tensor `name` (so it may change its producer)."""
        return self.readers.get(self.canon.get(name, name), 0) == 1

    def _emit(self, desc, layer: Layer, inputs: list[_Value], params=None, buffers=None) -> _Value:
        """Add `layer` reading `inputs` to the graph; returns its output."""
        layer.name = _layer_name(layer.name or "", self.names, f"{layer.kind}{len(self.nodes)}")
        shapes = [v.shape for v in inputs]
        try:
            shape = layer.build(shapes[0] if layer.arity == 1 else shapes)
        except EdgecnnError as exc:
            raise OnnxImportError(f"{desc}: {exc}") from None
        layer.params, layer.buffers = params or {}, buffers or {}
        self.nodes.append(Node(layer.name, layer, tuple(v.node for v in inputs)))
        self.layer_of[layer.name] = layer
        return _Value(layer.name, tuple(shape))

    def _image(self, desc, v: _Value):
        if len(v.shape) != 3:
            raise OnnxImportError(f"{desc}: needs an [N, C, H, W] input, got a flat one")
        return v.shape

    # -- the walk -----------------------------------------------------------------------------------------
    def _node(self, i, node) -> None:
        desc = self._desc(i, node)
        op = node.op_type
        if node.domain not in ("", "ai.onnx"):
            raise UnsupportedOpError(f"unsupported ONNX operator {node.domain}.{op} ({desc[len(op) + 1:]})")
        live = [n for n in node.input if n and self._const(n) is None]
        if op == "Constant" or (not live and op in _FOLDABLE):
            return self._fold(desc, node)
        for name in live:
            if name in self.softmax_of:
                if op in _SKIPPED:
                    self.softmax_of[node.output[0]] = self.softmax_of[name]
                    return None
                raise UnsupportedOpError(f"{desc} follows {self.softmax_of[name][1]}; Softmax must be the last op")
            if name in self.hard_sigmoid and op != "Mul":
                raise UnsupportedOpError(f"{self.hard_sigmoid[name][1]}: HardSigmoid imports only as "
                                         f"x * HardSigmoid(x) with alpha=1/6, beta=0.5 (hard swish)")
            if name not in self.values and name not in self.hard_sigmoid:
                if name in self.graph_inputs:
                    raise OnnxImportError(f"{desc}: input {name!r} is fed at run time, not a constant initializer; "
                                          f"edgecnn imports models whose weights are stored in the file")
                raise OnnxImportError(f"{desc}: reads {name!r}, which no node before it computes")
        if op == "Shape" and len(live) == 1:
            return self._shape_of(live[0], node)
        if op not in _HANDLERS:
            raise UnsupportedOpError(f"unsupported ONNX operator {op} ({desc[len(op) + 1:]})")
        if op not in _SKIPPED and op not in ("Softmax", "LogSoftmax") and len([o for o in node.output if o]) > 1:
            raise OnnxImportError(f"{desc}: a second output ({node.output[1]!r}) does not import")
        if not node.output or not node.output[0]:
            raise OnnxImportError(f"{desc}: has no output")
        try:
            out = _HANDLERS[op](self, desc, node, self._attrs(node))
        except EdgecnnError as exc:
            if desc in str(exc):
                raise
            raise type(exc)(f"{desc}: {exc}") from None
        if out is not None:
            self.values[node.output[0]] = out

    def _fold(self, desc, node) -> None:
        """Evaluate a node whose inputs are all constants."""
        a = self._attrs(node)
        op = node.op_type
        try:
            if op == "Constant":
                if "value" in a:
                    v = self.nh.to_array(a["value"])
                elif set(a) & {"value_float", "value_int", "value_floats", "value_ints"}:
                    key = next(k for k in ("value_float", "value_int", "value_floats", "value_ints") if k in a)
                    v = np.asarray(a[key], dtype=np.float32 if "float" in key else np.int64)
                else:
                    raise UnsupportedOpError(f"{desc}: this Constant form is not supported")
            else:
                x = [self._const(n) if n else None for n in node.input]
                if op == "Identity":
                    v = x[0]
                elif op == "Reshape":
                    shape = [int(s) for s in x[1]]
                    shape = [x[0].shape[k] if s == 0 and not a.get("allowzero", 0) else s for k, s in enumerate(shape)]
                    v = x[0].reshape(shape)
                elif op == "Transpose":
                    v = np.transpose(x[0], a.get("perm"))
                elif op == "Cast":
                    v = x[0].astype(self.onnx.helper.tensor_dtype_to_np_dtype(a["to"]))
                elif op == "Unsqueeze":
                    axes = a.get("axes", x[1] if len(x) > 1 else None)
                    v = x[0]
                    rank = v.ndim + len(axes)
                    for ax in sorted(int(ax) % rank for ax in axes):
                        v = np.expand_dims(v, ax)
                elif op == "Squeeze":
                    axes = a.get("axes", x[1] if len(x) > 1 and x[1] is not None else None)
                    v = np.squeeze(x[0], None if axes is None else tuple(int(ax) for ax in axes))
                elif op == "Concat":
                    v = np.concatenate(x, axis=a["axis"])
                else:  # Gather
                    v = np.take(x[0], x[1], axis=a.get("axis", 0))
        except EdgecnnError:
            raise
        except Exception as exc:  # noqa: BLE001 - numpy's many complaints about bad constant shapes
            raise OnnxImportError(f"{desc}: cannot evaluate it on its constant inputs ({_first_line(exc)})") from None
        self.consts[node.output[0]] = np.asarray(v)

    def _shape_of(self, name, node) -> None:
        # `x.view(x.size(0), -1)` exports Shape -> Gather -> Unsqueeze -> Concat -> Reshape; the batch
        # size stays a marker so that Reshape can recognise a flatten.
        s = self.values[name].shape
        nchw = [_BATCH, s[2], s[0], s[1]] if len(s) == 3 else [_BATCH, s[0]]
        if len(s) == 1 and self.values[name].pooled:
            nchw += [1, 1]
        self.consts[node.output[0]] = np.array(nchw, dtype=np.int64)

    # -- op handlers --------------------------------------------------------------------------------------
    def _conv(self, desc, node, a):
        v = self._data(desc, node)
        h, w, c = self._image(desc, v)
        wt = self._weight(desc, node, 1, "weight")
        if wt.ndim != 4:
            raise UnsupportedOpError(f"{desc}: only 2-D convolutions import (the weight is {wt.ndim}-D)")
        m, cg, kh, kw = wt.shape
        (groups,) = _bounded_ints(desc, "group", [a.get("group", 1)], 1, INT32_MAX)
        if list(_bounded_ints(desc, "kernel_shape", a.get("kernel_shape", [kh, kw]), 1)) != [kh, kw]:
            raise OnnxImportError(f"{desc}: kernel_shape {a['kernel_shape']} does not match the weight {list(wt.shape)}")
        if groups < 1 or c % groups or cg * groups != c or m % groups:
            raise OnnxImportError(f"{desc}: weight {list(wt.shape)} with group={groups} does not fit {c} input channels")
        b = self._weight(desc, node, 2, "bias", optional=True)
        if b is not None and b.shape != (m,):
            raise OnnxImportError(f"{desc}: bias shape {list(b.shape)} is not [{m}]")
        stride = _bounded_ints(desc, "strides", a.get("strides", (1, 1)), 1)
        dilation = _bounded_ints(desc, "dilations", a.get("dilations", (1, 1)), 1)
        if len(stride) != 2 or len(dilation) != 2:
            raise OnnxImportError(f"{desc}: strides {list(stride)} / dilations {list(dilation)} are not 2 values >= 1")
        padding = _pads_from_attrs(desc, a, (h, w), (kh, kw), stride, dilation)
        name = node.name or "conv"
        if not isinstance(padding, str):
            # TFLite convolutions know only SAME and VALID: other pads become a PAD before a VALID conv.
            v = self._emit(desc, ZeroPadding2D(list(padding), name=f"{_torch_module_path(name)}.pad"), [v])
            padding = "valid"
        layer = Conv2D(m, (kh, kw), stride, padding, dilation, groups, name=name)
        params = {"w": np.ascontiguousarray(wt.transpose(0, 2, 3, 1)),  # OIHW -> OHWI
                  "b": b if b is not None else np.zeros(m, np.float32)}
        return self._emit(desc, layer, [v], params)

    def _gemm(self, desc, node, a):
        v = self._data(desc, node)
        if len(v.shape) != 1:
            raise OnnxImportError(f"{desc}: needs a flat [N, D] input; add a Flatten before it")
        d = v.shape[0]
        if node.op_type == "Gemm" and int(a.get("transA", 0)):
            raise UnsupportedOpError(f"{desc}: transA=1 does not import")
        wt = self._weight(desc, node, 1, "weight")
        if wt.ndim != 2:
            raise OnnxImportError(f"{desc}: the weight is {wt.ndim}-D, not a 2-D matrix")
        if node.op_type == "Gemm" and int(a.get("transB", 0)):
            wt = wt.T
        w = (wt.T * np.float32(a.get("alpha", 1.0))).astype(np.float32)  # ONNX [in, out] -> edgecnn [out, in]
        units = w.shape[0]
        if w.shape[1] != d:
            raise OnnxImportError(f"{desc}: the weight takes {w.shape[1]} inputs but the layer before gives {d}")
        b = np.zeros(units, np.float32)
        c = self._weight(desc, node, 2, "bias", optional=True) if node.op_type == "Gemm" else None
        if c is not None:
            b = b + self._bias_vector(desc, c * np.float32(a.get("beta", 1.0)), units, flat=True)
        if v.perm is not None:
            w = w[:, v.perm]
        return self._emit(desc, Dense(units, name=node.name or "dense"), [v], {"w": np.ascontiguousarray(w), "b": b})

    def _bias_vector(self, desc, v, n, flat):
        """A per-channel constant as an [n] vector: a scalar, [.., n] after a dense, [.., n, 1, 1] after a conv.

        A plain [n] after a conv broadcasts over W in ONNX, not over channels, so it is refused.
        """
        tail = (n,) if flat else (n, 1, 1)
        lead = v.shape[:v.ndim - len(tail)]
        if v.size != 1 and (v.shape[v.ndim - len(tail):] != tail or any(s != 1 for s in lead) or v.ndim > 4):
            raise OnnxImportError(f"{desc}: the constant of shape {list(v.shape)} is not one value per channel ({n})")
        return np.broadcast_to(v.reshape(-1), (n,)).astype(np.float32)

    def _add(self, desc, node, a):
        live = [n for n in node.input if n and n in self.values]
        if len(live) >= 2 and len(live) == len(node.input):
            return self._merge(desc, node, Add(name=node.name or "add"), live)
        if len(live) != 1 or len(node.input) != 2:
            raise UnsupportedOpError(f"{desc}: an Add imports as a residual sum of computed tensors or as a bias "
                                     f"(one constant) after a Conv, Gemm or MatMul")
        v = self.values[live[0]]
        layer = self.layer_of.get(v.node)
        if not isinstance(layer, (Conv2D, Dense)) or layer.activation != "none" or not self._sole_reader(live[0]):
            raise UnsupportedOpError(f"{desc}: a bias Add must directly follow a Conv, Gemm or MatMul that "
                                     f"feeds nothing else")
        k = 1 if node.input[0] == live[0] else 0
        c = self._weight(desc, node, k, "addend")
        n = layer.params["b"].shape[0]
        layer.params["b"] = layer.params["b"] + self._bias_vector(desc, c, n, flat=isinstance(layer, Dense))
        return v

    def _merge(self, desc, node, layer, names):
        vs = [self.values[n] for n in names]
        perms = [v.perm for v in vs]
        if any(p is not None for p in perms) and not all(p is not None and np.array_equal(p, perms[0]) for p in perms):
            raise UnsupportedOpError(f"{desc}: its inputs are flattened images in different orders")
        if isinstance(layer, Concatenate) and perms[0] is not None:
            raise UnsupportedOpError(f"{desc}: concatenating flattened images does not import (flatten after "
                                     f"concatenating)")
        out = self._emit(desc, layer, vs)
        return out._replace(perm=perms[0] if isinstance(layer, Add) else None,
                            pooled=all(v.pooled for v in vs))

    def _concat(self, desc, node, a):
        live = [n for n in node.input if n]
        if len(live) < 2 or any(n not in self.values for n in live):
            raise UnsupportedOpError(f"{desc}: a Concat imports when all its inputs are computed tensors "
                                     f"(two or more)")
        rank = len(self.values[live[0]].shape) + 1
        if self.values[live[0]].pooled:
            rank = 4
        (axis,) = _bounded_ints(desc, "axis", [a.get("axis", 1)], -rank, rank - 1)
        if axis % rank != 1:
            raise UnsupportedOpError(f"{desc}: only a Concat over channels (axis 1 of NCHW) imports, not "
                                     f"axis {axis}")
        return self._merge(desc, node, Concatenate(name=node.name or "concat"), live)

    def _batchnorm(self, desc, node, a):
        v = self._data(desc, node)
        if int(a.get("training_mode", 0)):
            raise UnsupportedOpError(f"{desc}: training_mode=1 does not import (export the model in eval mode)")
        gamma, beta, mean, var = (self._weight(desc, node, k, what)
                                  for k, what in ((1, "scale"), (2, "bias"), (3, "mean"), (4, "variance")))
        n = v.shape[-1]
        if any(p.shape != (n,) for p in (gamma, beta, mean, var)):
            raise OnnxImportError(f"{desc}: parameter shapes do not match the {n} channels of its input")
        if np.any(var < 0):
            raise OnnxImportError(f"{desc}: the variance holds negative values")
        if v.perm is not None:  # per flattened feature, in ONNX's order
            gamma, beta, mean, var = (p[v.perm] for p in (gamma, beta, mean, var))
        momentum = 1.0 - float(a.get("momentum", 0.9))  # ONNX's running = momentum * running + ...
        try:
            layer = BatchNorm(momentum if 0.0 < momentum <= 1.0 else 0.1, float(a.get("epsilon", 1e-5)),
                              name=node.name or "batchnorm")
        except EdgecnnError as exc:
            raise OnnxImportError(f"{desc}: {exc}") from None
        out = self._emit(desc, layer, [v], {"gamma": gamma, "beta": beta}, {"mean": mean, "var": var})
        return out._replace(perm=v.perm, pooled=v.pooled)

    def _activation(self, desc, node, a):
        v = self._data(desc, node)
        if node.op_type == "LeakyRelu":
            alpha = float(a.get("alpha", 0.01))
            if not (np.isfinite(alpha) and 0.0 <= alpha < 1.0):
                raise UnsupportedOpError(f"{desc}: LeakyRelu alpha {alpha:g} is outside [0, 1)")
            layer = LeakyReLU(alpha, name=node.name or "leaky_relu")
        else:
            act = _ACTIVATIONS.get(node.op_type) or self._clip_kind(desc, node, a)
            layer = Activation(act, name=node.name or act)
        return self._emit(desc, layer, [v])._replace(perm=v.perm, pooled=v.pooled)

    def _hard_sigmoid(self, desc, node, a):
        self._data(desc, node)
        alpha, beta = float(a.get("alpha", 0.2)), float(a.get("beta", 0.5))
        if abs(alpha - 1 / 6) > 1e-6 or abs(beta - 0.5) > 1e-6:
            raise UnsupportedOpError(f"{desc}: HardSigmoid imports only as x * HardSigmoid(x) with alpha=1/6, "
                                     f"beta=0.5 (hard swish), not alpha={alpha:g}, beta={beta:g}")
        self.hard_sigmoid[node.output[0]] = (node.input[0], desc)
        return None

    def _mul(self, desc, node, a):
        ins = list(node.input)
        if len(ins) == 2:
            for gate, x in (ins, ins[::-1]):
                if gate in self.hard_sigmoid and self.hard_sigmoid[gate][0] == x and x in self.values:
                    v = self.values[x]
                    out = self._emit(desc, Activation("hard_swish", name=node.name or "hard_swish"), [v])
                    return out._replace(perm=v.perm, pooled=v.pooled)
        raise UnsupportedOpError(f"unsupported ONNX operator Mul ({desc[4:]}); only x * HardSigmoid(x) "
                                 f"(hard swish) imports")

    def _clip_kind(self, desc, node, a):
        if "min" in a or "max" in a:  # opset < 11 keeps the bounds in attributes
            lo, hi = a.get("min", -np.inf), a.get("max", np.inf)
        else:
            bounds = []
            for k, default in ((1, -np.inf), (2, np.inf)):
                v = self._const(node.input[k]) if k < len(node.input) and node.input[k] else np.float32(default)
                if v is None or v.size != 1:
                    raise OnnxImportError(f"{desc}: the bounds must be constant scalars")
                bounds.append(float(v.reshape(-1)[0]))
            lo, hi = bounds
        if lo == 0 and hi == 6:
            return "relu6"
        if lo == 0 and hi == np.inf:
            return "relu"
        raise UnsupportedOpError(f"unsupported ONNX operator Clip({lo:g}, {hi:g}) ({desc[5:]}); only Clip(0, 6) "
                                 f"(relu6) and Clip(0, inf) (relu) import")

    def _pool(self, desc, node, a):
        v = self._data(desc, node)
        h, w, c = self._image(desc, v)
        op = node.op_type
        if op.startswith("Global"):
            cls = GlobalMaxPool2D if op == "GlobalMaxPool" else GlobalAvgPool2D
            return self._emit(desc, cls(name=node.name or "pool"), [v])._replace(pooled=True)
        kernel = _bounded_ints(desc, "kernel_shape", a.get("kernel_shape", ()), 1)
        stride = _bounded_ints(desc, "strides", a.get("strides", (1, 1)), 1)  # ONNX default stride is 1, not the window
        if len(kernel) != 2 or len(stride) != 2:
            raise UnsupportedOpError(f"{desc}: only 2-D pooling imports (kernel_shape {list(kernel)})")
        if any(d != 1 for d in _bounded_ints(desc, "dilations", a.get("dilations", (1, 1)), 1)):
            raise UnsupportedOpError(f"{desc}: dilated pooling does not import")
        padding = _pads_from_attrs(desc, a, (h, w), kernel, stride, (1, 1))
        if int(a.get("ceil_mode", 0)):
            padding = self._ceil_padding(padding, (h, w), kernel, stride)
        if op == "AveragePool" and int(a.get("count_include_pad", 0)) and padding != "valid":
            raise UnsupportedOpError(f"{desc}: count_include_pad=1 with padding does not import (edgecnn and "
                                     f"TFLite average only the in-bounds pixels)")
        cls = MaxPool2D if op == "MaxPool" else AvgPool2D
        return self._emit(desc, cls(kernel, stride, padding, name=node.name or "pool"), [v])

    def _reduce(self, desc, node, a):
        """ReduceMean / ReduceMax over H and W: global pooling (keepdims either way)."""
        v = self._data(desc, node)
        self._image(desc, v)
        axes = a.get("axes")
        if axes is None and len(node.input) > 1 and node.input[1]:  # opset 18: axes are an input
            axes = self._const(node.input[1])
            if axes is None:
                raise OnnxImportError(f"{desc}: the axes must be a constant")
            axes = [int(x) for x in np.asarray(axes).reshape(-1)]
        axes = sorted(x % 4 for x in _bounded_ints(desc, "axes", axes if axes is not None else [], -4, 3))
        if axes != [2, 3]:
            raise UnsupportedOpError(f"{desc}: only a reduction over H and W (axes 2, 3 of NCHW) imports, "
                                     f"not axes {axes}")
        cls = GlobalMaxPool2D if node.op_type == "ReduceMax" else GlobalAvgPool2D
        keep = bool(int(a.get("keepdims", 1)))
        return self._emit(desc, cls(name=node.name or "reduce"), [v])._replace(pooled=keep)

    def _pad(self, desc, node, a):
        v = self._data(desc, node)
        self._image(desc, v)
        mode = a.get("mode", b"constant")
        mode = mode.decode() if isinstance(mode, bytes) else str(mode)
        if mode != "constant":
            raise UnsupportedOpError(f"{desc}: only constant (zero) padding imports, not mode {mode!r}")
        if "pads" in a:  # opset < 11
            pads, value = a["pads"], float(a.get("value", 0.0))
        else:
            pads = self._const(node.input[1]) if len(node.input) > 1 and node.input[1] else None
            if pads is None:
                raise OnnxImportError(f"{desc}: the pads must be a constant")
            pads = [int(x) for x in np.asarray(pads).reshape(-1)]
            value = 0.0
            if len(node.input) > 2 and node.input[2]:
                cv = self._const(node.input[2])
                if cv is None or cv.size != 1:
                    raise OnnxImportError(f"{desc}: the constant_value must be a constant scalar")
                value = float(cv.reshape(-1)[0])
            if len(node.input) > 3 and node.input[3]:
                raise UnsupportedOpError(f"{desc}: Pad with an axes input does not import")
        p = _bounded_ints(desc, "pads", pads, 0)
        if len(p) != 8 or any(p[k] for k in (0, 1, 4, 5)):
            raise UnsupportedOpError(f"{desc}: only spatial padding of an [N, C, H, W] tensor imports "
                                     f"(pads {list(p)})")
        if value != 0.0:
            raise UnsupportedOpError(f"{desc}: only zero padding imports (constant_value {value:g})")
        return self._emit(desc, ZeroPadding2D([p[2], p[6], p[3], p[7]], name=node.name or "pad"), [v])

    @staticmethod
    def _ceil_padding(padding, in_hw, kernel, stride):
        """ceil_mode: pad the bottom/right so that floor division gives ONNX's ceil output size."""
        from edgecnn.reference.padding import resolve_padding

        _, pads = resolve_padding(padding, in_hw, kernel, stride, (1, 1))
        pads = list(pads)
        for axis, (size, k, s) in enumerate(zip(in_hw, kernel, stride)):
            span = size + pads[2 * axis] + pads[2 * axis + 1] - k
            extra = (-span) % s
            # ONNX drops a last window that would start inside the end padding.
            if extra and ((span + extra) // s) * s - pads[2 * axis] < size:
                pads[2 * axis + 1] += extra
        return _named_padding(tuple(pads), in_hw, kernel, stride, (1, 1))

    def _flatten(self, desc, node, a):
        v = self._data(desc, node)
        if len(v.shape) == 1:
            if node.op_type == "Flatten" and int(a.get("axis", 1)) not in (1, -1) and not v.pooled:
                raise UnsupportedOpError(f"{desc}: only axis=1 imports")
            return v._replace(pooled=False)
        if int(a.get("axis", 1)) != 1:
            raise UnsupportedOpError(f"{desc}: only Flatten with axis=1 ([N, C*H*W]) imports")
        h, w, c = v.shape
        out = self._emit(desc, Flatten(name=node.name or "flatten"), [v])
        return out._replace(perm=_dense_column_order(c, h, w) if h * w > 1 and c > 1 else None)

    def _reshape(self, desc, node, a):
        v = self._data(desc, node)
        shape = self._const(node.input[1]) if len(node.input) > 1 else None
        if shape is None:
            raise OnnxImportError(f"{desc}: the target shape is computed at run time; edgecnn imports a Reshape "
                                  f"to a constant [N, -1] shape (or use Flatten)")
        shape = [int(s) for s in np.asarray(shape).reshape(-1)]
        d = int(np.prod(v.shape))
        batch_ok = shape and (shape[0] in (_BATCH, -1, 0) or (self.batch is not None and shape[0] == self.batch))
        if len(shape) != 2 or not batch_ok or shape[1] not in (-1, d) or (shape[0] == -1 and shape[1] == -1):
            shown = ["N" if s == _BATCH else s for s in shape]
            raise UnsupportedOpError(f"{desc}: reshaping to {shown} is not a flatten to [N, {d}]")
        return self._flatten(desc, node, {})

    def _squeeze(self, desc, node, a):
        """Squeeze of a pooled [N, C, 1, 1] over its unit axes: [N, C], which edgecnn already has."""
        v = self._data(desc, node)
        axes = a.get("axes")
        if axes is None and len(node.input) > 1 and node.input[1]:
            axes = self._const(node.input[1])
            axes = None if axes is None else [int(x) for x in np.asarray(axes).reshape(-1)]
        if not v.pooled or (axes is not None and sorted(int(x) % 4 for x in axes) != [2, 3]):
            raise UnsupportedOpError(f"{desc}: only a Squeeze of the H and W axes after global pooling imports")
        return v._replace(pooled=False)

    def _softmax(self, desc, node, a):
        v = self._data(desc, node)
        axis = int(a.get("axis", -1 if self.onnx_opset() >= 13 else 1))
        if len(v.shape) != 1 or axis not in (1, -1):
            raise UnsupportedOpError(f"{desc}: only a softmax over the classes of a flat [N, classes] output imports")
        self.softmax_of[node.output[0]] = (node.input[0], desc)
        return None

    def _skip(self, desc, node, a):
        if node.op_type == "Dropout" and len(node.input) > 2 and node.input[2]:
            mode = self._const(node.input[2])
            if mode is None or bool(np.asarray(mode).reshape(-1)[0]):
                raise UnsupportedOpError(f"{desc}: training_mode must be a constant false")
        return self._data(desc, node)

    def onnx_opset(self) -> int:
        return max((o.version for o in self.proto.opset_import if o.domain in ("", "ai.onnx")), default=1)


def _reachable(nodes: list[Node], output: str) -> list[Node]:
    """The nodes `output` depends on, in their order."""
    by_name = {n.name: n for n in nodes}
    need, stack = set(), [output]
    while stack:
        name = stack.pop()
        if name in need or name not in by_name:
            continue
        need.add(name)
        stack.extend(by_name[name].inputs)
    return [n for n in nodes if n.name in need]


def _fuse_activations(nodes: list[Node], output: str) -> tuple[list[Node], str]:
    """Fold each standalone activation into the layer that alone feeds it, as TFLite fuses them.

    Monotone activations commute with max-pooling and flatten, so Conv->MaxPool->Relu (PyTorch's
    F.relu(F.max_pool2d(conv(x), 2))) fuses into the conv too. Every layer on the way must feed
    nothing else. Conv and dense take relu, relu6, tanh and sigmoid; add and BN relu and relu6.
    """
    nodes = list(nodes)
    while True:
        readers: dict[str, list[Node]] = {}
        for n in nodes:
            for s in n.inputs:
                readers.setdefault(s, []).append(n)
        by_name = {n.name: n for n in nodes}
        fused = None
        for act in nodes:
            if type(act.layer) is not Activation or act.layer.activation == "hard_swish":
                continue
            src = act.inputs[0]
            while True:
                prev = by_name.get(src)
                if prev is None or len(readers.get(src, ())) != 1 or src == output:
                    prev = None
                    break
                if isinstance(prev.layer, (MaxPool2D, Flatten)) and prev.layer.activation == "none":
                    src = prev.inputs[0]
                    continue
                break
            if prev is None or prev.layer.activation != "none":
                continue
            if any(isinstance(prev.layer, kinds) and act.layer.activation in acts for kinds, acts in _FUSES_INTO):
                prev.layer.activation = act.layer.activation
                fused = act
                break
        if fused is None:
            return nodes, output
        nodes = [Node(n.name, n.layer, tuple(fused.inputs[0] if s == fused.name else s for s in n.inputs))
                 for n in nodes if n is not fused]
        if output == fused.name:
            output = fused.inputs[0]


_HANDLERS = {
    "Conv": _Converter._conv,
    "Gemm": _Converter._gemm, "MatMul": _Converter._gemm,
    "Add": _Converter._add, "Concat": _Converter._concat,
    "BatchNormalization": _Converter._batchnorm,
    "Relu": _Converter._activation, "Tanh": _Converter._activation, "Sigmoid": _Converter._activation,
    "Clip": _Converter._activation, "LeakyRelu": _Converter._activation, "HardSwish": _Converter._activation,
    "HardSigmoid": _Converter._hard_sigmoid, "Mul": _Converter._mul,
    "MaxPool": _Converter._pool, "AveragePool": _Converter._pool,
    "GlobalMaxPool": _Converter._pool, "GlobalAveragePool": _Converter._pool,
    "ReduceMean": _Converter._reduce, "ReduceMax": _Converter._reduce,
    "Pad": _Converter._pad,
    "Flatten": _Converter._flatten, "Reshape": _Converter._reshape, "Squeeze": _Converter._squeeze,
    "Softmax": _Converter._softmax, "LogSoftmax": _Converter._softmax,
    "Identity": _Converter._skip, "Dropout": _Converter._skip,
}
