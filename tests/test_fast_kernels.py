"""The whole-graph executor's kernels (fast_conv, fast_ops, vnni) against the naive references, exactly.

Every property test runs on each kernel path this machine can run: the portable one always
(EDGECNN_KERNELS=portable forces it, even on a VNNI machine) and the VNNI one when the CPU
has AVX-512 VNNI. Shapes cover channels that are not a multiple of the 16-lane tile (or of
the 64-channel chunk), leftover rows, stride 2 and 3, SAME padding, dilation, zero points at
-128 and 127, random per-channel multipliers, shifts on both sides of zero.
"""

from __future__ import annotations

import contextlib
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from edgecnn.deploy.runtime import Runtime, naive
from edgecnn.deploy.runtime.cpu import HAS_VNNI
from edgecnn.deploy.runtime.fast_conv import requant_constants, requantize_one
from edgecnn.deploy.runtime.fixedpoint import multiply_by_quantized_multiplier
from edgecnn.int8.graph import Int8Graph, Op, Tensor
from edgecnn.int8.padding import compute_padding

KINDS = ["portable"] + (["vnni"] if HAS_VNNI else [])
f32 = np.float32
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])


@contextlib.contextmanager
def kernels(kind: str):
    previous = os.environ.get("EDGECNN_KERNELS")
    os.environ["EDGECNN_KERNELS"] = kind
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("EDGECNN_KERNELS")
        else:
            os.environ["EDGECNN_KERNELS"] = previous


def fast_runtime(graph, kind, **kwargs) -> Runtime:
    with kernels(kind):
        rt = Runtime(graph, **kwargs)
    assert rt.plan is not None, rt.fallback_reason
    assert rt.kernels == kind
    return rt


