"""Small int8 graphs for the .tflite and LiteRT tests, with realistic qparams.

`GraphBuilder` appends layers to a chain the way the quantizer would: weights
are float draws quantized symmetric per channel (or per tensor) with
`choose_qparams`, biases are int32 at scale in_s * w_s, and each output's
scale comes from a rough estimate of its float range, so effective
multipliers land where real models put them (about 1e-4 .. 1).
"""

from __future__ import annotations

import numpy as np

from edgecnn.int8.graph import Int8Graph, Op, Tensor
from edgecnn.quantize.qparams import choose_qparams

LENET5_PARAMS = 61_706


def out_size(n: int, k: int, stride: int, dilation: int, padding: str) -> int:
    eff = (k - 1) * dilation + 1
    return -(-n // stride) if padding == "SAME" else (n + stride - eff) // stride


class GraphBuilder:
    def __init__(self, rng: np.random.Generator, input_shape=(1, 8, 8, 1), scale=1 / 255, zero_point=-128):
        self.rng = rng
        self.tensors: list[Tensor] = []
        self.ops: list[Op] = []
        self.x = self._activation("input", input_shape, scale, zero_point)
        self.input = self.x

    # ------------------------------------------------------------ helpers

    @property
    def shape(self):
        return self.tensors[self.x].shape

    def _add(self, t: Tensor) -> int:
        self.tensors.append(t)
        return len(self.tensors) - 1

    def _activation(self, name, shape, scale, zero_point) -> int:
        return self._add(Tensor(name, shape, "int8", [scale], [zero_point]))

    def _real_range(self, t: int):
        t = self.tensors[t]
        s, z = float(t.scale[0]), int(t.zero_point[0])
        return s * (-128 - z), s * (127 - z)

    def _output_qparams(self, amax: float, act: str):
        """Asymmetric qparams for an output of rough magnitude `amax`."""
        amax = max(amax, 1e-3) * float(self.rng.uniform(0.5, 1.5))
        lo = 0.0 if act in ("RELU", "RELU6") else -amax * float(self.rng.uniform(0.3, 1.0))
        hi = min(amax, 6.0) if act == "RELU6" else amax
        if act == "RELU_N1_TO_1":
            lo, hi = max(lo, -1.0), min(hi, 1.0)
        s, z = choose_qparams(lo, hi)
        return float(s[0]), int(z[0])

    def _weights(self, shape, channel_axis: int, per_channel: bool):
        fan_in = int(np.prod(shape)) // shape[channel_axis]
        w = self.rng.uniform(-1, 1, size=shape) / np.sqrt(fan_in)
        axes = tuple(a for a in range(len(shape)) if a != channel_axis)
        if per_channel:
            scale, _ = choose_qparams(w.min(axis=axes), w.max(axis=axes), symmetric=True)
            bshape = [1] * len(shape)
            bshape[channel_axis] = -1
            q = np.round(w / scale.astype(np.float64).reshape(bshape))
        else:
            scale, _ = choose_qparams(w.min(), w.max(), symmetric=True)
            q = np.round(w / float(scale[0]))
        return np.clip(q, -127, 127).astype(np.int8), scale

    def _bias(self, name, w_scale, channels: int, amax: float):
        in_s = np.float32(self.tensors[self.x].scale[0])
        b_scale = (in_s * w_scale.astype(np.float32)).astype(np.float32)
        b_scale = np.broadcast_to(b_scale, (channels,)) if b_scale.size == 1 and channels > 1 else b_scale
        real = self.rng.uniform(-0.3, 0.3, size=channels) * amax
        q = np.clip(np.round(real / b_scale.astype(np.float64)), -(2**24), 2**24).astype(np.int32)
        scale = b_scale if w_scale.size > 1 else b_scale[:1]
        return self._add(Tensor(name, (channels,), "int32", scale, np.zeros(scale.size, np.int64), 0, q))

    def _amax_after(self, w_q, w_scale, channel_axis, fan_in) -> float:
        lo, hi = self._real_range(self.x)
        amax_in = max(abs(lo), abs(hi))
        # A sum of fan_in roughly independent terms grows like sqrt(fan_in).
        w_abs = float(np.mean(np.abs(w_q))) * float(np.max(w_scale))
        return amax_in * w_abs * np.sqrt(fan_in) * 1.5

    def _next(self, kind, inputs, options, shape, scale, zero_point):
        name = f"{kind.lower()}_{len(self.ops)}"
        out = self._activation(name, shape, scale, zero_point)
        self.ops.append(Op(kind, list(inputs), [out], dict(options)))
        self.x = out
        return self

    # ------------------------------------------------------------ layers

    def conv2d(self, out_ch, kh=3, kw=3, stride=(1, 1), padding="VALID", dilation=(1, 1), act="NONE", per_channel=True):
        n, h, w, c = self.shape
        wq, ws = self._weights((out_ch, kh, kw, c), 0, per_channel)
        amax = self._amax_after(wq, ws, 0, kh * kw * c)
        wt = self._add(Tensor(f"w{len(self.ops)}", wq.shape, "int8", ws, np.zeros(ws.size, np.int64), 0, wq))
        bt = self._bias(f"b{len(self.ops)}", ws, out_ch, amax)
        oh = out_size(h, kh, stride[0], dilation[0], padding)
        ow = out_size(w, kw, stride[1], dilation[1], padding)
        s, z = self._output_qparams(amax, act)
        options = {
            "padding": padding, "stride_h": stride[0], "stride_w": stride[1],
            "dilation_h_factor": dilation[0], "dilation_w_factor": dilation[1],
            "fused_activation_function": act,
        }  # fmt: skip
        return self._next("CONV_2D", [self.x, wt, bt], options, (n, oh, ow, out_ch), s, z)

    def depthwise(self, multiplier=1, kh=3, kw=3, stride=(1, 1), padding="VALID", dilation=(1, 1), act="NONE",
                  bias=True):  # fmt: skip
        n, h, w, c = self.shape
        oc = c * multiplier
        wq, ws = self._weights((1, kh, kw, oc), 3, True)
        amax = self._amax_after(wq, ws, 3, kh * kw)
        wt = self._add(Tensor(f"w{len(self.ops)}", wq.shape, "int8", ws, np.zeros(ws.size, np.int64), 3, wq))
        bt = self._bias(f"b{len(self.ops)}", ws, oc, amax) if bias else -1
        oh = out_size(h, kh, stride[0], dilation[0], padding)
        ow = out_size(w, kw, stride[1], dilation[1], padding)
        s, z = self._output_qparams(amax, act)
        options = {
            "padding": padding, "stride_h": stride[0], "stride_w": stride[1],
            "dilation_h_factor": dilation[0], "dilation_w_factor": dilation[1],
            "fused_activation_function": act, "depth_multiplier": multiplier,
        }  # fmt: skip
        return self._next("DEPTHWISE_CONV_2D", [self.x, wt, bt], options, (n, oh, ow, oc), s, z)

    def pool(self, kind="MAX_POOL_2D", size=(2, 2), stride=(2, 2), padding="VALID", act="NONE"):
        n, h, w, c = self.shape
        oh = out_size(h, size[0], stride[0], 1, padding)
        ow = out_size(w, size[1], stride[1], 1, padding)
        t = self.tensors[self.x]
        options = {
            "padding": padding, "stride_h": stride[0], "stride_w": stride[1],
            "filter_height": size[0], "filter_width": size[1], "fused_activation_function": act,
        }  # fmt: skip
        return self._next(kind, [self.x], options, (n, oh, ow, c), float(t.scale[0]), int(t.zero_point[0]))

    def flatten(self):
        depth = int(np.prod(self.shape[1:]))
        t = self.tensors[self.x]
        return self._next(
            "RESHAPE", [self.x], {"new_shape": [-1, depth]}, (1, depth), float(t.scale[0]), int(t.zero_point[0])
        )

    def fully_connected(self, units, act="NONE", per_channel=True, bias=True):
        n, depth = self.shape
        wq, ws = self._weights((units, depth), 0, per_channel)
        amax = self._amax_after(wq, ws, 0, depth)
        wt = self._add(Tensor(f"w{len(self.ops)}", wq.shape, "int8", ws, np.zeros(ws.size, np.int64), 0, wq))
        bt = self._bias(f"b{len(self.ops)}", ws, units, amax) if bias else -1
        s, z = self._output_qparams(amax, act)
        options = {"fused_activation_function": act, "keep_num_dims": False}
        return self._next("FULLY_CONNECTED", [self.x, wt, bt], options, (n, units), s, z)

    def logistic(self):
        return self._next("LOGISTIC", [self.x], {}, self.shape, 1 / 256, -128)

    def tanh(self):
        return self._next("TANH", [self.x], {}, self.shape, 1 / 128, 0)

    def softmax(self, beta=1.0):
        return self._next("SOFTMAX", [self.x], {"beta": beta}, self.shape, 1 / 256, -128)

    def build(self, metadata=None) -> Int8Graph:
        return Int8Graph(list(self.tensors), list(self.ops), [self.input], [self.x], dict(metadata or {})).validate()


def lenet5(seed: int = 0, metadata=None) -> Int8Graph:
    """edgecnn's modern LeNet-5 (61,706 parameters) with random int8 weights."""
    g = GraphBuilder(np.random.default_rng(seed), (1, 32, 32, 1))
    g.conv2d(6, 5, 5, act="RELU").pool("MAX_POOL_2D")
    g.conv2d(16, 5, 5, act="RELU").pool("MAX_POOL_2D")
    g.flatten().fully_connected(120, "RELU").fully_connected(84, "RELU").fully_connected(10)
    return g.build(metadata)


def random_input(graph: Int8Graph, batch: int, seed: int = 0) -> np.ndarray:
    shape = (batch,) + tuple(graph.input.shape[1:])
    return np.random.default_rng(seed).integers(-128, 128, size=shape, dtype=np.int8)


# ---------------------------------------------------------------- raw files
# An independent, minimal flatbuffer writer for files edgecnn's writer would
# never produce: float models, unsupported ops, the TF converter's shape ops.


def raw_model(tensors: list[dict], ops: list[dict], inputs: list[int], outputs: list[int]) -> bytes:
    """A .tflite from plain dicts.

    tensor: {"name", "shape", "type" (tflite.TensorType), optional "scale",
             "zero_point", "qdim", "data" (bytes), "signature" (shape_signature)}
    op:     {"op" (builtin name), "version", "inputs", "outputs",
             optional "options": (BuiltinOptions type, fn(builder) -> offset)}
    """
    import flatbuffers
    import tflite

    b = flatbuffers.Builder(1024)

    def ivec(values):
        return b.CreateNumpyVector(np.asarray(list(values), dtype="<i4"))

    def tvec(start, offs):
        start(b, len(offs))
        for o in reversed(offs):
            b.PrependUOffsetTRelative(o)
        return b.EndVector()

    buffers = [None]
    tensor_offs = []
    for t in tensors:
        buf = 0
        if t.get("data") is not None:
            buffers.append(b.CreateByteVector(bytes(t["data"])))
            buf = len(buffers) - 1
        name = b.CreateString(t["name"])
        shape = ivec(t["shape"])
        sig = ivec(t["signature"]) if t.get("signature") is not None else None
        quant = None
        if t.get("scale") is not None:
            sc = b.CreateNumpyVector(np.asarray(t["scale"], "<f4").reshape(-1))
            zp = b.CreateNumpyVector(np.asarray(t["zero_point"], "<i8").reshape(-1))
            tflite.QuantizationParametersStart(b)
            tflite.QuantizationParametersAddScale(b, sc)
            tflite.QuantizationParametersAddZeroPoint(b, zp)
            tflite.QuantizationParametersAddQuantizedDimension(b, t.get("qdim", 0))
            quant = tflite.QuantizationParametersEnd(b)
        tflite.TensorStart(b)
        tflite.TensorAddShape(b, shape)
        tflite.TensorAddType(b, t["type"])
        tflite.TensorAddBuffer(b, buf)
        tflite.TensorAddName(b, name)
        if quant is not None:
            tflite.TensorAddQuantization(b, quant)
        if sig is not None:
            tflite.TensorAddShapeSignature(b, sig)
        tensor_offs.append(tflite.TensorEnd(b))
    buffer_offs = []
    for vec in buffers:
        tflite.BufferStart(b)
        if vec is not None:
            tflite.BufferAddData(b, vec)
        buffer_offs.append(tflite.BufferEnd(b))

    codes = list(dict.fromkeys((o["op"], o.get("version", 1)) for o in ops))
    op_offs = []
    for o in ops:
        opts = o["options"][1](b) if o.get("options") else None
        ins, outs = ivec(o["inputs"]), ivec(o["outputs"])
        tflite.OperatorStart(b)
        tflite.OperatorAddOpcodeIndex(b, codes.index((o["op"], o.get("version", 1))))
        tflite.OperatorAddInputs(b, ins)
        tflite.OperatorAddOutputs(b, outs)
        if opts is not None:
            tflite.OperatorAddBuiltinOptionsType(b, o["options"][0])
            tflite.OperatorAddBuiltinOptions(b, opts)
        op_offs.append(tflite.OperatorEnd(b))

    sg_t = tvec(tflite.SubGraphStartTensorsVector, tensor_offs)
    sg_i, sg_o = ivec(inputs), ivec(outputs)
    sg_ops = tvec(tflite.SubGraphStartOperatorsVector, op_offs)
    tflite.SubGraphStart(b)
    tflite.SubGraphAddTensors(b, sg_t)
    tflite.SubGraphAddInputs(b, sg_i)
    tflite.SubGraphAddOutputs(b, sg_o)
    tflite.SubGraphAddOperators(b, sg_ops)
    sg = tflite.SubGraphEnd(b)
    code_offs = []
    for name, version in codes:
        code = getattr(tflite.BuiltinOperator, name)
        tflite.OperatorCodeStart(b)
        tflite.OperatorCodeAddDeprecatedBuiltinCode(b, min(code, 127))
        tflite.OperatorCodeAddBuiltinCode(b, code)
        tflite.OperatorCodeAddVersion(b, version)
        code_offs.append(tflite.OperatorCodeEnd(b))
    m_codes = tvec(tflite.ModelStartOperatorCodesVector, code_offs)
    m_sg = tvec(tflite.ModelStartSubgraphsVector, [sg])
    m_buf = tvec(tflite.ModelStartBuffersVector, buffer_offs)
    desc = b.CreateString("MLIR Converted.")
    tflite.ModelStart(b)
    tflite.ModelAddVersion(b, 3)
    tflite.ModelAddOperatorCodes(b, m_codes)
    tflite.ModelAddSubgraphs(b, m_sg)
    tflite.ModelAddBuffers(b, m_buf)
    tflite.ModelAddDescription(b, desc)
    b.Finish(tflite.ModelEnd(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def raw_tensor(t: Tensor, batch_signature: bool = True) -> dict:
    """The raw_model dict of an Int8Graph tensor."""
    import tflite

    d = {
        "name": t.name,
        "shape": t.shape,
        "type": tflite.TensorType.INT8 if t.dtype == "int8" else tflite.TensorType.INT32,
        "scale": t.scale,
        "zero_point": t.zero_point,
        "qdim": t.quantized_dimension,
        "data": None if t.data is None else t.data.astype(t.data.dtype.newbyteorder("<")).tobytes(),
    }
    if t.data is None and batch_signature:
        d["signature"] = (-1,) + tuple(t.shape[1:])
    return d


def raw_options(op: Op):
    """(BuiltinOptions type, builder fn) for an Int8Graph op, written independently of edgecnn's writer."""
    import tflite

    o = op.options
    pad = {"SAME": tflite.Padding.SAME, "VALID": tflite.Padding.VALID}
    act = {"NONE": 0, "RELU": 1, "RELU_N1_TO_1": 2, "RELU6": 3}[o.get("fused_activation_function", "NONE")]
    if op.kind == "CONV_2D":
        def fn(b):
            tflite.Conv2DOptionsStart(b)
            tflite.Conv2DOptionsAddPadding(b, pad[o["padding"]])
            tflite.Conv2DOptionsAddStrideH(b, o["stride_h"])
            tflite.Conv2DOptionsAddStrideW(b, o["stride_w"])
            tflite.Conv2DOptionsAddDilationHFactor(b, o["dilation_h_factor"])
            tflite.Conv2DOptionsAddDilationWFactor(b, o["dilation_w_factor"])
            tflite.Conv2DOptionsAddFusedActivationFunction(b, act)
            return tflite.Conv2DOptionsEnd(b)
        return tflite.BuiltinOptions.Conv2DOptions, fn
    if op.kind == "DEPTHWISE_CONV_2D":
        def fn(b):
            tflite.DepthwiseConv2DOptionsStart(b)
            tflite.DepthwiseConv2DOptionsAddPadding(b, pad[o["padding"]])
            tflite.DepthwiseConv2DOptionsAddStrideH(b, o["stride_h"])
            tflite.DepthwiseConv2DOptionsAddStrideW(b, o["stride_w"])
            tflite.DepthwiseConv2DOptionsAddDilationHFactor(b, o["dilation_h_factor"])
            tflite.DepthwiseConv2DOptionsAddDilationWFactor(b, o["dilation_w_factor"])
            tflite.DepthwiseConv2DOptionsAddDepthMultiplier(b, o["depth_multiplier"])
            tflite.DepthwiseConv2DOptionsAddFusedActivationFunction(b, act)
            return tflite.DepthwiseConv2DOptionsEnd(b)
        return tflite.BuiltinOptions.DepthwiseConv2DOptions, fn
    if op.kind in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
        def fn(b):
            tflite.Pool2DOptionsStart(b)
            tflite.Pool2DOptionsAddPadding(b, pad[o["padding"]])
            tflite.Pool2DOptionsAddStrideH(b, o["stride_h"])
            tflite.Pool2DOptionsAddStrideW(b, o["stride_w"])
            tflite.Pool2DOptionsAddFilterHeight(b, o["filter_height"])
            tflite.Pool2DOptionsAddFilterWidth(b, o["filter_width"])
            tflite.Pool2DOptionsAddFusedActivationFunction(b, act)
            return tflite.Pool2DOptionsEnd(b)
        return tflite.BuiltinOptions.Pool2DOptions, fn
    if op.kind == "FULLY_CONNECTED":
        def fn(b):
            tflite.FullyConnectedOptionsStart(b)
            tflite.FullyConnectedOptionsAddFusedActivationFunction(b, act)
            tflite.FullyConnectedOptionsAddKeepNumDims(b, o["keep_num_dims"])
            return tflite.FullyConnectedOptionsEnd(b)
        return tflite.BuiltinOptions.FullyConnectedOptions, fn
    if op.kind == "SOFTMAX":
        def fn(b):
            tflite.SoftmaxOptionsStart(b)
            tflite.SoftmaxOptionsAddBeta(b, o["beta"])
            return tflite.SoftmaxOptionsEnd(b)
        return tflite.BuiltinOptions.SoftmaxOptions, fn
    return None


_CONVERTER_VERSIONS = {"CONV_2D": 3, "DEPTHWISE_CONV_2D": 3, "FULLY_CONNECTED": 4, "MAX_POOL_2D": 2,
                       "AVERAGE_POOL_2D": 2, "SOFTMAX": 2, "LOGISTIC": 2, "TANH": 2}  # fmt: skip


def converter_style(graph: Int8Graph, flatten: str = "pack") -> bytes:
    """`graph` as the TF converter writes it, including how Keras' Flatten
    comes out. Each RESHAPE [-1, D] becomes, by `flatten`:
      "pack"   (Keras 2 Flatten on a dynamic batch, tf.reshape(x, [tf.shape(x)[0], -1])):
               SHAPE(x) -> STRIDED_SLICE([0]:[1], shrink_axis_mask=1) -> PACK([batch, -1], axis 0)
               -> RESHAPE(x, packed), the tfl.shape / tfl.strided_slice / tfl.pack chain;
      "concat" the same batch slice without shrinking, CONCATENATION([batch], [-1]) -> RESHAPE;
      "const"  (a static shape, newer Keras): RESHAPE(x, const int32 [-1, D]), no options.
    """
    import tflite

    tensors = [raw_tensor(t) for t in graph.tensors]
    i32 = tflite.TensorType.INT32

    def add(name, shape, data=None):
        tensors.append({"name": name, "shape": shape, "type": i32,
                        "data": None if data is None else np.asarray(data, "<i4").tobytes()})  # fmt: skip
        return len(tensors) - 1

    def options(kind, **fields):
        def fn(b):
            getattr(tflite, f"{kind}Start")(b)
            for field, value in fields.items():
                getattr(tflite, f"{kind}Add{field}")(b, value)
            return getattr(tflite, f"{kind}End")(b)

        return getattr(tflite.BuiltinOptions, kind), fn

    ops = []
    for k, op in enumerate(graph.ops):
        if op.kind != "RESHAPE":
            ops.append({"op": op.kind, "version": _CONVERTER_VERSIONS[op.kind], "inputs": op.inputs,
                        "outputs": op.outputs, "options": raw_options(op)})  # fmt: skip
            continue
        x = op.inputs[0]
        prefix = f"sequential/flatten_{k}"
        if flatten == "const":
            shape = add(f"{prefix}/Const", (2,), op.options["new_shape"])
            ops.append({"op": "RESHAPE", "inputs": [x, shape], "outputs": op.outputs})
            continue
        shape_t = add(f"{prefix}/Shape", (len(graph.tensors[x].shape),))
        begin = add(f"{prefix}/strided_slice/stack", (1,), [0])
        end = add(f"{prefix}/strided_slice/stack_1", (1,), [1])
        strides = add(f"{prefix}/strided_slice/stack_2", (1,), [1])
        ops.append({"op": "SHAPE", "inputs": [x], "outputs": [shape_t],
                    "options": options("ShapeOptions", OutType=i32)})  # fmt: skip
        if flatten == "pack":
            batch = add(f"{prefix}/strided_slice", ())
            minus_one = add(f"{prefix}/Reshape/shape/1", (), [-1])
            packed = add(f"{prefix}/Reshape/shape", (2,))
            ops += [
                {"op": "STRIDED_SLICE", "inputs": [shape_t, begin, end, strides], "outputs": [batch],
                 "options": options("StridedSliceOptions", ShrinkAxisMask=1)},
                {"op": "PACK", "inputs": [batch, minus_one], "outputs": [packed],
                 "options": options("PackOptions", ValuesCount=2, Axis=0)},
            ]  # fmt: skip
        else:
            batch = add(f"{prefix}/strided_slice", (1,))
            minus_one = add(f"{prefix}/Reshape/shape/1", (1,), [-1])
            packed = add(f"{prefix}/Reshape/shape", (2,))
            ops += [
                {"op": "STRIDED_SLICE", "inputs": [shape_t, begin, end, strides], "outputs": [batch],
                 "options": options("StridedSliceOptions")},
                {"op": "CONCATENATION", "inputs": [batch, minus_one], "outputs": [packed],
                 "options": options("ConcatenationOptions", Axis=0)},
            ]  # fmt: skip
        ops.append({"op": "RESHAPE", "inputs": [x, packed], "outputs": op.outputs})
    return raw_model(tensors, ops, graph.inputs, graph.outputs)


# ---------------------------------------------------------------- hypothesis

ACTS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")


def _spatial(draw, st, size: int, padding: str, max_k: int = 5):
    """(kernel, stride, dilation) that leave at least one output pixel."""
    dilation = draw(st.integers(1, 2))
    k_cap = max_k if padding == "SAME" else max(1, min(max_k, (size - 1) // dilation + 1))
    k = draw(st.integers(1, k_cap))
    return k, draw(st.integers(1, 3)), dilation


def graphs(max_layers: int = 3, head: bool = True):
    """Hypothesis strategy: small chains of every op edgecnn supports.

    A random trunk of conv / depthwise / pools / logistic / tanh on an image of
    3..9 pixels, then optionally flatten + fully-connected (per-channel or
    per-tensor, with or without bias) and a softmax / logistic / tanh head.
    """
    from hypothesis import strategies as st

    @st.composite
    def build(draw):
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        h, w = draw(st.integers(3, 9)), draw(st.integers(3, 9))
        c = draw(st.integers(1, 4))
        scale = draw(st.sampled_from([1 / 255, 0.02, 0.1, 0.5]))
        g = GraphBuilder(rng, (1, h, w, c), scale, draw(st.integers(-128, 127)))
        for _ in range(draw(st.integers(1, max_layers))):
            kind = draw(st.sampled_from(["conv", "conv", "depthwise", "max", "avg", "logistic", "tanh"]))
            _, hh, ww, cc = g.shape
            padding = draw(st.sampled_from(["SAME", "VALID"]))
            act = draw(st.sampled_from(ACTS))
            (kh, sh, dh), (kw, sw, dw) = _spatial(draw, st, hh, padding), _spatial(draw, st, ww, padding)
            if kind == "conv":
                g.conv2d(draw(st.integers(1, 4)), kh, kw, (sh, sw), padding, (dh, dw), act, draw(st.booleans()))
            elif kind == "depthwise":
                g.depthwise(draw(st.integers(1, 3)), kh, kw, (sh, sw), padding, (dh, dw), act)
            elif kind in ("max", "avg"):
                kh, kw = (max(1, min(kh, hh)), max(1, min(kw, ww))) if padding == "VALID" else (kh, kw)
                g.pool("MAX_POOL_2D" if kind == "max" else "AVERAGE_POOL_2D", (kh, kw), (sh, sw), padding, act)
            elif kind == "logistic":
                g.logistic()
            else:
                g.tanh()
        if head and draw(st.booleans()):
            g.flatten()
            g.fully_connected(draw(st.integers(1, 6)), draw(st.sampled_from(ACTS)), draw(st.booleans()),
                              draw(st.booleans()))  # fmt: skip
        last = draw(st.sampled_from(["none", "softmax", "logistic", "tanh"])) if head else "none"
        if last == "softmax":
            g.softmax(draw(st.sampled_from([1.0, 0.5, 2.0])))
        elif last == "logistic":
            g.logistic()
        elif last == "tanh":
            g.tanh()
        return g.build({"labels": [f"c{i}" for i in range(g.shape[-1])], "seed": rng.integers(1 << 30).item()})

    return build()


def assert_graphs_equal(a: Int8Graph, b: Int8Graph) -> None:
    """Every field of two graphs, tensor by tensor and op by op."""
    assert a.inputs == b.inputs and a.outputs == b.outputs
    assert a.metadata == b.metadata
    assert len(a.tensors) == len(b.tensors)
    for ta, tb in zip(a.tensors, b.tensors):
        fields = ("name", "shape", "dtype", "quantized_dimension")
        assert [getattr(ta, f) for f in fields] == [getattr(tb, f) for f in fields]
        assert ta.scale.dtype == tb.scale.dtype == np.float32 and np.array_equal(ta.scale, tb.scale), ta.name
        assert ta.zero_point.dtype == tb.zero_point.dtype and np.array_equal(ta.zero_point, tb.zero_point), ta.name
        assert (ta.data is None) == (tb.data is None), ta.name
        if ta.data is not None:
            assert ta.data.dtype == tb.data.dtype and np.array_equal(ta.data, tb.data), ta.name
    assert len(a.ops) == len(b.ops)
    for oa, ob in zip(a.ops, b.ops):
        assert (oa.kind, oa.inputs, oa.outputs) == (ob.kind, ob.inputs, ob.outputs)
        assert oa.options == ob.options, (oa.options, ob.options)
        assert {k: type(v) for k, v in oa.options.items()} == {k: type(v) for k, v in ob.options.items()}
