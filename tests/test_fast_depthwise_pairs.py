"""Depthwise layers at stride_w 1, dilation_w 1 take fast_ops.depthwise_pairs on VNNI (two taps per vpdpwssd,
a pair plane): == the naive references, exactly, for odd and even filter widths, depth multipliers, SAME and
VALID padding, rows not a multiple of 16 lanes, extreme zero points, whole and split in two."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from test_fast_kernels import KINDS, SETTINGS, conv_graph, fast_runtime

from edgecnn.deploy.runtime import interpreter, naive
from edgecnn.deploy.runtime.executor import OP_DEPTHWISE
from edgecnn.deploy.runtime.fast_ops import F_PAIR_COUNT
from edgecnn.int8.padding import compute_padding


@st.composite
def pair_case(draw):
    padding = draw(st.sampled_from(["SAME", "VALID"]))
    h, kh = draw(st.integers(1, 9)), draw(st.integers(1, 4))
    w, kw = draw(st.integers(1, 12)), draw(st.integers(1, 5))
    sh, dh = draw(st.integers(1, 2)), draw(st.sampled_from([1, 2]))
    oh, _, _ = compute_padding(padding, h, kh, sh, dh)
    ow, _, _ = compute_padding(padding, w, kw, 1, 1)
    assume(oh >= 1 and ow >= 1)
    cin = draw(st.sampled_from([1, 3, 8, 16, 17, 64]))
    zp = st.one_of(st.sampled_from([-128, 127, 0]), st.integers(-128, 127))
    return dict(padding=padding, dims=[(h, kh, sh, dh, oh), (w, kw, 1, 1, ow)], cin=cin,
                cout=cin * draw(st.integers(1, 2)), in_zp=draw(zp), out_zp=draw(zp), images=draw(st.integers(1, 3)),
                seed=draw(st.integers(0, 2**31)), gain=draw(st.sampled_from([2.0**-10, 1.0, 300.0])),
                act=draw(st.sampled_from(["NONE", "RELU", "RELU6"])))  # fmt: skip


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=50, **SETTINGS)
@given(case=pair_case())
def test_depthwise_pairs(kind, case):
    graph, x = conv_graph(case, depthwise=True)
    expected = naive.run_graph(graph, x)[graph.outputs[0]]
    rt = fast_runtime(graph, kind)
    (row,) = [r for r in rt.plan.ops if r[0] == OP_DEPTHWISE]
    assert row[F_PAIR_COUNT] == case["dims"][0][1] * -(-case["dims"][1][1] // 2)  # kh * ceil(kw / 2)
    np.testing.assert_array_equal(rt.run(x), expected)
    split = fast_runtime(graph, kind, num_threads=2)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(interpreter, "SPLIT_MACS", 0)
        patch.setattr(interpreter, "cores_free", lambda margin=1: True)
        np.testing.assert_array_equal(split.run(x[:1]), expected[: expected.shape[0] // x.shape[0]])
    assert split._split is not None
