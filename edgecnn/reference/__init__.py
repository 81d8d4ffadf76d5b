"""Float reference kernels: NHWC forward/backward pairs that the trainer is built on.

Each op is a `*_forward(...) -> (y, cache)` / `*_backward(dy, cache)` pair, with a
plain-loop `*_naive` twin wherever the fast version is optimized. All accept float32
(training) and float64 (gradient checks) and return the input's dtype. Importing this
package compiles nothing and imports no Numba: names load from their modules on first
use (so shape inference via `padding` works on a device without Numba). Kernels are
cached on disk under a hash of every source in this folder (see edgecnn/jitcache.py).
"""

import importlib
import os

from edgecnn import jitcache

jitcache.install(os.path.dirname(__file__))  # before any kernel module is imported; a no-op without Numba

_MODULE_OF = {
    **{f"{op}_{kind}": "activations" for op in ("relu", "relu6", "tanh", "sigmoid", "scaled_tanh",
                                                               "leaky_relu", "hard_swish")
       for kind in ("forward", "backward")},
    "SCALED_TANH_A": "activations", "SCALED_TANH_S": "activations",
    **{f"conv2d_{kind}{naive}": "conv" for kind in ("forward", "backward") for naive in ("", "_naive")},
    **{f"dense_{kind}{naive}": "dense" for kind in ("forward", "backward") for naive in ("", "_naive")},
    **{f"{pool}_pool2d_{kind}{naive}": "pool" for pool in ("max", "avg") for kind in ("forward", "backward")
       for naive in ("", "_naive")},
    **{f"subsample_{kind}{naive}": "subsample" for kind in ("forward", "backward") for naive in ("", "_naive")},
    **{f"batchnorm_{kind}{naive}": "batchnorm" for kind in ("forward", "backward") for naive in ("", "_naive")},
    **{f"{op}_{kind}": "merge" for op in ("add", "concatenate") for kind in ("forward", "backward")},
    **{f"global_{pool}_pool2d_{kind}": "global_pool" for pool in ("avg", "max") for kind in ("forward", "backward")},
    "zero_pad2d_forward": "zero_pad", "zero_pad2d_backward": "zero_pad",
    "softmax": "loss", "softmax_cross_entropy_forward": "loss", "softmax_cross_entropy_backward": "loss",
    "normalize_pad": "padding", "resolve_padding": "padding",
}
__all__ = sorted(_MODULE_OF) + ["tune_for_training"]


def __getattr__(name):
    if name == "tune_for_training":
        from edgecnn.tuning import tune_for_training

        return tune_for_training
    if name in _MODULE_OF:
        return getattr(importlib.import_module(f"edgecnn.reference.{_MODULE_OF[name]}"), name)
    raise AttributeError(f"module 'edgecnn.reference' has no attribute {name!r}")
