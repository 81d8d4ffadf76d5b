"""Global average and max pooling: closed forms and float64 gradients by finite differences."""

import numpy as np
import pytest

from edgecnn.errors import ShapeError
from edgecnn.reference.global_pool import (global_avg_pool2d_backward, global_avg_pool2d_forward,
                                           global_max_pool2d_backward, global_max_pool2d_forward)
from edgecnn.reference.gradcheck import numerical_gradient

PAIRS = {"avg": (global_avg_pool2d_forward, global_avg_pool2d_backward, np.mean),
         "max": (global_max_pool2d_forward, global_max_pool2d_backward, np.max)}


@pytest.mark.parametrize("kind", PAIRS)
def test_forward_and_gradients(kind):
    fwd, bwd, reduce = PAIRS[kind]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 4, 3, 5))  # distinct values: the max is never a tie
    y, cache = fwd(x)
    np.testing.assert_allclose(y, reduce(x, axis=(1, 2)), rtol=1e-12)
    r = rng.normal(size=y.shape)
    expected = numerical_gradient(lambda: float(np.sum(fwd(x)[0] * r)), x)
    np.testing.assert_allclose(bwd(r, cache), expected, rtol=1e-6, atol=1e-8)


def test_max_tie_goes_to_the_first_row_major():
    x = np.zeros((1, 2, 2, 1))
    y, cache = global_max_pool2d_forward(x)
    np.testing.assert_array_equal(global_max_pool2d_backward(np.ones((1, 1)), cache).ravel(), [1, 0, 0, 0])


def test_float32_and_shape_errors():
    y, cache = global_avg_pool2d_forward(np.ones((2, 3, 3, 4), np.float32))
    assert y.dtype == np.float32 and global_avg_pool2d_backward(y, cache).dtype == np.float32
    with pytest.raises(ShapeError):
        global_avg_pool2d_forward(np.ones((2, 3, 4)))
