"""The Numba integer runtime: int8 kernels bit-exact with LiteRT's BUILTIN_REF resolver.

    from edgecnn.deploy.runtime import Runtime
    y = Runtime(graph).run(x)            # x int8 (N, *graph.input.shape[1:])

Modules: fixedpoint (gemmlowp primitives), params (frozen records),
prepare (Int8Graph op -> kernel call, with LiteRT's load-time checks), one
module per kernel family (conv, depthwise_conv, fully_connected, pooling,
activations, softmax, reshape), naive (plain-Python references for tests).
Importing compiles nothing; each kernel compiles on first use and is cached
on disk, keyed by a hash of all the runtime's sources (see edgecnn/jitcache.py).
"""

import os

from edgecnn import jitcache

jitcache.install(os.path.dirname(__file__))  # before any kernel module: Numba picks cache locators at decoration

from edgecnn.deploy.runtime.interpreter import Runtime  # noqa: E402

__all__ = ["Runtime"]
