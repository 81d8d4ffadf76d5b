"""The split executor (executor.run_plan_split: threads share each op's rows) == the naive references, exactly.

Runtime uses it for a pass of a large model on 2+ threads; here SPLIT_MACS is lowered to 0 so
that every graph, however small, takes that path, on each kernel path the machine can run
(odd shapes, stride 2, SAME padding, 1-row outputs that are not split, extreme zero points,
per-channel multipliers: test_fast_kernels.py's cases), whatever the load average (Runtime
skips the split when the cores are busy; here it is told they are free). Also: the pieces each
op is cut into, and a single thread running every piece itself (no deadlock when the pool
gives one thread).
"""

from __future__ import annotations

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from test_fast_kernels import KINDS, SETTINGS, conv_case, conv_graph, fast_runtime, kernels, mixed_graph

from edgecnn.deploy.runtime import Runtime, interpreter, naive
from edgecnn.deploy.runtime.executor import OP_DEPTHWISE, OP_GEMM, split_pieces

REAL_CORES_FREE = interpreter.cores_free

pytestmark = pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs NUMBA_NUM_THREADS >= 2")


@pytest.fixture(autouse=True)
def always_split(monkeypatch):
    monkeypatch.setattr(interpreter, "SPLIT_MACS", 0)
    monkeypatch.setattr(interpreter, "cores_free", lambda margin=1: True)  # whatever the machine's load


def test_cores_free_looks_at_the_load_at_most_once_a_second():
    first = REAL_CORES_FREE()
    assert isinstance(first, bool)
    stamp = interpreter._load_checked[0]
    assert REAL_CORES_FREE() is first and interpreter._load_checked[0] == stamp


def check_split(graph, x, kind):
    expected = naive.run_graph(graph, x)[graph.outputs[0]]
    with kernels(kind):
        rt = Runtime(graph, num_threads=2)
    per_image = expected.shape[0] // x.shape[0]
    for n in {1, min(x.shape[0], rt.plan.group)}:  # one image, and a whole group in one pass
        np.testing.assert_array_equal(rt.run(x[:n]), expected[: n * per_image])
    assert rt._split is not None, "the split executor did not run"


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=30, **SETTINGS)
@given(case=conv_case())
def test_conv_2d_split(kind, case):
    check_split(*conv_graph(case), kind)


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=30, **SETTINGS)
@given(case=conv_case(depthwise=True))
def test_depthwise_split(kind, case):
    check_split(*conv_graph(case, depthwise=True), kind)


@pytest.mark.parametrize("kind", KINDS)
def test_mixed_graph_split(kind):
    """Every executor op (pools, ADD, MEAN, FC, softmax, lookup between the split convs)."""
    graph, x = mixed_graph(7, -128, 5)
    check_split(graph, x, kind)


def test_pieces():
    graph, _ = mixed_graph(7, -128, 5)
    plan = fast_runtime(graph, KINDS[-1]).plan
    pieces = split_pieces(plan.ops)
    for row, n in zip(plan.ops, pieces):
        assert n == (2 if row[0] in (OP_GEMM, OP_DEPTHWISE) and (row[7] >= 2 or row[8] >= 8) else 1)
    assert pieces.max() == 2


def _split_alone(graph, x, ctl_job=0):
    """run_plan_split called directly, with no helper thread: the caller must take every piece."""
    from edgecnn.deploy.runtime.executor import CTL_JOB, CTL_WORDS, run_plan_split, split_sync

    rt = fast_runtime(graph, KINDS[-1])
    p = rt.plan
    arenas, a, c = rt._scratch(numba.config.NUMBA_NUM_THREADS)
    out = np.empty((1, p.out_row), np.int8)
    ctl = np.zeros(CTL_WORDS, np.int64)
    ctl[CTL_JOB] = ctl_job
    sync = split_sync(p.ops)
    for _ in range(2):  # a second job on the same counters
        run_plan_split(p.ops, split_pieces(p.ops), p.i8, p.w8, p.i32, p.i64, p.f64, p.io, x[:1].reshape(-1),
                       out.reshape(-1), 1, arenas[0], a[0], c[0], rt._gemm, sync, ctl)  # fmt: skip
        np.testing.assert_array_equal(out.reshape(-1), naive.run_graph(graph, x[:1])[graph.outputs[0]].reshape(-1))
    assert ctl[CTL_JOB] == ctl_job + 2


