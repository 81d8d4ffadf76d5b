"""REDUCE_PROD: a fold-only op; the rule that multiplies shape values in the converter's shape chains.

Its place in a real chain (Keras' Dense on a 4-D tensor) is tested in
tests/test_op_gather.py and on converter output in tests/test_conformance.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from edgecnn.deploy.ops import REGISTRY
from edgecnn.deploy.ops.reduce_prod import fold
from edgecnn.errors import UnsupportedOpError

FLAT = {"keep_dims": False}
KEEP = {"keep_dims": True}


def test_fold_multiplies_over_the_axes():
    assert fold([np.array([2, 6, 5]), np.array([0])], FLAT)[0].tolist() == 60  # the row count: a scalar
    assert fold([np.array([2, 6, 5]), np.array([0])], KEEP)[0].tolist() == [60]
    assert fold([np.array([7]), np.array([-1])], FLAT)[0].tolist() == 7  # negative axes count from the end
    m = np.array([[1, 2, 3], [4, 5, 6]])
    assert fold([m, np.array([1])], FLAT)[0].tolist() == [6, 120]
    assert fold([m, np.array([0, 1, 1, -2])], FLAT)[0].tolist() == 720  # repeated axes count once
    assert fold([m, np.array([], dtype=np.int64)], FLAT)[0].tolist() == m.tolist()  # no axes: unchanged
    assert fold([np.array([], dtype=np.int64), np.array([0])], FLAT)[0].tolist() == 1  # empty product


def test_fold_of_a_scalar_is_the_scalar():
    assert fold([np.array(5), np.array([], dtype=np.int64)], FLAT)[0].tolist() == 5


@pytest.mark.parametrize("values", [
    [np.array([2, 3]), np.array([1])],  # axis outside the rank
    [np.array([2, 3]), np.array([-2])],
    [np.array([2**16, 2**16]), np.array([0])],  # 2^32 wraps an int32 shape value in TFLite
])  # fmt: skip
def test_fold_refuses_what_it_cannot_fold(values):
    with pytest.raises(UnsupportedOpError, match="REDUCE_PROD"):
        fold(values, FLAT)


def test_registration_is_fold_only_with_a_decoder():
    opdef = REGISTRY["REDUCE_PROD"]
    assert opdef.prepare is None and opdef.fold is fold
    assert opdef.options_table == "ReducerOptions" and opdef.decode(None) == FLAT
