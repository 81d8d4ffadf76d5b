"""The integer-only C file (--integer-only) and the C export's command line.

FULLY_CONNECTED's current TFLite rescale is round_half_away(double(acc) * effective_scale) in binary64;
the integer-only file does the same two roundings (to 53 significant bits ties-to-even, then to an
integer ties-away) on the exact product in integer arithmetic. Checked here against binary64 itself on
random and constructed tie cases, and on whole models (same bytes as the default file, which the other
tests hold to LiteRT), built with `gcc -mgeneral-regs-only` (no floating-point registers at all).
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys

import numpy as np
import pytest

from edgecnn.deploy.export.c import export_c
from edgecnn.deploy.ops.fully_connected import C_BLOCKS, scale_parts
from edgecnn.deploy.tflite.writer import write_tflite
from tflite_models import lenet5, random_input

CFLAGS = ["-std=c99", "-O2", "-Wall", "-Wextra", "-pedantic", "-Werror"]
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def binary64_rescale(x: int, scale: float) -> int:
    """TFLite's FC rescale as the default C file and the runtime do it: one binary64 multiply, then round."""
    v = float(x) * scale
    a = abs(v)
    if a >= 2147483648.0:
        return INT32_MIN if v < 0 else INT32_MAX
    r = math.floor(a)
    if a - r >= 0.5:
        r += 1
    r = -r if v < 0 else r
    return min(r, INT32_MAX)


