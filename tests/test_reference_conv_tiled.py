"""The trainer's float32 register tile (ftile.py) and the convolutions on it (conv_tiled.py), against
float64 references: a matmul for the tile, the plain-loop conv for the convolutions."""

import os
import platform
import subprocess
import sys

import numba
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from numba import njit

from edgecnn.reference import conv, ftile
from edgecnn.reference.conv import conv2d_backward, conv2d_backward_naive, conv2d_forward, conv2d_forward_naive
from edgecnn.reference.conv_tiled import IMAGE_CHANNELS
from test_reference_conv_gemm import conv_cases  # noqa: E402  (tests import each other by module name)


@njit(cache=True)
def _span(a, a0, roff, r0, n_rows, koff, b, b0, ldb, c, c0, ldc, width):
    ftile.ftile_span(a, a0, roff, r0, n_rows, koff, koff.shape[0], b, b0, ldb, c, c0, ldc, width)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40), st.integers(0, 50), st.integers(1, 9), st.integers(0, 3), st.integers(0, 2**31))
def test_tile_matches_a_float64_matmul(n_rows, k_len, vectors, extra, seed):
    """Any rows (full tiles and a tail), any K (0 too), 1-9 vectors of 16 (blocks of 4 and a rest),
    rows and taps at scattered offsets, B and C rows wider than the span (ldb, ldc > width)."""
    rng = np.random.default_rng(seed)
    width = 16 * vectors
    a = rng.standard_normal(510).astype(np.float32)  # a0 + the largest offsets: 3 + 249 + 249
    roff = rng.integers(0, 250, n_rows + 3).astype(np.intp)
    koff = rng.integers(0, 250, k_len).astype(np.intp)
    ldb, ldc = width + 16 * extra, width + 8 * extra
    b = rng.standard_normal(max(1, k_len) * ldb + 5).astype(np.float32)
    c = rng.standard_normal(n_rows * ldc + 7).astype(np.float32)
    a0, r0, b0, c0 = 3, 2, 5, 7
    a_mat = a.astype(np.float64)[a0 + roff[r0:r0 + n_rows, None] + koff[None, :]]        # (rows, K)
    b_mat = b.astype(np.float64)[b0 + np.arange(k_len)[:, None] * ldb + np.arange(width)]  # (K, width)
    want = c.astype(np.float64).copy()
    rows = c0 + np.arange(n_rows)[:, None] * ldc + np.arange(width)
    want[rows] += a_mat @ b_mat
    got = c.copy()
    _span(a, a0, roff, r0, n_rows, koff, b, b0, ldb, got, c0, ldc, width)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5 * max(1, k_len))
    untouched = np.ones(c.size, bool)
    untouched[rows] = False
    np.testing.assert_array_equal(got[untouched], c[untouched])  # nothing outside the span is written


def test_tile_sums_every_k_in_order_whatever_the_rows_per_tile():
    """A row's result is a function of that row alone: the same bytes as the row computed on its own."""
    rng = np.random.default_rng(1)
    a = rng.standard_normal(4000).astype(np.float32)
    koff = np.arange(0, 700, 7, dtype=np.intp)
    roff = np.arange(30, dtype=np.intp) * 11
    b = rng.standard_normal((koff.size, 64)).astype(np.float32).ravel()
    together = np.zeros(30 * 64, np.float32)
    _span(a, 0, roff, 0, 30, koff, b, 0, 64, together, 0, 64, 64)
    for r in range(30):
        alone = np.zeros(64, np.float32)
        _span(a, 0, roff, r, 1, koff, b, 0, 64, alone, 0, 64, 64)
        np.testing.assert_array_equal(together[r * 64:(r + 1) * 64], alone)


def tiled_cases():
    """Ungrouped float32 convs with 16k outputs: any input channels, kernels, strides, dilations, padding."""
    return conv_cases(c_in=st.sampled_from([1, 3, 5, 16, 32]), c_out=st.sampled_from([16, 32, 48, 80]), max_k=4,
                      max_hw=11, dtype=np.float32)


def _close(got, want):
    assert got.dtype == np.float32
    scale = max(1.0, float(np.abs(want).max(initial=0.0)))
    np.testing.assert_allclose(got, want, rtol=0, atol=3e-6 * scale)