def check_graph(graph, x, kind, fc_rescale="float"):
    """Fast path (batch at once, and image by image) == the naive references, every output byte."""
    expected = naive.run_graph(graph, x, fc_rescale)[graph.outputs[0]]
    rt = fast_runtime(graph, kind, fc_rescale=fc_rescale)
    np.testing.assert_array_equal(rt.run(x), expected.reshape((x.shape[0],) + expected.shape[1:]))
    np.testing.assert_array_equal(rt.run(x[:1]), expected[: expected.shape[0] // x.shape[0]])


# ---------------------------------------------------------------- requantization


def test_requantize_one_equals_two_roundings_on_a_dense_grid():
    """One rounding shift == SRDHM then RoundingDivideByPOT, for every shift and edge accumulators."""
    rng = np.random.default_rng(0)
    two_step = multiply_by_quantized_multiplier.py_func
    edges = [0, 1, -1, 2, -2, 3, -3, 250, -250, 1250, 2**31 - 1, -(2**31), 2**30, -(2**30), 2**24 + 1, -(2**24) - 1]
    checked = 0
    for shift in range(-31, 12):
        multipliers = [2**30, 2**31 - 1, 1099511562, 1518500250, 0] + rng.integers(2**30, 2**31, 20).tolist()
        for m in multipliers:
            constants = requant_constants(m, shift)
            xs = edges + rng.integers(-(2**31), 2**31, 30).tolist() + rng.integers(-5000, 5000, 30).tolist()
            for x in xs:
                assert requantize_one.py_func(x, *constants) == two_step(x, m, shift), (x, m, shift)
                checked += 1
    assert checked > 60000


@settings(max_examples=300, **SETTINGS)
@given(st.integers(-(2**31), 2**31 - 1), st.integers(2**30, 2**31 - 1), st.integers(-31, 31))
def test_requantize_one_property(x, m, shift):
    assert requantize_one.py_func(x, *requant_constants(m, shift)) == multiply_by_quantized_multiplier.py_func(
        x, m, shift
    )


def test_requantize_exact_ties():
    """Accumulators that land exactly on a half after the first rounding (docs/int8.md's 250 -> 1 case)."""
    for shift in range(-20, 1):
        for x in range(-4096, 4097):
            expected = multiply_by_quantized_multiplier.py_func(x, 2**30, shift)
            assert requantize_one.py_func(x, *requant_constants(2**30, shift)) == expected
    assert requantize_one.py_func(250, *requant_constants(1099511562, -8)) == 1


# ---------------------------------------------------------------- single-op graphs


def _activation(tensors, name, shape, scale, zp):
    tensors.append(Tensor(name, shape, "int8", f32(scale), zp))
    return len(tensors) - 1


def _zero_point(draw):
    return draw(st.one_of(st.sampled_from([-128, 127, 0]), st.integers(-128, 127)))


@st.composite
def conv_case(draw, depthwise=False):
    padding = draw(st.sampled_from(["SAME", "VALID"]))
    dims = []
    for _ in range(2):
        size, k = draw(st.integers(1, 8)), draw(st.integers(1, 4))
        stride, dilation = draw(st.integers(1, 3)), draw(st.sampled_from([1, 1, 2]))
        out, before, _ = compute_padding(padding, size, k, stride, dilation)
        assume(out >= 1)
        dims.append((size, k, stride, dilation, out))
    cin = draw(st.integers(1, 7))
    cout = draw(st.sampled_from([1, 3, 6, 16, 17, 33, 70])) if not depthwise else cin * draw(st.integers(1, 3))
    return dict(padding=padding, dims=dims, cin=cin, cout=cout, in_zp=_zero_point(draw), out_zp=_zero_point(draw),
                images=draw(st.integers(1, 3)), seed=draw(st.integers(0, 2**31)),
                gain=draw(st.sampled_from([2.0**-10, 1 / 64, 1.0, 8.0, 300.0])),
                act=draw(st.sampled_from(["NONE", "RELU", "RELU6"])))  # fmt: skip


def conv_graph(case, depthwise=False):
    """One CONV_2D or DEPTHWISE_CONV_2D; output scales spread so shifts land on both sides of zero."""
    rng = np.random.default_rng(case["seed"])
    (h, kh, sh, dh, oh), (w, kw, sw, dw, ow) = case["dims"]
    cin, cout = case["cin"], case["cout"]
    tensors: list[Tensor] = []
    x = _activation(tensors, "x", (1, h, w, cin), 0.02, case["in_zp"])
    w_scales = rng.uniform(0.001, 0.03, cout).astype(f32)
    if depthwise:
        shape, qdim = (1, kh, kw, cout), 3
    else:
        shape, qdim = (cout, kh, kw, cin), 0
    weights = rng.integers(-127, 128, shape, dtype=np.int8)
    tensors.append(Tensor("w", shape, "int8", w_scales, np.zeros(cout, np.int64), qdim, weights))
    bias = rng.integers(-20000, 20000, cout).astype(np.int32)
    tensors.append(Tensor("b", (cout,), "int32", (f32(0.02) * w_scales).astype(f32), np.zeros(cout, np.int64), 0,
                          bias))  # fmt: skip
    taps = kh * kw * (1 if depthwise else cin)
    out_scale = 0.02 * 0.015 * 128 * 40 * np.sqrt(taps) / 64 / case["gain"]
    y = _activation(tensors, "y", (1, oh, ow, cout), out_scale, case["out_zp"])
    options = dict(padding=case["padding"], stride_h=sh, stride_w=sw, dilation_h_factor=dh, dilation_w_factor=dw,
                   fused_activation_function=case["act"])  # fmt: skip
    if depthwise:
        options["depth_multiplier"] = cout // cin
    op = Op("DEPTHWISE_CONV_2D" if depthwise else "CONV_2D", [x, 1, 2], [y], options)
    graph = Int8Graph(tensors, [op], [x], [y]).validate()
    data = rng.integers(-128, 128, (case["images"], h, w, cin), dtype=np.int8)
    return graph, data


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=40, **SETTINGS)
@given(case=conv_case())
def test_conv_2d(kind, case):
    graph, x = conv_graph(case)
    check_graph(graph, x, kind)


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=40, **SETTINGS)
@given(case=conv_case(depthwise=True))
def test_depthwise_conv_2d(kind, case):
    graph, x = conv_graph(case, depthwise=True)
    check_graph(graph, x, kind)


