"""The float graph: topological order, fan-out gradients, BatchNorm modes, folding, the named archs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import run_cli
from edgecnn.errors import ModelError, ShapeError
from edgecnn.model import INPUT, Graph, GraphBuilder, Node, build
from edgecnn.model.global_pooling import GlobalAvgPool2D, GlobalMaxPool2D
from edgecnn.model.layers import Activation, Conv2D, Dense, Flatten, LeakyReLU, ZeroPadding2D
from edgecnn.model.merge_layers import Add, Concatenate
from edgecnn.model.norm_layers import BatchNorm
from edgecnn.model.summary import format_summary, summarize
from edgecnn.reference.loss import softmax_cross_entropy_backward, softmax_cross_entropy_forward


def branchy(classes=4) -> Graph:
    """Every new layer once: a stem read by three branches, Add, Concatenate, BN, both global pools."""
    g = GraphBuilder((6, 6, 2), arch="branchy")
    stem = g.add(Conv2D(4, 3, padding="same", name="stem", use_bias=False), g.input)
    stem = g.add(BatchNorm(name="stem_bn", activation="relu6"), stem)
    a = g.add(Conv2D(4, 3, padding="same", name="a", activation="hard_swish"), stem)
    a = g.add(Add(name="res"), a, stem)                        # stem fans out to a, res, b, pad
    b = g.add(Conv2D(4, 1, groups=4, name="b"), stem)          # depthwise 1x1
    b = g.add(LeakyReLU(0.1, name="leaky"), b)
    c = g.add(ZeroPadding2D((1, 0, 0, 1), name="pad"), stem)
    c = g.add(Conv2D(3, 2, name="c", activation="relu"), c)
    cat = g.add(Concatenate(name="cat"), a, b, c)
    avg = g.add(GlobalAvgPool2D(name="gap"), cat)
    mx = g.add(GlobalMaxPool2D(name="gmp"), cat)
    head = g.add(Concatenate(name="heads"), avg, mx)
    head = g.add(BatchNorm(name="head_bn"), head)
    g.add(Dense(classes, name="fc"), head)
    return g.build()


def _loss(model, x, y, train=True):
    loss, _ = softmax_cross_entropy_forward(model.forward(x, train=train), y)
    return float(loss)


@pytest.mark.slow
@pytest.mark.parametrize("train", [True, False])
def test_graph_gradients_match_finite_differences(train):
    """float64, every parameter of every node, and dL/dx through the fan-outs."""
    rng = np.random.default_rng(0)
    model = branchy().init_params(1, dtype=np.float64)
    for _, buf in model.named_buffers():  # non-trivial running stats for eval mode
        buf[...] = rng.uniform(0.5, 1.5, buf.shape)
    for key, p in model.named_params():  # zero biases would put exact zeros on leaky_relu's kink
        if key.endswith("/b"):
            p[...] = rng.uniform(-0.5, 0.5, p.shape)
    x = rng.uniform(-1, 1, (5, 6, 6, 2))
    y = np.array([0, 1, 2, 3, 1])
    _, cache = softmax_cross_entropy_forward(model.forward(x, train=train), y)
    dx = model.backward(softmax_cross_entropy_backward(cache))
    assert dx is None  # only the stem reads the input, and skips dL/dx
    grads = dict(model.named_grads())
    for key, p in model.named_params():
        flat, g = p.reshape(-1), grads[key].reshape(-1)
        for i in rng.choice(flat.size, size=min(5, flat.size), replace=False):
            old = flat[i]
            flat[i] = old + 1e-6
            up = _loss(model, x, y, train)
            flat[i] = old - 1e-6
            down = _loss(model, x, y, train)
            flat[i] = old
            num = (up - down) / 2e-6
            assert abs(num - g[i]) <= 1e-7 + 1e-5 * abs(num), (key, i, num, g[i])


def test_input_gradient_accumulates_over_readers():
    """y = relu(x) + x: dL/dx sums both paths."""
    g = GraphBuilder((2, 2, 1))
    r = g.add(Activation("relu", name="r"), g.input)
    s = g.add(Add(name="s"), r, g.input)
    g.add(Flatten(name="f"), s)
    model = g.build().init_params(0, dtype=np.float64)
    x = np.array([-1.0, 2.0, -3.0, 4.0]).reshape(1, 2, 2, 1)
    model.forward(x)
    dx = model.backward(np.ones((1, 4)), input_grad=True)
    np.testing.assert_array_equal(dx.ravel(), [1, 2, 1, 2])


def test_nodes_are_sorted_and_bad_graphs_refused():
    a, b = Dense(3, name="a"), Dense(2, name="b")
    graph = Graph([Node("b", b, ("a",)), Node("a", a, (INPUT,))], (4,))
    assert [n.name for n in graph.nodes] == ["a", "b"] and graph.output == "b"
    with pytest.raises(ModelError, match="cycle"):
        Graph([Node("a", Dense(3, name="a"), ("b",)), Node("b", Dense(3, name="b"), ("a",))], (3,))
    with pytest.raises(ModelError, match="not a node"):
        Graph([Node("a", Dense(3, name="a"), ("nowhere",))], (3,))
    with pytest.raises(ModelError, match="two nodes"):
        Graph([Node("a", Dense(3, name="a"), (INPUT,)), Node("a", Dense(3, name="a"), ("a",))], (3,))
    with pytest.raises(ModelError, match="two or more"):
        Graph([Node("s", Add(name="s"), (INPUT,))], (3,))
    with pytest.raises(ShapeError):
        g = GraphBuilder((4, 4, 1))
        x = g.add(Conv2D(2, 3, name="c"), g.input)
        g.add(Add(name="s"), x, g.input)
        g.build()


def test_batchnorm_train_updates_running_stats_and_eval_does_not():
    bn = BatchNorm(momentum=0.5, name="bn")
    model = Graph([Node("bn", bn, (INPUT,))], (1, 1, 2)).init_params(0, dtype=np.float64)
    x = np.array([[1.0, 10.0], [3.0, 30.0]]).reshape(2, 1, 1, 2)
    model.forward(x)
    np.testing.assert_array_equal(bn.buffers["mean"], [0, 0])
    model.forward(x, train=True)
    np.testing.assert_allclose(bn.buffers["mean"], [1.0, 10.0])        # 0.5 * 0 + 0.5 * batch mean
    np.testing.assert_allclose(bn.buffers["var"], [0.5 + 0.5 * 2, 0.5 + 0.5 * 200])  # unbiased batch var
    assert dict(model.named_buffers()).keys() == {"bn/mean", "bn/var"}
    assert "bn/mean" not in dict(model.named_params())


def test_folded_graph_equals_eval_mode():
    rng = np.random.default_rng(2)
    model = build("resnet8", input_shape=(12, 12, 3)).init_params(0, dtype=np.float64)
    for _, buf in model.named_buffers():
        buf[...] = rng.uniform(0.5, 1.5, buf.shape)
    for key, p in model.named_params():
        if key.endswith(("gamma", "beta")):
            p[...] = rng.uniform(0.5, 1.5, p.shape)
    folded = model.folded()
    kinds = [n.layer.kind for n in folded.nodes]
    assert "batchnorm" not in kinds and len(folded.nodes) == len(model.nodes) - 7
    assert folded.node("stem").layer.activation == "relu"
    x = rng.uniform(0, 1, (3, 12, 12, 3))
    np.testing.assert_allclose(folded.forward(x), model.forward(x), rtol=1e-10, atol=1e-12)
    mobile = build("mobilenet-v1", input_shape=(32, 32, 3), width=0.25).init_params(0, dtype=np.float64)
    f = mobile.folded()
    assert all(n.layer.kind != "batchnorm" for n in f.nodes) and f.node("dw1").layer.use_bias
    np.testing.assert_allclose(f.forward(x[:, :, :, :3].repeat(3, 1).repeat(3, 2)[:, :32, :32]),
                               mobile.forward(x[:, :, :, :3].repeat(3, 1).repeat(3, 2)[:, :32, :32]), rtol=1e-9)


@pytest.mark.parametrize("arch,shape,params,macs", [
    ("resnet8", (32, 32, 3), 78_666, 12_501_632),     # MLPerf Tiny IC: 78,666 params (Keras total), 12.5 M MACs
    ("dscnn", (49, 10, 1), 24_908, 2_656_768),        # MLPerf Tiny KWS DS-CNN-S
    ("mobilenet-v1", (96, 96, 3), 219_058, 7_489_664),  # MLPerf Tiny VWW, width 0.25: 7.5 M MACs
])
def test_archs_match_mlperf_tiny(arch, shape, params, macs):
    model = build(arch)
    assert model.input_shape == shape and model.total_params == params and model.total_macs == macs


def test_archs_take_the_dataset_shape():
    m = build("resnet8", input_shape=(28, 28, 1), classes=10)
    assert m.output_shape == (10,) and m.shapes["s3_add"] == (7, 7, 64)
    assert build("lenet5").input_shape == (32, 32, 1)
    with pytest.raises(ModelError):
        build("resnet8", input_shape=(28, 28))
    with pytest.raises(ModelError):
        build("mobilenet-v1", width=0)


def test_summary_has_macs_and_inputs_without_renaming_keys():
    s = summarize(branchy())
    assert {"arch", "total_params", "layers"} <= set(s) and s["total_macs"] > 0
    for row in s["layers"]:
        assert {"name", "kind", "output_shape", "params", "connections", "macs", "inputs"} <= set(row)
    assert s["layers"][-1]["inputs"] == ["head_bn"]
    text = format_summary(s)
    assert "MACs" in text and "res, leaky, c" in text
    rc, out, err = run_cli("summary", "resnet8", "--json")
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["total_params"] == 78_666 and doc["total_macs"] == 12_501_632


def test_spec_round_trip():
    model = branchy().init_params(3)
    again = Graph.from_spec(json.loads(json.dumps(model.spec())))
    assert [(n.name, n.inputs, n.layer.config()) for n in again.nodes] == \
        [(n.name, n.inputs, n.layer.config()) for n in model.nodes]
