"""The in-memory int8 graph: TFLite's model, minus the flatbuffer.

One graph feeds every back end. The quantizer builds it, the `.tflite` reader
rebuilds it from a file, the runtime executes it, and the writer and
exporters serialise it. It mirrors TFLite on purpose, so the `.tflite` round
trip is a field-for-field copy:

- A graph is a DAG: ops take any number of inputs and give any number of
  outputs; a graph has any number of inputs and outputs. `ops` is in
  execution order (TFLite's rule), which `validate` checks.
- Layout is NHWC. Conv filters are OHWI, depthwise filters are 1HW(C*M),
  fully-connected weights are [units, depth]. Biases are int32.
- Activation shapes carry a batch of 1; back ends run any batch.
- `Op.kind` is the TFLite builtin name ("CONV_2D", ...) and `Op.options` uses
  TFLite's option names in snake case. What each op reads, writes and
  means is defined once, in its module of the op registry
  (`edgecnn.deploy.ops`); this layer knows no op.
- An absent optional input (a conv without bias) is the index -1.

Scales are float32 and zero points int64, as in the flatbuffer. The floats
stop here: each op's prepare step turns them into integer multipliers once,
and no integer kernel ever sees a float.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgecnn.errors import ModelError

ACTIVATIONS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")
# Element types a tensor may have; graph inputs and outputs are int8, uint8 or float32
# (the converter's QUANTIZE / DEQUANTIZE edges), shape tensors int32 or int64.
DTYPES = ("int8", "uint8", "int16", "int32", "int64", "float32")
IO_DTYPES = ("int8", "uint8", "float32")


@dataclass
class Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: str  # one of DTYPES
    scale: np.ndarray  # float32, one entry, or one per channel
    zero_point: np.ndarray  # int64, same length as scale
    quantized_dimension: int = 0
    data: np.ndarray | None = None  # constants only

    def __post_init__(self):
        self.shape = tuple(int(d) for d in self.shape)
        self.scale = np.atleast_1d(np.asarray(self.scale, dtype=np.float32))
        self.zero_point = np.atleast_1d(np.asarray(self.zero_point, dtype=np.int64))
        if self.data is not None:
            self.data = np.ascontiguousarray(self.data, dtype=self.dtype)

    @property
    def is_constant(self) -> bool:
        return self.data is not None

    @property
    def per_channel(self) -> bool:
        return self.scale.size > 1


@dataclass
class Op:
    kind: str
    inputs: list[int]
    outputs: list[int]
    options: dict = field(default_factory=dict)


@dataclass
class Int8Graph:
    tensors: list[Tensor]
    ops: list[Op]
    inputs: list[int]
    outputs: list[int]
    metadata: dict = field(default_factory=dict)  # labels, preprocessing, edgecnn_version

    @property
    def input(self) -> Tensor:
        """The only input; a ModelError for graphs with several (use `inputs`)."""
        return self.tensors[self._single(self.inputs, "input")]

    @property
    def output(self) -> Tensor:
        """The only output; a ModelError for graphs with several (use `outputs`)."""
        return self.tensors[self._single(self.outputs, "output")]

    def _single(self, indices: list[int], role: str) -> int:
        if len(indices) != 1:
            raise ModelError(f"the graph has {len(indices)} {role}s; this path handles graphs with one")
        return indices[0]

    def add_tensor(self, tensor: Tensor) -> int:
        self.tensors.append(tensor)
        return len(self.tensors) - 1

    def producers(self) -> dict[int, int]:
        """Tensor index -> index of the op that computes it."""
        return {t: i for i, op in enumerate(self.ops) for t in op.outputs}

    def last_uses(self) -> dict[int, int]:
        """Tensor index -> index of the last op that reads it (graph outputs: len(ops))."""
        last = {}
        for i, op in enumerate(self.ops):
            for t in op.inputs:
                if t != -1:
                    last[t] = i
        for t in self.outputs:
            last[t] = len(self.ops)
        return last

    def validate(self) -> "Int8Graph":
        """Raise ModelError unless indices are in range and `ops` is a valid execution order.

        Every op input is a constant, a graph input or an earlier op's output;
        no tensor is computed twice; every graph output is computed or fed in.
        Op kinds and their operands are the registry's business, not checked here.
        """
        n = len(self.tensors)
        for t in self.tensors:
            if t.dtype not in DTYPES:
                raise ModelError(f"tensor {t.name}: unsupported element type {t.dtype}")
        for role, indices in (("input", self.inputs), ("output", self.outputs)):
            if not indices:
                raise ModelError(f"the graph has no {role}")
            for t in indices:
                if not 0 <= t < n:
                    raise ModelError(f"graph {role} index {t} out of range")
                if self.tensors[t].dtype not in IO_DTYPES:
                    raise ModelError(f"graph {role} {self.tensors[t].name} is {self.tensors[t].dtype}; "
                                     f"graph inputs and outputs are {', '.join(IO_DTYPES)}")  # fmt: skip
        available = set(self.inputs) | {i for i, t in enumerate(self.tensors) if t.is_constant}
        for i, op in enumerate(self.ops):
            for t in list(op.inputs) + list(op.outputs):
                if t != -1 and not 0 <= t < n:
                    raise ModelError(f"op {i} ({op.kind}): tensor index {t} out of range")
            if not op.outputs or -1 in op.outputs:
                raise ModelError(f"op {i} ({op.kind}): every op needs its output tensors")
            act = op.options.get("fused_activation_function", "NONE")
            if act not in ACTIVATIONS:
                raise ModelError(f"op {i} ({op.kind}): unsupported fused activation {act}")
            for t in op.inputs:
                if t != -1 and t not in available:
                    raise ModelError(f"op {i} ({op.kind}) reads tensor {self.tensors[t].name} before any op computes it")
            for t in op.outputs:
                if t in available:
                    raise ModelError(f"op {i} ({op.kind}) writes tensor {self.tensors[t].name}, "
                                     "which is already an input, a constant or another op's output")  # fmt: skip
                available.add(t)
        for t in self.outputs:
            if t not in available:
                raise ModelError(f"graph output {self.tensors[t].name} is never computed")
        return self
