"""The op registry: one module per TFLite builtin, each holding everything edgecnn knows about it.

    from edgecnn.deploy.ops import REGISTRY, lookup
    opdef = lookup("CONV_2D")           # UnsupportedOpError for anything else

Importing the registry loads no Numba and no onnx: kernels are named by
import path and loaded on first use, lowerings import what they need when
called. How to add an op: docs/ops.md.
"""

from __future__ import annotations

import importlib

from edgecnn.deploy.ops.base import OpDef
from edgecnn.errors import UnsupportedOpError

# Module names, one per builtin (the module is the builtin's name in lower case).
_MODULES = (
    "conv_2d", "depthwise_conv_2d", "fully_connected", "max_pool_2d", "average_pool_2d", "reshape",
    "softmax", "logistic", "tanh",
    "shape", "strided_slice", "pack", "concatenation", "gather", "reduce_prod",
    "mean", "reduce_max", "pad", "padv2",
    "quantize", "dequantize", "resize_nearest_neighbor", "resize_bilinear", "space_to_batch_nd", "batch_to_space_nd",
    "add", "sub", "mul", "relu", "relu6", "leaky_relu", "hard_swish",
)  # fmt: skip

REGISTRY: dict[str, OpDef] = {}
for _name in _MODULES:
    _opdef = importlib.import_module(f"edgecnn.deploy.ops.{_name}").OP
    assert _opdef.name.lower() == _name, f"module {_name} registers {_opdef.name}"
    REGISTRY[_opdef.name] = _opdef


def lookup(name: str) -> OpDef:
    """The registration of builtin `name`; UnsupportedOpError if edgecnn does not know it."""
    opdef = REGISTRY.get(name)
    if opdef is None:
        raise UnsupportedOpError(f"unsupported operator {name}")
    return opdef


def runnable(name: str) -> bool:
    """True for ops the runtime executes (not fold-only shape ops)."""
    opdef = REGISTRY.get(name)
    return opdef is not None and opdef.prepare is not None
