""".tflite (path or bytes) -> Int8Graph, for the ops in edgecnn's registry.

Reads edgecnn's own files field for field, and int8 files from the TensorFlow
converter. Those differ in one way that matters: Keras computes some shapes
at run time (Flatten on a dynamic batch is SHAPE -> STRIDED_SLICE -> PACK ->
RESHAPE; Dense on a 4-D tensor adds GATHER and REDUCE_PROD). Shapes are
static here, so the reader evaluates such shape subgraphs with the registry's
fold rules, twice (batch 1 and batch 2, to see which entries follow the
batch), folds the result into RESHAPE's `new_shape` (e.g. [-1, 400]) or into
a constant, and drops the shape ops.

Anything else is refused with an edgecnn error, never a low-level traceback:
bad bytes -> TFLiteFormatError, float models -> TFLiteFormatError, an
operator edgecnn lacks -> UnsupportedOpError naming it.
"""

from __future__ import annotations

import math
import os
import struct
from pathlib import Path

import numpy as np
import tflite

from edgecnn.deploy.ops import REGISTRY
from edgecnn.deploy.ops.space_batch_common import restore_block_batches
from edgecnn.int8.graph import Int8Graph, Op, Tensor
from edgecnn.deploy.tflite import metadata as md
from edgecnn.deploy.tflite.verify import verify_model
from edgecnn.errors import EdgecnnError, TFLiteFormatError, UnsupportedOpError

FILE_IDENTIFIER = b"TFL3"
SCHEMA_VERSION = 3

_TYPE_NAMES = {v: k for k, v in vars(tflite.TensorType).items() if not k.startswith("_")}
_DTYPES = {
    tflite.TensorType.INT8: "int8",
    tflite.TensorType.UINT8: "uint8",
    tflite.TensorType.INT16: "int16",
    tflite.TensorType.INT32: "int32",
    tflite.TensorType.INT64: "int64",
    tflite.TensorType.FLOAT32: "float32",
}
_FLOAT_TYPES = tuple(
    getattr(tflite.TensorType, n)
    for n in ("FLOAT32", "FLOAT16", "FLOAT64", "BFLOAT16")
    if hasattr(tflite.TensorType, n)
)
_SHAPE_DTYPES = {tflite.TensorType.INT32: "<i4", tflite.TensorType.INT64: "<i8"}

# Malformed offsets surface as these inside the flatbuffers accessors.
_LOW_LEVEL_ERRORS = (struct.error, IndexError, ValueError, TypeError, OverflowError, UnicodeDecodeError, KeyError)


