"""Int8Graph -> `.tflite` bytes, with the flatbuffers builder and the `tflite`
package's schema bindings (no TensorFlow, no LiteRT needed).

Layout choices, all as the TF converter makes them unless said otherwise:
- one subgraph "main", model version 3, file identifier "TFL3";
- buffer 0 is the empty sentinel and every activation points at it; each
  distinct constant gets one buffer (identical constants share it), its data
  aligned to 16 bytes so int32 biases can be read in place on ARM;
- activations carry `shape_signature` with batch -1, so LiteRT resizes them;
- operator codes fill both `deprecated_builtin_code` (capped at 127) and
  `builtin_code`, with the converter's int8 versions (each op's registration);
- a `serving_default` SignatureDef maps the graph's input/output names;
- metadata: "min_runtime_version" (16 bytes) and "edgecnn" (JSON envelope).
Default-valued fields are left out (the builder elides them), which keeps
LeNet-5 close to its raw weight bytes.
"""

from __future__ import annotations

import os

import flatbuffers
import numpy as np
import tflite

import edgecnn
from edgecnn.int8.graph import Int8Graph
from edgecnn.deploy.ops import lookup
from edgecnn.deploy.ops.base import OPTIONAL
from edgecnn.deploy.tflite import metadata as md
from edgecnn.errors import ModelError
from edgecnn.fileio import atomic_write_bytes

SCHEMA_VERSION = 3
FILE_IDENTIFIER = b"TFL3"
SIGNATURE_KEY = "serving_default"
DATA_ALIGNMENT = 16

TENSOR_TYPES = {
    "int8": tflite.TensorType.INT8,
    "uint8": tflite.TensorType.UINT8,
    "int16": tflite.TensorType.INT16,
    "int32": tflite.TensorType.INT32,
    "int64": tflite.TensorType.INT64,
    "float32": tflite.TensorType.FLOAT32,
}


def to_bytes(graph: Int8Graph) -> bytes:
    """Serialise `graph` as a `.tflite` flatbuffer."""
    graph.validate()
    for i, op in enumerate(graph.ops):
        opdef = lookup(op.kind)
        lo, hi = opdef.input_range()
        lo = max(lo, opdef.min_written_inputs or 0)
        if not lo <= len(op.inputs) <= hi or len(op.outputs) != opdef.outputs or -1 in op.inputs[:1]:
            raise ModelError(
                f"op {i} ({op.kind}): {len(op.inputs)} inputs / {len(op.outputs)} outputs is not a valid {op.kind}"
            )
        for position, t in enumerate(op.inputs):
            if t == -1 and opdef.operand(position).kind != OPTIONAL:
                raise ModelError(f"op {i} ({op.kind}) has no {opdef.operand(position).name}")
            if t == -1 and position < lo:
                raise ModelError(f"op {i} ({op.kind}) has no {opdef.operand(position).name}; LiteRT needs one "
                                 "(give a conv a zero int32 bias at scale in_s*w_s)")  # fmt: skip
    const_bytes = sum(t.data.nbytes for t in graph.tensors if t.data is not None)
    b = flatbuffers.Builder(const_bytes + 4096)

    # Children before parents: flatbuffers are built back to front, so the
    # big weight blobs go first and end up at the end of the file.
    buffer_data = [b""]  # buffer 0: the empty sentinel
    buffer_of_tensor = [_buffer_index(t, buffer_data) for t in graph.tensors]
    versions = [(op.kind, lookup(op.kind).version(graph, op)) for op in graph.ops]
    buffer_data.append(md.min_runtime_buffer(md.min_runtime_version(versions)))
    buffer_data.append(md.encode_edgecnn_metadata(graph.metadata, edgecnn.__version__))
    meta_buffers = {md.MIN_RUNTIME_NAME: len(buffer_data) - 2, md.EDGECNN_METADATA_NAME: len(buffer_data) - 1}
    buffers = [_buffer(b, data) for data in buffer_data]

    tensors = [_tensor(b, t, buf) for t, buf in zip(graph.tensors, buffer_of_tensor)]
    codes = list(dict.fromkeys(versions))  # (kind, version) in first-use order
    operators = [_operator(b, graph, i, op, codes.index(v)) for i, (op, v) in enumerate(zip(graph.ops, versions))]

    name = b.CreateString("main")
    sg_tensors = _table_vector(b, tflite.SubGraphStartTensorsVector, tensors)
    sg_inputs = _int32_vector(b, graph.inputs)
    sg_outputs = _int32_vector(b, graph.outputs)
    sg_ops = _table_vector(b, tflite.SubGraphStartOperatorsVector, operators)
    tflite.SubGraphStart(b)
    tflite.SubGraphAddTensors(b, sg_tensors)
    tflite.SubGraphAddInputs(b, sg_inputs)
    tflite.SubGraphAddOutputs(b, sg_outputs)
    tflite.SubGraphAddOperators(b, sg_ops)
    tflite.SubGraphAddName(b, name)
    subgraph = tflite.SubGraphEnd(b)

    op_codes = [_operator_code(b, kind, version) for kind, version in codes]
    metadata = [_metadata(b, key, index) for key, index in meta_buffers.items()]
    signature = _signature(b, graph)
    description = b.CreateString(f"edgecnn {edgecnn.__version__}")

    m_codes = _table_vector(b, tflite.ModelStartOperatorCodesVector, op_codes)
    m_subgraphs = _table_vector(b, tflite.ModelStartSubgraphsVector, [subgraph])
    m_buffers = _table_vector(b, tflite.ModelStartBuffersVector, buffers)
    m_metadata = _table_vector(b, tflite.ModelStartMetadataVector, metadata)
    m_signatures = _table_vector(b, tflite.ModelStartSignatureDefsVector, [signature])
    tflite.ModelStart(b)
    tflite.ModelAddVersion(b, SCHEMA_VERSION)
    tflite.ModelAddOperatorCodes(b, m_codes)
    tflite.ModelAddSubgraphs(b, m_subgraphs)
    tflite.ModelAddDescription(b, description)
    tflite.ModelAddBuffers(b, m_buffers)
    tflite.ModelAddMetadata(b, m_metadata)
    tflite.ModelAddSignatureDefs(b, m_signatures)
    b.Finish(tflite.ModelEnd(b), file_identifier=FILE_IDENTIFIER)
    return bytes(b.Output())


