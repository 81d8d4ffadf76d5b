"""Post-training quantization: a float model (a graph; Sequential is the chain) -> an int8 graph (TFLite int8 spec).

Calibration runs the float model over N images and feeds one observer per
int8 activation tensor that gets its own qparams. Weights are quantized
symmetric per channel in [-127, 127], biases to int32 at scale s_in * s_w[c],
and activations get asymmetric int8 qparams from the observers. The graph's
input qparams are fixed at 1/255 and -128, so the int8 input is exactly
`pixel - 128` (for a model given `normalization` = (mean, std), they span
(pixel/255 - mean) / std instead; see `input_qparams`). BatchNorm folds into
the conv or dense before it first.

Layer mapping (what the TensorFlow converter emits for the same layers):
  conv2d (+relu/relu6)     CONV_2D with fused activation (DEPTHWISE_CONV_2D when groups == C_in)
  subsampling              DEPTHWISE_CONV_2D 2x2 stride 2, the four taps tied
  dense (+relu/relu6)      FULLY_CONNECTED
  add (+relu/relu6)        ADD (a chain of ADDs for more than two inputs), own output qparams
  concatenate              CONCATENATION on the channel axis, own output qparams
  maxpool2d / avgpool2d    MAX_POOL_2D / AVERAGE_POOL_2D, output qparams = input qparams
  global_avgpool2d         MEAN over axes 1, 2, own output qparams
  global_maxpool2d         REDUCE_MAX over axes 1, 2, output qparams = input qparams
  zero_padding2d           PAD, output qparams = input qparams
  flatten                  RESHAPE to [-1, D]
  batchnorm (unfoldable)   DEPTHWISE_CONV_2D 1x1: per-channel scale and shift
  relu / relu6             fused into the conv, dense or add before them; else RELU / RELU6
  leaky_relu, hard_swish   LEAKY_RELU, HARD_SWISH, own output qparams
  tanh / sigmoid           the layer's op, then TANH (1/128, 0) or LOGISTIC (1/256, -128)
  scaled_tanh              as tanh, with 2/3 folded into this layer and 1.7159 into the next
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

import edgecnn
from edgecnn.errors import CalibrationError, QuantizationError, ShapeError
from edgecnn.int8.graph import Int8Graph, Op, Tensor
from edgecnn.int8.rules import round_half_away
from edgecnn.model.graph import INPUT
from edgecnn.model.layers import Activation, AvgPool2D, Conv2D, Dense, Flatten, LeakyReLU, MaxPool2D, Subsampling
from edgecnn.model.layers import ZeroPadding2D
from edgecnn.model.global_pooling import GlobalAvgPool2D, GlobalMaxPool2D
from edgecnn.model.merge_layers import Add, Concatenate
from edgecnn.model.norm_layers import BatchNorm
from edgecnn.progress import progress_bar
from edgecnn.quantize.fold import scaled_tanh_factors
from edgecnn.quantize.observers import make_observer
from edgecnn.quantize.qparams import choose_qparams

INPUT_SCALE = np.float32(1.0 / 255.0)
INPUT_ZERO_POINT = -128
FUSED = {"none": "NONE", "relu": "RELU", "relu6": "RELU6"}
TABLE_OPS = {"tanh": ("TANH", 1.0 / 128.0, 0), "scaled_tanh": ("TANH", 1.0 / 128.0, 0),
             "sigmoid": ("LOGISTIC", 1.0 / 256.0, -128)}
STANDALONE_ACTIVATIONS = {"relu": "RELU", "relu6": "RELU6", "hard_swish": "HARD_SWISH"}
INT32_MIN, INT32_MAX = -(2 ** 31), 2 ** 31 - 1
PARAMETRIC = (Conv2D, Dense, Subsampling)
SAME_QPARAMS = (MaxPool2D, AvgPool2D, Flatten, ZeroPadding2D, GlobalMaxPool2D)


@dataclass
class QuantizedModel:
    graph: Int8Graph
    # per float layer: (layer name, int8 tensor index, factor) with float output ~= factor * dequant(tensor)
    layer_tensors: list[tuple[str, int, float]] = field(default_factory=list)
    calibration: str = "minmax"
    float_model: object = None  # the model the graph was built from (BatchNorms folded): what SQNR compares with


@dataclass
class Step:
    """One int8 op (or op + table op): a float node, the activation merged into it, the value it stands for."""

    layer: object
    act: str
    name: str  # the float node whose output this step's last tensor represents
    inputs: tuple[str, ...]

    @property
    def observed(self) -> bool:
        """Whether this step's op output gets qparams of its own (an observer)."""
        layer = self.layer
        if isinstance(layer, Activation):
            return layer.activation in STANDALONE_ACTIVATIONS
        return isinstance(layer, PARAMETRIC + (Add, Concatenate, GlobalAvgPool2D, LeakyReLU, BatchNorm))


