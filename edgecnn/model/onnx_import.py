"""ONNX float CNN -> edgecnn float `Sequential`, so `edgecnn quantize model.onnx` works.

    from edgecnn.model.onnx_import import import_onnx
    model = import_onnx("lenet.onnx")        # or the file's bytes

Only sequential chains of LeNet-class ops import: Conv (incl. grouped and
depthwise), BatchNormalization (folded into the Conv/Gemm before it), bias
Add, Relu / Clip(0,6) / Tanh / Sigmoid, MaxPool / AveragePool / their global
forms, Flatten / Reshape to 2-D, Gemm / MatMul, and a trailing Softmax or
LogSoftmax (dropped: edgecnn models output logits and argmax is unchanged).
Identity and Dropout are skipped; constant subgraphs (Constant, Reshape of
an initializer, the Shape->Gather->Concat chain of `x.view(x.size(0), -1)`)
are evaluated here.

Layout trap: ONNX is NCHW and edgecnn NHWC. Convolutions only need their
filters moved (OIHW -> OHWI), but a flatten orders features C,H,W in ONNX
and H,W,C in edgecnn, so the first dense layer after a flatten gets its
input columns permuted.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from edgecnn.errors import BackendUnavailableError, EdgecnnError, ModelError, UnsupportedOpError
from edgecnn.model.layers import Activation, AvgPool2D, Conv2D, Dense, Flatten, Layer, MaxPool2D
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
_ACTIVATIONS = {"Relu": "relu", "Tanh": "tanh", "Sigmoid": "sigmoid"}


def import_onnx(source, name: str | None = None) -> Sequential:
    """Read an ONNX float CNN (path or bytes) into an edgecnn float Sequential with its weights."""
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
    arch = f"onnx:{name or proto.graph.name or stem}"
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


def _layer_name(text: str, used: set, fallback: str) -> str:
    # PyTorch names nodes "/conv1/Conv"; a '/' would clash with checkpoint keys "layer/param".
    base = re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_.") or fallback
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


class _Converter:
    """Walks the (topologically sorted) nodes once, keeping one activation tensor `cur`."""

    def __init__(self, onnx, proto, arch: str):
        from onnx import numpy_helper

        self.onnx, self.proto, self.arch, self.nh = onnx, proto, arch, numpy_helper
        g = proto.graph
        self.consts = {t.name: t for t in g.initializer}  # TensorProto until first use, then np.ndarray
        self.layers: list[Layer] = []
        self.names: set[str] = set()
        self.shape = None  # edgecnn shape of `cur`: (H, W, C) or (D,)
        self.perm = None  # pending column order for the next dense layer after a flatten
        self.softmax = None  # the dropped trailing Softmax node, if any
        self.fusable = None  # index of the conv/dense layer a following BN or bias Add may fold into

    # -- entry --------------------------------------------------------------------------------------------
    def run(self) -> Sequential:
        g = self.proto.graph
        inputs = [i for i in g.input if i.name not in self.consts]
        if not inputs:
            raise OnnxImportError("the graph has no input (every input is an initializer)")
        inp = inputs[0]
        self.graph_inputs = {i.name for i in inputs}
        self.input_shape = self._input_shape(inp)
        self.cur = inp.name
        for i, node in enumerate(g.node):
            self._node(i, node)
        if len(g.output) != 1:
            raise OnnxImportError(f"the graph has {len(g.output)} outputs; edgecnn imports single-output classifiers")
        if g.output[0].name != self.cur:
            raise OnnxImportError(f"the graph output {g.output[0].name!r} is not the end of one sequential chain "
                                  f"of layers (the chain ends at {self.cur!r})")
        if not self.layers:
            raise OnnxImportError("the graph has no layers edgecnn can import")
        if len(self.shape) != 1:
            raise OnnxImportError(f"the graph output is {len(self.shape) + 1}-D; edgecnn classifiers end in a flat "
                                  f"[N, classes] output (add a Flatten)")
        return Sequential(self.layers, self.input_shape, arch=self.arch, labels=self._labels(self.shape[0]))

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
        self.shape = (h, w, c)
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

    def _add(self, desc, layer: Layer, params=None, fusable=False) -> None:
        layer.name = _layer_name(layer.name or "", self.names, f"{layer.kind}{len(self.layers)}")
        try:
            self.shape = layer.build(self.shape)
        except EdgecnnError as exc:
            raise OnnxImportError(f"{desc}: {exc}") from None
        layer.params = params or {}
        self.layers.append(layer)
        self.fusable = len(self.layers) - 1 if fusable else None

    def _image(self, desc):
        if len(self.shape) != 3:
            raise OnnxImportError(f"{desc}: needs an [N, C, H, W] input, got a flat one")
        return self.shape

    # -- the walk -----------------------------------------------------------------------------------------
    def _node(self, i, node) -> None:
        desc = self._desc(i, node)
        op = node.op_type
        if node.domain not in ("", "ai.onnx"):
            raise UnsupportedOpError(f"unsupported ONNX operator {node.domain}.{op} ({desc[len(op) + 1:]})")
        live = [n for n in node.input if n and self._const(n) is None]
        if op == "Constant" or (not live and op in _FOLDABLE):
            return self._fold(desc, node)
        if op == "Shape" and live == [self.cur]:
            return self._shape_of_cur(node)
        if op not in _HANDLERS:
            raise UnsupportedOpError(f"unsupported ONNX operator {op} ({desc[len(op) + 1:]})")
        data = self.cur if op == "Add" and self.cur in node.input else node.input[0] if node.input else ""
        if data != self.cur:
            raise OnnxImportError(f"{desc}: not a sequential chain (it reads {data!r}, the chain is at "
                                  f"{self.cur!r}; branches and skip connections do not import)")
        for k, name in enumerate(node.input):
            if name in live and (name != data or list(node.input).index(name) != k):
                if name in self.graph_inputs:
                    raise OnnxImportError(f"{desc}: input {name!r} is fed at run time, not a constant initializer; "
                                          f"edgecnn imports models whose weights are stored in the file")
                raise OnnxImportError(f"{desc}: not a sequential chain (it also reads {name!r}; branches and "
                                      f"skip connections do not import)")
        if self.softmax is not None and op not in _SKIPPED:
            raise UnsupportedOpError(f"{desc} follows {self.softmax}; Softmax must be the last op")
        if op not in _SKIPPED and op not in ("Softmax", "LogSoftmax") and len([o for o in node.output if o]) > 1:
            raise OnnxImportError(f"{desc}: a second output ({node.output[1]!r}) does not import")
        try:
            _HANDLERS[op](self, desc, node, self._attrs(node))
        except EdgecnnError as exc:
            if desc in str(exc):
                raise
            raise type(exc)(f"{desc}: {exc}") from None
        self.cur = node.output[0]

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

    def _shape_of_cur(self, node) -> None:
        # `x.view(x.size(0), -1)` exports Shape -> Gather -> Unsqueeze -> Concat -> Reshape; the batch
        # size stays a marker so that Reshape can recognise a flatten.
        s = self.shape
        nchw = [_BATCH, s[2], s[0], s[1]] if len(s) == 3 else [_BATCH, s[0]]
        self.consts[node.output[0]] = np.array(nchw, dtype=np.int64)

    # -- op handlers --------------------------------------------------------------------------------------
    def _conv(self, desc, node, a):
        h, w, c = self._image(desc)
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
        layer = Conv2D(m, (kh, kw), stride, padding, dilation, groups, name=node.name or "conv")
        params = {"w": np.ascontiguousarray(wt.transpose(0, 2, 3, 1)),  # OIHW -> OHWI
                  "b": b if b is not None else np.zeros(m, np.float32)}
        self._add(desc, layer, params, fusable=True)

    def _gemm(self, desc, node, a):
        if len(self.shape) != 1:
            raise OnnxImportError(f"{desc}: needs a flat [N, D] input; add a Flatten before it")
        d = self.shape[0]
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
        if self.perm is not None:
            w = w[:, self.perm]
            self.perm = None
        self._add(desc, Dense(units, name=node.name or "dense"), {"w": np.ascontiguousarray(w), "b": b}, fusable=True)

    def _bias_vector(self, desc, v, n, flat):
        """A per-channel constant as an [n] vector: a scalar, [.., n] after a dense, [.., n, 1, 1] after a conv.

        A plain [n] after a conv broadcasts over W in ONNX, not over channels, so it is refused.
        """
        tail = (n,) if flat else (n, 1, 1)
        lead = v.shape[:v.ndim - len(tail)]
        if v.size != 1 and (v.shape[v.ndim - len(tail):] != tail or any(s != 1 for s in lead) or v.ndim > 4):
            raise OnnxImportError(f"{desc}: the constant of shape {list(v.shape)} is not one value per channel ({n})")
        return np.broadcast_to(v.reshape(-1), (n,)).astype(np.float32)

    def _fold_target(self, desc, what):
        if self.fusable is None or self.fusable != len(self.layers) - 1 or self.layers[-1].activation != "none":
            raise UnsupportedOpError(f"{desc}: a {what} must directly follow a Conv, Gemm or MatMul")
        return self.layers[-1]

    def _add_bias(self, desc, node, a):
        layer = self._fold_target(desc, "bias Add")
        other = node.input[1] if node.input[0] == self.cur else node.input[0]
        v = self._weight(desc, node, list(node.input).index(other), "addend")
        n = layer.params["b"].shape[0]
        layer.params["b"] = layer.params["b"] + self._bias_vector(desc, v, n, flat=isinstance(layer, Dense))

    def _batchnorm(self, desc, node, a):
        from edgecnn.quantize.fold import fold_batchnorm

        if int(a.get("training_mode", 0)):
            raise UnsupportedOpError(f"{desc}: training_mode=1 does not import (export the model in eval mode)")
        layer = self._fold_target(desc, "BatchNormalization")
        gamma, beta, mean, var = (self._weight(desc, node, k, what)
                                  for k, what in ((1, "scale"), (2, "bias"), (3, "mean"), (4, "variance")))
        n = layer.params["b"].shape[0]
        if any(p.shape != (n,) for p in (gamma, beta, mean, var)):
            raise OnnxImportError(f"{desc}: parameter shapes do not match the {n} channels of {layer.name}")
        w, b = fold_batchnorm(layer.params["w"], layer.params["b"], gamma, beta, mean, var,
                              eps=float(a.get("epsilon", 1e-5)))
        if not (np.all(np.isfinite(w)) and np.all(np.isfinite(b))):
            raise OnnxImportError(f"{desc}: folding gives NaN or infinite weights (negative variance?)")
        layer.params = {"w": w.astype(np.float32), "b": b.astype(np.float32)}

    def _activation(self, desc, node, a):
        act = _ACTIVATIONS.get(node.op_type) or self._clip_kind(desc, node, a)
        # Monotone activations commute with max-pooling and flatten, so Conv->MaxPool->Relu (PyTorch's
        # F.relu(F.max_pool2d(conv(x), 2))) can fuse into the conv: the quantizer needs it fused.
        j = len(self.layers) - 1
        while j >= 0 and isinstance(self.layers[j], (MaxPool2D, Flatten)) and self.layers[j].activation == "none":
            j -= 1
        if j >= 0 and isinstance(self.layers[j], (Conv2D, Dense)) and self.layers[j].activation == "none":
            self.layers[j].activation = act
            if j != len(self.layers) - 1:
                self.fusable = None  # a BN after the pool no longer sits right after the conv
        else:
            self._add(desc, Activation(act, name=node.name or act))

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
        h, w, c = self._image(desc)
        op = node.op_type
        if op.startswith("Global"):
            cls = MaxPool2D if op == "GlobalMaxPool" else AvgPool2D
            return self._add(desc, cls((h, w), (h, w), "valid", name=node.name or "pool"))
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
        self._add(desc, cls(kernel, stride, padding, name=node.name or "pool"))

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
        if len(self.shape) == 1:
            if node.op_type == "Flatten" and int(a.get("axis", 1)) not in (1, -1):
                raise UnsupportedOpError(f"{desc}: only axis=1 imports")
            return
        if int(a.get("axis", 1)) != 1:
            raise UnsupportedOpError(f"{desc}: only Flatten with axis=1 ([N, C*H*W]) imports")
        h, w, c = self.shape
        self._add(desc, Flatten(name=node.name or "flatten"))
        if h * w > 1 and c > 1:
            self.perm = _dense_column_order(c, h, w)

    def _reshape(self, desc, node, a):
        shape = self._const(node.input[1]) if len(node.input) > 1 else None
        if shape is None:
            raise OnnxImportError(f"{desc}: the target shape is computed at run time; edgecnn imports a Reshape "
                                  f"to a constant [N, -1] shape (or use Flatten)")
        shape = [int(s) for s in np.asarray(shape).reshape(-1)]
        d = int(np.prod(self.shape))
        batch_ok = shape and (shape[0] in (_BATCH, -1, 0) or (self.batch is not None and shape[0] == self.batch))
        if len(shape) != 2 or not batch_ok or shape[1] not in (-1, d) or (shape[0] == -1 and shape[1] == -1):
            shown = ["N" if s == _BATCH else s for s in shape]
            raise UnsupportedOpError(f"{desc}: reshaping to {shown} is not a flatten to [N, {d}]")
        self._flatten(desc, node, {})

    def _softmax(self, desc, node, a):
        axis = int(a.get("axis", -1 if self.onnx_opset() >= 13 else 1))
        if len(self.shape) != 1 or axis not in (1, -1):
            raise UnsupportedOpError(f"{desc}: only a softmax over the classes of a flat [N, classes] output imports")
        self.softmax = desc

    def _skip(self, desc, node, a):
        if node.op_type == "Dropout" and len(node.input) > 2 and node.input[2]:
            mode = self._const(node.input[2])
            if mode is None or bool(np.asarray(mode).reshape(-1)[0]):
                raise UnsupportedOpError(f"{desc}: training_mode must be a constant false")

    def onnx_opset(self) -> int:
        return max((o.version for o in self.proto.opset_import if o.domain in ("", "ai.onnx")), default=1)


_HANDLERS = {
    "Conv": _Converter._conv,
    "Gemm": _Converter._gemm, "MatMul": _Converter._gemm,
    "Add": _Converter._add_bias,
    "BatchNormalization": _Converter._batchnorm,
    "Relu": _Converter._activation, "Tanh": _Converter._activation, "Sigmoid": _Converter._activation,
    "Clip": _Converter._activation,
    "MaxPool": _Converter._pool, "AveragePool": _Converter._pool,
    "GlobalMaxPool": _Converter._pool, "GlobalAveragePool": _Converter._pool,
    "Flatten": _Converter._flatten, "Reshape": _Converter._reshape,
    "Softmax": _Converter._softmax, "LogSoftmax": _Converter._softmax,
    "Identity": _Converter._skip, "Dropout": _Converter._skip,
}
