"""resolve_padding: TFLite's SAME/VALID rule (docs/int8.md §4) and explicit forms."""

import pytest

from edgecnn.errors import ShapeError
from edgecnn.reference.padding import normalize_pad, resolve_padding


@pytest.mark.parametrize("in_size, k, s, d, out, before, after", [
    (8, 3, 2, 1, 4, 0, 1),    # docs/int8.md §4 table
    (9, 3, 2, 1, 5, 1, 1),
    (10, 4, 1, 1, 10, 1, 2),
    (28, 5, 1, 1, 28, 2, 2),
    (7, 3, 1, 2, 7, 2, 2),    # dilation 2: effective kernel 5
    (5, 1, 3, 1, 2, 0, 0),    # total pad would be negative: clamped to 0
])
def test_same_matches_tflite(in_size, k, s, d, out, before, after):
    (oh, ow), pads = resolve_padding("same", (in_size, in_size), (k, k), (s, s), (d, d))
    assert (oh, ow) == (out, out)
    assert pads == (before, after, before, after)


def test_valid_and_rectangular():
    assert resolve_padding("valid", (32, 32), (5, 5), (1, 1), (1, 1)) == ((28, 28), (0, 0, 0, 0))
    assert resolve_padding("VALID", (9, 8), (3, 3), (2, 2), (1, 1)) == ((4, 3), (0, 0, 0, 0))
    assert resolve_padding("same", (9, 8), (3, 2), (2, 3), (1, 1)) == ((5, 3), (1, 1, 0, 0))
    assert resolve_padding("same", (9, 7), (3, 2), (2, 3), (1, 1)) == ((5, 3), (1, 1, 0, 1))


def test_explicit_forms():
    assert resolve_padding(2, (28, 28), (5, 5), (1, 1), (1, 1)) == ((28, 28), (2, 2, 2, 2))
    assert resolve_padding((1, 0), (5, 5), (3, 3), (1, 1), (1, 1)) == ((5, 3), (1, 1, 0, 0))
    assert resolve_padding((0, 1, 2, 3), (5, 5), (3, 3), (2, 2), (1, 1)) == ((2, 4), (0, 1, 2, 3))
    assert normalize_pad((1, 2)) == (1, 1, 2, 2)


@pytest.mark.parametrize("padding, in_hw, k", [
    ("valid", (4, 4), (5, 5)),      # output would be 0
    ((0, 0, 0, 0), (2, 9), (3, 3)),
    ((-1, 0, 0, 0), (9, 9), (3, 3)),  # negative pad
    ((1, 2, 3), (9, 9), (3, 3)),      # 3 values
    ("full", (9, 9), (3, 3)),         # unknown mode
])
def test_bad_padding_raises_shape_error(padding, in_hw, k):
    with pytest.raises(ShapeError):
        resolve_padding(padding, in_hw, k, (1, 1), (1, 1))


def test_bad_stride_raises_shape_error():
    with pytest.raises(ShapeError):
        resolve_padding("same", (9, 9), (3, 3), (0, 1), (1, 1))
