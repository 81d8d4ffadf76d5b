"""The in-memory int8 graph: TFLite's model, minus the flatbuffer.

One graph feeds every back end. The quantizer builds it, the `.tflite` reader
rebuilds it from a file, the Numba runtime executes it, and the writer and
exporters serialise it. It mirrors TFLite on purpose, so the `.tflite` round
trip is a field-for-field copy:

- Layout is NHWC. Conv filters are OHWI, depthwise filters are 1HW(C*M),
  fully-connected weights are [units, depth]. Biases are int32.
- Activation shapes carry a batch of 1; back ends run any batch.
- `Op.kind` is the TFLite builtin name ("CONV_2D", ...), and `Op.options`
  uses the TFLite option names in snake case:
    CONV_2D            padding "SAME"|"VALID", stride_h, stride_w,
                       dilation_h_factor, dilation_w_factor, fused_activation_function
    DEPTHWISE_CONV_2D  the same plus depth_multiplier
    FULLY_CONNECTED    fused_activation_function, keep_num_dims
    MAX_POOL_2D,
    AVERAGE_POOL_2D    padding, stride_h, stride_w, filter_height, filter_width,
                       fused_activation_function
    RESHAPE            new_shape (list of int, may hold -1)
    SOFTMAX            beta
    LOGISTIC, TANH     (none)
  fused_activation_function is one of "NONE", "RELU", "RELU6", "RELU_N1_TO_1".
- An absent optional input (a conv without bias) is the index -1.

Scales are float32 and zero points int64, as in the flatbuffer. The floats
stop here: the runtime's prepare step turns them into integer multipliers
once, and no kernel ever sees a float.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgecnn.errors import ModelError

ACTIVATIONS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")
OPS = (
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "FULLY_CONNECTED",
    "MAX_POOL_2D",
    "AVERAGE_POOL_2D",
    "RESHAPE",
    "SOFTMAX",
    "LOGISTIC",
    "TANH",
)


@dataclass
class Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: str  # "int8" | "int32"
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
        return self.tensors[self.inputs[0]]

    @property
    def output(self) -> Tensor:
        return self.tensors[self.outputs[0]]

    def add_tensor(self, tensor: Tensor) -> int:
        self.tensors.append(tensor)
        return len(self.tensors) - 1

    def validate(self) -> "Int8Graph":
        """Raise ModelError unless every op is known and every index is in range."""
        n = len(self.tensors)
        for i, op in enumerate(self.ops):
            if op.kind not in OPS:
                from edgecnn.errors import UnsupportedOpError

                raise UnsupportedOpError(f"op {i}: unsupported operator {op.kind}")
            for t in list(op.inputs) + list(op.outputs):
                if t != -1 and not 0 <= t < n:
                    raise ModelError(f"op {i} ({op.kind}): tensor index {t} out of range")
            act = op.options.get("fused_activation_function", "NONE")
            if act not in ACTIVATIONS:
                raise ModelError(f"op {i} ({op.kind}): unsupported fused activation {act}")
        for t in self.inputs + self.outputs:
            if not 0 <= t < n:
                raise ModelError(f"graph input/output index {t} out of range")
            if self.tensors[t].dtype != "int8":
                raise ModelError(f"graph input/output {self.tensors[t].name} is {self.tensors[t].dtype}, not int8")
        return self