def _inference_graph(model):
    """The model with every foldable BatchNorm folded into the conv or dense before it."""
    if any(isinstance(n.layer, BatchNorm) for n in model.nodes):
        from edgecnn.model.folding import fold_graph_batchnorms

        return fold_graph_batchnorms(model)
    return model


def _plan(model) -> list[Step]:
    """Merge standalone relu/relu6 (and table activations) into the conv, dense or add that alone feeds them."""
    steps: list[Step] = []
    merged: set[str] = set()
    for node in model.nodes:
        if node.name in merged:
            continue
        layer = node.layer
        act, name = layer.activation, node.name
        if isinstance(layer, Activation):
            if layer.activation == "scaled_tanh":
                raise QuantizationError(f"{layer.name}: a standalone scaled tanh must follow a conv or dense layer")
            act = "none"
        consumers = model.consumers(node.name)
        if (act == "none" and isinstance(layer, PARAMETRIC + (Add,)) and node.name != model.output
                and len(consumers) == 1 and isinstance(consumers[0].layer, Activation)
                and (consumers[0].layer.activation in FUSED
                     or (consumers[0].layer.activation in TABLE_OPS and isinstance(layer, PARAMETRIC)))):  # fmt: skip
            act, name = consumers[0].layer.activation, consumers[0].name
            merged.add(name)
        if act not in FUSED and not (act in TABLE_OPS and isinstance(layer, PARAMETRIC)):
            raise QuantizationError(f"{layer.name}: a fused {act} on a {layer.kind} layer has no int8 form")
        steps.append(Step(layer, act, name, node.inputs))
    return steps


def _quantize_weights(w: np.ndarray, axis: int, per_tensor: bool, name: str):
    """Symmetric int8 in [-127, 127]: (q, scale float32 per channel or one)."""
    if not np.all(np.isfinite(w)):
        raise QuantizationError(f"{name}: the weights hold NaN or infinite values")
    if per_tensor:
        scale, _ = choose_qparams(w.min(), w.max(), symmetric=True)
        q = round_half_away(w / np.float64(scale[0]))
    else:
        other = tuple(i for i in range(w.ndim) if i != axis)
        scale, _ = choose_qparams(w.min(axis=other), w.max(axis=other), symmetric=True)
        shape = [1] * w.ndim
        shape[axis] = -1
        q = round_half_away(w / scale.astype(np.float64).reshape(shape))
    return np.clip(q, -127, 127).astype(np.int8), scale


def _quantize_bias(b: np.ndarray, in_scale: np.float32, w_scale: np.ndarray, channels: int, name: str):
    if not np.all(np.isfinite(b)):
        raise QuantizationError(f"{name}: the bias holds NaN or infinite values")
    bias_scale = (np.float64(in_scale) * w_scale.astype(np.float64)).astype(np.float32)  # one, or per channel
    q = round_half_away(b / np.broadcast_to(bias_scale.astype(np.float64), (channels,)))
    if np.any(q < INT32_MIN) or np.any(q > INT32_MAX):
        raise QuantizationError(f"{name}: the bias does not fit int32 at scale s_in * s_w")
    return q.astype(np.int32), bias_scale


def _step_values(step: Step, xs: list[np.ndarray]):
    """Run one step in float: (value its int8 op output represents, the step's output)."""
    layer = step.layer
    if isinstance(layer, Activation):
        y = layer.forward(xs[0])
        return y, y
    z, layer._cache = layer._forward(xs[0] if layer.arity == 1 else xs)
    if step.act == "none":
        return z, z
    from edgecnn.reference import activations as A

    a, _ = getattr(A, f"{step.act}_forward")(z)
    if step.act in ("relu", "relu6"):
        return a, a
    _, out_factor = scaled_tanh_factors("none", step.act)
    return z * out_factor, a