def write_tflite(graph: Int8Graph, path: str | os.PathLike) -> int:
    """Write `graph` to `path` atomically; returns the file size in bytes."""
    data = to_bytes(graph)
    atomic_write_bytes(path, data)
    return len(data)


# ---------------------------------------------------------------- pieces


def _buffer_index(t, buffer_data: list) -> int:
    """Buffer index for tensor `t`, appending its bytes unless already present."""
    if t.data is None:
        return 0
    expected = int(np.prod(t.shape, dtype=np.int64))
    if t.data.size != expected:
        raise ModelError(f"tensor {t.name}: data has {t.data.size} elements, shape {t.shape} needs {expected}")
    raw = t.data.astype(t.data.dtype.newbyteorder("<"), copy=False).tobytes()
    if raw and raw in buffer_data:
        return buffer_data.index(raw)
    buffer_data.append(raw)
    return len(buffer_data) - 1


def _buffer(b, data: bytes) -> int:
    vec = None
    if data:
        # CreateByteVector aligns to 4 only; weights get DATA_ALIGNMENT.
        b.StartVector(1, len(data), DATA_ALIGNMENT)
        b.head = b.Head() - len(data)
        b.Bytes[b.Head() : b.Head() + len(data)] = data
        vec = b.EndVector()
    tflite.BufferStart(b)
    if vec is not None:
        tflite.BufferAddData(b, vec)
    return tflite.BufferEnd(b)


