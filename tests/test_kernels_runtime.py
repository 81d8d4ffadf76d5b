"""Runtime end to end: whole graphs against the naive references, batching, chunking, input errors."""

import numpy as np
import pytest

from edgecnn.int8.graph import Int8Graph, Op, Tensor
from edgecnn.deploy.runtime import Runtime, naive
from edgecnn.errors import ShapeError

f32 = np.float32


class GraphBuilder:
    """Random int8 graphs with output scales sized to the accumulators, so values are not all clamped."""

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.tensors = []
        self.ops = []

    def add(self, tensor):
        self.tensors.append(tensor)
        return len(self.tensors) - 1

    def activation(self, name, shape, scale, zp=None):
        zp = int(self.rng.integers(-128, 20)) if zp is None else zp
        return self.add(Tensor(name, shape, "int8", f32(scale), zp))

    def scale(self, t):
        return float(self.tensors[t].scale[0])

    def weights(self, name, shape, channels, per_channel=True, zero_point=0, quantized_dimension=0):
        scales = self.rng.uniform(0.002, 0.02, channels if per_channel else 1).astype(np.float32)
        data = self.rng.integers(-127, 128, shape, dtype=np.int8)
        zps = np.full(scales.size, zero_point)
        return self.add(Tensor(name, shape, "int8", scales, zps, quantized_dimension, data)), float(np.median(scales))

    def bias(self, name, x, w, channels):
        scales = (f32(self.scale(x)) * self.tensors[w].scale).astype(np.float32)
        data = self.rng.integers(-3000, 3000, channels).astype(np.int32)
        return self.add(Tensor(name, (channels,), "int32", scales, np.zeros(scales.size), 0, data))

    def out_scale(self, x, w_scale, taps):
        return self.scale(x) * w_scale * 75 * 73 * np.sqrt(taps) / 40

    def conv(self, x, out_shape, kernel, groups=1, act="RELU", **opts):
        c_in = self.tensors[x].shape[3]
        c_out = out_shape[3]
        w, ws = self.weights("w", (c_out, kernel, kernel, c_in // groups), c_out)
        b = self.bias("b", x, w, c_out)
        y = self.activation("conv", out_shape, self.out_scale(x, ws, kernel * kernel * c_in // groups))
        options = dict(padding="SAME", stride_h=1, stride_w=1, dilation_h_factor=1, dilation_w_factor=1,
                       fused_activation_function=act)  # fmt: skip
        options.update(opts)
        self.ops.append(Op("CONV_2D", [x, w, b], [y], options))
        return y

    def depthwise(self, x, out_shape, kernel, act="RELU6", bias=True, **opts):
        c_out = out_shape[3]
        w, ws = self.weights("dw", (1, kernel, kernel, c_out), c_out, quantized_dimension=3)
        inputs = [x, w, self.bias("db", x, w, c_out)] if bias else [x, w]  # no bias: no slot (LiteRT)
        y = self.activation("dw", out_shape, self.out_scale(x, ws, kernel * kernel))
        options = dict(padding="SAME", stride_h=1, stride_w=1, dilation_h_factor=1, dilation_w_factor=1,
                       depth_multiplier=c_out // self.tensors[x].shape[3], fused_activation_function=act)  # fmt: skip
        options.update(opts)
        self.ops.append(Op("DEPTHWISE_CONV_2D", inputs, [y], options))
        return y

    def dense(self, x, units, act="RELU", per_channel=True, zero_point=0):
        depth = int(np.prod(self.tensors[x].shape))
        w, ws = self.weights("fw", (units, depth), units, per_channel, zero_point)
        b = self.bias("fb", x, w, units)
        y = self.activation("fc", (1, units), self.out_scale(x, ws, depth))
        self.ops.append(Op("FULLY_CONNECTED", [x, w, b], [y], dict(fused_activation_function=act, keep_num_dims=False)))
        return y

    def unary(self, kind, x, out_shape=None, scale=None, zp=None, **options):
        t = self.tensors[x]
        zp = t.zero_point[0] if zp is None else zp
        y = self.activation(kind.lower(), out_shape or t.shape, scale or self.scale(x), zp)
        self.ops.append(Op(kind, [x], [y], options))
        return y

    def graph(self, x, y):
        return Int8Graph(self.tensors, self.ops, [x], [y])


def lenet5(seed=0):
    b = GraphBuilder(seed)
    x = b.activation("input", (1, 32, 32, 1), 1 / 255, -128)
    y = b.conv(x, (1, 28, 28, 6), 5, padding="VALID")
    y = b.unary("MAX_POOL_2D", y, (1, 14, 14, 6), padding="VALID", stride_h=2, stride_w=2, filter_height=2,
                filter_width=2)  # fmt: skip
    y = b.conv(y, (1, 10, 10, 16), 5, padding="VALID")
    y = b.unary("MAX_POOL_2D", y, (1, 5, 5, 16), padding="VALID", stride_h=2, stride_w=2, filter_height=2,
                filter_width=2)  # fmt: skip
    y = b.unary("RESHAPE", y, (1, 400), new_shape=[1, 400])
    y = b.dense(y, 120)
    y = b.dense(y, 84)
    y = b.dense(y, 10, act="NONE")
    return b.graph(x, y)


def every_op(seed=1):
    """One graph holding every supported op, with the less common options."""
    b = GraphBuilder(seed)
    x = b.activation("input", (1, 11, 11, 2), 0.02, 7)
    y = b.conv(x, (1, 6, 6, 4), 3, stride_h=2, stride_w=2)  # SAME, odd size, stride 2
    y = b.depthwise(y, (1, 6, 6, 8), 3, dilation_h_factor=2, dilation_w_factor=2)  # multiplier 2, dilated
    y = b.unary("AVERAGE_POOL_2D", y, (1, 3, 3, 8), padding="SAME", stride_h=2, stride_w=2, filter_height=3,
                filter_width=3)  # fmt: skip
    y = b.unary("LOGISTIC", y, scale=1 / 256, zp=-128)
    y = b.conv(y, (1, 3, 3, 6), 2, groups=2, act="RELU_N1_TO_1")  # grouped, even kernel with SAME
    y = b.unary("TANH", y, scale=1 / 128, zp=0)
    y = b.depthwise(y, (1, 2, 2, 6), 2, act="NONE", bias=False, padding="VALID")
    y = b.unary("MAX_POOL_2D", y, (1, 2, 2, 6), padding="VALID", stride_h=1, stride_w=1, filter_height=1,
                filter_width=1, fused_activation_function="RELU6")  # fmt: skip
    y = b.unary("RESHAPE", y, (1, 24), new_shape=[1, 24])
    y = b.dense(y, 12, per_channel=False, zero_point=3)  # per-tensor with a weights zero point
    y = b.dense(y, 5, act="NONE")
    y = b.unary("SOFTMAX", y, scale=1 / 256, zp=-128, beta=1.0)
    return b.graph(x, y)


def inputs(graph, n, seed=0):
    return np.random.default_rng(seed).integers(-128, 128, (n,) + graph.input.shape[1:], dtype=np.int8)


@pytest.mark.parametrize("fc_rescale", ["float", "integer"])
@pytest.mark.parametrize("build", [lenet5, every_op])
def test_every_tensor_matches_naive(build, fc_rescale):
    graph = build()
    x = inputs(graph, 2)
    got = Runtime(graph, fc_rescale=fc_rescale).run_intermediates(x)
    expected = naive.run_graph(graph, x, fc_rescale)
    assert set(got) == {op.outputs[0] for op in graph.ops}
    for t, values in got.items():
        np.testing.assert_array_equal(values, expected[t], err_msg=graph.tensors[t].name)
    assert len(np.unique(got[graph.outputs[0]])) > 3  # the graph computes something, not a constant


def test_batches_chunks_and_threads_agree():
    graph = every_op()
    x = inputs(graph, 37, seed=5)
    full = Runtime(graph).run(x)
    assert full.shape == (37,) + graph.output.shape[1:] and full.dtype == np.int8
    np.testing.assert_array_equal(Runtime(graph, chunk_size=5).run(x), full)
    np.testing.assert_array_equal(Runtime(graph, num_threads=1).run(x), full)
    one_by_one = np.concatenate([Runtime(graph).run(x[i : i + 1]) for i in range(0, 37, 9)])
    np.testing.assert_array_equal(one_by_one, full[::9])
    inter = Runtime(graph, chunk_size=4).run_intermediates(x)
    np.testing.assert_array_equal(inter[graph.outputs[0]], full)


def test_lenet_batch_is_consistent():
    graph = lenet5(seed=3)
    rt = Runtime(graph, chunk_size=64)
    x = inputs(graph, 150, seed=9)
    y = rt.run(x)
    np.testing.assert_array_equal(y[100:103], naive.run_graph(graph, x[100:103])[graph.outputs[0]])


def test_empty_batch():
    graph = lenet5()
    assert Runtime(graph).run(np.zeros((0, 32, 32, 1), np.int8)).shape == (0, 10)


@pytest.mark.parametrize(
    "bad",
    [np.zeros((2, 32, 32, 1), np.float32), np.zeros((2, 32, 32), np.int8), np.zeros((2, 28, 28, 1), np.int8),
     np.zeros((32, 32, 1), np.int8), [[0]]],
)  # fmt: skip
def test_bad_inputs_raise_shape_error(bad):
    with pytest.raises(ShapeError):
        Runtime(lenet5()).run(bad)


def test_bad_runtime_arguments():
    with pytest.raises(ValueError):
        Runtime(lenet5(), fc_rescale="double")
    with pytest.raises(ValueError):
        Runtime(lenet5(), chunk_size=0)
