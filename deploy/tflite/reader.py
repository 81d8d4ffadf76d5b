""".tflite (path or bytes) -> Int8Graph, for the ops edgecnn runs.

Reads edgecnn's own files field for field, and int8 LeNet-class files from the
TensorFlow converter. Those differ in one way that matters: Keras' Flatten on
a dynamic batch becomes SHAPE -> STRIDED_SLICE -> PACK -> RESHAPE, computing
[batch, -1] at run time. The reader evaluates such int32 shape chains here,
with the batch kept symbolic, and folds the result into RESHAPE's `new_shape`
(e.g. [-1, 400]); the shape ops and their constants disappear.

Anything else is refused with an edgecnn error, never a low-level traceback:
bad bytes -> TFLiteFormatError, float models -> TFLiteFormatError, an
operator edgecnn lacks -> UnsupportedOpError naming it.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import tflite

from edgecnn.deploy.graph import OPS, Int8Graph, Op, Tensor
from edgecnn.deploy.tflite import metadata as md
from edgecnn.errors import EdgecnnError, TFLiteFormatError, UnsupportedOpError

FILE_IDENTIFIER = b"TFL3"
SCHEMA_VERSION = 3

_TYPE_NAMES = {v: k for k, v in vars(tflite.TensorType).items() if not k.startswith("_")}
_DTYPES = {tflite.TensorType.INT8: "int8", tflite.TensorType.INT32: "int32"}
_FLOAT_TYPES = tuple(
    getattr(tflite.TensorType, n)
    for n in ("FLOAT32", "FLOAT16", "FLOAT64", "BFLOAT16")
    if hasattr(tflite.TensorType, n)
)
_SHAPE_DTYPES = {tflite.TensorType.INT32: "<i4", tflite.TensorType.INT64: "<i8"}
_PADDINGS = {tflite.Padding.SAME: "SAME", tflite.Padding.VALID: "VALID"}
_ACTIVATIONS = {
    tflite.ActivationFunctionType.NONE: "NONE",
    tflite.ActivationFunctionType.RELU: "RELU",
    tflite.ActivationFunctionType.RELU6: "RELU6",
    tflite.ActivationFunctionType.RELU_N1_TO_1: "RELU_N1_TO_1",
}
# Ops that only compute int32 shapes; folded away when they feed a RESHAPE.
_SHAPE_OPS = ("SHAPE", "STRIDED_SLICE", "PACK", "CONCATENATION")
# Stands for "the batch size" inside folded shape values.
_BATCH = np.int64(-(2**40))

# Malformed offsets surface as these inside the flatbuffers accessors.
_LOW_LEVEL_ERRORS = (struct.error, IndexError, ValueError, TypeError, OverflowError, UnicodeDecodeError, KeyError)


def read_tflite(source) -> Int8Graph:
    """Parse a `.tflite` (a path, or the bytes themselves) into an Int8Graph."""
    data, name = _load(source)
    try:
        return _Reader(data, name).graph()
    except EdgecnnError:
        raise
    except _LOW_LEVEL_ERRORS as e:
        raise TFLiteFormatError(f"{name}: truncated or corrupt .tflite file ({type(e).__name__}: {e})") from None


def _load(source) -> tuple[bytes, str]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), "<bytes>"
    if isinstance(source, (str, os.PathLike)):
        try:
            return Path(source).read_bytes(), str(source)
        except OSError as e:
            raise TFLiteFormatError(f"cannot read {source}: {e.strerror or e}") from None
    raise TypeError(f"read_tflite takes a path or bytes, not {type(source).__name__}")


def _external(buf) -> tuple[int, int]:
    """(offset, size) of data stored after the flatbuffer; (0, 0) if inline.

    Buffer.offset/size arrived in schema 2.14; older `tflite` bindings lack them.
    """
    if not hasattr(buf, "Offset"):
        return 0, 0
    return buf.Offset(), buf.Size()


class _NotFoldable(Exception):
    """A shape value that cannot be computed before run time."""


class _Reader:
    def __init__(self, data: bytes, name: str):
        self.data = data
        self.name = name
        self._check_header()
        self.model = tflite.Model.GetRootAs(data, 0)

    # ------------------------------------------------------------ top level

    def graph(self) -> Int8Graph:
        m = self.model
        if m.Version() != SCHEMA_VERSION:
            self._fail(f"schema version {m.Version()}, expected {SCHEMA_VERSION}")
        if self._count(m.SubgraphsLength()) < 1:
            self._fail("no subgraph")
        self.sg = m.Subgraphs(0)
        self._check_buffers()
        self.op_names = [self._op_name(m.OperatorCodes(i)) for i in range(self._count(m.OperatorCodesLength()))]
        self.raw_tensors = [self.sg.Tensors(i) for i in range(self._count(self.sg.TensorsLength()))]
        inputs = self._indices(self.sg.InputsAsNumpy())
        outputs = self._indices(self.sg.OutputsAsNumpy())
        for role, idx in (("input", inputs), ("output", outputs)):
            if not idx:
                self._fail(f"graph has no {role}")
            for t in idx:
                self._check_io_type(role, t)
        for i, t in enumerate(self.raw_tensors):
            if t.Type() in _FLOAT_TYPES:
                self._fail(
                    f"tensor {i} ({self._tensor_name(t)}) is {_TYPE_NAMES[t.Type()]}: "
                    "a float or hybrid model; edgecnn runs int8 models"
                )

        ops = [self._raw_op(i) for i in range(self._count(self.sg.OperatorsLength()))]
        ops = self._fold_shapes(ops, outputs)
        for i, (kind, *_rest) in ops:
            if kind not in OPS:
                raise UnsupportedOpError(f"{self.name}: unsupported operator {kind} (op {i})")

        # Drop the tensors only the folded shape computation touched; keep the
        # rest in file order, so edgecnn's own files read back index for index.
        used = {t for _, (_, ins, outs, _) in ops for t in ins + outs} | set(inputs) | set(outputs)
        used = [t for t in range(len(self.raw_tensors)) if t in used or t not in self.folded_tensors]
        new_index = {old: new for new, old in enumerate(used)}
        tensors = [self._tensor(old) for old in used]
        graph_ops = [
            Op(kind, [new_index.get(t, -1) for t in ins], [new_index[t] for t in outs], options)
            for _, (kind, ins, outs, options) in ops
        ]
        graph = Int8Graph(
            tensors=tensors,
            ops=graph_ops,
            inputs=[new_index[t] for t in inputs],
            outputs=[new_index[t] for t in outputs],
            metadata=self._metadata(),
        )
        return graph.validate()

    # ------------------------------------------------------------ checks

    def _fail(self, message: str):
        raise TFLiteFormatError(f"{self.name}: {message}")

    def _check_header(self):
        d = self.data
        if len(d) < 8:
            self._fail(f"{len(d)} bytes is too short for a .tflite file")
        if d[4:8] != FILE_IDENTIFIER:
            self._fail(f"not a .tflite file (file identifier {bytes(d[4:8])!r}, expected {FILE_IDENTIFIER!r})")
        (root,) = struct.unpack_from("<I", d, 0)
        if root + 4 > len(d):
            self._fail("truncated: the root table lies past the end of the file")

    def _check_buffers(self):
        """Every buffer's data must lie inside the file.

        Touching them all also catches a cut-off tail: flatbuffers are built
        back to front, so the end of a file holds the first buffers written.
        """
        for i in range(self._count(self.model.BuffersLength())):
            buf = self.model.Buffers(i)
            offset, size = _external(buf)
            if offset > 1:
                end = offset + size
            elif buf.DataLength():
                end = buf._tab.Vector(4) + buf.DataLength()
            else:
                continue
            if end > len(self.data):
                self._fail(f"truncated: buffer {i} ends at byte {end}, past the end of the file ({len(self.data)})")

    def _count(self, n: int) -> int:
        # Every vector element takes at least one byte, so a longer length
        # is corrupt; checking it first keeps loops bounded.
        if not 0 <= n <= len(self.data):
            self._fail(f"vector length {n} exceeds the file size")
        return n

    def _indices(self, arr) -> list[int]:
        values = [] if isinstance(arr, int) else [int(v) for v in arr]
        for v in values:
            if not -1 <= v < len(self.raw_tensors):
                self._fail(f"tensor index {v} out of range (model has {len(self.raw_tensors)} tensors)")
        return values

    def _check_io_type(self, role: str, index: int):
        if index == -1:
            self._fail(f"graph {role} index -1")
        ttype = self.raw_tensors[index].Type()
        if ttype == tflite.TensorType.INT8:
            return
        type_name = _TYPE_NAMES.get(ttype, str(ttype))
        if ttype in _FLOAT_TYPES:
            self._fail(
                f"float {role}; edgecnn runs int8 models "
                f"(tensor {index} is {type_name}; convert with int8 inference input and output types)"
            )
        self._fail(f"{role} tensor is {type_name}; edgecnn runs int8 models")

    # ------------------------------------------------------------ parsing

    def _op_name(self, code) -> str:
        builtin = max(code.DeprecatedBuiltinCode(), code.BuiltinCode())
        if builtin == tflite.BuiltinOperator.CUSTOM:
            custom = code.CustomCode()
            return f"CUSTOM:{custom.decode('utf-8', 'replace') if custom else '?'}"
        return md.OP_NAMES.get(builtin, f"BUILTIN_{builtin}")

    def _raw_op(self, i: int):
        op = self.sg.Operators(i)
        code_index = op.OpcodeIndex()
        if not 0 <= code_index < len(self.op_names):
            self._fail(f"op {i}: opcode index {code_index} out of range")
        kind = self.op_names[code_index]
        inputs = self._indices(op.InputsAsNumpy())
        outputs = self._indices(op.OutputsAsNumpy())
        if -1 in outputs:
            self._fail(f"op {i} ({kind}): output index -1")
        return i, (kind, inputs, outputs, op)

    def _tensor_name(self, t) -> str:
        raw = t.Name()
        return raw.decode("utf-8", "replace") if raw else ""

    def _tensor(self, index: int) -> Tensor:
        t = self.raw_tensors[index]
        name = self._tensor_name(t) or f"t{index}"
        if t.Type() not in _DTYPES:
            self._fail(f"tensor {index} ({name}) is {_TYPE_NAMES.get(t.Type(), t.Type())}; edgecnn uses int8 and int32")
        dtype = _DTYPES[t.Type()]
        if t.Sparsity() is not None:
            self._fail(f"tensor {index} ({name}) is sparse; edgecnn reads dense tensors only")
        if t.IsVariable():
            self._fail(f"tensor {index} ({name}) is a variable; edgecnn reads stateless models only")
        shape = self._ints(t.ShapeAsNumpy())
        if any(d < 0 for d in shape):
            self._fail(f"tensor {index} ({name}) has a negative dimension {shape}")
        scale, zero_point, qdim = np.zeros(0, np.float32), np.zeros(0, np.int64), 0
        q = t.Quantization()
        if q is not None:
            if q.DetailsType() != 0:
                self._fail(f"tensor {index} ({name}) uses custom quantization")
            scale = self._array(q.ScaleAsNumpy(), np.float32)
            zero_point = self._array(q.ZeroPointAsNumpy(), np.int64)
            if zero_point.size == 0:
                zero_point = np.zeros(scale.size, np.int64)
            qdim = int(q.QuantizedDimension())
        if dtype == "int8" and scale.size == 0:
            self._fail(f"tensor {index} ({name}) is int8 without quantization parameters")
        if scale.size != zero_point.size:
            self._fail(f"tensor {index} ({name}) has {scale.size} scales but {zero_point.size} zero points")
        if scale.size > 1 and not (0 <= qdim < len(shape) and shape[qdim] == scale.size):
            self._fail(f"tensor {index} ({name}): {scale.size} scales do not match dimension {qdim} of {shape}")
        raw = self._buffer(t.Buffer(), index, name)
        data = None
        if raw is not None:
            data = self._constant(raw, np.dtype(dtype).newbyteorder("<"), shape, index, name).astype(dtype)
        return Tensor(name, shape, dtype, scale, zero_point, qdim, data)

    def _ints(self, arr) -> tuple[int, ...]:
        return () if isinstance(arr, int) else tuple(int(v) for v in arr)

    def _array(self, arr, dtype) -> np.ndarray:
        return np.zeros(0, dtype) if isinstance(arr, int) else np.array(arr, dtype=dtype)

    def _buffer(self, index: int, tensor_index: int, name: str):
        """The tensor's constant bytes, or None for an activation."""
        if index == 0:
            return None
        if not 0 <= index < self._count(self.model.BuffersLength()):
            self._fail(f"tensor {tensor_index} ({name}): buffer {index} out of range")
        buf = self.model.Buffers(index)
        offset, size = _external(buf)
        if offset > 1:  # data stored after the flatbuffer (models > 2 GB)
            if offset + size > len(self.data):
                self._fail(f"tensor {tensor_index} ({name}): buffer {index} lies past the end of the file")
            return self.data[offset : offset + size]
        arr = buf.DataAsNumpy()
        if isinstance(arr, int) or arr.size == 0:
            return None
        return arr.tobytes()

    def _constant(self, raw: bytes, dtype: np.dtype, shape, index: int, name: str) -> np.ndarray:
        count = int(np.prod(shape, dtype=np.int64))
        if len(raw) != count * dtype.itemsize:
            need = count * dtype.itemsize
            self._fail(f"tensor {index} ({name}): {len(raw)} data bytes, shape {list(shape)} needs {need}")
        return np.frombuffer(raw, dtype=dtype).reshape(shape)

    def _metadata(self) -> dict:
        m = self.model
        for i in range(self._count(m.MetadataLength())):
            entry = m.Metadata(i)
            if entry.Name() == md.EDGECNN_METADATA_NAME.encode():
                raw = self._buffer(entry.Buffer(), -1, "metadata")
                return md.decode_edgecnn_metadata(raw or b"", self.name)
        return {}

    # ------------------------------------------------------------ options

    def _options(self, i: int, kind: str, op, expected: str, required: bool = True):
        table = op.BuiltinOptions()
        if table is None or op.BuiltinOptionsType() != getattr(tflite.BuiltinOptions, expected):
            if required:
                self._fail(f"op {i} ({kind}) has no {expected}")
            return None
        obj = getattr(tflite, expected)()
        obj.Init(table.Bytes, table.Pos)
        return obj

    def _enum(self, i: int, kind: str, table: dict, value: int, what: str) -> str:
        if value not in table:
            raise UnsupportedOpError(f"{self.name}: op {i} ({kind}) has unsupported {what} {value}")
        return table[value]

    def _graph_options(self, i: int, kind: str, op) -> dict:
        """The Int8Graph options dict of one supported op (RESHAPE is done in folding)."""
        if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            name = "Conv2DOptions" if kind == "CONV_2D" else "DepthwiseConv2DOptions"
            o = self._options(i, kind, op, name)
            opts = {
                "padding": self._enum(i, kind, _PADDINGS, o.Padding(), "padding"),
                "stride_h": o.StrideH(),
                "stride_w": o.StrideW(),
                "dilation_h_factor": o.DilationHFactor(),
                "dilation_w_factor": o.DilationWFactor(),
                "fused_activation_function": self._enum(
                    i, kind, _ACTIVATIONS, o.FusedActivationFunction(), "fused activation"
                ),
            }
            if kind == "DEPTHWISE_CONV_2D":
                opts["depth_multiplier"] = o.DepthMultiplier()
            return opts
        if kind == "FULLY_CONNECTED":
            o = self._options(i, kind, op, "FullyConnectedOptions", required=False)
            if o is None:
                return {"fused_activation_function": "NONE", "keep_num_dims": False}
            if o.WeightsFormat() != 0:
                raise UnsupportedOpError(f"{self.name}: op {i} (FULLY_CONNECTED) uses shuffled weights")
            return {
                "fused_activation_function": self._enum(
                    i, kind, _ACTIVATIONS, o.FusedActivationFunction(), "fused activation"
                ),
                "keep_num_dims": bool(o.KeepNumDims()),
            }
        if kind in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
            o = self._options(i, kind, op, "Pool2DOptions")
            return {
                "padding": self._enum(i, kind, _PADDINGS, o.Padding(), "padding"),
                "stride_h": o.StrideH(),
                "stride_w": o.StrideW(),
                "filter_height": o.FilterHeight(),
                "filter_width": o.FilterWidth(),
                "fused_activation_function": self._enum(
                    i, kind, _ACTIVATIONS, o.FusedActivationFunction(), "fused activation"
                ),
            }
        if kind == "SOFTMAX":
            return {"beta": float(self._options(i, kind, op, "SoftmaxOptions").Beta())}
        return {}  # LOGISTIC, TANH

    # ------------------------------------------------------------ folding

    def _fold_shapes(self, ops, graph_outputs):
        """Turn every op into (kind, inputs, outputs, options); fold shape chains.

        Returns [(file op index, (kind, inputs, outputs, options))] without the
        shape ops whose results only fed folded RESHAPEs.
        """
        self.producer = {}
        for i, (kind, _ins, outs, _op) in ops:
            for t in outs:
                self.producer[t] = i
        self.raw_ops = dict(ops)
        self.memo = {}
        self.folded_tensors = set()
        result = []
        for i, (kind, ins, outs, op) in ops:
            if kind == "RESHAPE":
                self.folded_tensors.update(ins[1:])
                ins, options = self._reshape(i, ins, op)
            elif kind in OPS:
                options = self._graph_options(i, kind, op)
            else:
                options = {}
            result.append((i, (kind, ins, outs, options)))
        # Drop shape ops nobody reads any more, consumers first.
        changed = True
        while changed:
            read = {t for _, (_, ins, _, _) in result for t in ins} | set(graph_outputs)
            kept = [r for r in result if r[1][0] not in _SHAPE_OPS or any(t in read for t in r[1][2])]
            for _, (_, ins, outs, _) in (r for r in result if r not in kept):
                self.folded_tensors.update(ins + outs)
            changed = len(kept) != len(result)
            result = kept
        return result

    def _reshape(self, i: int, ins: list, op):
        if not ins or ins[0] == -1:
            self._fail(f"op {i} (RESHAPE) has no input")
        if len(ins) >= 2 and ins[1] != -1:
            # The shape tensor wins over the options, as in the kernel.
            try:
                value = self._value(ins[1])
            except _NotFoldable:
                producer = self.producer.get(ins[1])
                if producer is not None and self.raw_ops[producer][0] not in OPS:
                    return ins, {}  # the producer is reported as unsupported
                self._fail(f"op {i} (RESHAPE): its shape is only known at run time")
            if value.ndim != 1:
                self._fail(f"op {i} (RESHAPE): shape tensor has rank {value.ndim}, expected 1")
            return [ins[0]], {"new_shape": self._resolve_batch(i, value, ins[0])}
        o = self._options(i, "RESHAPE", op, "ReshapeOptions")
        return [ins[0]], {"new_shape": list(self._ints(o.NewShapeAsNumpy()))}

    def _resolve_batch(self, i: int, value: np.ndarray, x: int) -> list[int]:
        """Replace the symbolic batch by -1 (and any other -1 by its size)."""
        n_batch = int(np.sum(value == _BATCH))
        shape = [int(v) for v in value]
        if n_batch == 0:
            return shape
        if n_batch > 1:
            raise UnsupportedOpError(f"{self.name}: op {i} (RESHAPE) uses the batch size twice in its shape")
        if shape.count(-1) == 1:
            per_item = int(np.prod(self._ints(self.raw_tensors[x].ShapeAsNumpy())[1:], dtype=np.int64))
            known = int(np.prod([d for d in shape if d not in (-1, int(_BATCH))], dtype=np.int64))
            if known <= 0 or per_item % known:
                self._fail(f"op {i} (RESHAPE): shape {shape} does not divide the input")
            shape[shape.index(-1)] = per_item // known
        return [-1 if d == int(_BATCH) else d for d in shape]

    def _value(self, t: int) -> np.ndarray:
        """Evaluate int32 tensor `t` now, the batch dimension as `_BATCH`."""
        if t in self.memo:
            if self.memo[t] is None:  # failed before, or a cycle
                raise _NotFoldable
            return self.memo[t]
        self.memo[t] = None
        raw = self.raw_tensors[t]
        if t in self.producer:
            value = self._evaluate(self.producer[t])
        else:
            if raw.Type() not in _SHAPE_DTYPES:
                raise _NotFoldable
            data = self._buffer(raw.Buffer(), t, self._tensor_name(raw))
            if data is None:
                raise _NotFoldable  # a graph input or an empty constant
            shape = self._ints(raw.ShapeAsNumpy())
            value = self._constant(data, np.dtype(_SHAPE_DTYPES[raw.Type()]), shape, t, "shape").astype(np.int64)
        self.memo[t] = value
        return value

    def _evaluate(self, i: int) -> np.ndarray:
        kind, ins, outs, op = self.raw_ops[i]
        if kind not in _SHAPE_OPS or len(outs) != 1:
            raise _NotFoldable
        if kind == "SHAPE":
            src = self.raw_tensors[ins[0]]
            shape = np.array(self._ints(src.ShapeAsNumpy()), dtype=np.int64)
            is_activation = self._buffer(src.Buffer(), ins[0], "") is None
            if is_activation and shape.size:
                shape[0] = _BATCH
            return shape
        args = [self._value(t) for t in ins]
        if kind == "STRIDED_SLICE":
            o = self._options(i, kind, op, "StridedSliceOptions")
            if o.EllipsisMask() or o.NewAxisMask() or getattr(o, "Offset", lambda: False)() or len(args) != 4:
                raise _NotFoldable
            x, begin, end, strides = args
            if x.ndim != 1 or begin.shape != (1,) or end.shape != (1,) or strides.shape != (1,):
                raise _NotFoldable
            if (begin == _BATCH).any() or (end == _BATCH).any() or strides[0] in (0, _BATCH):
                raise _NotFoldable
            b = None if o.BeginMask() & 1 else int(begin[0])
            e = None if o.EndMask() & 1 else int(end[0])
            if o.ShrinkAxisMask() & 1:
                if b is None or not -x.size <= b < x.size:
                    raise _NotFoldable
                return np.array(x[b], dtype=np.int64)
            return x[b:e : int(strides[0])]
        if kind == "PACK":
            axis = self._options(i, kind, op, "PackOptions").Axis()
            if not args or len({a.shape for a in args}) != 1 or not -args[0].ndim - 1 <= axis <= args[0].ndim:
                raise _NotFoldable
            return np.stack(args, axis=axis)
        # CONCATENATION
        o = self._options(i, kind, op, "ConcatenationOptions")
        if o.FusedActivationFunction() != 0 or not args or args[0].ndim == 0:
            raise _NotFoldable
        try:
            return np.concatenate(args, axis=o.Axis())
        except (ValueError, IndexError):  # AxisError is both
            raise _NotFoldable from None
