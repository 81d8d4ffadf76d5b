"""Make Numba's on-disk cache go stale when *any* source in a kernel package changes.

Trap: Numba stamps a cached function with a hash of its own file only. A
kernel in conv.py compiled against fixedpoint.py keeps its old copy of the
fixed-point code after fixedpoint.py changes (a `git pull`, an edit), and a
bit-exact runtime would silently compute with stale arithmetic. For
functions defined in a registered folder, the locators below stamp the cache
with a hash of every .py file in that folder instead, so any change there
recompiles all of its kernels.

Each kernel package calls `install_on_numba_import(its folder)` in its
`__init__`: the locators go in when Numba is first imported, before any kernel
is decorated (Numba picks a function's locator at decoration), and importing
the package alone (to prepare or export a model) never loads Numba. Uses
Numba's cache-locator classes; on a Numba without them it does nothing and
the default per-file stamps apply.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.abc
import os
import sys

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


class _AfterNumbaImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself; wraps Numba's own loader so the folders are installed once Numba has loaded."""

    def __init__(self):
        self.folders: list[str] = []

    def find_spec(self, fullname, path, target=None):
        if fullname != "numba":
            return None
        sys.meta_path.remove(self)  # one shot; and lets the search below find the real spec
        import importlib.util

        spec = importlib.util.find_spec("numba")
        if spec is None or spec.loader is None:
            return spec
        exec_module, folders = spec.loader.exec_module, self.folders

        def exec_then_install(module):
            exec_module(module)
            for folder in folders:
                install(folder)

        spec.loader.exec_module = exec_then_install
        return spec


_HOOK = _AfterNumbaImport()


def install_on_numba_import(folder: str) -> None:
    """install(folder) now if Numba is loaded, else right after it is first imported."""
    if "numba" in sys.modules:
        install(folder)
        return
    _HOOK.folders.append(folder)
    if _HOOK not in sys.meta_path:
        sys.meta_path.insert(0, _HOOK)
