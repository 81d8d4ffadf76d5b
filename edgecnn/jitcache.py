"""Make Numba's on-disk cache go stale when *any* source in a kernel package changes.

Trap: Numba stamps a cached function with a hash of its own file only. A
kernel in conv.py compiled against fixedpoint.py keeps its old copy of the
fixed-point code after fixedpoint.py changes (a `git pull`, an edit), and a
bit-exact runtime would silently compute with stale arithmetic. For
functions defined in a registered folder, the locators below stamp the cache
with a hash of every .py file in that folder instead, so any change there
recompiles all of its kernels.

Each kernel package calls `install(its folder)` in its `__init__`, before any
kernel is decorated (Numba picks a function's locator at decoration). Uses
Numba's cache-locator classes; on a Numba without them it does nothing and
the default per-file stamps apply.
"""

from __future__ import annotations

import functools
import hashlib
import os

_FOLDERS: set[str] = set()


@functools.lru_cache(maxsize=None)
def sources_hash(folder: str) -> bytes:
    """sha256 over the names and contents of every .py file in `folder`."""
    digest = hashlib.sha256()
    for name in sorted(os.listdir(folder)):
        if name.endswith(".py"):
            with open(os.path.join(folder, name), "rb") as f:
                digest.update(name.encode() + b"\0" + f.read())
    return digest.digest()


def _whole_folder_locator(base):
    class Locator(base):
        def get_source_stamp(self):
            return sources_hash(os.path.dirname(os.path.abspath(self._py_file)))

        @classmethod
        def from_function(cls, py_func, py_file):
            if os.path.dirname(os.path.abspath(py_file)) not in _FOLDERS:
                return None  # not ours: Numba's own locators handle it
            return super().from_function(py_func, py_file)

    Locator.__name__ = Locator.__qualname__ = "WholeFolder" + base.__name__
    return Locator


def install(folder: str) -> bool:
    """Register `folder` and put the whole-folder locators first in Numba's list (once).

    Returns False if this Numba lacks the hooks.
    """
    try:
        from numba.core import caching

        bases = (caching.UserProvidedCacheLocator, caching.InTreeCacheLocator, caching.UserWideCacheLocator)
        locators = caching.CacheImpl._locator_classes
    except (ImportError, AttributeError):
        return False
    _FOLDERS.add(os.path.dirname(os.path.abspath(os.path.join(folder, "x"))))
    if not any(getattr(cls, "__name__", "").startswith("WholeFolder") for cls in locators):
        locators[:0] = [_whole_folder_locator(base) for base in bases]
    return True
