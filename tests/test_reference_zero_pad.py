"""ZeroPadding2D: forward places x inside zeros; backward (float64) is dy's interior."""

import numpy as np

from edgecnn.reference.gradcheck import numerical_gradient
from edgecnn.reference.zero_pad import zero_pad2d_backward, zero_pad2d_forward


def test_forward_and_gradient():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 4, 2))
    y, cache = zero_pad2d_forward(x, (1, 2, 0, 3))
    assert y.shape == (2, 6, 7, 2)
    np.testing.assert_array_equal(y[:, 1:4, 0:4], x)
    assert np.sum(np.abs(y)) == np.sum(np.abs(x))
    r = rng.normal(size=y.shape)
    expected = numerical_gradient(lambda: float(np.sum(zero_pad2d_forward(x, (1, 2, 0, 3))[0] * r)), x)
    np.testing.assert_allclose(zero_pad2d_backward(r, cache), expected, rtol=1e-6, atol=1e-8)
