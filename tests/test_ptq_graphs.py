"""The quantizer on graph models: resnet8, dscnn and mobilenet-v1 (random weights) give int8 graphs
that LiteRT's BUILTIN_REF runs, with every output element equal to edgecnn's runtime."""

from __future__ import annotations

import numpy as np
import pytest

from edgecnn.deploy.litert import LiteRTRunner
from edgecnn.deploy.runtime import Runtime
from edgecnn.deploy.tflite import read_tflite, to_bytes
from edgecnn.int8.rules import quantize_input
from edgecnn.model import build
from edgecnn.quantize.ptq import quantize_model
from edgecnn.quantize.report import layer_sqnr

CASES = [
    ("resnet8", (32, 32, 3), {"ADD", "MEAN", "CONV_2D", "FULLY_CONNECTED"}),
    ("resnet8", (28, 28, 1), {"ADD", "MEAN"}),
    ("dscnn", (49, 10, 1), {"DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D"}),
    ("mobilenet-v1", (32, 32, 3), {"DEPTHWISE_CONV_2D", "MEAN"}),
]


@pytest.mark.parametrize("arch,shape,kinds", CASES, ids=[f"{a}-{'x'.join(map(str, s))}" for a, s, _ in CASES])
def test_graph_models_quantize_bit_exact(arch, shape, kinds):
    model = build(arch, input_shape=shape).init_params(seed=1)
    rng = np.random.default_rng(0)
    calib = rng.random((64,) + shape).astype(np.float32)
    qm = quantize_model(model, calib)
    assert kinds <= {op.kind for op in qm.graph.ops}
    data = to_bytes(qm.graph)
    graph = read_tflite(data)
    x = quantize_input(rng.random((6,) + shape), graph.input.scale[0], graph.input.zero_point[0])
    want = LiteRTRunner(data, "ref").run(x)
    got = Runtime(graph).run(x)
    assert got.shape == want.shape and np.array_equal(got, want)
    rows = layer_sqnr(model, qm, calib[:16], Runtime(qm.graph).run_intermediates)
    assert len(rows) == len(qm.layer_tensors) and all(r["sqnr_db"] > 10 for r in rows), rows


def test_batchnorm_is_folded_and_int8_tracks_float():
    model = build("resnet8", input_shape=(16, 16, 3)).init_params(seed=2)
    rng = np.random.default_rng(3)
    for layer in model.layers:  # eval-mode statistics that are not the identity
        if layer.kind == "batchnorm":
            c = layer.buffers["mean"].size
            layer.buffers["mean"][:] = rng.normal(0, 0.1, c)
            layer.buffers["var"][:] = rng.uniform(0.5, 2.0, c)
    calib = rng.random((64, 16, 16, 3)).astype(np.float32)
    qm = quantize_model(model, calib)
    assert not any(op.kind == "DEPTHWISE_CONV_2D" for op in qm.graph.ops)  # every BN folded into its conv
    x = calib[:32]
    logits = model.forward(x)
    out = qm.graph.output
    q = Runtime(qm.graph).run(quantize_input(x, qm.graph.input.scale[0], qm.graph.input.zero_point[0]))
    deq = float(out.scale[0]) * (q.astype(np.float64) - int(out.zero_point[0]))
    assert np.mean(np.argmax(deq, 1) == np.argmax(logits, 1)) >= 0.9


def _branchy(input_branch: bool):
    from edgecnn.model.global_pooling import GlobalAvgPool2D
    from edgecnn.model.graph import GraphBuilder
    from edgecnn.model.layers import Conv2D, Dense, MaxPool2D
    from edgecnn.model.merge_layers import Concatenate

    g = GraphBuilder((6, 6, 2), arch="cat")
    stem = g.add(Conv2D(4, 3, padding="same", name="stem", activation="relu"), g.input)
    a = g.add(Conv2D(4, 3, padding="same", name="a", activation="relu"), stem)
    b = g.add(Conv2D(3, 1, name="b"), stem)
    c = g.add(MaxPool2D(1, name="pool"), g.input if input_branch else stem)  # same qparams as its input
    cat = g.add(Concatenate(name="cat"), a, b, c)
    g.add(Dense(3, name="fc"), g.add(GlobalAvgPool2D(name="gap"), cat))
    return g.build()


@pytest.mark.parametrize("input_branch", [False, True])
def test_concatenated_branches_share_the_concat_qparams(input_branch):
    model = _branchy(input_branch).init_params(seed=1)
    rng = np.random.default_rng(0)
    calib = rng.random((32, 6, 6, 2)).astype(np.float32)
    qm = quantize_model(model, calib)
    g = qm.graph
    (concat,) = [op for op in g.ops if op.kind == "CONCATENATION"]
    out = g.tensors[concat.outputs[0]]
    for t in concat.inputs:  # LiteRT's int8 CONCATENATION refuses anything else
        assert np.array_equal(g.tensors[t].scale, out.scale) and np.array_equal(g.tensors[t].zero_point, out.zero_point)
    assert sum(op.kind == "QUANTIZE" for op in g.ops) == 1  # only the pooled branch needs requantizing
    data = to_bytes(g)
    x = quantize_input(rng.random((5, 6, 6, 2)), g.input.scale[0], g.input.zero_point[0])
    assert np.array_equal(Runtime(read_tflite(data)).run(x), LiteRTRunner(data, "ref").run(x))
