"""conv2d's im2col + GEMM path (conv_gemm.py) against the plain-loop reference, any stride, dilation, padding."""

import numba
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from edgecnn.errors import ShapeError
from edgecnn.reference import conv_gemm
from edgecnn.reference.conv import conv2d_backward, conv2d_backward_naive, conv2d_forward, conv2d_forward_naive
from edgecnn.reference.padding import resolve_padding
from test_reference_conv import _fd_check  # noqa: E402  (tests import each other by module name)


@st.composite
def conv_cases(draw, c_in=st.integers(1, 5), c_out=st.integers(1, 5), max_k=3, max_hw=9, dtype=np.float64):
    """An ungrouped conv with odd sizes, strides 1-3, dilations 1-2, and padding up to past the kernel."""
    kh, kw = draw(st.integers(1, max_k)), draw(st.integers(1, max_k))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    h, w = draw(st.integers(1, max_hw)), draw(st.integers(1, max_hw))
    padding = draw(st.one_of(st.sampled_from(["valid", "same"]), st.tuples(*[st.integers(0, 3)] * 4)))
    try:
        (oh, ow), pad = resolve_padding(padding, (h, w), (kh, kw), stride, dilation)
    except ShapeError:
        assume(False)
    n, c_in, c_out = draw(st.integers(1, 5)), draw(c_in), draw(c_out)
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    x = rng.standard_normal((n, h, w, c_in)).astype(dtype)
    wt = rng.standard_normal((c_out, kh, kw, c_in)).astype(dtype)
    b = rng.standard_normal(c_out).astype(dtype) if draw(st.booleans()) else None
    return x, wt, b, dict(stride=stride, pad=pad, dilation=dilation), (oh, ow), rng


@settings(max_examples=60, deadline=None)
@given(conv_cases(), st.integers(1, 40))
def test_gemm_path_matches_naive(case, rows_per_chunk):
    x, w, b, kw, out_hw, rng = case
    old = conv_gemm.ROWS_PER_CHUNK
    conv_gemm.ROWS_PER_CHUNK = rows_per_chunk  # small chunks: several per batch, a partial last one
    try:
        y = conv_gemm.conv_gemm_forward(x, w, b, kw["stride"], kw["pad"], kw["dilation"], *out_hw)
        y_ref, cache_ref = conv2d_forward_naive(x, w, b, **kw)
        np.testing.assert_allclose(y, y_ref, rtol=1e-10, atol=1e-12)
        dy = rng.standard_normal(y.shape)
        dx_ref, dw_ref, db_ref = conv2d_backward_naive(dy, cache_ref)
        for need_dx in (True, False):
            dx, dw, db = conv_gemm.conv_gemm_backward(x, w, dy, kw["stride"], kw["pad"], kw["dilation"], need_dx,
                                                      b is not None)
            np.testing.assert_allclose(dw, dw_ref, rtol=1e-10, atol=1e-12)
            if b is None:
                assert db is None
            else:
                np.testing.assert_allclose(db, db_ref, rtol=1e-10, atol=1e-12)
            if need_dx:
                np.testing.assert_allclose(dx, dx_ref, rtol=1e-10, atol=1e-12)
            else:
                assert dx is None
    finally:
        conv_gemm.ROWS_PER_CHUNK = old


@pytest.mark.parametrize("shape,w_shape,stride,padding", [
    ((3, 28, 28, 16), (32, 3, 3, 16), 2, "same"),    # resnet8's stack 2 entry on 28x28 input
    ((3, 28, 28, 16), (32, 1, 1, 16), 2, "same"),    # its 1x1 shortcut
    ((2, 14, 14, 32), (64, 3, 3, 32), 2, "same"),    # stack 3 entry
    ((2, 7, 7, 64), (64, 3, 3, 64), 1, "same"),      # stack 3
    ((2, 7, 6, 8), (5, 3, 2, 8), 1, (3, 0, 2, 3)),   # padding past the kernel (transposed pad < 0)
])
def test_resnet8_shapes_take_gemm_and_match_naive(shape, w_shape, stride, padding):
    rng = np.random.default_rng(7)
    x, w, b = rng.standard_normal(shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape[0])
    _, pad = resolve_padding(padding, shape[1:3], w_shape[1:3], (stride, stride), (1, 1))
    kw = dict(stride=(stride, stride), pad=pad)
    y, cache = conv2d_forward(x, w, b, **kw)
    assert cache.path == "gemm"
    y_ref, cache_ref = conv2d_forward_naive(x, w, b, **kw)
    np.testing.assert_allclose(y, y_ref, rtol=1e-10, atol=1e-10)
    dy = rng.standard_normal(y.shape)
    for fast, ref in zip(conv2d_backward(dy, cache), conv2d_backward_naive(dy, cache_ref)):
        np.testing.assert_allclose(fast, ref, rtol=1e-10, atol=1e-10)
    assert conv2d_backward(dy, cache, need_dx=False)[0] is None


