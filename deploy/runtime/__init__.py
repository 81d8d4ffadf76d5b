"""The Numba integer runtime: int8 kernels bit-exact with LiteRT's BUILTIN_REF resolver.

    from edgecnn.deploy.runtime import Runtime
    y = Runtime(graph).run(x)            # x int8 (N, *graph.input.shape[1:])

Modules: fixedpoint (gemmlowp primitives), params (frozen records),
prepare (the registry's prepare steps over a graph), one module per kernel
family (conv, depthwise_conv, fully_connected, pooling, activations,
softmax, reshape), naive (plain-Python references for tests).
Importing this package compiles nothing and needs no Numba; each kernel
compiles on first use and is cached on disk, keyed by a hash of all the
runtime's sources (see edgecnn/jitcache.py).
"""

import os

from edgecnn import jitcache

jitcache.install_on_numba_import(os.path.dirname(__file__))  # Numba picks cache locators at decoration

__all__ = ["Runtime"]


def __getattr__(name):
    if name == "Runtime":  # imported on use, so preparing or exporting a model never loads Numba
        from edgecnn.deploy.runtime.interpreter import Runtime

        return Runtime
    raise AttributeError(name)
