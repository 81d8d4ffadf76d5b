"""edgecnn's Numba runtime against LiteRT's BUILTIN_REF kernels: the same int8
output on every element, for single ops and small chains with realistic
quantization parameters.

The optimized ("builtin") and XNNPACK ("default") resolvers round some ties
differently (docs/int8.md section 5); for single ops they stay within one
step of the reference, and `test_agreement_with_optimized_resolvers` reports
how often they agree exactly (run with -s to see the numbers).
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from tflite_models import ACTS, GraphBuilder, converter_style, graphs, lenet5, random_input

from edgecnn.deploy.litert import LiteRTRunner
from edgecnn.deploy.runtime import Runtime
from edgecnn.deploy.tflite import read_tflite, to_bytes


def _input(graph, seed: int, batch: int = 3) -> np.ndarray:
    x = np.random.default_rng(seed).integers(-128, 128, size=(batch,) + graph.input.shape[1:], dtype=np.int8)
    flat = x.reshape(batch, -1)
    flat[0, 0], flat[-1, -1] = -128, 127  # the extremes, always
    return x


def _run_both(graph, seed: int):
    x = _input(graph, seed)
    want = LiteRTRunner(to_bytes(graph), "ref").run(x)
    got = Runtime(graph, fc_rescale="float").run(x)
    return x, np.asarray(got), want


def _assert_same(graph, got, want):
    assert got.dtype == np.int8 and got.shape == want.shape
    if not np.array_equal(got, want):
        bad = np.argwhere(got != want)
        first = tuple(bad[0])
        raise AssertionError(
            f"{len(bad)} of {want.size} outputs differ; first at {first}: runtime {got[first]}, LiteRT {want[first]}; "
            f"ops {[op.kind for op in graph.ops]}"
        )


KINDS = ("CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "AVERAGE_POOL_2D", "FULLY_CONNECTED", "RESHAPE",
         "LOGISTIC", "TANH", "SOFTMAX")  # fmt: skip


def single_layer(ints, choice, rng):
    """One op with realistic qparams (FULLY_CONNECTED alone on a 2-D input).

    `ints(lo, hi)` and `choice(seq)` make the decisions, so hypothesis and a
    seeded generator can both drive it; `rng` draws the weights.
    """
    kind = choice(KINDS)
    scale = choice([1 / 255, 0.0123, 0.05, 0.3])
    zp = ints(-128, 127)
    act = choice(ACTS)
    if kind == "FULLY_CONNECTED":
        g = GraphBuilder(rng, (1, ints(1, 40)), scale, zp)
        return g.fully_connected(ints(1, 12), act, choice([True, False]), choice([True, False])).build()
    if kind == "SOFTMAX":
        g = GraphBuilder(rng, (1, ints(1, 3), ints(1, 12)), scale, zp)
        return g.softmax(choice([1.0, 0.5, 2.0])).build()
    h, w, c = ints(1, 11), ints(1, 11), ints(1, 5)
    g = GraphBuilder(rng, (1, h, w, c), scale, zp)
    padding = choice(["SAME", "VALID"])

    def spatial(size):
        d = ints(1, 3) if kind in ("CONV_2D", "DEPTHWISE_CONV_2D") else 1
        cap = 6 if padding == "SAME" else max(1, (size - 1) // d + 1)
        return ints(1, min(cap, 6)), ints(1, 3), d

    (kh, sh, dh), (kw, sw, dw) = spatial(h), spatial(w)
    if kind == "CONV_2D":
        g.conv2d(ints(1, 6), kh, kw, (sh, sw), padding, (dh, dw), act, choice([True, False]))
    elif kind == "DEPTHWISE_CONV_2D":
        g.depthwise(ints(1, 4), kh, kw, (sh, sw), padding, (dh, dw), act)
    elif kind in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
        g.pool(kind, (kh, kw), (sh, sw), padding, act)
    elif kind == "RESHAPE":
        g.flatten()
    elif kind == "LOGISTIC":
        g.logistic()
    else:
        g.tanh()
    return g.build()


@st.composite
def single_layer_graphs(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return single_layer(lambda lo, hi: draw(st.integers(lo, hi)), lambda seq: draw(st.sampled_from(seq)), rng)


def seeded_single_layer(seed: int):
    rng = np.random.default_rng(seed)
    return single_layer(lambda lo, hi: int(rng.integers(lo, hi + 1)), lambda seq: seq[int(rng.integers(len(seq)))], rng)


@settings(max_examples=60, deadline=None)
@given(single_layer_graphs(), st.integers(0, 1000))
def test_single_ops_match_litert_reference(graph, seed):
    _, got, want = _run_both(graph, seed)
    _assert_same(graph, got, want)


@settings(max_examples=30, deadline=None)
@given(graphs(max_layers=3), st.integers(0, 1000))
def test_small_chains_match_litert_reference(graph, seed):
    _, got, want = _run_both(graph, seed)
    _assert_same(graph, got, want)


def test_lenet5_from_a_converter_file_matches_litert_reference():
    # A foreign file: read (shape ops folded), run in the Numba runtime, and
    # compare with LiteRT running the original file.
    data = converter_style(lenet5(seed=5))
    x = random_input(lenet5(), 32, seed=5)
    want = LiteRTRunner(data, "ref").run(x)
    got = Runtime(read_tflite(data)).run(x)
    np.testing.assert_array_equal(got, want)


def test_agreement_with_optimized_resolvers():
    """Exact-agreement rate of "builtin" and "default" with "ref" on single ops."""
    same = {"builtin": {}, "default": {}}
    totals = {}
    for i in range(300):
        graph = seeded_single_layer(i)
        kind = graph.ops[-1].kind
        x = _input(graph, i)
        data = to_bytes(graph)
        ref = LiteRTRunner(data, "ref").run(x).astype(np.int16)
        totals[kind] = totals.get(kind, 0) + ref.size
        for resolver, counts in same.items():
            y = LiteRTRunner(data, resolver).run(x).astype(np.int16)
            assert np.abs(y - ref).max() <= 1, (resolver, kind)
            counts[kind] = counts.get(kind, 0) + int((y == ref).sum())
    for resolver, counts in same.items():
        overall = sum(counts.values()) / sum(totals.values())
        per_kind = {k: round(counts[k] / totals[k], 4) for k in sorted(totals)}
        print(f"{resolver}: {overall:.4%} of {sum(totals.values())} outputs identical to ref; per op {per_kind}")
