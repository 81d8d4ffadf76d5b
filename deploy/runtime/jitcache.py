"""Make Numba's on-disk cache of the runtime go stale when *any* runtime source changes.

Trap: Numba stamps a cached function with a hash of its own file only. A
kernel in conv.py compiled against fixedpoint.py keeps its old copy of the
fixed-point code after fixedpoint.py changes (a `git pull`, an edit), and a
bit-exact runtime would silently compute with stale arithmetic. For
functions defined in this folder, the locators below use a hash of every
.py file here instead, so any change recompiles all kernels.

Installed by the package __init__ before any kernel is decorated (Numba
picks a function's locator at decoration). Uses Numba's cache-locator
classes; on a Numba without them it does nothing and the default per-file
stamps apply.
"""

from __future__ import annotations

import functools
import hashlib
import os

_RUNTIME_DIR = os.path.dirname(os.path.abspath(__file__))


@functools.lru_cache(maxsize=None)
def runtime_sources_hash() -> bytes:
    """sha256 over the names and contents of every .py file in deploy/runtime."""
    digest = hashlib.sha256()
    for name in sorted(os.listdir(_RUNTIME_DIR)):
        if name.endswith(".py"):
            with open(os.path.join(_RUNTIME_DIR, name), "rb") as f:
                digest.update(name.encode() + b"\0" + f.read())
    return digest.digest()


def _whole_runtime_locator(base):
    class Locator(base):
        def get_source_stamp(self):
            return runtime_sources_hash()

        @classmethod
        def from_function(cls, py_func, py_file):
            if os.path.dirname(os.path.abspath(py_file)) != _RUNTIME_DIR:
                return None  # not ours: Numba's own locators handle it
            return super().from_function(py_func, py_file)

    Locator.__name__ = Locator.__qualname__ = "WholeRuntime" + base.__name__
    return Locator


def install() -> bool:
    """Put the whole-runtime locators first in Numba's list (once). False if this Numba lacks the hooks."""
    try:
        from numba.core import caching

        bases = (caching.UserProvidedCacheLocator, caching.InTreeCacheLocator, caching.UserWideCacheLocator)
        locators = caching.CacheImpl._locator_classes
    except (ImportError, AttributeError):
        return False
    if any(getattr(cls, "__name__", "").startswith("WholeRuntime") for cls in locators):
        return True
    locators[:0] = [_whole_runtime_locator(base) for base in bases]
    return True