def _check_calibration(model, calib_x) -> np.ndarray:
    calib_x = np.asarray(calib_x)
    if calib_x.ndim != 1 + len(model.input_shape) or tuple(calib_x.shape[1:]) != tuple(model.input_shape):
        raise CalibrationError(f"calibration images have shape {tuple(calib_x.shape)}, "
                               f"the model wants (N, {', '.join(map(str, model.input_shape))})")
    if len(calib_x) == 0:
        raise CalibrationError("the calibration set is empty")
    if not np.all(np.isfinite(calib_x)):
        raise CalibrationError("the calibration images hold NaN or infinite values")
    return calib_x


def calibrate(model, calib_x: np.ndarray, method: str = "minmax", batch_size: int = 250,
              progress: bool | None = None) -> dict[int, object]:
    """Observers for the op outputs that get their own qparams, keyed by plan index."""
    calib_x = _check_calibration(model, calib_x)
    steps = _plan(model)
    observers = {i: make_observer(method, name=step.layer.name) for i, step in enumerate(steps) if step.observed}
    bar = progress_bar(len(calib_x), "calibrating", progress, unit="img")
    dtype = model._dtype()
    for start in range(0, len(calib_x), batch_size):
        batch = calib_x[start:start + batch_size]
        values = {INPUT: batch.astype(dtype)}
        for i, step in enumerate(steps):
            observed, values[step.name] = _step_values(step, [values[s] for s in step.inputs])
            if i in observers:
                observers[i].update(observed)
        bar.update(len(batch))
    bar.close()
    return observers


def quantize_model(model, calib_x: np.ndarray, calibration: str = "minmax", per_tensor: bool = False,
                   progress: bool | None = None, normalization=None) -> QuantizedModel:
    """Calibrate on `calib_x` (float NHWC model inputs) and build the int8 graph.

    `normalization` = (mean, std) per channel when the model takes (pixel/255 - mean) / std
    (calib_x already normalised); it sets the input qparams and is recorded in the metadata.
    """
    for layer in model.layers:
        if isinstance(layer, PARAMETRIC + (BatchNorm,)) and not layer.params:
            raise QuantizationError(f"{layer.name}: the model has no weights (call init_params or load a checkpoint)")
    for key, value in list(model.named_params()) + list(model.named_buffers()):
        if not np.all(np.isfinite(value)):
            raise QuantizationError(f"{key}: the weights hold NaN or infinite values")
    model = _inference_graph(model)
    observers = calibrate(model, calib_x, calibration, progress=progress)
    return build_graph(model, observers, per_tensor, calibration, normalization)


class _Builder:
    """Appends tensors and ops to the int8 graph; remembers each float node's tensor and factor."""

    def __init__(self, g: Int8Graph, per_tensor: bool):
        self.g, self.per_tensor = g, per_tensor
        self.tensor: dict[str, int] = {}
        self.factor: dict[str, float] = {}  # float value ~= factor * dequant(tensor)

    def add(self, *args, **kw) -> int:
        return self.g.add_tensor(Tensor(*args, **kw))

    def op(self, kind, inputs, out, options=None) -> int:
        self.g.ops.append(Op(kind, list(inputs), [out], dict(options or {})))
        return out

    def requantize(self, src: int, scale, zero_point, name: str) -> int:
        """`src` at the given qparams: itself if it already has them, else through a QUANTIZE op."""
        t = self.g.tensors[src]
        if np.array_equal(t.scale, np.atleast_1d(scale).astype(np.float32)) and \
                np.array_equal(t.zero_point, np.atleast_1d(zero_point).astype(np.int64)):
            return src
        return self.op("QUANTIZE", [src], self.add(name, t.shape, "int8", scale, zero_point))

    def const_int32(self, name, values) -> int:
        data = np.asarray(values, dtype=np.int32)
        return self.add(name, data.shape, "int32", np.zeros(0, np.float32), np.zeros(0, np.int64), data=data)

    def weighted(self, layer, act, src, out_s, out_zp, out_shape, w_in) -> int:
        """CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED, its fused activation, and a table op after it."""
        _, w_out = scaled_tanh_factors("none", act)
        op_out = Tensor(layer.name if act in FUSED else f"{layer.name}/preact", out_shape, "int8", out_s, out_zp)
        kind, w, b, axis, options = _weights_and_options(layer, w_in, w_out)
        return self._weights_op(kind, layer.name, w, b, axis, options, act, src, op_out)

    def _weights_op(self, kind, name, w, b, axis, options, act, src, op_out) -> int:
        g = self.g
        qw, w_s = _quantize_weights(w, axis, self.per_tensor, name)
        channels = w.shape[axis]
        qb, b_s = _quantize_bias(b, g.tensors[src].scale[0], w_s, channels, name)
        wt = self.add(f"{name}/weights", qw.shape, "int8", w_s, np.zeros(w_s.size, np.int64),
                      quantized_dimension=axis if w_s.size > 1 else 0, data=qw)
        bt = self.add(f"{name}/bias", qb.shape, "int32", b_s, np.zeros(b_s.size, np.int64), data=qb)
        out = g.add_tensor(op_out)
        options["fused_activation_function"] = FUSED.get(act, "NONE")
        self.op(kind, [src, wt, bt], out, options)
        if act in TABLE_OPS:
            table_kind, s, zp = TABLE_OPS[act]
            out = self.op(table_kind, [out], self.add(name, op_out.shape, "int8", s, zp))
        return out


