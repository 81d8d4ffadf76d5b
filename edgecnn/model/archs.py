"""The architectures edgecnn knows by name (ARCHITECTURE.md), each sized by its input shape.

`build(arch, input_shape=..., classes=...)`: LeNets default to 32x32x1, resnet8 to
CIFAR-10's 32x32x3, dscnn to a 49x10 MFCC map, mobilenet-v1 to the 96x96x3 of
MLPerf Tiny's visual wake words. Pass the dataset's shape (28x28x1 for MNIST
without padding) to train on it directly.
"""

from __future__ import annotations

from edgecnn.errors import ModelError, UnknownArchitectureError
from edgecnn.model.global_pooling import GlobalAvgPool2D
from edgecnn.model.graph import Graph, GraphBuilder
from edgecnn.model.layers import AvgPool2D, Conv2D, Dense, Flatten, MaxPool2D, Subsampling
from edgecnn.model.merge_layers import Add
from edgecnn.model.norm_layers import BatchNorm
from edgecnn.model.sequential import Sequential

LENET_INPUT = (32, 32, 1)
MAX_SIDE = 4096  # larger inputs are surely a mistake, and would allocate gigabytes


def lenet5(labels=None, input_shape=LENET_INPUT) -> Sequential:
    """The modern LeNet-5: ReLU and max-pooling, 61,706 parameters."""
    return Sequential([
        Conv2D(6, 5, name="conv1", activation="relu"),
        MaxPool2D(2, name="pool1"),
        Conv2D(16, 5, name="conv2", activation="relu"),
        MaxPool2D(2, name="pool2"),
        Flatten(name="flatten"),
        Dense(120, name="fc1", activation="relu"),
        Dense(84, name="fc2", activation="relu"),
        Dense(len(labels) if labels else 10, name="fc3"),
    ], input_shape, arch="lenet5", labels=labels)


def c3_connection_table() -> list[list[int]]:
    """C3 map j reads these S2 maps (LeCun et al. 1998, table I)."""
    table = []
    for j in range(16):
        if j < 6:
            maps = [j, j + 1, j + 2]
        elif j < 12:
            maps = [j, j + 1, j + 2, j + 3]
        elif j < 15:
            maps = [[0, 1, 3, 4], [1, 2, 4, 5], [0, 2, 3, 5]][j - 12]
        else:
            maps = list(range(6))
        table.append(sorted({m % 6 for m in maps}))
    return table


def lenet5_classic(labels=None, input_shape=LENET_INPUT) -> Sequential:
    """LeNet-5 as published: scaled tanh, trainable subsampling, C3's partial table.

    The output layer is dense 10 instead of the paper's RBF units.
    """
    return Sequential([
        Conv2D(6, 5, name="C1", activation="scaled_tanh"),
        Subsampling(2, name="S2", activation="scaled_tanh"),
        Conv2D(16, 5, name="C3", activation="scaled_tanh", connection_table=c3_connection_table()),
        Subsampling(2, name="S4", activation="scaled_tanh"),
        Conv2D(120, 5, name="C5", activation="scaled_tanh"),
        Flatten(name="flatten"),
        Dense(84, name="F6", activation="scaled_tanh"),
        Dense(len(labels) if labels else 10, name="output"),
    ], input_shape, arch="lenet5-classic", labels=labels)


def _conv_bn(g, x, name, filters, kernel, stride=1, activation="relu", groups=1, use_bias=True):
    x = g.add(Conv2D(filters, kernel, stride=stride, padding="same", groups=groups, use_bias=use_bias,
                     name=name), x)
    return g.add(BatchNorm(name=f"{name}_bn", activation=activation), x)


def resnet8(labels=None, input_shape=(32, 32, 3)) -> Graph:
    """MLPerf Tiny's image-classification ResNet-8 (Banbury et al. 2021), 78,666 parameters on CIFAR-10.

    Stem conv3x3(16)-BN-ReLU; three residual stacks of 16, 32, 64 filters, each
    conv3x3-BN-ReLU-conv3x3-BN + shortcut, then ReLU; stacks 2 and 3 stride 2 with a
    1x1 stride-2 shortcut conv (no BN on it, as in MLPerf); global average pooling; dense.
    """
    g = GraphBuilder(input_shape, arch="resnet8", labels=labels)
    x = _conv_bn(g, g.input, "stem", 16, 3)
    for i, (filters, stride) in enumerate([(16, 1), (32, 2), (64, 2)], start=1):
        y = _conv_bn(g, x, f"s{i}_conv1", filters, 3, stride)
        y = _conv_bn(g, y, f"s{i}_conv2", filters, 3, activation="none")
        shortcut = x if stride == 1 else g.add(Conv2D(filters, 1, stride=stride, padding="same",
                                                      name=f"s{i}_shortcut"), x)
        x = g.add(Add(name=f"s{i}_add", activation="relu"), y, shortcut)
    x = g.add(GlobalAvgPool2D(name="pool"), x)
    g.add(Dense(len(labels) if labels else 10, name="fc"), x)
    return g.build()


