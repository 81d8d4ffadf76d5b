"""The architectures edgecnn knows by name (ARCHITECTURE.md)."""

from __future__ import annotations

from edgecnn.errors import UnknownArchitectureError
from edgecnn.model.layers import Conv2D, Dense, Flatten, MaxPool2D, Subsampling
from edgecnn.model.sequential import Sequential

LENET_INPUT = (32, 32, 1)


def lenet5(labels=None) -> Sequential:
    """The modern LeNet-5: ReLU and max-pooling, 61,706 parameters."""
    return Sequential([
        Conv2D(6, 5, name="conv1", activation="relu"),
        MaxPool2D(2, name="pool1"),
        Conv2D(16, 5, name="conv2", activation="relu"),
        MaxPool2D(2, name="pool2"),
        Flatten(name="flatten"),
        Dense(120, name="fc1", activation="relu"),
        Dense(84, name="fc2", activation="relu"),
        Dense(10, name="fc3"),
    ], LENET_INPUT, arch="lenet5", labels=labels)


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


def lenet5_classic(labels=None) -> Sequential:
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
        Dense(10, name="output"),
    ], LENET_INPUT, arch="lenet5-classic", labels=labels)


ARCHS = {"lenet5": lenet5, "lenet5-classic": lenet5_classic}


def build(arch: str, labels=None) -> Sequential:
    if arch not in ARCHS:
        raise UnknownArchitectureError(f"unknown architecture {arch!r}; known: {', '.join(ARCHS)}")
    return ARCHS[arch](labels=labels)
