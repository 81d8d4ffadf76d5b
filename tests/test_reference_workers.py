"""workers.run_chunks on its spinning helper threads: every chunk once, errors, nesting, concurrent callers."""

import threading

import numba
import numpy as np
import pytest

from edgecnn.reference import workers


@pytest.fixture
def two_threads():
    before = numba.get_num_threads()
    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    yield
    numba.set_num_threads(before)


def test_every_chunk_runs_exactly_once_over_many_calls(two_threads):
    for n_chunks in (1, 2, 3, 8, 33) * 20:
        hits = np.zeros(n_chunks, np.int64)

        def task(c):
            hits[c] += 1

        workers.run_chunks(task, n_chunks)
        assert hits.tolist() == [1] * n_chunks


def test_a_failing_chunk_raises_in_the_caller_and_the_pool_stays_usable(two_threads):
    def task(c):
        if c == 5:
            raise ValueError("chunk 5")

    with pytest.raises(ValueError, match="chunk 5"):
        workers.run_chunks(task, 8)
    out = np.zeros(8)
    workers.run_chunks(lambda c: out.__setitem__(c, c), 8)
    assert out.tolist() == list(range(8))


def test_a_call_from_inside_a_chunk_runs_its_chunks_alone(two_threads):
    out = np.zeros((4, 4))

    def outer(i):
        workers.run_chunks(lambda j: out.__setitem__((i, j), i * 4 + j), 4)

    workers.run_chunks(outer, 4)
    assert out.ravel().tolist() == list(range(16))


def test_callers_on_several_threads_each_get_all_their_chunks(two_threads):
    results = {}

    def caller(k):
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))  # per thread in Numba
        for _ in range(50):
            out = np.zeros(16)
            workers.run_chunks(lambda c: out.__setitem__(c, k + c), 16)
            assert out.tolist() == [k + c for c in range(16)]
        results[k] = True

    threads = [threading.Thread(target=caller, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert results == {0: True, 1: True, 2: True}


def test_spin_reads_see_a_store_from_another_thread():
    flags = np.zeros(1, np.int64)
    assert workers._spin_while(flags, 0, 1000) == 0  # nothing changed: gives up after max_loads
    timer = threading.Timer(0.05, lambda: flags.__setitem__(0, 7))
    timer.start()
    seen = 0
    while seen == 0:  # a hoisted (non-atomic) load would spin forever here
        seen = workers._spin_while(flags, 0, 1 << 20)
    timer.join()
    assert seen == 7