def dscnn(labels=None, input_shape=(49, 10, 1)) -> Graph:
    """MLPerf Tiny's keyword-spotting DS-CNN-S (Zhang et al. 2017).

    conv 10x4 stride 2 (64)-BN-ReLU; four depthwise-separable blocks (dw3x3-BN-ReLU,
    pw1x1(64)-BN-ReLU); average pooling over the whole map; dense. MLPerf's dropout
    layers are left out (they do nothing at inference).
    """
    g = GraphBuilder(input_shape, arch="dscnn", labels=labels)
    x = _conv_bn(g, g.input, "conv1", 64, (10, 4), stride=2)
    for i in range(1, 5):
        x = _conv_bn(g, x, f"dw{i}", 64, 3, groups=64)
        x = _conv_bn(g, x, f"pw{i}", 64, 1)
    x = g.add(AvgPool2D(_dscnn_pool(input_shape), name="pool"), x)
    x = g.add(Flatten(name="flatten"), x)
    g.add(Dense(len(labels) if labels else 12, name="fc"), x)
    return g.build()


def _dscnn_pool(input_shape):
    # the map after the stride-2 'same' stem: ceil(H/2) x ceil(W/2)
    return (-(-int(input_shape[0]) // 2), -(-int(input_shape[1]) // 2))


MOBILENET_V1_BLOCKS = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
                       (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1)]


def mobilenet_v1(labels=None, input_shape=(96, 96, 3), width: float = 0.25, activation: str = "relu6") -> Graph:
    """MobileNetV1 (Howard et al. 2017) with width multiplier `width`; 0.25 at 96x96x3 is MLPerf Tiny's VWW.

    conv3x3 stride 2 then 13 depthwise-separable blocks, each dw3x3-BN-act, pw1x1-BN-act,
    global average pooling, dense. Activation: ReLU6, as in TensorFlow's MobileNet
    (its bounded range suits int8); MLPerf's VWW reference uses ReLU (activation="relu").
    Convs have no bias: the BN after each supplies it, as in Keras.
    """
    if not 0 < width <= 4:
        raise ModelError(f"mobilenet-v1: the width multiplier must lie in (0, 4], got {width}")

    def filters(n):
        return max(1, int(n * width))  # Keras' rule, so 0.25 gives MLPerf's channel counts

    g = GraphBuilder(input_shape, arch="mobilenet-v1", labels=labels)
    x = _conv_bn(g, g.input, "conv1", filters(32), 3, stride=2, activation=activation, use_bias=False)
    channels = filters(32)
    for i, (n, stride) in enumerate(MOBILENET_V1_BLOCKS, start=1):
        x = _conv_bn(g, x, f"dw{i}", channels, 3, stride, activation, groups=channels, use_bias=False)
        channels = filters(n)
        x = _conv_bn(g, x, f"pw{i}", channels, 1, activation=activation, use_bias=False)
    x = g.add(GlobalAvgPool2D(name="pool"), x)
    g.add(Dense(len(labels) if labels else 2, name="fc"), x)
    return g.build()


ARCHS = {"lenet5": lenet5, "lenet5-classic": lenet5_classic, "resnet8": resnet8, "dscnn": dscnn,
         "mobilenet-v1": mobilenet_v1}


def _check_input_shape(shape) -> tuple[int, int, int]:
    try:
        shape = tuple(int(d) for d in shape)
    except (TypeError, ValueError):
        raise ModelError(f"the input shape must be (height, width, channels), got {shape!r}") from None
    if len(shape) != 3 or min(shape) < 1 or max(shape[:2]) > MAX_SIDE or shape[2] > 64:
        raise ModelError(f"the input shape must be (height, width, channels) with sides 1..{MAX_SIDE} and "
                         f"1..64 channels, got {shape}")
    return shape


def build(arch: str, labels=None, input_shape=None, classes: int | None = None, **options):
    """A fresh (unparameterised) model: call `.init_params(seed)` before use.

    input_shape defaults to the architecture's own; classes to len(labels), else 10
    (12 for dscnn's keywords, 2 for mobilenet-v1's wake words).
    `options` go to the architecture (mobilenet-v1: width, activation).
    """
    if arch not in ARCHS:
        raise UnknownArchitectureError(f"unknown architecture {arch!r}; known: {', '.join(ARCHS)}")
    if classes is not None and labels is None:
        labels = [str(i) for i in range(int(classes))]
    kwargs = dict(labels=labels, **options)
    if input_shape is not None:
        kwargs["input_shape"] = _check_input_shape(input_shape)
    try:
        return ARCHS[arch](**kwargs)
    except TypeError as exc:
        raise ModelError(f"{arch}: {exc}") from None
