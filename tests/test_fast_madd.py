"""madd.py's int16-pair tile (the portable GEMM micro-kernel) against an int64 matmul, exactly.

The tile runs on every CPU, so it is tested on every machine; a subprocess also compiles it
with EDGECNN_MADD=generic (the IR an ARM CPU gets, no x86 intrinsic) in a cache of its own.
Cases: every rows x tiles shape of the host, several filter-row steps (the direct conv's
windows), k pairs from 1, A at 0 and 255 and weights at -128 and 127 (the largest products),
strides (lda, ldc) wider than the tile.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numba import njit

from edgecnn.deploy.runtime.cpu import MADD_ROWS, MADD_TILES
from edgecnn.deploy.runtime.madd import madd_tile
from edgecnn.deploy.runtime.plan import pack_pairs

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])


@njit(cache=True)
def _run_tile(a, lda, a_step, steps, w, k2, c, ldc, count, a_next, c_next, rows, tiles):
    madd_tile(a, 3, lda, a_step, steps, w, 0, k2, c, 5, ldc, count, a_next, c_next, rows, tiles)


def check_tile(rows, tiles, k2, steps, extreme, seed, count=1):
    """`count` tiles in one call (A from offset 3, C from 5, each tile further on) == int64 matmuls; nothing
    written outside the tiles' rows."""
    rng = np.random.default_rng(seed)
    lda = 2 * k2 + int(rng.integers(0, 3))
    a_step = rows * lda + int(rng.integers(0, 5))
    a_next = int(rng.integers(1, 3 * lda + 2))
    size = 3 + max(count - 1, 0) * a_next + (steps - 1) * a_step + (rows - 1) * lda + 2 * k2 + 8
    if extreme:
        a = rng.choice(np.array([0, 255], np.int16), size)
        w = rng.choice(np.array([-128, 127], np.int8), (steps * 2 * k2, 16 * tiles))
    else:
        a = rng.integers(0, 256, size).astype(np.int16)
        w = rng.integers(-128, 128, (steps * 2 * k2, 16 * tiles)).astype(np.int8)
    ldc = 16 * tiles + 7
    c_next = rows * ldc + int(rng.integers(0, 9))
    c = np.full(5 + count * c_next + rows * ldc + 16, -7, np.int32)
    _run_tile(a, lda, a_step, steps, pack_pairs(w, steps * 2 * k2, 16 * tiles, tiles), k2, c, ldc, count, a_next,
              c_next, rows, tiles)  # fmt: skip
    written = np.zeros(c.size, bool)
    for i in range(count):
        for r in range(rows):
            expected = np.zeros(16 * tiles, np.int64)
            for s in range(steps):
                start = 3 + i * a_next + s * a_step + r * lda
                expected += a[start:start + 2 * k2].astype(np.int64) @ w[s * 2 * k2:(s + 1) * 2 * k2].astype(np.int64)
            at = 5 + i * c_next + r * ldc
            np.testing.assert_array_equal(c[at:at + 16 * tiles], expected.astype(np.int32))
            written[at:at + 16 * tiles] = True
    assert (c[~written] == -7).all()


@settings(max_examples=60, **SETTINGS)
@given(rows=st.integers(1, MADD_ROWS), tiles=st.integers(1, MADD_TILES), k2=st.integers(1, 40), steps=st.integers(1, 3),
       extreme=st.booleans(), seed=st.integers(0, 2**31), count=st.integers(0, 3))  # fmt: skip
def test_madd_tile_equals_matmul(rows, tiles, k2, steps, extreme, seed, count):
    check_tile(rows, tiles, k2, steps, extreme, seed, count)


def test_madd_tile_worst_case_sums():
    """Every product at its largest magnitude, 255 * -128, over a long K: the int32 sums are exact."""
    a = np.full(3 + 4 * 2048 + 8, 255, np.int16)
    w = np.full((2048, 16 * MADD_TILES), -128, np.int8)
    c = np.zeros(5 + 4 * 16 * MADD_TILES + 16, np.int32)
    _run_tile(a, 2048, 0, 1, pack_pairs(w, 2048, 16 * MADD_TILES, MADD_TILES), 1024, c, 16 * MADD_TILES, 1, 0, 0, 4,
              MADD_TILES)  # fmt: skip
    assert (c[5:5 + 4 * 16 * MADD_TILES] == 255 * -128 * 2048).all()


def test_generic_ir_is_exact():
    """The generic multiply-add IR (what ARM compiles; on x86 only if forced) gives the same sums."""
    code = (
        "import tests.test_fast_madd as t\n"
        "from edgecnn.deploy.runtime.cpu import MADD_ISA\n"
        "assert MADD_ISA == 'generic', MADD_ISA\n"
        "for i, (rows, tiles, k2, steps, extreme) in enumerate([(4, 1, 7, 1, True), (3, 1, 1, 3, False),"
        " (1, 1, 33, 2, True), (2, 1, 16, 1, False)]):\n"
        "    t.check_tile(rows, tiles, k2, steps, extreme, i, count=2)\n"
        "print('ok')\n"
    )
    env = dict(os.environ, EDGECNN_MADD="generic", NUMBA_CACHE_DIR=os.path.join(os.environ.get("TMPDIR", "/tmp"),
                                                                                 f"edgecnn-madd-generic-{os.getuid()}"))
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr[-2000:]