def test_one_thread_runs_every_piece():
    """Without a helper the claiming loop takes every piece itself: same bytes, no wait on a missing thread."""
    _split_alone(*mixed_graph(3, 5, -20))


def test_stale_helper_claims_nothing():
    """A helper still on an earlier job (descheduled, late) finds the counters re-tagged and claims nothing."""
    from edgecnn.deploy.runtime.executor import _claim_ops, split_sync

    graph, x = mixed_graph(3, 5, -20)
    rt = fast_runtime(graph, KINDS[-1])
    p = rt.plan
    arenas, a, c = rt._scratch(numba.config.NUMBA_NUM_THREADS)
    sync = split_sync(p.ops)
    sync[:] = 7 << 20  # the counters of job 7, nothing claimed yet
    pieces = split_pieces(p.ops)
    before = sync.copy()
    assert not _claim_ops(p.ops, pieces, arenas[0], 1, a[1], c[1], p.i8, p.w8, p.i32, p.i64, p.f64, rt._gemm, sync, 6)
    np.testing.assert_array_equal(sync, before)


def test_helpers_stop_with_their_runtime():
    import gc
    import threading

    graph, x = mixed_graph(3, 5, -20)
    rt = fast_runtime(graph, KINDS[-1])
    others = set(threading.enumerate())  # earlier tests' Runtimes may still be alive, with their helpers
    rt2 = Runtime(graph, num_threads=2)
    rt2.run(x[:1])
    helpers = [t for t in threading.enumerate() if t.name == "edgecnn-split-1" and t not in others]
    assert helpers
    del rt2
    gc.collect()
    for t in helpers:
        t.join(timeout=5)
    assert not any(t.is_alive() for t in helpers)
    del rt


def test_task_images_balances_the_threads():
    """The batch executor's task size: the busiest thread gets as few images as possible."""
    from edgecnn.deploy.runtime.interpreter import _task_images

    assert _task_images(64, 2, 5) == 4  # 16 tasks, 32 images each; tasks of 5 would leave 35 on one thread
    assert _task_images(64, 2, 15) == 8
    assert _task_images(1000, 2, 32) == 25
    for images in range(1, 70):
        for threads in (1, 2, 3):
            for group in (1, 4, 5, 15, 32):
                size = _task_images(images, threads, group)
                assert 1 <= size <= min(group, -(-images // (4 * threads))) or size == 1
                busiest = -(-(-(-images // size)) // threads) * size
                assert busiest < -(-images // threads) + size  # within one task of a perfect split


def test_batch_job_without_helpers_and_stale_batch_helper():
    """run_plan_shared with no helper runs every task itself; a helper on an earlier job claims no task."""
    from edgecnn.deploy.runtime.executor import CTL_WORDS, _claim_tasks, run_plan_shared, split_sync

    graph, x = mixed_graph(3, 5, -20)
    rt = fast_runtime(graph, KINDS[-1])
    p = rt.plan
    arenas, a, c = rt._scratch(numba.config.NUMBA_NUM_THREADS)
    sync, ctl = split_sync(p.ops), np.zeros(CTL_WORDS, np.int64)
    expected = naive.run_graph(graph, x)[graph.outputs[0]].reshape(x.shape[0], -1)
    for task in (1, 3):
        out = np.zeros((x.shape[0], p.out_row), np.int8)
        run_plan_shared(p.ops, p.i8, p.w8, p.i32, p.i64, p.f64, p.io, x.reshape(-1), out.reshape(-1), x.shape[0],
                        task, arenas[0], a[0], c[0], rt._gemm, sync, ctl)  # fmt: skip
        np.testing.assert_array_equal(out, expected)
    before, out = sync.copy(), np.zeros((x.shape[0], p.out_row), np.int8)
    assert not _claim_tasks(p.ops, p.i8, p.w8, p.i32, p.i64, p.f64, p.io, x.reshape(-1), out.reshape(-1), x.shape[0],
                            3, arenas[1], a[1], c[1], rt._gemm, sync, 1)  # job 1: two jobs ago  # fmt: skip
    np.testing.assert_array_equal(sync, before)
    assert not out.any()
