"""Int8Graph -> ONNX, bit-exact with the Numba runtime (and so LiteRT BUILTIN_REF).

    from edgecnn.deploy.export.onnx import to_onnx, write_onnx
    write_onnx(graph, "model.onnx")     # int8 NHWC in, int8 out, like the .tflite

The model takes the same int8 NHWC array as the .tflite and returns the same
int8 output. Inside, convolutions run in NCHW (the layout ONNX's Conv
family needs) and each tensor is transposed only where a layout matters.

How each op stays exact (standard QLinear/QDQ graphs round in float, see
onnx_builder.py):
- CONV_2D / DEPTHWISE_CONV_2D: Pad with the input zero point (TFLite skips
  out-of-image taps, i.e. adds w * 0), ConvInteger in uint8 x uint8 -> int32,
  + int32 bias, then MultiplyByQuantizedMultiplier in int64, + zero point,
  clamp, int8.
- FULLY_CONNECTED: MatMulInteger the same way; the default "float" rescale
  is TFLite's float64 acc * scale rounded half away from zero, which Mul,
  Abs, Floor and Sign reproduce exactly (each IEEE op rounds once, as in C).
  fc_rescale="integer" uses the conv path (older runtimes).
- MAX_POOL_2D: Pad with -128 (the max starts there in TFLite), int8 MaxPool.
- AVERAGE_POOL_2D: window sums with a ConvInteger of ones (pad value = int8 0),
  then the in-bounds count per position and TFLite's rounding division.
- LOGISTIC / TANH: Gather on the runtime's 256-entry table.
- RESHAPE: Reshape in NHWC order.
- SOFTMAX: gemmlowp's fixed point in int64 ops with 256-entry exp tables
  (onnx_softmax.py), for rows of up to 511 values.
Accumulators are int32 like TFLite's and wrap the same way if they overflow.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from edgecnn.deploy.export.onnx_builder import INT32_MAX, INT32_MIN, OnnxGraphBuilder
from edgecnn.deploy.export.onnx_softmax import lower_softmax
from edgecnn.int8.graph import Int8Graph
from edgecnn.int8.padding import compute_padding
from edgecnn.deploy.runtime.params import RESCALE_FLOAT
from edgecnn.deploy.runtime.prepare import PreparedOp, prepare_graph
from edgecnn.errors import ModelError, UnsupportedOpError
from edgecnn.fileio import atomic_write_bytes

OPSET = 17  # MaxPool int8 (12), Clip on integers (12), Gather with negative indices (11)
IR_VERSION = 8  # the IR that goes with opset 17: loads in onnxruntime >= 1.11
SUPPORTED = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "MAX_POOL_2D", "AVERAGE_POOL_2D",
             "RESHAPE", "LOGISTIC", "TANH", "SOFTMAX")  # fmt: skip
EXACTNESS_NOTE = ("integer-exact: every output equals LiteRT's BUILTIN_REF int8 kernels (and edgecnn's Numba "
                  "runtime) bit for bit; requantization is spelled out in int64 ops, not QLinear/QDQ.")  # fmt: skip
_TO_NCHW, _TO_NHWC = [0, 3, 1, 2], [0, 2, 3, 1]


class _Lowering:
    """Emits one graph's nodes; tracks each Int8Graph tensor's ONNX value and layout."""

    def __init__(self, graph: Int8Graph, fc_rescale: str):
        self.graph = graph
        self.fc_rescale = fc_rescale
        self.b = OnnxGraphBuilder(reserved=[graph.input.name, graph.output.name, f"{graph.output.name}_out"])
        self.values: dict[int, dict[str, str]] = {}  # tensor index -> {"NHWC"|"NCHW": value name}

    # ------------------------------------------------------------ layouts

    def _rank(self, t: int) -> int:
        return len(self.graph.tensors[t].shape)

    def nhwc(self, t: int) -> str:
        """The value of tensor t in TFLite's own layout (NHWC for rank 4)."""
        views = self.values[t]
        if "NHWC" not in views:
            views["NHWC"] = self.b.node("Transpose", [views["NCHW"]], "to_nhwc", perm=_TO_NHWC)
        return views["NHWC"]

    def nchw(self, t: int) -> str:
        views = self.values[t]
        if "NCHW" not in views:
            views["NCHW"] = self.b.node("Transpose", [views["NHWC"]], "to_nchw", perm=_TO_NCHW)
        return views["NCHW"]

    def any_layout(self, t: int) -> tuple[str, str]:
        layout = "NHWC" if "NHWC" in self.values[t] else "NCHW"
        return self.values[t][layout], layout

    # ------------------------------------------------------------ ops

    def lower(self, step: PreparedOp) -> None:
        kind = step.kind
        if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            self.values[step.output] = {"NCHW": self._conv(step)}
        elif kind == "FULLY_CONNECTED":
            self.values[step.output] = {"NHWC": self._fully_connected(step)}
        elif kind == "MAX_POOL_2D":
            self.values[step.output] = {"NCHW": self._max_pool(step)}
        elif kind == "AVERAGE_POOL_2D":
            self.values[step.output] = {"NCHW": self._average_pool(step)}
        elif kind == "RESHAPE":
            self.values[step.output] = {"NHWC": self._reshape(self.nhwc(step.input), step.output)}
        elif kind in ("LOGISTIC", "TANH"):
            x, layout = self.any_layout(step.input)
            # Gather counts negative indices from the end, so table[q + 128] is rolled[q] for int8 q.
            rolled = np.roll(step.params.table, -128)
            index = self.b.cast(x, TensorProto.INT32)
            self.values[step.output] = {layout: self.b.node("Gather", [self.b.const(rolled, np.int8, "table"), index],
                                                            kind.lower())}  # fmt: skip
        elif kind == "SOFTMAX":
            depth = self.graph.tensors[step.input].shape[-1]
            self.values[step.output] = {"NHWC": lower_softmax(self.b, self.nhwc(step.input), step.params, depth,
                                                              step.index)}  # fmt: skip
        else:
            raise UnsupportedOpError(f"op {step.index} ({kind}): {kind} is not supported by the ONNX exporter")

    def _reshape(self, x: str, out_tensor: int) -> str:
        # Activations carry a batch of 1; the leading -1 absorbs the run-time batch, as in the runtime.
        shape = [-1] + list(self.graph.tensors[out_tensor].shape[1:])
        return self.b.node("Reshape", [x, self.b.const(shape, np.int64, "shape")], "reshape")

    def _spatial(self, step: PreparedOp, filter_h: int, filter_w: int, dilation_h: int, dilation_w: int):
        """(pad top, left, bottom, right); TFLite's padding with the odd pixel after (INT8.md section 4)."""
        op = self.graph.ops[step.index]
        _, height, width, _ = self.graph.tensors[step.input].shape
        padding = op.options.get("padding", "SAME")
        _, top, bottom = compute_padding(padding, height, filter_h, step.params.stride_height, dilation_h)
        _, left, right = compute_padding(padding, width, filter_w, step.params.stride_width, dilation_w)
        return top, left, bottom, right

    def _pad(self, x: str, pads: tuple, value: int, dtype) -> str:
        top, left, bottom, right = pads
        if not any(pads):
            return x
        widths = self.b.const([0, 0, top, left, 0, 0, bottom, right], np.int64, "pads")
        return self.b.node("Pad", [x, widths, self.b.const(value, dtype, "pad_value")], "pad", mode="constant")

    def _conv(self, step: PreparedOp) -> str:
        p = step.params
        (filter_shape, filter_data), (_, bias) = step.constants
        weights = filter_data.reshape(filter_shape)
        in_depth = self.graph.tensors[step.input].shape[3]
        if step.kind == "CONV_2D":
            out_depth, filter_h, filter_w, filter_depth = filter_shape
            groups = in_depth // filter_depth
            oihw = weights.transpose(0, 3, 1, 2)
        else:  # [1, H, W, C*M] -> [C*M, 1, H, W]; group = input channel puts channel ic*M + m where TFLite does
            _, filter_h, filter_w, out_depth = filter_shape
            groups = in_depth
            oihw = weights.transpose(3, 0, 1, 2)
        pads = self._spatial(step, filter_h, filter_w, p.dilation_height, p.dilation_width)
        in_zp_u8 = self.b.const(-p.input_offset + 128, np.uint8, "input_zp_u8")
        x = self._pad(self.b.int8_to_uint8(self.nchw(step.input)), pads, -p.input_offset + 128, np.uint8)
        # Weights int8 -> uint8 with zero point 128: (w + 128) - 128 = w, and a u8 x u8 GEMM is exact.
        w = self.b.const(oihw.astype(np.int16) + 128, np.uint8, "filter_u8")
        acc = self.b.node("ConvInteger", [x, w, in_zp_u8, self.b.const(128, np.uint8)], "conv",
                          kernel_shape=[filter_h, filter_w], strides=[p.stride_height, p.stride_width],
                          dilations=[p.dilation_height, p.dilation_width], group=groups)  # fmt: skip
        if bias.size:
            acc = self.b.node("Add", [acc, self.b.const(bias.reshape(-1, 1, 1), np.int32, "bias")], "plus_bias")
        scaled = self.b.multiply_by_quantized_multiplier(self.b.cast(acc, TensorProto.INT64), p.output_multiplier,
                                                         p.output_shift, (out_depth, 1, 1))  # fmt: skip
        return self._output_stage(scaled, p.output_offset, p.activation_min, p.activation_max)

    def _output_stage(self, x: str, output_offset: int, act_min: int, act_max: int) -> str:
        x = self.b.node("Add", [x, self.b.const(output_offset, np.int64, "output_zp")], "plus_zp")
        return self.b.clip_to_int8(x, act_min, act_max, np.int64)

    def _fully_connected(self, step: PreparedOp) -> str:
        p = step.params
        (filter_shape, filter_data), (_, bias) = step.constants
        units, depth = filter_shape
        rows = self.b.node("Reshape", [self.nhwc(step.input), self.b.const([-1, depth], np.int64, "shape")], "rows")
        x = self.b.int8_to_uint8(rows)
        in_zp_u8 = self.b.const(-p.input_offset + 128, np.uint8, "input_zp_u8")
        w = self.b.const(filter_data.reshape(units, depth).T.astype(np.int16) + 128, np.uint8, "weights_u8")
        w_zp_u8 = self.b.const(-p.weights_offset + 128, np.uint8, "weights_zp_u8")
        acc = self.b.node("MatMulInteger", [x, w, in_zp_u8, w_zp_u8], "matmul")
        if bias.size:
            acc = self.b.node("Add", [acc, self.b.const(bias, np.int32, "bias")], "plus_bias")
        if p.rescale == RESCALE_FLOAT:
            # TFLite >= 2.20: (int32) round(double(acc) * effective_scale), clamped to int32 before the cast.
            product = self.b.node("Mul", [self.b.cast(acc, TensorProto.DOUBLE),
                                          self.b.const(p.effective_scale, np.float64, "effective_scale")])  # fmt: skip
            rounded = self.b.round_half_away_double(product)
            rounded = self.b.node("Clip", [rounded, self.b.const(INT32_MIN, np.float64),
                                           self.b.const(INT32_MAX, np.float64)], "clamp_int32")  # fmt: skip
            scaled = self.b.cast(rounded, TensorProto.INT64)
        else:
            scaled = self.b.multiply_by_quantized_multiplier(self.b.cast(acc, TensorProto.INT64), p.output_multiplier,
                                                             p.output_shift, (units,))  # fmt: skip
        out = self._output_stage(scaled, p.output_offset, p.activation_min, p.activation_max)
        if len(self.graph.tensors[step.output].shape) != 2:  # keep_num_dims
            out = self._reshape(out, step.output)
        return out

    def _max_pool(self, step: PreparedOp) -> str:
        p = step.params
        pads = self._spatial(step, p.filter_height, p.filter_width, 1, 1)
        # TFLite's max starts from -128 and skips padding, so padding with -128 changes nothing.
        x = self._pad(self.nchw(step.input), pads, -128, np.int8)
        pooled = self.b.node("MaxPool", [x], "maxpool", kernel_shape=[p.filter_height, p.filter_width],
                             strides=[p.stride_height, p.stride_width])  # fmt: skip
        if (p.activation_min, p.activation_max) == (-128, 127):
            return pooled
        return self.b.node("Clip", [pooled, self.b.const(p.activation_min, np.int8),
                                    self.b.const(p.activation_max, np.int8)], "clamp")  # fmt: skip

    def _average_pool(self, step: PreparedOp) -> str:
        p = step.params
        _, height, width, depth = self.graph.tensors[step.input].shape
        _, out_h, out_w, _ = self.graph.tensors[step.output].shape
        pads = self._spatial(step, p.filter_height, p.filter_width, 1, 1)
        counts = _window_counts(height, p.filter_height, p.stride_height, p.padding_top, out_h)[:, None] * \
            _window_counts(width, p.filter_width, p.stride_width, p.padding_left, out_w)[None, :]
        if np.any(counts == 0):
            raise ModelError(f"op {step.index} (AVERAGE_POOL_2D): a window lies entirely in the padding")
        # Sum of the raw int8 values over the in-bounds window: uint8 (q + 128) with zero point 128,
        # padded with 128 (q = 0), times a filter of ones. |sum| <= 128 * taps stays far inside int32.
        zero_u8 = self.b.const(128, np.uint8)
        x = self._pad(self.b.int8_to_uint8(self.nchw(step.input)), pads, 128, np.uint8)
        ones = self.b.const(np.ones((depth, 1, p.filter_height, p.filter_width)), np.uint8, "ones")
        total = self.b.node("ConvInteger", [x, ones, zero_u8, self.b.const(0, np.uint8)], "window_sum",
                            kernel_shape=[p.filter_height, p.filter_width],
                            strides=[p.stride_height, p.stride_width], group=depth)  # fmt: skip
        averaged = self.b.divide_round_half_away(self.b.cast(total, TensorProto.INT64),
                                                 self.b.const(counts[None, None], np.int64, "counts"),
                                                 self.b.const(counts[None, None] // 2, np.int64, "half_counts"))
        return self.b.clip_to_int8(averaged, p.activation_min, p.activation_max, np.int64)


def _window_counts(size: int, window: int, stride: int, pad_before: int, out_size: int) -> np.ndarray:
    """In-bounds taps of each output position's window along one axis."""
    start = np.arange(out_size) * stride - pad_before
    return np.minimum(start + window, size) - np.maximum(start, 0)


def _value_info(name: str, shape: tuple) -> onnx.ValueInfoProto:
    dims = ["batch" if shape[0] == 1 else f"batch_x{shape[0]}"] + list(shape[1:])
    return helper.make_tensor_value_info(name, TensorProto.INT8, dims)


def _metadata(graph: Int8Graph, fc_rescale: str) -> dict[str, str]:
    import edgecnn

    x, y = graph.input, graph.output
    props = {
        "edgecnn_version": edgecnn.__version__,
        "exactness": EXACTNESS_NOTE,
        "fc_rescale": fc_rescale,
        "input_scale": repr(float(x.scale[0])),
        "input_zero_point": str(int(x.zero_point[0])),
        "output_scale": repr(float(y.scale[0])),
        "output_zero_point": str(int(y.zero_point[0])),
        "layout": "NHWC",
    }
    for key, value in graph.metadata.items():
        if key not in props:
            props[key] = value if isinstance(value, str) else json.dumps(value)
    return props


def to_onnx(graph: Int8Graph, fc_rescale: str = "float") -> onnx.ModelProto:
    """The graph as an ONNX model: int8 NHWC input and int8 output, named after the graph's tensors.

    fc_rescale picks FULLY_CONNECTED's rescale like Runtime's: "float" (LiteRT
    >= 1.3, the default) or "integer" (older runtimes).
    """
    for i, op in enumerate(graph.ops):
        if op.kind not in SUPPORTED:
            raise UnsupportedOpError(f"op {i} ({op.kind}): {op.kind} is not supported by the ONNX exporter")
    steps = prepare_graph(graph, fc_rescale)  # LiteRT's load-time checks, and every multiplier and table
    lowering = _Lowering(graph, fc_rescale)
    x, y = graph.input, graph.output
    lowering.values[graph.inputs[0]] = {"NHWC": x.name}
    for step in steps:
        lowering.lower(step)
    result = lowering.nhwc(graph.outputs[0])
    b = lowering.b
    output_name = y.name if y.name != x.name else f"{y.name}_out"
    b.nodes.append(helper.make_node("Identity", [result], [output_name], name="output"))
    onnx_graph = helper.make_graph(b.nodes, "edgecnn_int8", [_value_info(x.name, x.shape)],
                                   [_value_info(output_name, y.shape)], b.initializers)  # fmt: skip
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
