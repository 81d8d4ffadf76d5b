"""Float reference kernels: NHWC forward/backward pairs that the trainer is built on.

Each op is a `*_forward(...) -> (y, cache)` / `*_backward(dy, cache)` pair, with a
plain-loop `*_naive` twin wherever the fast version is optimized. All accept float32
(training) and float64 (gradient checks) and return the input's dtype. Importing this
package compiles nothing: Numba kernels compile (or load from cache) on first call,
cached on disk under a hash of every source in this folder (see edgecnn/jitcache.py).
"""

import os

from edgecnn import jitcache

jitcache.install(os.path.dirname(__file__))  # before any kernel module is imported

from edgecnn.reference.activations import (
    SCALED_TANH_A,
    SCALED_TANH_S,
    relu6_backward,
    relu6_forward,
    relu_backward,
    relu_forward,
    scaled_tanh_backward,
    scaled_tanh_forward,
    sigmoid_backward,
    sigmoid_forward,
    tanh_backward,
    tanh_forward,
)
from edgecnn.reference.conv import (
    conv2d_backward,
    conv2d_backward_naive,
    conv2d_forward,
    conv2d_forward_naive,
)
from edgecnn.reference.dense import dense_backward, dense_backward_naive, dense_forward, dense_forward_naive
from edgecnn.reference.loss import softmax, softmax_cross_entropy_backward, softmax_cross_entropy_forward
from edgecnn.reference.padding import normalize_pad, resolve_padding
from edgecnn.reference.pool import (
    avg_pool2d_backward,
    avg_pool2d_backward_naive,
    avg_pool2d_forward,
    avg_pool2d_forward_naive,
    max_pool2d_backward,
    max_pool2d_backward_naive,
    max_pool2d_forward,
    max_pool2d_forward_naive,
)
from edgecnn.reference.subsample import (
    subsample_backward,
    subsample_backward_naive,
    subsample_forward,
    subsample_forward_naive,
)
from edgecnn.tuning import tune_for_training  # noqa: F401  (re-exported)
