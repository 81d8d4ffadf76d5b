"""Post-training quantization: a float Sequential model -> an int8 graph (TFLite int8 spec).

Calibration runs the float model over N images and feeds one observer per
int8 activation tensor. Weights are quantized symmetric per channel in
[-127, 127], biases to int32 at scale s_in * s_w[c], and activations get
asymmetric int8 qparams from the observers. The graph's input qparams are
fixed at 1/255 and -128, so the int8 input is exactly `pixel - 128`.

Layer mapping:
  conv2d (+relu/relu6)     CONV_2D with fused activation (DEPTHWISE_CONV_2D when groups == C_in)
  subsampling              DEPTHWISE_CONV_2D 2x2 stride 2, the four taps tied
  dense (+relu/relu6)      FULLY_CONNECTED
  maxpool2d / avgpool2d    MAX_POOL_2D / AVERAGE_POOL_2D, output qparams = input qparams
  flatten                  RESHAPE to [-1, D]
  tanh / sigmoid           the layer's op, then TANH (1/128, 0) or LOGISTIC (1/256, -128)
  scaled_tanh              as tanh, with 2/3 folded into this layer and 1.7159 into the next
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

import edgecnn
from edgecnn.int8.graph import Int8Graph, Op, Tensor
from edgecnn.errors import CalibrationError, QuantizationError
from edgecnn.model.layers import Activation, AvgPool2D, Conv2D, Dense, Flatten, Layer, MaxPool2D, Subsampling
from edgecnn.model.sequential import Sequential
from edgecnn.progress import progress_bar
from edgecnn.quantize.fold import scaled_tanh_factors
from edgecnn.quantize.observers import make_observer
from edgecnn.int8.rules import round_half_away
from edgecnn.quantize.qparams import choose_qparams

INPUT_SCALE = np.float32(1.0 / 255.0)
INPUT_ZERO_POINT = -128
FUSED = {"none": "NONE", "relu": "RELU", "relu6": "RELU6"}
TABLE_OPS = {"tanh": ("TANH", 1.0 / 128.0, 0), "scaled_tanh": ("TANH", 1.0 / 128.0, 0),
             "sigmoid": ("LOGISTIC", 1.0 / 256.0, -128)}
INT32_MIN, INT32_MAX = -(2 ** 31), 2 ** 31 - 1


@dataclass
class QuantizedModel:
    graph: Int8Graph
    # per float layer: (layer name, int8 tensor index, factor) with float output ~= factor * dequant(tensor)
    layer_tensors: list[tuple[str, int, float]] = field(default_factory=list)
    calibration: str = "minmax"


def _plan(model: Sequential) -> list[tuple[Layer, str]]:
    """Merge standalone activation layers into the layer before them: (layer, activation) pairs."""
    plan: list[list] = []
    for layer in model.layers:
        if isinstance(layer, Activation):
            if plan and isinstance(plan[-1][0], (Conv2D, Dense, Subsampling)) and plan[-1][1] == "none":
                plan[-1][1] = layer.activation
                continue
            if layer.activation in ("relu", "relu6"):
                raise QuantizationError(f"{layer.name}: a standalone {layer.activation} must follow a conv or dense layer")
            if layer.activation == "scaled_tanh":
                raise QuantizationError(f"{layer.name}: a standalone scaled tanh must follow a conv or dense layer")
        plan.append([layer, layer.activation])
    return [(layer, act) for layer, act in plan]


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


def _layer_values(layer: Layer, activation: str, x: np.ndarray):
    """Run one float layer: (value its int8 op output represents, layer output)."""
    z, layer._cache = layer._forward(x)
    if activation == "none":
        return z, z
    from edgecnn.reference import activations as A

    a, _ = getattr(A, f"{activation}_forward")(z)
    if activation in ("relu", "relu6"):
        return a, a
    _, out_factor = scaled_tanh_factors("none", activation)
    return z * out_factor, a


def calibrate(model: Sequential, calib_x: np.ndarray, method: str = "minmax", batch_size: int = 250,
              progress: bool | None = None) -> dict[int, object]:
    """Observers for the op outputs of every parametric layer, keyed by plan index."""
    calib_x = np.asarray(calib_x)
    if calib_x.ndim != 4 or tuple(calib_x.shape[1:]) != model.input_shape:
        raise CalibrationError(f"calibration images have shape {tuple(calib_x.shape)}, "
                               f"the model wants (N, {', '.join(map(str, model.input_shape))})")
    if len(calib_x) == 0:
        raise CalibrationError("the calibration set is empty")
    if not np.all(np.isfinite(calib_x)):
        raise CalibrationError("the calibration images hold NaN or infinite values")
    plan = _plan(model)
    observers = {i: make_observer(method, name=layer.name) for i, (layer, _) in enumerate(plan)
                 if isinstance(layer, (Conv2D, Dense, Subsampling))}
    bar = progress_bar(len(calib_x), "calibrating", progress, unit="img")
    dtype = model.layers[0].params["w"].dtype if "w" in model.layers[0].params else np.float32
    for start in range(0, len(calib_x), batch_size):
        batch = calib_x[start:start + batch_size]
        x = batch.astype(dtype)
        for i, (layer, act) in enumerate(plan):
            if i in observers:
                observed, x = _layer_values(layer, act, x)
                observers[i].update(observed)
            else:
                x = layer.forward(x)
        bar.update(len(batch))
    bar.close()
    return observers


def quantize_model(model: Sequential, calib_x: np.ndarray, calibration: str = "minmax", per_tensor: bool = False,
                   progress: bool | None = None) -> QuantizedModel:
    """Calibrate on `calib_x` (float NHWC in [0, 1]) and build the int8 graph."""
    for layer in model.layers:
        if isinstance(layer, (Conv2D, Dense, Subsampling)) and not layer.params:
            raise QuantizationError(f"{layer.name}: the model has no weights (call init_params or load a checkpoint)")
    for key, value in model.named_params():
        if not np.all(np.isfinite(value)):
            raise QuantizationError(f"{key}: the weights hold NaN or infinite values")
    observers = calibrate(model, calib_x, calibration, progress=progress)
    return build_graph(model, observers, per_tensor, calibration)


def build_graph(model: Sequential, observers: dict, per_tensor: bool = False, calibration: str = "minmax") -> QuantizedModel:
    g = Int8Graph(tensors=[], ops=[], inputs=[], outputs=[], metadata={
        "edgecnn_version": edgecnn.__version__,
        "arch": model.arch,
        "labels": list(model.labels),
        "calibration": calibration,
        "preprocessing": {"layout": "NHWC", "input_shape": list(model.input_shape), "pad": 2,
                          "scale": float(INPUT_SCALE), "zero_point": INPUT_ZERO_POINT,
                          "note": "int8 input = pixel - 128 for 28x28 images zero-padded by 2 to 32x32"},
    })
    cur = g.add_tensor(Tensor("input", (1, *model.input_shape), "int8", INPUT_SCALE, INPUT_ZERO_POINT))
    g.inputs = [cur]
    in_factor_act = "none"  # activation whose constant the next parametric layer must absorb
    qm = QuantizedModel(g, calibration=calibration)
    for i, (layer, act) in enumerate(_plan(model)):
        src = g.tensors[cur]
        out_shape = (1, *layer.output_shape)
        if isinstance(layer, (Conv2D, Dense, Subsampling)):
            if act not in FUSED and act not in TABLE_OPS:
                raise QuantizationError(f"{layer.name}: activation {act} has no int8 form")
            w_in, w_out = scaled_tanh_factors(in_factor_act, act)
            out_s, out_zp = observers[i].qparams()
            op_out = Tensor(layer.name if act in FUSED else f"{layer.name}/preact", out_shape, "int8", out_s, out_zp)
            kind, w, b, axis, options = _weights_and_options(layer, w_in, w_out)
            qw, w_s = _quantize_weights(w, axis, per_tensor, layer.name)
            channels = w.shape[axis]
            qb, b_s = _quantize_bias(b, src.scale[0], w_s, channels, layer.name)
            wt = g.add_tensor(Tensor(f"{layer.name}/weights", qw.shape, "int8", w_s, np.zeros(w_s.size, np.int64),
                                     quantized_dimension=axis if w_s.size > 1 else 0, data=qw))
            bt = g.add_tensor(Tensor(f"{layer.name}/bias", qb.shape, "int32", b_s, np.zeros(b_s.size, np.int64),
                                     data=qb))
            out = g.add_tensor(op_out)
            options["fused_activation_function"] = FUSED.get(act, "NONE")
            g.ops.append(Op(kind, [cur, wt, bt], [out], options))
            cur, factor = out, 1.0
            if act in TABLE_OPS:
                table_kind, s, zp = TABLE_OPS[act]
                t = g.add_tensor(Tensor(layer.name, out_shape, "int8", s, zp))
                g.ops.append(Op(table_kind, [cur], [t], {}))
                cur = t
                factor = scaled_tanh_factors(act, "none")[0]
            in_factor_act = act
        elif isinstance(layer, (MaxPool2D, AvgPool2D)):
            out = g.add_tensor(Tensor(layer.name, out_shape, "int8", src.scale, src.zero_point))
            kind = "MAX_POOL_2D" if isinstance(layer, MaxPool2D) else "AVERAGE_POOL_2D"
            g.ops.append(Op(kind, [cur], [out], {
                "padding": _tflite_padding(layer, (1, 1)), "stride_h": layer.stride[0], "stride_w": layer.stride[1],
                "filter_height": layer.size[0], "filter_width": layer.size[1], "fused_activation_function": "NONE"}))
            cur, factor = out, qm.layer_tensors[-1][2] if qm.layer_tensors else 1.0
        elif isinstance(layer, Flatten):
            out = g.add_tensor(Tensor(layer.name, out_shape, "int8", src.scale, src.zero_point))
            g.ops.append(Op("RESHAPE", [cur], [out], {"new_shape": [-1, int(layer.output_shape[0])]}))
            cur, factor = out, qm.layer_tensors[-1][2] if qm.layer_tensors else 1.0
        elif isinstance(layer, Activation) and act in TABLE_OPS and act != "scaled_tanh":
            table_kind, s, zp = TABLE_OPS[act]
            out = g.add_tensor(Tensor(layer.name, out_shape, "int8", s, zp))
            g.ops.append(Op(table_kind, [cur], [out], {}))
            cur, factor = out, 1.0
        else:
            raise QuantizationError(f"{layer.name}: layer kind {layer.kind} has no int8 form")
        qm.layer_tensors.append((layer.name, cur, factor))
    g.outputs = [cur]
    return qm


def _weights_and_options(layer: Layer, w_in: float, w_out: float):
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


def _tflite_padding(layer: Layer, dilation) -> str:
    """TFLite has only SAME and VALID; other explicit paddings need a PAD op edgecnn does not emit."""
    from edgecnn.reference.padding import resolve_padding

    kernel = layer.kernel if isinstance(layer, Conv2D) else layer.size
    in_hw = layer.input_shape[:2]
    for name in ("VALID", "SAME"):
        out_hw, pad = resolve_padding(name.lower(), in_hw, kernel, layer.stride, dilation)
        if tuple(pad) == tuple(layer.pad) and tuple(out_hw) == tuple(layer.output_shape[:2]):
            return name
    raise QuantizationError(f"{layer.name}: padding {layer.pad} is neither SAME nor VALID, which TFLite needs")