@st.composite
def fc_case(draw):
    return dict(depth=draw(st.integers(1, 90)), units=draw(st.sampled_from([1, 5, 16, 21, 64, 70])),
                rows=draw(st.integers(1, 3)), images=draw(st.integers(1, 9)), in_zp=_zero_point(draw),
                out_zp=_zero_point(draw), seed=draw(st.integers(0, 2**31)),
                gain=draw(st.sampled_from([1 / 64, 1.0, 16.0])), rescale=draw(st.sampled_from(["float", "integer"])),
                per_channel=draw(st.booleans()))  # fmt: skip


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=40, **SETTINGS)
@given(case=fc_case())
def test_fully_connected(kind, case):
    rng = np.random.default_rng(case["seed"])
    depth, units, rows = case["depth"], case["units"], case["rows"]
    tensors: list[Tensor] = []
    x = _activation(tensors, "x", (1, rows, depth), 0.03, case["in_zp"])
    scales = rng.uniform(0.002, 0.02, units if case["per_channel"] else 1).astype(f32)
    tensors.append(Tensor("w", (units, depth), "int8", scales, np.zeros(scales.size, np.int64), 0,
                          rng.integers(-127, 128, (units, depth), dtype=np.int8)))  # fmt: skip
    bias_scales = (f32(0.03) * scales).astype(f32)
    tensors.append(Tensor("b", (units,), "int32", bias_scales, np.zeros(scales.size, np.int64), 0,
                          rng.integers(-5000, 5000, units).astype(np.int32)))  # fmt: skip
    y = _activation(tensors, "y", (1, rows, units), 0.03 * 0.01 * 50 * np.sqrt(depth) / case["gain"], case["out_zp"])
    op = Op("FULLY_CONNECTED", [x, 1, 2], [y], dict(fused_activation_function="NONE", keep_num_dims=True))
    graph = Int8Graph(tensors, [op], [x], [y]).validate()
    data = rng.integers(-128, 128, (case["images"], rows, depth), dtype=np.int8)
    check_graph(graph, data, kind, fc_rescale=case["rescale"])


# ---------------------------------------------------------------- a graph with every executor op


