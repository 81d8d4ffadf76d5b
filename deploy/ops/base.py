"""What an op registration holds, and the checks every prepare step shares.

An `OpDef` is everything edgecnn knows about one TFLite builtin: its operands,
its options codec (flatbuffer table <-> the IR's dict), its version and the
oldest runtime with that version, its prepare step (floats -> frozen integer
params, LiteRT's load-time checks), the Numba kernel and the naive reference
it runs with, an optional constant-folding rule (shape ops), and the C and
ONNX lowerings. Drivers (reader, writer, runtime, exporters, summary) look
ops up in `edgecnn.deploy.ops.REGISTRY` and never name one.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple

import numpy as np

from edgecnn.errors import ModelError, QuantizationError, ShapeError, UnsupportedOpError
from edgecnn.int8.graph import Int8Graph, Op, Tensor
from edgecnn.int8.padding import compute_padding
from edgecnn.int8.rules import activation_range, quantize_multipliers

# Operand kinds: what may fill an input slot.
ACTIVATION = "activation"  # computed at run time (or, where allowed, a constant fed like one)
CONSTANT = "constant"  # must be a constant tensor
OPTIONAL = "optional"  # a constant, or -1 / absent
ANY = "any"  # computed or constant: both are fed to the kernel as (shape, data)


class Operand(NamedTuple):
    name: str
    kind: str


@dataclass(frozen=True)
class Prepared:
    """What prepare computes for one op: its frozen params, the tensors it reads at run time, extra constants."""

    params: Any
    inputs: tuple[int, ...]  # tensor indices passed to the kernel as (shape, data), in order
    constants: tuple = ()  # ((shape, flat data), ...) passed after the inputs
    outputs: tuple[int, ...] = ()  # filled in by the driver when left empty


@dataclass(frozen=True)
class OpDef:
    name: str
    operands: tuple[Operand, ...]
    variadic: bool = False  # the last operand repeats (CONCATENATION, PACK)
    min_inputs: int | None = None  # defaults to the operands up to the first optional one
    min_written_inputs: int | None = None  # what the writer insists on, where LiteRT needs more than the spec
    outputs: int = 1
    options_table: str | None = None  # the flatbuffer BuiltinOptions table name
    decode: Callable | None = None  # (options table object) -> options dict
    encode: Callable | None = None  # (builder, options dict, graph, op) -> table offset
    options_required: bool = True  # a missing options table is an error (else decode(None))
    version: Callable = lambda graph, op: 1
    min_runtime: dict = field(default_factory=dict)  # version -> "major.minor.patch"
    prepare: Callable | None = None  # (PrepareContext) -> Prepared; None: fold-only (shape ops)
    kernel: str | None = None  # "module:function" of the Numba kernel, imported on first use
    naive: Callable | None = None  # plain-Python reference with the kernel's arguments, returns the output
    fold: Callable | None = None  # (list of input values, options) -> list of output values, for shape ops
    # C lowering: c(emit, step) -> CSource (deploy/export/c_source.py). `emit` is the exporter's
    # deploy.export.c.CEmitter (graph, names, literals); `step` the PreparedOp (params, inputs,
    # constants, outputs). The call uses @IN0@.. @OUT0@.. @SCRATCH@ placeholders. See docs/ops.md.
    c: Callable | None = None
    # The op's C kernel text: {block name: c_block(deps, text)}; names are unique across the registry
    # and c_source.BLOCKS (the shared fixed-point primitives). Only blocks a model uses are emitted.
    c_blocks: dict = field(default_factory=dict)
    # ONNX lowering: onnx(lw, step) -> None. Reads inputs with lw.nhwc(t) / lw.nchw(t) /
    # lw.any_layout(t), builds nodes with lw.b (export/onnx_builder.OnnxGraphBuilder) and sets every
    # output with lw.set(t, value, layout). Import onnx inside the function, never at module level.
    onnx: Callable | None = None

    def input_range(self) -> tuple[int, int]:
        if self.min_inputs is not None:
            lo = self.min_inputs
        else:
            lo = next((i for i, o in enumerate(self.operands) if o.kind == OPTIONAL), len(self.operands))
        hi = 10**6 if self.variadic else len(self.operands)
        return lo, hi

    def operand(self, position: int) -> Operand:
        if position < len(self.operands):
            return self.operands[position]
        return self.operands[-1]  # variadic tail

    def numba_kernel(self) -> Callable:
        cached = _KERNELS.get(self.name)
        if cached is None:
            if self.kernel is None:
                raise UnsupportedOpError(f"{self.name} has no runtime kernel")
            module, _, function = self.kernel.partition(":")
            cached = _KERNELS[self.name] = getattr(importlib.import_module(module), function)
        return cached


_KERNELS: dict[str, Callable] = {}


# ---------------------------------------------------------------- options codec helpers

PADDINGS = ("SAME", "VALID")  # tflite.Padding: SAME = 0, VALID = 1
FUSED_ACTIVATIONS = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6"}  # tflite.ActivationFunctionType
FUSED_CODES = {v: k for k, v in FUSED_ACTIVATIONS.items()}


def decode_padding(code: int) -> str:
    if code not in (0, 1):
        raise UnsupportedOpError(f"unsupported padding {code}")
    return PADDINGS[code]


def decode_activation(code: int) -> str:
    if code not in FUSED_ACTIVATIONS:
        raise UnsupportedOpError(f"unsupported fused activation {code}")
    return FUSED_ACTIVATIONS[code]


def options_builder(table: str):
    """(Start, End, add(field, value)) of a flatbuffer options table, from the `tflite` bindings."""
    import tflite

    start, end = getattr(tflite, f"{table}Start"), getattr(tflite, f"{table}End")

    def add(builder, name: str, value):
        getattr(tflite, f"{table}Add{name}")(builder, value)

    return start, end, add


def int32_vector(b, values) -> int:
    return b.CreateNumpyVector(np.asarray(list(values), dtype="<i4"))


# ---------------------------------------------------------------- the prepare context


class PrepareContext:
    """The op being prepared: lookups, and errors that name the op."""

    def __init__(self, graph: Int8Graph, index: int, op: Op, opdef: OpDef, fc_rescale: str = "float"):
        self.graph, self.index, self.op, self.opdef = graph, index, op, opdef
        self.fc_rescale = fc_rescale

    def fail(self, message: str, error=ModelError):
        return error(f"op {self.index} ({self.op.kind}): {message}")

    def tensor(self, position: int, role: str) -> Tensor:
        if position >= len(self.op.inputs) or self.op.inputs[position] == -1:
            raise self.fail(f"the {role} input is missing")
        return self.graph.tensors[self.op.inputs[position]]

    def optional(self, position: int) -> Tensor | None:
        if position >= len(self.op.inputs) or self.op.inputs[position] == -1:
            return None
        return self.graph.tensors[self.op.inputs[position]]

    def output(self, position: int = 0) -> Tensor:
        if len(self.op.outputs) != self.opdef.outputs:
            raise self.fail(f"expected {self.opdef.outputs} output(s), got {len(self.op.outputs)}")
        return self.graph.tensors[self.op.outputs[position]]

    def option(self, name: str, default=None):
        value = self.op.options.get(name, default)
        if value is None:
            raise self.fail(f"option {name} is missing")
        return value

    def int_option(self, name: str, default=None, low: int = -(2**31), high: int = 2**31 - 1) -> int:
        value = self.option(name, default)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= int(value) <= high:
            raise self.fail(f"option {name} must be an integer in [{low}, {high}], got {value!r}")
        return int(value)

    def positive_option(self, name: str, default=None) -> int:
        value = self.int_option(name, default)
        if value <= 0:
            raise self.fail(f"{name} must be positive, got {value}")
        return value

    # --- tensors

    def scale(self, tensor: Tensor) -> float:
        """The single float32 scale of an activation tensor, as a float64."""
        if tensor.scale.size != 1:
            raise self.fail(f"tensor {tensor.name} needs one scale, has {tensor.scale.size}")
        s = float(tensor.scale[0])
        if not (math.isfinite(s) and s > 0):
            raise self.fail(f"tensor {tensor.name} has scale {s}; scales must be positive and finite")
        return s

    def zero_point(self, tensor: Tensor, low: int = -128, high: int = 127) -> int:
        if tensor.zero_point.size < 1:
            raise self.fail(f"tensor {tensor.name} has no zero point")
        zp = int(tensor.zero_point[0])
        if not low <= zp <= high:
            raise self.fail(f"tensor {tensor.name} has zero point {zp}, outside [{low}, {high}]")
        return zp

    def activation(self, tensor: Tensor, role: str, dtype: str = "int8") -> Tensor:
        """A quantized tensor computed at run time, with one valid scale and zero point."""
        if tensor.dtype != dtype:
            raise self.fail(f"{role} {tensor.name} is {tensor.dtype}, not {dtype}", UnsupportedOpError)
        if tensor.is_constant:
            raise self.fail(f"{role} {tensor.name} is a constant; only computed activations are supported",
                            UnsupportedOpError)  # fmt: skip
        if dtype in ("int8", "uint8", "int16"):
            self.scale(tensor)
            info = np.iinfo(dtype)
            self.zero_point(tensor, int(info.min), int(info.max))
        return tensor

    def constant(self, tensor: Tensor, role: str, dtype: str, rank: int | None) -> np.ndarray:
        if not tensor.is_constant:
            raise self.fail(f"{role} {tensor.name} must be a constant tensor", UnsupportedOpError)
        if tensor.dtype != dtype:
            raise self.fail(f"{role} {tensor.name} is {tensor.dtype}, expected {dtype}", UnsupportedOpError)
        if rank is not None and len(tensor.shape) != rank:
            raise self.fail(f"{role} {tensor.name} has shape {tensor.shape}, expected rank {rank}", ShapeError)
        if tensor.data.size != int(np.prod(tensor.shape)):
            raise self.fail(f"{role} {tensor.name} holds {tensor.data.size} values for shape {tensor.shape}",
                            ShapeError)  # fmt: skip
        return np.ascontiguousarray(tensor.data).reshape(-1)

    def weight_scales(self, weights: Tensor, channels: int) -> np.ndarray:
        """Per-channel float32 weight scales as float64, a single scale broadcast (TFLite expands it)."""
        scales = weights.scale.astype(np.float64)
        if scales.size == 0 or not np.all(np.isfinite(scales) & (scales > 0)):
            raise self.fail(f"weights {weights.name} have a scale that is missing, not positive or not finite")
        if scales.size == 1:
            return np.full(channels, scales[0])
        if scales.size != channels:
            raise self.fail(f"weights {weights.name} have {scales.size} scales for {channels} output channels")
        dim = weights.quantized_dimension
        if not 0 <= dim < len(weights.shape) or weights.shape[dim] != scales.size:
            raise self.fail(f"weights {weights.name}: quantized_dimension {dim} of shape {weights.shape} "
                            f"does not have {scales.size} entries")  # fmt: skip
        return scales

    def bias(self, bias: Tensor, channels: int) -> np.ndarray:
        data = self.constant(bias, "bias", "int32", None)
        if data.size != channels:
            raise self.fail(f"bias {bias.name} has {data.size} values for {channels} output channels", ShapeError)
        if bias.zero_point.size and np.any(bias.zero_point != 0):
            raise self.fail(f"bias {bias.name} must have zero point 0")
        return data

    def check_output_shape(self, output: Tensor, expected: tuple) -> None:
        if tuple(output.shape) != tuple(expected):
            raise self.fail(f"output {output.name} has shape {output.shape}, the op produces {tuple(expected)}",
                            ShapeError)  # fmt: skip

    def fused_range(self, output: Tensor) -> tuple[int, int]:
        try:
            return activation_range(self.op.options.get("fused_activation_function", "NONE"),
                                    np.float32(output.scale[0]), self.zero_point(output))  # fmt: skip
        except QuantizationError as e:
            raise self.fail(str(e)) from None

    def multipliers(self, effective) -> tuple[np.ndarray, np.ndarray]:
        """quantize_multipliers, its refusals naming this op."""
        try:
            return quantize_multipliers(effective)
        except QuantizationError as e:
            raise self.fail(str(e)) from None

    def window(self, input_tensor: Tensor, filter_h, filter_w, stride_h, stride_w, dilation_h=1, dilation_w=1):
        """(out_h, out_w, pad_top, pad_left) of a SAME/VALID window over an NHWC input."""
        padding = self.option("padding", "SAME")
        if padding not in PADDINGS:
            raise self.fail(f"unknown padding {padding!r}")
        if len(input_tensor.shape) != 4:
            raise self.fail(f"input {input_tensor.name} must be NHWC, has shape {input_tensor.shape}", ShapeError)
        _, height, width, _ = input_tensor.shape
        out_h, pad_top, _ = compute_padding(padding, height, filter_h, stride_h, dilation_h)
        out_w, pad_left, _ = compute_padding(padding, width, filter_w, stride_w, dilation_w)
        if out_h <= 0 or out_w <= 0:
            raise self.fail(f"a {filter_h}x{filter_w} window does not fit the {height}x{width} input", ShapeError)
        return out_h, out_w, pad_top, pad_left

    def activation_inputs(self) -> tuple[int, ...]:
        """The op's inputs whose operand kind is fed at run time, in order."""
        return tuple(t for pos, t in enumerate(self.op.inputs)
                     if t != -1 and self.opdef.operand(pos).kind in (ACTIVATION, ANY))  # fmt: skip


def same_shape_unary(ctx: PrepareContext) -> tuple[Tensor, Tensor]:
    """(input, output) of an int8 element-wise op whose output has the input's shape."""
    x = ctx.activation(ctx.tensor(0, "input"), "input")
    out = ctx.activation(ctx.output(), "output")
    ctx.check_output_shape(out, x.shape)
    return x, out
