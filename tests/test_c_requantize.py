"""The conv kernels' one-multiply requantization (c_source "channel_out") equals TFLite's two roundings.

ec_channel_out_fast merges SaturatingRoundingDoublingHighMul and RoundingDivideByPOT into one
64-bit multiply-add and a shift (docs/mcu.md); compared here, in C built by host gcc, with ec_mbqm
(TFLite's steps one by one, itself checked against the runtime in test_export_c) on random,
extreme and constructed tie cases for every right shift 1..31.
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


def test_one_multiply_requantization_equals_tflite_steps(tmp_path):
    blocks = all_blocks()
    kernels = "\n".join(blocks[b][1] for b in blocks_in_order({"channel_out"}))
    data = cases(np.random.default_rng(0))
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
        ch.round = ((int64_t)1 << 30) + ((int64_t)1 << (30 + r));
        ch.bias = 0;
        ch.multiplier = (int32_t)m;
        ch.shift = (int32_t)shift;
        ch.post = r - 1;
        /* the output offset cancels TFLite's result, so any difference shows inside the int8 clamp */
        if (ec_channel_out_fast((uint32_t)x, &ch, -ec_mbqm((int32_t)x, (int32_t)m, (int32_t)shift), -128, 127) != 0)
            ++bad;
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
    assert int(out[0]) == len(data) and int(out[1]) == 0