def cases(rng) -> list[tuple[int, float]]:
    out = []
    xs = [0, 1, -1, INT32_MAX, INT32_MIN, 3, -3] + [int(v) for v in rng.integers(INT32_MIN, INT32_MAX, 400)]
    xs += [int(v) for v in rng.integers(-70000, 70000, 400)]  # accumulator-sized values
    scales = [0.0, 1.0, 0.5, 2.0**-40, 1e-300, 2.0**31, 3.0] + [float(s) for s in np.exp(rng.uniform(-30, 5, 300))]
    for x in xs:
        for s in rng.choice(scales, 6):
            out.append((x, float(s)))
    for _ in range(3000):  # exact halves at the final rounding: x * odd / 2^n
        n = int(rng.integers(1, 20))
        out.append((int(rng.integers(-(2**20), 2**20)), int(rng.integers(1, 2**12)) * 2 + 1 and
                    (int(rng.integers(0, 2**12)) * 2 + 1) / 2.0**n))  # fmt: skip
    for _ in range(4000):  # ties at the 53-bit rounding: m * t has 54 bits and ends in 1, x = t * 2^j
        t = int(rng.choice([3, 5, 7, 9, 11, 13]))
        lo, hi = -(-(2**53) // t), (2**54 - 1) // t
        m = int(rng.integers(lo, min(hi, 2**53 - 1)))
        m |= 1
        if not 2**53 <= m * t < 2**54 or m >= 2**53:
            continue
        j = int(rng.integers(0, 31 - t.bit_length()))
        e = -(54 + j) + int(rng.integers(0, 32))
        x = t * 2**j * (1 if rng.random() < 0.5 else -1)
        out.append((x, math.ldexp(m, e)))
    return out


def exact_scale_in_c(pairs, tmp_path) -> list[int]:
    """ec_exact_scale(x, scale) for every (x, scale), built by host gcc without FP registers."""
    program = ("#include <stdint.h>\n#include <stdio.h>\n#include <inttypes.h>\n" + C_BLOCKS["exact_scale"][1]
               + "int main(void)\n{\n    long long x; unsigned long long m; int e;\n"
               "    while (scanf(\"%lld %llu %d\", &x, &m, &e) == 3)\n"
               "        printf(\"%\" PRId32 \"\\n\", ec_exact_scale((int32_t)x, (uint64_t)m, e));\n"
               "    return 0;\n}\n")  # fmt: skip
    (tmp_path / "t.c").write_text(program)
    subprocess.run(["gcc", *CFLAGS, "-mgeneral-regs-only", "t.c", "-o", "t"], cwd=tmp_path, check=True)
    lines = "".join(f"{x} {m} {e}\n" for x, s in pairs for m, e in [scale_parts(s)])
    out = subprocess.run([str(tmp_path / "t")], input=lines, capture_output=True, text=True, check=True).stdout
    return [int(v) for v in out.split()]


def test_exact_scale_equals_binary64(tmp_path):
    rng = np.random.default_rng(10)
    pairs = cases(rng)
    got = exact_scale_in_c(pairs, tmp_path)
    want = [binary64_rescale(x, s) for x, s in pairs]
    bad = [(x, s, int(g), w) for (x, s), g, w in zip(pairs, got, want) if int(g) != w]
    assert len(got) == len(pairs) > 10000
    assert not bad, bad[:10]


def test_scale_parts_are_exact():
    for s in [1.0, 0.1, 2.0**-1074, 1.7976931348623157e308, 0.003921568859368563]:
        m, e = scale_parts(s)
        assert m < 2**53 and math.ldexp(m, e) == s


@pytest.mark.parametrize("seed", [0, 1])
def test_integer_only_file_gives_the_default_files_bytes(seed, tmp_path):
    graph = lenet5(seed=seed)
    x = random_input(graph, 300, seed=seed + 20)
    outputs = []
    for integer_only, extra in ((False, []), (True, ["-mgeneral-regs-only"])):
        name = "int" if integer_only else "dflt"
        (tmp_path / f"{name}.c").write_text(export_c(graph, "digits", integer_only=integer_only).source)
        subprocess.run(["gcc", *CFLAGS, *extra, "-DEDGECNN_MAIN", f"{name}.c", "-o", name], cwd=tmp_path,
                       check=True)  # fmt: skip
        outputs.append(subprocess.run([str(tmp_path / name)], input=x.tobytes(), capture_output=True,
                                      check=True).stdout)  # fmt: skip
    assert len(outputs[0]) == 300 * 10 and outputs[0] == outputs[1]
    source = export_c(graph, "digits", integer_only=True).source.split("#ifdef EDGECNN_MAIN")[0]
    code = re.sub(r"/\*.*?\*/", "", source, flags=re.S)  # comments aside, no floating point anywhere
    assert not re.search(r"\b(double|float)\b", code)
    assert "ec_round_half_away" not in source


def test_cli_writes_c_and_header_with_prefix_and_json(tmp_path):
    model = tmp_path / "lenet.tflite"
    write_tflite(lenet5(seed=2), model)
    out = tmp_path / "kws_model.c"
    p = subprocess.run([sys.executable, "-m", "edgecnn", "export", str(model), "--out", str(out), "--prefix", "net_a",
                        "--integer-only", "--json"], capture_output=True, text=True)  # fmt: skip
    assert p.returncode == 0, p.stderr
    record = json.loads(p.stdout)
    assert {"out", "header", "ram_bytes", "constant_bytes", "inputs", "outputs"} <= set(record)
    header = (tmp_path / "kws_model.h").read_text()
    assert record["header"] == str(tmp_path / "kws_model.h")
    assert "int net_a_invoke(const int8_t *input, int8_t *output);" in header
    assert f"#define NET_A_RAM_SIZE {record['ram_bytes']}" in header
    assert record["inputs"][0]["shape"] == [1, 32, 32, 1] and record["outputs"][0]["bytes"] == 10
    # A program that includes the header and links the .c: the header's API is the file's.
    (tmp_path / "main.c").write_text('#include "kws_model.h"\nint main(void)\n{\n    static int8_t in[NET_A_INPUT_SIZE];'
                                     "\n    static int8_t out[NET_A_OUTPUT_SIZE];\n    return net_a_invoke(in, out);\n}\n")
    subprocess.run(["gcc", *CFLAGS, "-mgeneral-regs-only", "main.c", "kws_model.c", "-o", "main"], cwd=tmp_path,
                   check=True)  # fmt: skip
    assert subprocess.run([str(tmp_path / "main")]).returncode == 0
    bad = subprocess.run([sys.executable, "-m", "edgecnn", "export", str(model), "--out", str(out), "--prefix", "9x"],
                         capture_output=True, text=True)  # fmt: skip
    assert bad.returncode != 0 and "identifier" in bad.stderr and "Traceback" not in bad.stderr


def near_half_cases(rng) -> list[tuple[int, float]]:
    """Accumulator-sized x and typical FC scales with x * scale within 1e-15 .. 1e-5 of a half-integer (and
    exactly on one): where ec_exact_scale's one-multiply fast path must hand over to the exact path."""
    out = []
    for _ in range(6000):
        x = int(rng.integers(1, 2**21)) * (1 if rng.random() < 0.5 else -1)
        k = int(rng.integers(0, 200))
        delta = float(rng.choice([0.0, 1e-15, 1e-12, 1e-9, 1e-7, 1e-5])) * (1 if rng.random() < 0.5 else -1)
        out.append((x, abs((k + 0.5 + delta) / x)))
    for _ in range(3000):  # plain typical cases: scales 2^-2 .. 2^-20
        out.append((int(rng.integers(-(2**24), 2**24)), float(2.0 ** rng.uniform(-20, -2))))
    return out


def test_exact_scale_fast_path_near_halves(tmp_path):
    pairs = near_half_cases(np.random.default_rng(12))
    got = exact_scale_in_c(pairs, tmp_path)
    bad = [(x, s, g, binary64_rescale(x, s)) for (x, s), g in zip(pairs, got) if g != binary64_rescale(x, s)]
    assert len(got) == len(pairs)
    assert not bad, bad[:10]
