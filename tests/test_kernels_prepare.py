"""prepare: the params computed once per op, and LiteRT's load-time checks (docs/int8.md section 1)."""

import numpy as np
import pytest

from edgecnn.int8.graph import Int8Graph, Op, Tensor
from edgecnn.deploy.runtime.params import RESCALE_FLOAT, RESCALE_INTEGER
from edgecnn.deploy.runtime.prepare import prepare_graph, prepare_op
from edgecnn.errors import ModelError, ShapeError, UnsupportedOpError
from edgecnn.int8.rules import quantize_multiplier

f32 = np.float32


def act(name, shape, scale=0.05, zp=0):
    return Tensor(name, shape, "int8", f32(scale), zp)


def const(name, shape, dtype, scales, zps=0, dim=0, data=None):
    scales = np.atleast_1d(np.asarray(scales, dtype=np.float32))
    data = np.ones(shape, dtype=dtype) if data is None else data
    return Tensor(name, shape, dtype, scales, np.broadcast_to(zps, scales.shape), dim, data)


def conv_graph(w_scales=(0.005, 0.01, 0.02), w_zps=0, bias=True, dim=0, in_scale=0.02, out_scale=0.05, inputs=None,
               activation="RELU"):  # fmt: skip
    tensors = [
        act("x", (1, 5, 5, 2), in_scale, -3),
        const("w", (3, 3, 3, 2), "int8", w_scales, w_zps, dim),
        const("b", (3,), "int32", 1e-4),
        act("y", (1, 5, 5, 3), out_scale, 7),
    ]
    ins = inputs if inputs is not None else ([0, 1, 2] if bias else [0, 1])
    op = Op("CONV_2D", ins, [3], dict(padding="SAME", stride_h=1, stride_w=1, fused_activation_function=activation))
    return Int8Graph(tensors, [op], [0], [3])


def fc_graph(w_scales=0.005, w_zps=0, bias_scale=None, dim=0, x_shape=(1, 8), units=4, out_shape=None, **options):
    bias_scale = float(f32(0.02) * f32(np.atleast_1d(w_scales)[0])) if bias_scale is None else bias_scale
    tensors = [
        act("x", x_shape, 0.02, 1),
        const("w", (units, 8), "int8", w_scales, w_zps, dim),
        const("b", (units,), "int32", bias_scale),
        act("y", out_shape or (1, units), 0.05, -2),
    ]
    op = Op("FULLY_CONNECTED", [0, 1, 2], [3], dict(fused_activation_function="NONE", **options))
    return Int8Graph(tensors, [op], [0], [3])


def unary_graph(kind, out_scale, out_zp, shape=(1, 10), **options):
    tensors = [act("x", shape, 0.1, 3), act("y", shape, out_scale, out_zp)]
    return Int8Graph(tensors, [Op(kind, [0], [1], options)], [0], [1])


# --- params ------------------------------------------------------------------------------------


def test_conv_params_per_channel_multipliers():
    p = prepare_op(conv_graph(), 0).params
    assert (p.input_offset, p.output_offset) == (3, 7)
    # The docs/int8.md example: 0.02 * 0.005 / 0.05 -> (1099511562, -8), then the other channels.
    assert p.output_multiplier[0] == 1099511562 and p.output_shift[0] == -8
    for c, w in enumerate((0.005, 0.01, 0.02)):
        eff = float(f32(0.02)) * float(f32(w)) / float(f32(0.05))
        assert (p.output_multiplier[c], p.output_shift[c]) == quantize_multiplier(eff)
    assert p.output_multiplier.dtype == np.int32 and p.output_shift.dtype == np.int32
    assert (p.padding_top, p.padding_left, p.activation_min, p.activation_max) == (1, 1, 7, 127)


def test_conv_single_scale_is_broadcast():
    p = prepare_op(conv_graph(w_scales=0.01), 0).params
    assert len(set(p.output_multiplier.tolist())) == 1 and p.output_multiplier.size == 3


def test_fc_rescale_modes_per_tensor():
    # The older integer path rounds in_s * w_s to float32 first; these scales make it matter.
    a, b, c = 0.06405920535326004, 0.027708884328603745, 0.005056378897279501
    tensors = [act("x", (1, 8), a, 0), const("w", (4, 8), "int8", b, 5), act("y", (1, 4), c, 0)]
    graph = Int8Graph(tensors, [Op("FULLY_CONNECTED", [0, 1, -1], [2], {})], [0], [2])
    p_float = prepare_op(graph, 0, "float").params
    p_int = prepare_op(graph, 0, "integer").params
    assert p_float.rescale == RESCALE_FLOAT and p_int.rescale == RESCALE_INTEGER
    assert p_float.effective_scale[0] == a * b / c
    assert (p_int.output_multiplier[0], p_int.output_shift[0]) == (1507720476, -1)
    assert quantize_multiplier(a * b / c) == (1507720493, -1)  # what float64 products would give
    assert p_int.weights_offset == -5  # per-tensor weights subtract their zero point


def test_fc_per_channel_ignores_weights_zero_point():
    p = prepare_op(fc_graph(w_scales=[0.01, 0.02, 0.03, 0.04], w_zps=4), 0, "integer").params
    assert p.weights_offset == 0
    assert p.effective_scale.tolist() == [float(f32(0.02)) * float(f32(s)) / float(f32(0.05)) for s in
                                          (0.01, 0.02, 0.03, 0.04)]  # fmt: skip