def _tensor(b, t, buffer: int) -> int:
    if t.dtype not in TENSOR_TYPES:
        raise ModelError(f"tensor {t.name}: dtype {t.dtype} cannot be written")
    if t.scale.size != t.zero_point.size:
        raise ModelError(f"tensor {t.name}: {t.scale.size} scales but {t.zero_point.size} zero points")
    name = b.CreateString(t.name)
    shape = _int32_vector(b, t.shape)
    signature = None
    if t.data is None and len(t.shape) > 0:
        signature = _int32_vector(b, (-1,) + tuple(t.shape[1:]))
    quant = None
    if t.scale.size:
        scale = b.CreateNumpyVector(t.scale.astype("<f4"))
        zero_point = b.CreateNumpyVector(t.zero_point.astype("<i8"))
        tflite.QuantizationParametersStart(b)
        tflite.QuantizationParametersAddScale(b, scale)
        tflite.QuantizationParametersAddZeroPoint(b, zero_point)
        tflite.QuantizationParametersAddQuantizedDimension(b, int(t.quantized_dimension))
        quant = tflite.QuantizationParametersEnd(b)
    tflite.TensorStart(b)
    tflite.TensorAddShape(b, shape)
    tflite.TensorAddType(b, TENSOR_TYPES[t.dtype])
    tflite.TensorAddBuffer(b, buffer)
    tflite.TensorAddName(b, name)
    if quant is not None:
        tflite.TensorAddQuantization(b, quant)
    if signature is not None:
        tflite.TensorAddShapeSignature(b, signature)
    return tflite.TensorEnd(b)


def _operator(b, graph, index: int, op, opcode_index: int) -> int:
    try:
        options_type, options = _options(b, graph, op)
    except (KeyError, ValueError, TypeError) as e:
        raise ModelError(f"op {index} ({op.kind}): missing or invalid option ({e})") from None
    inputs = _int32_vector(b, op.inputs)
    outputs = _int32_vector(b, op.outputs)
    tflite.OperatorStart(b)
    tflite.OperatorAddOpcodeIndex(b, opcode_index)
    tflite.OperatorAddInputs(b, inputs)
    tflite.OperatorAddOutputs(b, outputs)
    if options is not None:
        tflite.OperatorAddBuiltinOptionsType(b, options_type)
        tflite.OperatorAddBuiltinOptions(b, options)
    return tflite.OperatorEnd(b)


def _options(b, graph, op):
    """(BuiltinOptions type, table offset) for `op`, from its registration; (NONE, None) if it has none."""
    opdef = lookup(op.kind)
    if opdef.options_table is None or opdef.encode is None:
        return tflite.BuiltinOptions.NONE, None
    return getattr(tflite.BuiltinOptions, opdef.options_table), opdef.encode(b, op.options, graph, op)


def _operator_code(b, kind: str, version: int) -> int:
    code = md.OP_CODES[kind]
    tflite.OperatorCodeStart(b)
    tflite.OperatorCodeAddDeprecatedBuiltinCode(b, min(code, md.PLACEHOLDER_FOR_GREATER_OP_CODES))
    tflite.OperatorCodeAddVersion(b, version)
    tflite.OperatorCodeAddBuiltinCode(b, code)
    return tflite.OperatorCodeEnd(b)


def _metadata(b, key: str, buffer: int) -> int:
    name = b.CreateString(key)
    tflite.MetadataStart(b)
    tflite.MetadataAddName(b, name)
    tflite.MetadataAddBuffer(b, buffer)
    return tflite.MetadataEnd(b)


def _signature(b, graph) -> int:
    def tensor_maps(indices):
        maps = []
        for i in indices:
            name = b.CreateString(graph.tensors[i].name)
            tflite.TensorMapStart(b)
            tflite.TensorMapAddName(b, name)
            tflite.TensorMapAddTensorIndex(b, i)
            maps.append(tflite.TensorMapEnd(b))
        return maps

    inputs = _table_vector(b, tflite.SignatureDefStartInputsVector, tensor_maps(graph.inputs))
    outputs = _table_vector(b, tflite.SignatureDefStartOutputsVector, tensor_maps(graph.outputs))
    key = b.CreateString(SIGNATURE_KEY)
    tflite.SignatureDefStart(b)
    tflite.SignatureDefAddInputs(b, inputs)
    tflite.SignatureDefAddOutputs(b, outputs)
    tflite.SignatureDefAddSignatureKey(b, key)
    tflite.SignatureDefAddSubgraphIndex(b, 0)
    return tflite.SignatureDefEnd(b)


def _int32_vector(b, values) -> int:
    return b.CreateNumpyVector(np.asarray(list(values), dtype="<i4"))


def _table_vector(b, start, offsets) -> int:
    start(b, len(offsets))
    for off in reversed(offsets):
        b.PrependUOffsetTRelative(off)
    return b.EndVector()
