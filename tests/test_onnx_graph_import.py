"""ONNX import of graphs (branches, merges, global pooling, BN anywhere, Pad, the MobileNet activations).

onnxruntime is the judge of every imported float model; one imported graph
is also quantized and run by the edgecnn runtime and LiteRT BUILTIN_REF.
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from edgecnn.errors import ModelError, UnsupportedOpError
from edgecnn.model.graph import Graph
from edgecnn.model.onnx_import import import_onnx
from test_onnx_import import GraphBuilder, edgecnn_forward, randw, run_ort

RTOL, ATOL = 1e-4, 2e-5


def bn_params(rng, c):
    return (rng.uniform(0.5, 2, c).astype(np.float32), randw(rng, c, fan_in=1), randw(rng, c, fan_in=1),
            rng.uniform(0.5, 2, c).astype(np.float32))


def residual_net(rng, opset=17) -> GraphBuilder:
    """stem conv+BN+relu -> [conv+BN+relu, conv+BN] + 1x1 stride-2 shortcut conv+BN -> Add -> relu -> GAP -> Gemm."""
    g = GraphBuilder(["N", 3, 9, 9], opset=opset, name="res")
    g.op("Conv", randw(rng, 8, 3, 3, 3), name="stem", kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    g.op("BatchNormalization", *bn_params(rng, 8), name="stem_bn")
    x = g.op("Relu", name="stem_relu")
    # the PyTorch stride-2 3x3 conv with padding=1 on an odd input: pads (1, 1) are SAME there
    g.op("Conv", randw(rng, 8, 8, 3, 3), name="a", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    g.op("BatchNormalization", *bn_params(rng, 8), name="a_bn")
    g.op("Relu", name="a_relu")
    g.op("Conv", randw(rng, 8, 8, 3, 3), name="b", kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    main = g.op("BatchNormalization", *bn_params(rng, 8), name="b_bn")
    g.op("Conv", randw(rng, 8, 8, 1, 1), name="short", kernel_shape=[1, 1], strides=[2, 2], first=x)
    short = g.op("BatchNormalization", *bn_params(rng, 8), name="short_bn")
    g.op("Add", main, name="add", first=short)
    g.op("Relu", name="add_relu")
    g.op("GlobalAveragePool", name="gap")
    g.op("Flatten", name="flatten")
    g.op("Gemm", randw(rng, 10, 8), randw(rng, 10, fan_in=1), name="fc", transB=1)
    return g


def test_residual_net_imports_as_a_graph_and_matches_onnxruntime(rng):
    g = residual_net(rng)
    model = import_onnx(g.model().SerializeToString())
    assert isinstance(model, Graph) and not model.is_chain()
    kinds = {n.name: (n.layer.kind, n.layer.activation) for n in model.nodes}
    # every BN folded into its conv, the relus fused into conv and add
    assert kinds == {"stem": ("conv2d", "relu"), "a": ("conv2d", "relu"), "b": ("conv2d", "none"),
                     "short": ("conv2d", "none"), "add": ("add", "relu"), "gap": ("global_avgpool2d", "none"),
                     "fc": ("dense", "none")}
    assert model.node("add").inputs == ("short", "b")
    x = rng.normal(size=(4, 3, 9, 9)).astype(np.float32)
    np.testing.assert_allclose(edgecnn_forward(model, x), run_ort(g.model(), x), rtol=RTOL, atol=ATOL)


def test_even_input_stride2_conv_becomes_pad_and_valid_conv(rng):
    """PyTorch's padding=1 stride-2 3x3 conv on 8x8 pads (1, 1); TFLite's SAME would pad (0, 1)."""
    g = GraphBuilder(["N", 2, 8, 8])
    g.op("Conv", randw(rng, 4, 2, 3, 3), randw(rng, 4, fan_in=1), name="c", kernel_shape=[3, 3], strides=[2, 2],
         pads=[1, 1, 1, 1])
    g.op("Relu")
    g.op("Flatten")
    model = import_onnx(g.model().SerializeToString())
    assert [(la.kind, la.activation) for la in model.layers] == [("zero_padding2d", "none"), ("conv2d", "relu"),
                                                                  ("flatten", "none")]
    assert model.layers[0].padding == [1, 1, 1, 1] and model.layers[1].padding == "valid"
    x = rng.normal(size=(2, 2, 8, 8)).astype(np.float32)
    expected = run_ort(g.model(), x).reshape(2, 4, 4, 4).transpose(0, 2, 3, 1).reshape(2, -1)
    np.testing.assert_allclose(edgecnn_forward(model, x), expected, rtol=RTOL, atol=ATOL)


def mobile_net(rng, hard_swish="HardSwish", reduce="ReduceMean", keepdims=1, opset=17) -> GraphBuilder:
    """Pad, depthwise, Clip(0,6), an inverted residual without activation, LeakyRelu, hard swish, Concat, mean."""
    g = GraphBuilder(["N", 4, 8, 8], opset=opset, name="mobile")
    g.op("Pad", np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64), name="pad")
    g.op("Conv", randw(rng, 8, 4, 1, 1), name="expand", kernel_shape=[1, 1])
    g.op("BatchNormalization", *bn_params(rng, 8), name="expand_bn")
    g.op("Clip", g.const(0.0), g.const(6.0), name="expand_relu6")
    g.op("Conv", randw(rng, 8, 1, 3, 3), name="dw", kernel_shape=[3, 3], group=8, pads=[1, 1, 1, 1])
    g.op("BatchNormalization", *bn_params(rng, 8), name="dw_bn")
    x = g.op("Clip", g.const(0.0), name="dw_relu")  # Clip(0, inf)
    g.op("Conv", randw(rng, 8, 8, 1, 1), randw(rng, 8, fan_in=1), name="project", kernel_shape=[1, 1])
    y = g.op("Add", x, name="skip")
    g.op("LeakyRelu", name="leaky", alpha=0.1)
    left = g.op("Conv", randw(rng, 6, 8, 3, 3), randw(rng, 6, fan_in=1), name="left", kernel_shape=[3, 3],
                pads=[1, 1, 1, 1])
    if hard_swish == "HardSwish":
        left = g.op("HardSwish", name="hswish")
    else:  # opset < 14: x * HardSigmoid(x)
        gate = g.op("HardSigmoid", name="hsig", alpha=1 / 6, beta=0.5)
        left = g.op("Mul", left, name="hswish", first=gate)
    g.op("BatchNormalization", *bn_params(rng, 8), name="right_bn", first=y)  # BN after an Add: kept
    right = g.op("Relu", name="right_relu")
    g.op("Concat", right, name="concat", axis=1, first=left)
    if reduce == "ReduceMean":
        if opset >= 18:
            g.op("ReduceMean", np.array([2, 3], np.int64), name="mean", keepdims=keepdims)
        else:
            g.op("ReduceMean", name="mean", axes=[-2, -1], keepdims=keepdims)
    else:
        g.op("GlobalAveragePool", name="mean")
    if keepdims:
        g.op("Squeeze", np.array([2, 3], np.int64), name="squeeze")
    g.op("Gemm", randw(rng, 5, 14), randw(rng, 5, fan_in=1), name="fc", transB=1)
    return g


@pytest.mark.parametrize("hard_swish,reduce,keepdims,opset", [
    ("HardSwish", "ReduceMean", 1, 17), ("HardSwish", "ReduceMean", 0, 18), ("HardSigmoid", "GlobalAveragePool", 1, 13),
])
def test_mobile_style_graph_matches_onnxruntime(rng, hard_swish, reduce, keepdims, opset):
    g = mobile_net(rng, hard_swish, reduce, keepdims, opset)
    model = import_onnx(g.model().SerializeToString())
    kinds = {n.name: (n.layer.kind, n.layer.activation) for n in model.nodes}
    assert kinds["pad"] == ("zero_padding2d", "none") and model.node("pad").layer.padding == [1, 2, 2, 1]
    assert kinds["expand"] == ("conv2d", "relu6") and kinds["dw"] == ("conv2d", "relu")
    assert model.node("dw").layer.groups == 8
    assert kinds["skip"] == ("add", "none") and kinds["leaky"] == ("leaky_relu", "none")
    assert kinds["hswish"] == ("activation", "hard_swish")
    assert kinds["right_bn"] == ("batchnorm", "relu")  # its input feeds two layers: not foldable
    assert kinds["concat"] == ("concatenate", "none") and kinds["mean"] == ("global_avgpool2d", "none")
    assert model.node("concat").inputs == ("hswish", "right_bn")
    x = rng.normal(size=(3, 4, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(edgecnn_forward(model, x), run_ort(g.model(), x), rtol=RTOL, atol=ATOL)


def test_imported_graph_quantizes_and_litert_ref_agrees(rng):
    from edgecnn.deploy.litert import LiteRTRunner
    from edgecnn.deploy.runtime import Runtime
    from edgecnn.deploy.tflite import to_bytes
    from edgecnn.int8.rules import quantize_input
    from edgecnn.quantize.ptq import quantize_model

    model = import_onnx(mobile_net(rng).model().SerializeToString())
    calib = rng.uniform(0, 1, size=(64, 8, 8, 4)).astype(np.float32)
    qm = quantize_model(model, calib, progress=False)
    kinds = [op.kind for op in qm.graph.ops]
    for kind in ("PAD", "DEPTHWISE_CONV_2D", "ADD", "LEAKY_RELU", "HARD_SWISH", "CONCATENATION", "MEAN"):
        assert kind in kinds, kinds
    x = quantize_input(rng.uniform(0, 1, size=(16, 8, 8, 4)), qm.graph.input.scale[0], qm.graph.input.zero_point[0])
    np.testing.assert_array_equal(LiteRTRunner(to_bytes(qm.graph), "ref").run(x), Runtime(qm.graph).run(x))


@pytest.mark.parametrize("case,needles", [
    ("concat-batch-axis", ["Concat over channels", "axis 0"]),
    ("reduce-channels", ["H and W", "[1]"]),
    ("pad-reflect", ["constant (zero)", "reflect"]),
    ("pad-channels", ["spatial"]),
    ("pad-value", ["zero padding", "constant_value 1"]),
    ("hard-sigmoid-alone", ["HardSigmoid", "hard swish"]),
    ("mul", ["Mul", "hard swish"]),
    ("leaky-alpha", ["alpha 2"]),
    ("flat-concat", ["flatten after"]),
])
def test_graph_refusals_are_one_clear_line(case, needles):
    rng = np.random.default_rng(3)
    g = GraphBuilder(["N", 2, 6, 6])
    x = g.op("Conv", randw(rng, 2, 2, 1, 1), name="conv", kernel_shape=[1, 1])
    if case == "concat-batch-axis":
        g.op("Concat", x, axis=0, name="bad", first=x)
    elif case == "reduce-channels":
        g.op("ReduceMean", axes=[1], keepdims=0, name="bad")
    elif case == "pad-reflect":
        g.op("Pad", np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), mode="reflect", name="bad")
    elif case == "pad-channels":
        g.op("Pad", np.array([0, 1, 0, 0, 0, 0, 0, 0], np.int64), name="bad")
    elif case == "pad-value":
        g.op("Pad", np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), np.float32(1.0), name="bad")
    elif case == "hard-sigmoid-alone":
        g.op("HardSigmoid", alpha=1 / 6, beta=0.5, name="bad")
        g.op("Relu")
    elif case == "mul":
        g.op("Mul", x, name="bad", first=x)
    elif case == "leaky-alpha":
        g.op("LeakyRelu", alpha=2.0, name="bad")
    elif case == "flat-concat":
        f = g.op("Flatten")
        g.op("Concat", f, axis=1, name="bad", first=f)
    g.op("Flatten")
    with pytest.raises(ModelError if case.startswith("pad-v") else (ModelError, UnsupportedOpError)) as e:
        import_onnx(g.model().SerializeToString())
    msg = str(e.value)
    assert "\n" not in msg and "'bad'" in msg, msg
    for n in needles:
        assert n.lower() in msg.lower(), msg


def test_two_outputs_and_dead_branches(rng):
    """An unused branch is pruned; two graph outputs are refused."""
    g = GraphBuilder(["N", 1, 4, 4])
    x = g.op("Conv", randw(rng, 2, 1, 1, 1), name="conv", kernel_shape=[1, 1])
    g.op("Relu", name="dead")
    g.op("Flatten", name="flatten", first=x)
    model = import_onnx(g.model().SerializeToString())
    assert [la.name for la in model.layers] == ["conv", "flatten"]
    proto = g.model()
    proto.graph.output.append(helper.make_tensor_value_info(x, 1, [None, 2, 4, 4]))
    with pytest.raises(ModelError, match="2 outputs"):
        import_onnx(proto.SerializeToString())


# ----------------------------------------------------------------------------- 28x28 input and --mean/--std

def lenet28_onnx(rng):
    """The PyTorch MNIST LeNet's shape (28x28 input, padding=2), random weights."""
    g = GraphBuilder(["N", 1, 28, 28], name="lenet28")
    g.op("Conv", randw(rng, 4, 1, 5, 5), randw(rng, 4, fan_in=1), name="conv1", kernel_shape=[5, 5], pads=[2, 2, 2, 2])
    g.op("Relu")
    g.op("MaxPool", kernel_shape=[2, 2], strides=[2, 2])
    g.op("Flatten")
    g.op("Gemm", randw(rng, 10, 4 * 14 * 14), randw(rng, 10, fan_in=1), name="fc", transB=1)
    return g.model()