def test_fc_output_shapes():
    prepare_op(fc_graph(x_shape=(1, 2, 4), out_shape=(1, 4)), 0)  # flattened
    prepare_op(fc_graph(x_shape=(1, 2, 8), out_shape=(2, 4)), 0)  # two rows per image
    prepare_op(fc_graph(x_shape=(1, 2, 8), out_shape=(1, 2, 4), keep_num_dims=True), 0)
    with pytest.raises(ShapeError):
        prepare_op(fc_graph(x_shape=(1, 2, 8), out_shape=(1, 4)), 0)


def test_logistic_table_and_unchecked_zero_point():
    p = prepare_op(unary_graph("LOGISTIC", 1 / 256, -100), 0).params  # zp not checked by LiteRT
    assert p.table.shape == (256,) and p.table.dtype == np.int8


# --- load-time checks ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "graph, error, words",
    [
        (conv_graph(bias=False), ModelError, "bias"),
        (conv_graph(inputs=[0, 1, -1]), ModelError, "bias"),
        (conv_graph(w_zps=1), ModelError, "zero point"),
        (conv_graph(w_scales=(0.01, 0.02)), ModelError, "2 scales for 3"),
        (conv_graph(dim=3), ModelError, "quantized_dimension"),
        (conv_graph(out_scale=1e-12, activation="RELU6"), ModelError, "int32"),
        (conv_graph(in_scale=0.0), ModelError, "positive"),
        (fc_graph(bias_scale=1e-2), ModelError, "2%"),
        (fc_graph(w_scales=[0.01] * 8, dim=1), ModelError, "quantized_dimension 0"),
        (fc_graph(x_shape=(1, 7)), ShapeError, "rows of 8"),
        (unary_graph("LOGISTIC", 1 / 255, -128), ModelError, "1/256"),
        (unary_graph("SOFTMAX", 1 / 256, 0), ModelError, "-128"),
        (unary_graph("SOFTMAX", 1 / 256 * 1.002, -128), ModelError, "1/256"),
        (unary_graph("MAX_POOL_2D", 0.1, 3, shape=(1, 4, 4, 1), filter_height=2, filter_width=2, stride_h=2,
                     stride_w=2, padding="VALID"), ShapeError, "produces (1, 2, 2, 1)"),
        (unary_graph("AVERAGE_POOL_2D", 0.1, 3, shape=(1, 4, 4, 1), filter_height=2, filter_width=2, stride_h=0,
                     stride_w=1), ModelError, "stride_h must be positive"),
    ],
)  # fmt: skip
def test_load_time_checks(graph, error, words):
    with pytest.raises(error, match=None) as info:
        prepare_graph(graph)
    assert words in str(info.value) and "op 0" in str(info.value)


def test_accepted_near_limits():
    prepare_graph(unary_graph("SOFTMAX", 1 / 256 * 1.0005, -128))  # within 0.1%
    prepare_graph(fc_graph(bias_scale=float(f32(0.02) * f32(0.005)) * 1.01))  # bias scale off by 1%
    prepare_graph(unary_graph("TANH", 0.3, 17))  # TANH output params are not checked


def test_depthwise_bias_slot():
    tensors = [act("x", (1, 4, 4, 2)), const("w", (1, 3, 3, 4), "int8", 0.01, 5, 3), act("y", (1, 4, 4, 4))]
    options = dict(padding="SAME", depth_multiplier=2)
    graph = Int8Graph(tensors, [Op("DEPTHWISE_CONV_2D", [0, 1], [2], options)], [0], [2])
    assert prepare_op(graph, 0).constants[1][1].size == 0  # no bias, and the weights zero point is ignored
    graph.ops[0].inputs = [0, 1, -1]
    with pytest.raises(ModelError, match="bias slot is -1"):
        prepare_graph(graph)


def test_unsupported_and_malformed_graphs():
    g = unary_graph("SOFTMAX", 1 / 256, -128)
    g.ops[0].kind = "GELU"
    with pytest.raises(UnsupportedOpError):
        prepare_graph(g)
    g = conv_graph()
    g.tensors[1].data = None  # a filter that is not a constant, and that no op computes
    with pytest.raises(ModelError, match="reads tensor w before any op computes it"):
        prepare_graph(g)
    g = conv_graph()
    g.inputs.append(1)  # a filter fed at run time (a graph input must have batch 1, so give it one)
    g.tensors[1].data, g.tensors[1].shape = None, (1,) + g.tensors[1].shape[1:]
    with pytest.raises(UnsupportedOpError, match="must be a constant"):
        prepare_graph(g)
    g = unary_graph("TANH", 0.1, 0)
    g.ops.append(Op("TANH", [2], [1], {}))
    g.tensors.append(act("z", (1, 10)))
    with pytest.raises(ModelError, match="before any op computes it"):
        prepare_graph(g)
    g = unary_graph("TANH", 0.1, 0, shape=(2, 10))
    with pytest.raises(ShapeError, match="batch 1"):
        prepare_graph(g)
    with pytest.raises(ValueError):
        prepare_graph(unary_graph("TANH", 0.1, 0), fc_rescale="fast")
