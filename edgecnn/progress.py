"""Progress bars: tqdm when it is installed and wanted, else a bar that does nothing.

tqdm is a training extra, not part of the device install, so every caller
gets an object with the same methods either way and never checks for None.
"""

from __future__ import annotations


class NullBar:
    n = 0

    def update(self, n=1):
        pass

    def set_postfix(self, *args, **kwargs):
        pass

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def progress_bar(total, desc: str, enabled: bool | None = None, **tqdm_kwargs):
    """enabled: True shows the bar, False hides it, None lets tqdm decide (shown on a terminal)."""
    if enabled is False:
        return NullBar()
    try:
        from tqdm import tqdm
    except ImportError:
        return NullBar()
    return tqdm(total=total, desc=desc, disable=None if enabled is None else not enabled, **tqdm_kwargs)