def test_gemm_path_backward_matches_finite_differences():
    rng = np.random.default_rng(8)
    x, w, b = rng.standard_normal((2, 5, 6, 8)), rng.standard_normal((3, 3, 3, 8)), rng.standard_normal(3)
    for kw in (dict(stride=(2, 2), pad=(1, 1, 0, 1)), dict(pad=(1, 1, 1, 1))):
        assert conv2d_forward(x, w, b, **kw)[1].path == "gemm"
        _fd_check(x, w, b, kw, rng, conv2d_backward)


def test_float32_results_do_not_depend_on_the_thread_count():
    """The trainer's contract: same seed, same weights, on 1 thread or 2."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal((64, 14, 14, 32)).astype(np.float32)
    w = (rng.standard_normal((24, 3, 3, 32)) * 0.1).astype(np.float32)  # 24 outputs: not the tiled path's 16s
    b = rng.standard_normal(24).astype(np.float32)
    dy = rng.standard_normal((64, 7, 7, 24)).astype(np.float32)
    results = []
    before = numba.get_num_threads()
    try:
        for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(threads)
            y, cache = conv2d_forward(x, w, b, stride=(2, 2), pad=(0, 1, 0, 1))
            assert y.dtype == np.float32 and cache.path == "gemm"
            results.append((y, *conv2d_backward(dy, cache)))
    finally:
        numba.set_num_threads(before)
    for a, b_ in zip(*results):
        np.testing.assert_array_equal(a, b_)


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="fork is POSIX-only")
def test_a_forked_child_gets_its_own_worker_threads():
    """The pool's threads do not survive fork(); a child that reuses the parent's pool object would hang."""
    import os
    import time

    rng = np.random.default_rng(10)
    x, w = rng.standard_normal((8, 9, 9, 8)), rng.standard_normal((4, 3, 3, 8))
    before = numba.get_num_threads()
    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    try:
        y = conv_gemm.conv_gemm_forward(x, w, None, (2, 2), (1, 1, 1, 1), (1, 1), 5, 5)  # the parent's pool runs
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: same call, result back through the pipe
            try:
                child = conv_gemm.conv_gemm_forward(x, w, None, (2, 2), (1, 1, 1, 1), (1, 1), 5, 5)
                os.write(write, b"ok" if np.array_equal(child, y) else b"no")
            finally:
                os._exit(0)
        os.close(write)
        for _ in range(600):  # up to 60 s, then the child is taken as hung
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.1)
        else:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung on the parent's worker pool")
        assert os.read(read, 2) == b"ok" and status == 0
    finally:
        numba.set_num_threads(before)


def test_the_callers_blas_thread_count_comes_back():
    """The GEMM path makes BLAS single-threaded while it runs; the caller's own setting returns after."""
    from edgecnn.reference import workers

    before = workers._blas_threads(2)  # None: numpy's BLAS has no per-thread count, nothing to restore
    try:
        rng = np.random.default_rng(11)
        conv_gemm.conv_gemm_forward(rng.standard_normal((4, 6, 6, 8)), rng.standard_normal((3, 3, 3, 8)), None,
                                    (1, 1), (1, 1, 1, 1), (1, 1), 6, 6)
        assert workers._blas_threads(2) == (None if before is None else 2)
    finally:
        if before is not None:
            workers._blas_threads(before)