def mixed_graph(seed: int, in_zp: int, mid_zp: int) -> tuple[Int8Graph, np.ndarray]:
    """CONV -> MAX_POOL -> DEPTHWISE (stride 2) -> CONV 1x1 -> ADD (with a strided 1x1 projection)
    -> AVERAGE_POOL (SAME) -> MEAN -> RESHAPE -> FC -> SOFTMAX, plus LOGISTIC on the way."""
    rng = np.random.default_rng(seed)
    t: list[Tensor] = []

    def weights(shape, channels, qdim=0):
        scales = rng.uniform(0.003, 0.02, channels).astype(f32)
        t.append(Tensor(f"w{len(t)}", shape, "int8", scales, np.zeros(channels, np.int64), qdim,
                        rng.integers(-127, 128, shape, dtype=np.int8)))  # fmt: skip
        w = len(t) - 1
        t.append(Tensor(f"b{len(t)}", (channels,), "int32", (f32(0.05) * scales).astype(f32),
                        np.zeros(channels, np.int64), 0, rng.integers(-3000, 3000, channels).astype(np.int32)))
        return w, len(t) - 1

    conv = dict(padding="SAME", stride_h=1, stride_w=1, dilation_h_factor=1, dilation_w_factor=1,
                fused_activation_function="RELU")  # fmt: skip
    x = _activation(t, "x", (1, 13, 11, 3), 0.05, in_zp)
    w1, b1 = weights((20, 3, 3, 3), 20)
    c1 = _activation(t, "c1", (1, 13, 11, 20), 0.3, mid_zp)
    p1 = _activation(t, "p1", (1, 7, 6, 20), 0.3, mid_zp)
    w2, b2 = weights((1, 3, 3, 20), 20, qdim=3)
    d2 = _activation(t, "d2", (1, 4, 3, 20), 0.2, -5)
    w3, b3 = weights((24, 1, 1, 20), 24)
    c3 = _activation(t, "c3", (1, 4, 3, 24), 0.25, 3)
    w4, b4 = weights((24, 1, 1, 20), 24)
    c4 = _activation(t, "c4", (1, 4, 3, 24), 0.25, -7)
    s5 = _activation(t, "s5", (1, 4, 3, 24), 0.4, mid_zp)
    l5 = _activation(t, "l5", (1, 4, 3, 24), 1 / 256, -128)
    a6 = _activation(t, "a6", (1, 2, 2, 24), 1 / 256, -128)
    m7 = _activation(t, "m7", (1, 1, 1, 24), 1 / 300, -100)
    r8 = _activation(t, "r8", (1, 24), 1 / 300, -100)
    w9, b9 = weights((10, 24), 10)
    f9 = _activation(t, "f9", (1, 10), 0.1, 4)
    s10 = _activation(t, "s10", (1, 10), 1 / 256, -128)
    t.append(Tensor("axes", (2,), "int32", np.ones(1, f32), np.zeros(1, np.int64), 0, np.array([1, 2], np.int32)))
    axes = len(t) - 1
    ops = [
        Op("CONV_2D", [x, w1, b1], [c1], conv),
        Op("MAX_POOL_2D", [c1], [p1], dict(padding="SAME", stride_h=2, stride_w=2, filter_height=2, filter_width=2,
                                           fused_activation_function="NONE")),  # fmt: skip
        Op("DEPTHWISE_CONV_2D", [p1, w2, b2], [d2], dict(conv, stride_h=2, stride_w=2, depth_multiplier=1)),
        Op("CONV_2D", [d2, w3, b3], [c3], dict(conv, fused_activation_function="NONE")),
        Op("CONV_2D", [d2, w4, b4], [c4], dict(conv, fused_activation_function="NONE")),
        Op("ADD", [c3, c4], [s5], dict(fused_activation_function="RELU")),
        Op("LOGISTIC", [s5], [l5], {}),
        Op("AVERAGE_POOL_2D", [l5], [a6], dict(padding="SAME", stride_h=2, stride_w=2, filter_height=3,
                                               filter_width=3, fused_activation_function="NONE")),  # fmt: skip
        Op("MEAN", [a6, axes], [m7], dict(keep_dims=True)),
        Op("RESHAPE", [m7], [r8], dict(new_shape=[-1, 24])),
        Op("FULLY_CONNECTED", [r8, w9, b9], [f9], dict(fused_activation_function="NONE", keep_num_dims=False)),
        Op("SOFTMAX", [f9], [s10], dict(beta=1.0)),
    ]
    graph = Int8Graph(t, ops, [x], [s10]).validate()
    return graph, rng.integers(-128, 128, (37, 13, 11, 3), dtype=np.int8)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("in_zp, mid_zp", [(-128, -128), (127, 127), (5, -20)])
def test_every_executor_op_matches_naive_and_litert(kind, in_zp, mid_zp, monkeypatch):
    from edgecnn.deploy.litert import LiteRTRunner
    from edgecnn.deploy.runtime import interpreter

    monkeypatch.setattr(interpreter, "cores_free", lambda margin=1: True)  # the 2-thread executor, whatever the load
    from edgecnn.deploy.tflite.writer import to_bytes

    graph, x = mixed_graph(abs(in_zp + 1000 * mid_zp), in_zp, mid_zp)
    expected = naive.run_graph(graph, x)[graph.outputs[0]]
    rt = fast_runtime(graph, kind)
    got = rt.run(x)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(got, LiteRTRunner(to_bytes(graph), "ref").run(x))
    with kernels(kind):
        two = Runtime(graph, num_threads=2)
    np.testing.assert_array_equal(two.run(x), expected)  # the parallel executor (two slices)
    # intermediates come from the per-op path and agree with the executor's outputs
    assert np.array_equal(rt.run_intermediates(x)[graph.outputs[0]], expected)


def test_unsupported_graphs_fall_back_to_the_per_op_path():
    graph, x = conv_graph(dict(padding="SAME", dims=[(5, 3, 1, 1, 5), (5, 3, 1, 1, 5)], cin=4, cout=8, in_zp=0,
                               out_zp=0, images=2, seed=1, gain=1.0, act="NONE"))  # fmt: skip
    with kernels("legacy"):
        rt = Runtime(graph)
    assert rt.plan is None and "legacy" in rt.fallback_reason
    np.testing.assert_array_equal(rt.run(x), fast_runtime(graph, "portable").run(x))