def build_graph(model, observers: dict, per_tensor: bool = False, calibration: str = "minmax",
                normalization=None) -> QuantizedModel:
    in_scale, in_zp = input_qparams(normalization)
    g = Int8Graph(tensors=[], ops=[], inputs=[], outputs=[], metadata={
        "edgecnn_version": edgecnn.__version__,
        "arch": model.arch,
        "labels": list(model.labels),
        "calibration": calibration,
        "preprocessing": _preprocessing(model, normalization, in_scale, in_zp),
    })
    g.inputs = [g.add_tensor(Tensor("input", (1, *model.input_shape), "int8", in_scale, in_zp))]
    qm = QuantizedModel(g, calibration=calibration, float_model=model)
    bld = _Builder(g, per_tensor)
    bld.tensor[INPUT], bld.factor[INPUT] = g.inputs[0], 1.0
    steps = _plan(model)
    qparams_of = {i: obs.qparams() for i, obs in observers.items()}
    _share_concat_qparams(model, steps, qparams_of)
    for i, step in enumerate(steps):
        layer, act = step.layer, step.act
        srcs = [bld.tensor[s] for s in step.inputs]
        if isinstance(layer, Concatenate):
            srcs = [bld.requantize(t, *qparams_of[i], f"{step.name}/in{k}") for k, t in enumerate(srcs)]
        src = srcs[0]
        in_factor = bld.factor[step.inputs[0]]
        out_shape = (1, *layer.output_shape)
        qparams = qparams_of.get(i)
        factor = 1.0
        if isinstance(layer, PARAMETRIC):
            out = bld.weighted(layer, act, src, *qparams, out_shape, in_factor)
            factor = scaled_tanh_factors(act, "none")[0]
        elif isinstance(layer, SAME_QPARAMS):
            out = _same_qparams_op(bld, layer, src, out_shape)
            factor = in_factor
        else:
            if any(bld.factor[s] != 1.0 for s in step.inputs):
                raise QuantizationError(f"{layer.name}: a {layer.kind} layer after a scaled tanh has no int8 form")
            out = _own_qparams_op(bld, step, srcs, qparams, out_shape)
        bld.tensor[step.name], bld.factor[step.name] = out, factor
        qm.layer_tensors.append((step.name, out, factor))
    g.outputs = [bld.tensor[model.output]]
    return qm


def _share_concat_qparams(model, steps: list[Step], qparams_of: dict) -> None:
    """Give each CONCATENATION input the concat's qparams, as the TensorFlow converter does.

    LiteRT's int8 CONCATENATION refuses inputs whose scale or zero point differ
    from the output's. An input computed by an op with qparams of its own, read
    by nothing else, simply takes the concat's (the concat's range covers it);
    any other input gets a requantizing QUANTIZE op in front of the concat.
    """
    producer = {step.name: j for j, step in enumerate(steps)}
    for i, step in enumerate(steps):
        if not isinstance(step.layer, Concatenate):
            continue
        for name in step.inputs:
            j = producer.get(name)
            if (j is not None and j in qparams_of and step.act in FUSED and steps[j].act in FUSED
                    and len(model.consumers(name)) == 1):  # fmt: skip
                qparams_of[j] = qparams_of[i]