def test_quantize_28x28_model_with_mean_std(tmp_path, mnist_root):
    """No padding to 32; the normalisation sets the input qparams, lands in the metadata, and eval applies it."""
    from conftest import run_cli
    from edgecnn.data.datasets import load_split
    from edgecnn.deploy.backends import open_backend
    from edgecnn.deploy.tflite.reader import read_tflite
    from edgecnn.int8.preprocessing import pixels_to_float
    from edgecnn.int8.rules import quantize_input
    import json

    path = tmp_path / "lenet28.onnx"
    path.write_bytes(lenet28_onnx(np.random.default_rng(5)).SerializeToString())
    out = tmp_path / "m.tflite"
    rc, stdout, err = run_cli("quantize", path, "--data", mnist_root, "--mean", "0.1307", "--std", "0.3081",
                              "--calib-samples", "50", "--eval-limit", "50", "--out", out, "--json")
    assert rc == 0, err
    result = json.loads(stdout)
    graph = read_tflite(out)
    assert tuple(graph.input.shape) == (1, 28, 28, 1) and "PAD" not in [op.kind for op in graph.ops]
    prep = graph.metadata["preprocessing"]
    assert prep["mean"] == [0.1307] and prep["std"] == [0.3081] and prep["pad"] == 0
    s, zp = float(graph.input.scale[0]), int(graph.input.zero_point[0])
    # the range (0 - 0.1307)/0.3081 .. (1 - 0.1307)/0.3081 spread over 256 levels, zero exact
    assert s == pytest.approx((1 / 0.3081) / 255, rel=1e-6) and zp == -128 + round(0.1307 / 0.3081 / s)
    assert prep["scale"] == pytest.approx(s) and prep["zero_point"] == zp
    images, labels = load_split("mnist", "test", mnist_root)
    backend = open_backend(out, "numba")
    x = backend.prepare(images[:50])
    np.testing.assert_array_equal(x, quantize_input(pixels_to_float(images[:50, :, :, None], [0.1307], [0.3081]), s, zp))
    acc = float(np.mean(np.asarray(backend.run(x)).reshape(50, -1).argmax(1) == labels[:50]))
    assert acc == pytest.approx(result["int8_accuracy"], abs=1e-9)


@pytest.mark.parametrize("args,needle", [
    (["--mean", "0.5"], "--mean and --std go together"),
    (["--mean", "0.5", "0.5", "--std", "0.2", "0.2"], "1 or 1 values"),
    (["--mean", "0.5", "--std", "0"], "positive"),
    (["--mean", "nan", "--std", "1"], "finite"),
])
def test_quantize_bad_mean_std_is_one_clean_line(tmp_path, mnist_root, args, needle):
    from conftest import assert_clean_error, run_cli

    path = tmp_path / "lenet28.onnx"
    path.write_bytes(lenet28_onnx(np.random.default_rng(5)).SerializeToString())
    rc, _, err = run_cli("quantize", path, "--data", mnist_root, *args, "--out", tmp_path / "m.tflite")
    assert_clean_error(rc, err, needle)
    assert not (tmp_path / "m.tflite").exists()
