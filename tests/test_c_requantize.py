"""The conv kernels' one-multiply requantization (c_source "channel_out") equals TFLite's two roundings.

ec_channel_out_fast merges SaturatingRoundingDoublingHighMul and RoundingDivideByPOT into one
64-bit multiply-add and a shift (docs/mcu.md); compared here, in C built by host gcc, with ec_mbqm
(TFLite's steps one by one, itself checked against the runtime in test_export_c) on random,
extreme and constructed tie cases for every right shift 1..31. ec_channel_out_q (one SMMLAR of 2x
on the Cortex-M4, |x| < 2^29) is checked the same way through its portable formula.
"""

from __future__ import annotations

import subprocess

import numpy as np

from edgecnn.deploy.export.c import all_blocks, blocks_in_order

CFLAGS = ["-std=c99", "-O2", "-Wall", "-Wextra", "-pedantic", "-Werror"]


def cases(rng) -> np.ndarray:
    rows = []
    for r in range(1, 32):
        m = rng.integers(2**30, 2**31, size=3000)
        x = rng.integers(-(2**31), 2**31, size=3000)
        x[:1000] = rng.integers(-5000, 5000, size=1000)
        # x * M within a few units of (j + 1/2) * 2^(31 + r): both roundings' ties
        j = rng.integers(-(2**20), 2**20, size=1000)
        near = np.round((j + 0.5) * 2.0 ** (31 + r) / m[1000:2000]) + rng.integers(-2, 3, size=1000)
        x[1000:2000] = np.clip(near, -(2**31), 2**31 - 1).astype(np.int64)
        x[2000:2004] = [-(2**31), 2**31 - 1, -1, 0]
        m[2004:2010] = [0, 2**30, 2**31 - 1, 0, 2**30, 2**31 - 1]
        rows.append(np.stack([x, m, np.full_like(x, -r)], axis=1))
    return np.concatenate(rows).astype(np.int64)


def mismatches(tmp_path, check: str, data: np.ndarray) -> tuple[int, int]:
    """(cases, mismatches) of a C loop body `check` (x, m, shift, r, want = TFLite's result; ++bad on a
    difference) over the rows of data, built with host gcc around the "channel_out" block."""
    blocks = all_blocks()
    kernels = "\n".join(blocks[b][1] for b in blocks_in_order({"channel_out"}))
    program = f"""#include <stdint.h>
#include <stdio.h>
{kernels}
int main(void)
{{
    long long x, m, shift;
    long bad = 0, n = 0;
    while (scanf("%lld %lld %lld", &x, &m, &shift) == 3) {{
        ec_channel ch;
        const int r = (int)-shift;
        const int32_t want = ec_mbqm((int32_t)x, (int32_t)m, (int32_t)shift);
{check}
        ++n;
    }}
    printf("%ld %ld\\n", n, bad);
    return 0;
}}
"""
    (tmp_path / "t.c").write_text(program)
    subprocess.run(["gcc", *CFLAGS, "-Wno-unused-function", "t.c", "-o", "t"], cwd=tmp_path, check=True)
    text = "\n".join(f"{a} {b} {c}" for a, b, c in data.tolist())
    out = subprocess.run([str(tmp_path / "t")], input=text, capture_output=True, text=True, check=True).stdout.split()
    return int(out[0]), int(out[1])


def test_one_multiply_requantization_equals_tflite_steps(tmp_path):
    data = cases(np.random.default_rng(0))
    check = """
        ch.round = ((int64_t)1 << 30) + ((int64_t)1 << (30 + r));
        ch.bias = 0;
        ch.multiplier = (int32_t)m;
        ch.shift = (int32_t)shift;
        ch.post = r - 1;
        /* the output offset cancels TFLite's result, so any difference shows inside the int8 clamp */
        if (ec_channel_out_fast((uint32_t)x, &ch, -want, -128, 127) != 0) ++bad;"""
    assert mismatches(tmp_path, check, data) == (len(data), 0)


def q_cases(rng) -> np.ndarray:
    """cases() with |x| < 2^29 (the SMMLAR path's bound) and multipliers in [2^30, 2^31)."""
    data = cases(rng)
    data = data[(np.abs(data[:, 0]) < 2**29) & (data[:, 1] >= 2**30)]
    r = -data[:, 2]
    extra = []
    for rr in range(1, 32):  # ties again, for |x| < 2^29: x * M within a few units of (j + 1/2) * 2^(31 + r)
        m = rng.integers(2**30, 2**31, size=2000)
        j = rng.integers(-(2**8), 2**8, size=2000)
        x = np.round((j + 0.5) * 2.0 ** (31 + rr) / m) + rng.integers(-2, 3, size=2000)
        keep = np.abs(x) < 2**29
        extra.append(np.stack([x[keep], m[keep], np.full(int(keep.sum()), -rr)], axis=1))
    assert r.min() == 1 and r.max() == 31
    return np.concatenate([data, *extra]).astype(np.int64)


def test_smmlar_requantization_equals_tflite_steps(tmp_path):
    """ec_channel_out_q (mode 2: offset added after the shift; mode 3: 2x given, offset inside half, r <= 22) on the
    host's portable formula, the same arithmetic as the Cortex-M's SMMLAR: equal to TFLite's steps."""
    data = q_cases(np.random.default_rng(1))
    check = """
        ch.multiplier = (int32_t)m;
        ch.right = r;
        ch.half = (int32_t)1 << (r - 1);
        /* mode 2: the offset cancels TFLite's result, so any difference shows inside the clamp */
        if (ec_channel_out_q((uint32_t)x, &ch, -want, -128, 127, 0) != 0) ++bad;
        if (r <= 22) { /* mode 3: an offset in [-128, 127] inside half, and the sum given as 2x */
            const int32_t offset = want >= -127 && want <= 128 ? -want : 0;
            const int32_t v = want + offset;
            ch.half = ((int32_t)1 << (r - 1)) + offset * ((int32_t)1 << r);
            if (ec_channel_out_q((uint32_t)x * 2u, &ch, 0, 0, 0, 1) != (v < -128 ? -128 : v > 127 ? 127 : v)) ++bad;
        }"""
    n, bad = mismatches(tmp_path, check, data)
    assert n == len(data) > 50_000 and bad == 0