def input_qparams(normalization=None) -> tuple[np.float32, int]:
    """The int8 input's qparams: 1/255 and -128 (q = pixel - 128 exactly) for pixel / 255 inputs;
    for (pixel/255 - mean) / std, the range those values span over 0..255 in every channel."""
    if normalization is None:
        return INPUT_SCALE, INPUT_ZERO_POINT
    mean, std = (np.asarray(v, dtype=np.float64) for v in normalization)
    scale, zero_point = choose_qparams(np.min(-mean / std), np.max((1.0 - mean) / std))
    return np.float32(scale[0]), int(zero_point[0])


def _preprocessing(model, normalization=None, scale=INPUT_SCALE, zero_point=INPUT_ZERO_POINT) -> dict:
    if normalization is not None:
        mean, std = normalization
        return {"layout": "NHWC", "input_shape": list(model.input_shape),
                "pad": 2 if tuple(model.input_shape) == (32, 32, 1) else 0,
                "mean": [float(v) for v in mean], "std": [float(v) for v in std],
                "scale": float(scale), "zero_point": int(zero_point),
                "note": "int8 input = quantize((pixel / 255 - mean) / std) with the input's scale and zero point"}
    if tuple(model.input_shape) == (32, 32, 1):
        return {"layout": "NHWC", "input_shape": list(model.input_shape), "pad": 2,
                "scale": float(INPUT_SCALE), "zero_point": INPUT_ZERO_POINT,
                "note": "int8 input = pixel - 128 for 28x28 images zero-padded by 2 to 32x32"}
    return {"layout": "NHWC", "input_shape": list(model.input_shape), "pad": 0,
            "scale": float(INPUT_SCALE), "zero_point": INPUT_ZERO_POINT, "note": "int8 input = pixel - 128"}


def _same_qparams_op(bld: _Builder, layer, src: int, out_shape) -> int:
    """Pools, flatten, zero padding and global max: TFLite keeps the input's qparams."""
    s, zp = bld.g.tensors[src].scale, bld.g.tensors[src].zero_point
    out = bld.add(layer.name, out_shape, "int8", s, zp)
    if isinstance(layer, (MaxPool2D, AvgPool2D)):
        kind = "MAX_POOL_2D" if isinstance(layer, MaxPool2D) else "AVERAGE_POOL_2D"
        return bld.op(kind, [src], out, {
            "padding": _tflite_padding(layer, (1, 1)), "stride_h": layer.stride[0], "stride_w": layer.stride[1],
            "filter_height": layer.size[0], "filter_width": layer.size[1], "fused_activation_function": "NONE"})
    if isinstance(layer, Flatten):
        return bld.op("RESHAPE", [src], out, {"new_shape": [-1, int(layer.output_shape[0])]})
    if isinstance(layer, ZeroPadding2D):
        top, bottom, left, right = layer.padding
        pads = bld.const_int32(f"{layer.name}/paddings", [[0, 0], [top, bottom], [left, right], [0, 0]])
        return bld.op("PAD", [src, pads], out)
    axes = bld.const_int32(f"{layer.name}/axes", [1, 2])  # GlobalMaxPool2D
    return bld.op("REDUCE_MAX", [src, axes], out, {"keep_dims": False})