@settings(max_examples=60, deadline=None)
@given(tiled_cases())
def test_tiled_convs_match_the_naive_loops(case):
    x, w, b, kw, _, rng = case
    assume(w.shape[1:3] != x.shape[1:3] or kw["pad"] != (0, 0, 0, 0) or kw["dilation"] != (1, 1))  # a dense layer
    y, cache = conv2d_forward(x, w, b, **kw)
    has_dx_form = conv._tiled_geometry(x.shape, w.shape, kw["stride"], kw["pad"], kw["dilation"]).dx_mode != 0
    assert (cache.path == "tiled") == (x.shape[3] <= IMAGE_CHANNELS or has_dx_form)
    b64 = None if b is None else b.astype(np.float64)
    y_ref, cache_ref = conv2d_forward_naive(x.astype(np.float64), w.astype(np.float64), b64, **kw)
    _close(y, y_ref)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    want = conv2d_backward_naive(dy.astype(np.float64), cache_ref)
    got = conv2d_backward(dy, cache)
    for g, r in zip(got, want):
        if r is None:
            assert g is None
        else:
            _close(g, r)
    dx, dw, db = conv2d_backward(dy, cache, need_dx=False)
    assert dx is None
    np.testing.assert_array_equal(dw, got[1])


@pytest.mark.parametrize("shape,w_shape,stride", [
    ((64, 28, 28, 16), (16, 3, 3, 16), 1),  # resnet8's first stack: dx as a transposed conv
    ((64, 14, 14, 32), (64, 3, 3, 32), 2),  # a strided entry: dx scattered back from dy @ w
])
def test_tiled_results_do_not_depend_on_the_thread_count(shape, w_shape, stride):
    """The trainer's contract: same seed, same weights, on 1 thread or 2."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal(shape).astype(np.float32)
    w = (rng.standard_normal(w_shape) * 0.1).astype(np.float32)
    b = rng.standard_normal(w_shape[0]).astype(np.float32)
    results = []
    before = numba.get_num_threads()
    try:
        for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(threads)
            y, cache = conv2d_forward(x, w, b, stride=(stride, stride), pad=(1, 1, 1, 1))
            assert cache.path == "tiled"
            dy = np.random.default_rng(10).standard_normal(y.shape).astype(np.float32)
            results.append((y, *conv2d_backward(dy, cache)))
    finally:
        numba.set_num_threads(before)
    for a, b_ in zip(*results):
        np.testing.assert_array_equal(a, b_)


def test_other_dtypes_and_widths_keep_their_paths():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 9, 9, 16))
    assert conv2d_forward(x, rng.standard_normal((16, 3, 3, 16)), None, pad=(1, 1, 1, 1))[1].path != "tiled"
    x32 = x.astype(np.float32)
    w24 = rng.standard_normal((24, 3, 3, 16)).astype(np.float32)
    assert conv2d_forward(x32, w24, None, pad=(1, 1, 1, 1))[1].path != "tiled"
    lenet_c3 = rng.standard_normal((16, 5, 5, 6)).astype(np.float32)  # no tiled dx: keeps its fast one
    assert conv2d_forward(x32[..., :6], lenet_c3, None)[1].path == "wide"
    w_dw = rng.standard_normal((16, 3, 3, 1)).astype(np.float32)
    assert conv2d_forward(x32, w_dw, None, pad=(1, 1, 1, 1), groups=16)[1].path == "wide"
    w16 = rng.standard_normal((16, 3, 3, 16)).astype(np.float32)
    assert conv2d_forward(x32, w16, None, pad=(1, 1, 1, 1))[1].path == "tiled"


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="compiles for an x86 CPU (haswell)")
def test_small_tiles_of_cpus_without_avx512_agree():
    """Compiled as for an AVX2 CPU (NUMBA_CPU_NAME=haswell, a cache of its own), the tile takes its small
    shapes (rows per vector count 4, 2, 1, 1) and still matches the references."""
    code = (
        "import test_reference_conv_tiled as t\n"
        "from edgecnn.reference import ftile\n"
        "assert not ftile.AVX512 and ftile.ROWS_FOR_TILES == (4, 2, 1, 1), ftile.ROWS_FOR_TILES\n"
        "t.test_tile_matches_a_float64_matmul()\n"
        "t.test_tile_sums_every_k_in_order_whatever_the_rows_per_tile()\n"
        "t.test_tiled_convs_match_the_naive_loops()\n"
        "print('ok')\n"
    )
    cache = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"edgecnn-ftile-haswell-{os.getuid()}")
    here = os.path.dirname(os.path.abspath(__file__))  # the tests import each other by module name
    env = dict(os.environ, NUMBA_CPU_NAME="haswell", NUMBA_CPU_FEATURES="+avx,+avx2,+fma,+sse4.2",
               NUMBA_CACHE_DIR=cache, PYTHONPATH=os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")])))
    root = os.path.dirname(here)
    done = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr[-2000:]