def read_tflite(source) -> Int8Graph:
    """Parse a `.tflite` (a path, or the bytes themselves) into an Int8Graph."""
    data, name = _load(source)
    verify_model(data, name)  # what LiteRT's loader checks first: offsets, vtables, lengths in bounds
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
            if t.Type() in _FLOAT_TYPES and self._buffer(t.Buffer(), i, self._tensor_name(t)) is not None:
                self._fail(
                    f"tensor {i} ({self._tensor_name(t)}) is a {_TYPE_NAMES[t.Type()]} constant: "
                    "a float or hybrid model; edgecnn runs int8 models"
                )

        ops = [self._raw_op(i) for i in range(self._count(self.sg.OperatorsLength()))]
        ops = self._fold_shapes(ops, outputs)
        for i, (kind, *_rest) in ops:
            if kind not in REGISTRY:
                raise UnsupportedOpError(f"{self.name}: unsupported operator {kind} (op {i})")

        # Drop the tensors only the folded shape computation touched; keep the
        # rest in file order, so edgecnn's own files read back index for index.
        used = {t for _, (_, ins, outs, _) in ops for t in ins + outs} | set(inputs) | set(outputs)
        used = [t for t in range(len(self.raw_tensors)) if t in used or t not in self.folded_tensors]
        new_index = {old: new for new, old in enumerate(used)}
        tensors = [self._tensor(old) for old in used]
        for old, shape in self.static_shapes.items():
            if old in new_index:
                tensors[new_index[old]].shape = shape
        for old, value in self.materialized.items():
            if old in new_index:
                tensors[new_index[old]].data = value.astype(tensors[new_index[old]].dtype)
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
        # The converter records 1 for the rows a SPACE_TO_BATCH_ND makes of one image (Keras 3 dilations);
        # edgecnn's shapes are static, so they get their real count (a no-op on edgecnn's own files).
        restore_block_batches(graph)
        try:
            return graph.validate()
        except EdgecnnError as e:
            raise TFLiteFormatError(f"{self.name}: {e}") from None

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
        if ttype in (tflite.TensorType.INT8, tflite.TensorType.UINT8, tflite.TensorType.FLOAT32):
            return  # float and uint8 edges go through the model's own QUANTIZE / DEQUANTIZE
        type_name = _TYPE_NAMES.get(ttype, str(ttype))
        self._fail(f"{role} tensor is {type_name}; edgecnn runs models with int8, uint8 or float32 inputs and outputs")

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
            self._fail(f"tensor {index} ({name}) is {_TYPE_NAMES.get(t.Type(), t.Type())}; edgecnn does not read that element type")
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
        if dtype in ("int8", "uint8", "int16") and scale.size == 0:
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

    def _graph_options(self, i: int, kind: str, op) -> dict:
        """The IR options dict of op i, decoded by its registration."""
        opdef = REGISTRY[kind]
        if opdef.options_table is None:
            return {}
        table = op.BuiltinOptions()
        if table is None or op.BuiltinOptionsType() != getattr(tflite.BuiltinOptions, opdef.options_table):
            if opdef.options_required:
                self._fail(f"op {i} ({kind}) has no {opdef.options_table}")
            return opdef.decode(None)
        obj = getattr(tflite, opdef.options_table)()
        obj.Init(table.Bytes, table.Pos)
        try:
            return opdef.decode(obj)
        except UnsupportedOpError as e:
            raise UnsupportedOpError(f"{self.name}: op {i} ({kind}): {e}") from None

    # ------------------------------------------------------------ folding

    def _fold_shapes(self, ops, graph_outputs):
        """Turn every op into (kind, inputs, outputs, options); fold static shape subgraphs.

        One pass in execution order evaluates every op with a fold rule whose
        inputs are known, at batch 1 and at batch 2. RESHAPE takes a folded
        shape input into `new_shape`; any other op reading a folded value gets
        it as a constant. Returns [(file op index, (kind, inputs, outputs,
        options))] without the ops folded away.

        The pass is a loop over the op list, never a recursion over the
        producer chain, so a hostile file with thousands of chained shape
        ops costs time linear in its size and cannot exhaust the stack.
        """
        self.folded_tensors = set()
        self.materialized = {}
        self.static_shapes: dict[int, tuple[int, ...]] = {}  # tensor -> its batch-1 shape, where the file's is dynamic
        values: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # tensor -> (value at batch 1, at batch 2)
        folded_ops = set()
        self.producer_kind = {t: kind for _, (kind, _, outs, _) in ops for t in outs}
        for i, (kind, ins, outs, op) in ops:
            opdef = REGISTRY.get(kind)
            if opdef is None or (opdef.fold is None and kind != "SHAPE"):
                continue
            try:
                results = self._fold_op(i, kind, ins, op, opdef, values)
            except (UnsupportedOpError, ValueError, IndexError, TypeError, OverflowError):
                continue  # not a static shape computation: left to the runtime, which may refuse it
            if results is None or len(results) != len(outs):
                continue
            for t, pair in zip(outs, results):
                values[t] = pair
            folded_ops.add(i)

        result = []
        for i, (kind, ins, outs, op) in ops:
            if i in folded_ops:
                continue
            if kind == "RESHAPE":
                ins, options = self._reshape(i, ins, op, values)
            elif kind in REGISTRY:
                options = self._graph_options(i, kind, op)
            else:
                options = {}
            if kind != "RESHAPE":  # a RESHAPE sets its own output's shape
                self._propagate_rows(ins, outs)
            result.append((i, (kind, ins, outs, options)))
        # Folded values still read by a kept op become constants (batch-free ones only).
        for _, (kind, ins, _, _) in result:
            for t in ins:
                if t in values and self._buffer(self.raw_tensors[t].Buffer(), t, "") is None:
                    at1, at2 = values[t]
                    if not np.array_equal(at1, at2):
                        self._fail(f"{kind} reads a shape value that depends on the batch size")
                    self.materialized[t] = at1
        by_index = dict(ops)
        for i in folded_ops:
            _, ins, outs, _ = by_index[i]
            self.folded_tensors.update(t for t in ins + outs if t not in self.materialized)
        return result

    def _propagate_rows(self, ins: list, outs: list) -> None:
        """Carry a leading dimension the folding learned down the ops that keep it.

        The converter writes a dynamic leading dimension as 1 in `shape` and
        -1 in `shape_signature`. For Keras' Dense on (N, H, W, C) that
        dimension is not the batch but the N*H*W rows of RESHAPE's output,
        which `_reshape` sets (H*W*... at batch 1); the FULLY_CONNECTED after
        it writes (1, units) for what is (rows, units). An op whose output
        and first input both have the dynamic leading dimension keeps it, so
        the output takes the input's learned value. Called in op order for
        every kept op but RESHAPE. Nothing else changes.
        """
        if not ins or ins[0] not in self.static_shapes or not self._dynamic_lead(ins[0]):
            return
        rows = self.static_shapes[ins[0]][0]
        file_rows = self._ints(self.raw_tensors[ins[0]].ShapeAsNumpy())[:1]
        for t in outs:
            shape = self._ints(self.raw_tensors[t].ShapeAsNumpy())
            # Same placeholder in the file on both sides: the op keeps the dimension (BATCH_TO_SPACE_ND does not).
            if t not in self.static_shapes and shape[:1] == file_rows and self._dynamic_lead(t):
                self.static_shapes[t] = (rows,) + shape[1:]

    def _dynamic_lead(self, t: int) -> bool:
        signature = self.raw_tensors[t].ShapeSignatureAsNumpy()
        return not isinstance(signature, int) and signature.size > 0 and int(signature[0]) == -1

    def _fold_op(self, i, kind, ins, op, opdef, values):
        if kind == "SHAPE":
            if len(ins) != 1 or ins[0] == -1:
                return None
            src = self.raw_tensors[ins[0]]
            shape = np.array(self._ints(src.ShapeAsNumpy()), dtype=np.int64)
            at2 = shape.copy()
            if self._buffer(src.Buffer(), ins[0], "") is None and shape.size:
                at2[0] *= 2  # an activation: its first dimension is the batch
            return [(shape, at2)]
        args = [self._shape_value(t, values) for t in ins]
        if any(a is None for a in args):
            return None
        options = self._graph_options(i, kind, op)
        at1 = opdef.fold([a[0] for a in args], options)
        at2 = opdef.fold([a[1] for a in args], options)
        return [(np.asarray(x, dtype=np.int64), np.asarray(y, dtype=np.int64)) for x, y in zip(at1, at2)]

    def _shape_value(self, t: int, values):
        """(batch-1 value, batch-2 value) of an int32/int64 tensor known before run time, or None."""
        if t == -1:
            return None
        if t in values:
            return values[t]
        raw = self.raw_tensors[t]
        if raw.Type() not in _SHAPE_DTYPES:
            return None
        data = self._buffer(raw.Buffer(), t, self._tensor_name(raw))
        if data is None:
            return None
        shape = self._ints(raw.ShapeAsNumpy())
        value = self._constant(data, np.dtype(_SHAPE_DTYPES[raw.Type()]), shape, t, "shape").astype(np.int64)
        return value, value

    def _reshape(self, i: int, ins: list, op, values):
        if not ins or ins[0] == -1:
            self._fail(f"op {i} (RESHAPE) has no input")
        if len(ins) >= 2 and ins[1] != -1:
            # The shape tensor wins over the options, as in the kernel.
            pair = self._shape_value(ins[1], values)
            if pair is None:
                if self.producer_kind.get(ins[1], "RESHAPE") not in REGISTRY:
                    return ins, {}  # the producer is reported as unsupported
                self._fail(f"op {i} (RESHAPE): its shape is only known at run time")
            at1, at2 = pair
            if at1.ndim != 1:
                self._fail(f"op {i} (RESHAPE): shape tensor has rank {at1.ndim}, expected 1")
            self.folded_tensors.add(ins[1])
            new_shape = self._resolve_batch(i, at1, at2, ins[0])
            self._record_reshape_output(op, at1, ins[0])
            return [ins[0]], {"new_shape": new_shape}
        return [ins[0]], self._graph_options(i, "RESHAPE", op)

    def _record_reshape_output(self, op, at1: np.ndarray, x: int) -> None:
        """The output's batch-1 shape is the folded shape at batch 1 (a -1 in it resolved).

        Only where the file's output shape is dynamic (-1 in its signature):
        the converter writes (1, 1) for the (N*H*W, C) that Keras' Dense on
        a 4-D tensor reshapes to.
        """
        outputs = self._indices(op.OutputsAsNumpy())
        if len(outputs) != 1 or not self._dynamic_lead(outputs[0]):
            return
        shape = [int(v) for v in at1]
        size = int(np.prod(self.static_shapes.get(x, self._ints(self.raw_tensors[x].ShapeAsNumpy())), dtype=np.int64))
        if shape.count(-1) == 1:
            known = int(np.prod([d for d in shape if d != -1], dtype=np.int64))
            if known <= 0 or size % known:
                return  # left as the file says: prepare reports the mismatch
            shape[shape.index(-1)] = size // known
        if any(d < 0 for d in shape) or math.prod(shape) != size:  # exact: a crafted product cannot wrap onto size
            return
        self.static_shapes[outputs[0]] = tuple(shape)  # recorded even if the file agrees: it stops _propagate_rows

    def _resolve_batch(self, i: int, at1: np.ndarray, at2: np.ndarray, x: int) -> list[int]:
        """The batch-dependent entry becomes -1; a -1 beside it becomes its size."""
        batch_entries = [k for k in range(at1.size) if at1[k] != at2[k]]
        shape = [int(v) for v in at1]
        if not batch_entries:
            return shape
        if len(batch_entries) > 1:
            raise UnsupportedOpError(f"{self.name}: op {i} (RESHAPE) uses the batch size twice in its shape")
        k = batch_entries[0]
        if shape.count(-1) == 1 and shape[k] != -1:
            per_item = int(np.prod(self._ints(self.raw_tensors[x].ShapeAsNumpy())[1:], dtype=np.int64))
            known = int(np.prod([d for j, d in enumerate(shape) if d != -1 and j != k], dtype=np.int64))
            if known <= 0 or per_item % known:
                self._fail(f"op {i} (RESHAPE): shape {shape} does not divide the input")
            shape[shape.index(-1)] = per_item // known
        shape[k] = -1
        return shape