def _own_qparams_op(bld: _Builder, step: Step, srcs: list[int], qparams, out_shape) -> int:
    layer, act = step.layer, step.act
    out_s, out_zp = qparams if qparams is not None else (None, None)
    if isinstance(layer, Add):
        # More than two inputs: a chain of ADDs, each partial sum at the final qparams (one observer).
        out = srcs[0]
        for k, other in enumerate(srcs[1:], start=1):
            last = k == len(srcs) - 1
            name = step.name if last else f"{layer.name}/partial{k}"
            t = bld.add(name, out_shape, "int8", out_s, out_zp)
            out = bld.op("ADD", [out, other], t, {"fused_activation_function": FUSED[act] if last else "NONE"})
        return out
    if isinstance(layer, Concatenate):
        t = bld.add(step.name, out_shape, "int8", out_s, out_zp)
        return bld.op("CONCATENATION", srcs, t, {"axis": 3, "fused_activation_function": "NONE"})
    if isinstance(layer, GlobalAvgPool2D):
        axes = bld.const_int32(f"{layer.name}/axes", [1, 2])
        return bld.op("MEAN", [srcs[0], axes], bld.add(step.name, out_shape, "int8", out_s, out_zp),
                      {"keep_dims": False})
    if isinstance(layer, LeakyReLU):
        return bld.op("LEAKY_RELU", srcs, bld.add(step.name, out_shape, "int8", out_s, out_zp),
                      {"alpha": float(layer.alpha)})
    if isinstance(layer, BatchNorm):  # not foldable: a per-channel affine map is a 1x1 depthwise conv
        scale, shift = layer.scale_shift()
        c = scale.size
        w = scale.reshape(1, 1, 1, c)
        options = {"padding": "VALID", "stride_h": 1, "stride_w": 1, "dilation_h_factor": 1,
                   "dilation_w_factor": 1, "depth_multiplier": 1}
        op_out = Tensor(step.name, out_shape, "int8", out_s, out_zp)
        return bld._weights_op("DEPTHWISE_CONV_2D", layer.name, w, shift, 3, options, act, srcs[0], op_out)
    if isinstance(layer, Activation) and layer.activation in STANDALONE_ACTIVATIONS:
        kind = STANDALONE_ACTIVATIONS[layer.activation]
        return bld.op(kind, srcs, bld.add(step.name, out_shape, "int8", out_s, out_zp))
    if isinstance(layer, Activation) and layer.activation in TABLE_OPS:
        table_kind, s, zp = TABLE_OPS[layer.activation]
        return bld.op(table_kind, srcs, bld.add(step.name, out_shape, "int8", s, zp))
    raise QuantizationError(f"{layer.name}: layer kind {layer.kind} has no int8 form")


def _weights_and_options(layer, w_in: float, w_out: float):
    """(op kind, float64 weights in TFLite layout, bias, channel axis, options) with folded constants."""
    if isinstance(layer, Dense):
        w = layer.params["w"].astype(np.float64) * (w_in * w_out)
        return "FULLY_CONNECTED", w, layer.params["b"].astype(np.float64) * w_out, 0, {"keep_num_dims": False}
    if isinstance(layer, Subsampling):
        c, k = layer.input_shape[2], layer.size
        coef = layer.params["coef"].astype(np.float64) * (w_in * w_out)
        w = np.broadcast_to(coef, (1, k, k, c)).copy()
        options = {"padding": "VALID", "stride_h": k, "stride_w": k, "dilation_h_factor": 1,
                   "dilation_w_factor": 1, "depth_multiplier": 1}
        return "DEPTHWISE_CONV_2D", w, layer.params["b"].astype(np.float64) * w_out, 3, options
    w = layer.params["w"].astype(np.float64) * (w_in * w_out)
    mask = layer.mask()
    if mask is not None:
        w = w * mask
    options = {"padding": _tflite_padding(layer, layer.dilation), "stride_h": layer.stride[0],
               "stride_w": layer.stride[1], "dilation_h_factor": layer.dilation[0],
               "dilation_w_factor": layer.dilation[1]}
    b = layer.params["b"].astype(np.float64) * w_out
    c_in = layer.input_shape[2]
    if layer.groups > 1 and layer.groups == c_in:
        options["depth_multiplier"] = layer.filters // c_in
        return "DEPTHWISE_CONV_2D", np.transpose(w, (3, 1, 2, 0)), b, 3, options
    return "CONV_2D", w, b, 0, options


def _tflite_padding(layer, dilation) -> str:
    """TFLite has only SAME and VALID; other explicit paddings need a PAD op edgecnn does not emit."""
    from edgecnn.reference.padding import resolve_padding

    kernel = layer.kernel if isinstance(layer, Conv2D) else layer.size
    in_hw = layer.input_shape[:2]
    for name in ("VALID", "SAME"):
        try:
            out_hw, pad = resolve_padding(name.lower(), in_hw, kernel, layer.stride, dilation)
        except ShapeError:  # the window does not fit without padding
            continue
        if tuple(pad) == tuple(layer.pad) and tuple(out_hw) == tuple(layer.output_shape[:2]):
            return name
    raise QuantizationError(f"{layer.name}: padding {layer.pad} is neither SAME nor VALID, which TFLite needs")

