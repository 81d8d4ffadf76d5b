"""pytest plugin for users' own int8 regression tests (registered as the `pytest11` entry point `edgecnn`).

Fixtures:
  edgecnn_dataset(name="mnist", split="test", limit=None, data=None) -> (uint8 images, int64 labels)
      the dataset found as the CLI finds it ($EDGECNN_DATA, ~/.cache/edgecnn, /usr/share/datasets),
      read once per session.
  edgecnn_assert_int8_close: edgecnn.deploy.regression.assert_int8_close, for tests that take fixtures only.

Loading the plugin imports pytest and nothing of edgecnn beyond its package
docstrings: no numpy, no Numba compile at pytest start-up. Every import happens
when a fixture is first used.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def edgecnn_dataset():
    """A loader: edgecnn_dataset("mnist", split="test", limit=1000) -> (images, labels), cached per session."""
    loaded: dict = {}

    def load(name: str = "mnist", split: str = "test", limit: int | None = None, data=None):
        key = (name, split, limit, None if data is None else str(data))
        if key not in loaded:
            from edgecnn.deploy.regression import load_dataset

            loaded[key] = load_dataset(name, split, limit, data)
        return loaded[key]

    return load


@pytest.fixture(scope="session")
def edgecnn_assert_int8_close():
    """edgecnn.deploy.regression.assert_int8_close: raises AssertionError with a report when int8 drifts."""
    from edgecnn.deploy.regression import assert_int8_close

    return assert_int8_close
