"""Mutated .tflite files, and how often edgecnn's verifier agrees with LiteRT's.

    python tests/tflite_verify_agreement.py [--count 2000] [--seed 0] [--cpp-judge PATH] [MODEL.tflite ...]

Each mutant of each model (edgecnn's LeNet-5 and any files given) is judged by
`deploy/tflite/verify.py` (accept / refuse) and by LiteRT loading it
(`LiteRTRunner(data, "ref")`, in a child process, since LiteRT may crash on
a file its verifier passed). LiteRT's verifier refusal reads "The model is not
a valid Flatbuffer buffer"; its other refusals (bad tensor sizes, unknown op
versions ...) are not structural and counted apart. With `--cpp-judge`, a
program built from flatc's generated `VerifyModelBuffer` (one path per stdin
line -> "1 path" / "0 path"; benchmarks/tflite_verify_judge.cc, development only)
is a third, purely structural judge.

`mutate(data, rng)` is also the seeded mutator of tests/test_tflite_verify.py.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HOSTILE_U32 = (0, 1, 2, 3, 4, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xFFFFFFFC, 0x10000, 0x40000000)
MUTATIONS = ("flip", "truncate", "u32", "u32_relative", "u16", "length", "swap")


def structural_ranges(data: bytes) -> list[tuple[int, int]]:
    """Byte ranges of the file outside the big constant payloads (where offsets and vtables live)."""
    import tflite

    try:
        m = tflite.Model.GetRootAs(data, 0)
        payload = []
        for i in range(min(m.BuffersLength(), 100_000)):
            b = m.Buffers(i)
            if b.DataLength() > 64:
                start = b._tab.Vector(4)
                payload.append((start + 32, start + b.DataLength() - 32))
    except Exception:  # noqa: BLE001 - a mutant parent: fall back to the whole file
        payload = []
    ranges, pos = [], 0
    for start, end in sorted(payload):
        if start > pos:
            ranges.append((pos, start))
        pos = max(pos, end)
    if pos < len(data):
        ranges.append((pos, len(data)))
    return ranges or [(0, len(data))]


def _position(rng, ranges, align=1) -> int:
    sizes = np.array([e - s for s, e in ranges], dtype=np.float64)
    s, e = ranges[int(rng.choice(len(ranges), p=sizes / sizes.sum()))]
    p = int(rng.integers(s, max(s + 1, e)))
    return p - p % align


def mutate(data: bytes, rng: np.random.Generator, ranges=None, kind: str | None = None) -> tuple[str, bytes]:
    """One seeded mutation of `data`: (what was done, the mutant)."""
    ranges = ranges or structural_ranges(data)
    kind = kind or MUTATIONS[int(rng.integers(len(MUTATIONS)))]
    b = bytearray(data)
    n = len(b)
    if kind == "flip":
        for _ in range(int(rng.integers(1, 5))):
            b[_position(rng, ranges)] = int(rng.integers(256))
    elif kind == "truncate":
        b = b[: int(rng.integers(0, n))]
    elif kind == "u32":  # an offset-sized value made hostile
        p = min(_position(rng, ranges, 4), n - 4)
        struct.pack_into("<I", b, p, int(rng.choice(HOSTILE_U32 + (n, n - 4, n + 4, n * 2))))
    elif kind == "u32_relative":  # nudge an existing value (offsets pointed a little off)
        p = min(_position(rng, ranges, 4), n - 4)
        (v,) = struct.unpack_from("<I", b, p)
        struct.pack_into("<I", b, p, (v + int(rng.choice([-8, -4, -2, -1, 1, 2, 4, 8, 4096]))) % 2**32)
    elif kind == "u16":  # vtable entries: sizes odd or huge, field offsets anywhere
        p = min(_position(rng, ranges, 2), n - 2)
        struct.pack_into("<H", b, p, int(rng.choice([0, 1, 2, 3, 5, 0xFFFF, 0xFFFE, 0x8000, int(rng.integers(65536))])))
    elif kind == "length":  # a vector or string length made huge
        p = min(_position(rng, ranges, 4), n - 4)
        struct.pack_into("<I", b, p, int(rng.choice([n, n // 2, 0x3FFFFFFF, 0x7FFFFFFF, 0xFFFFFFFF])))
    elif kind == "swap":  # two aligned words exchanged (offsets pointing at each other's targets)
        p, q = (min(_position(rng, ranges, 4), n - 4) for _ in range(2))
        b[p : p + 4], b[q : q + 4] = bytes(b[q : q + 4]), bytes(b[p : p + 4])
    return kind, bytes(b)


# The refusals of deploy/tflite/verify.py that flatc's verifier does not make (see its docstring).
STRICTER_CHECKS = ("is under 4", "lies outside its", "but no value")


def is_stricter_check(message: str) -> bool:
    return any(s in message for s in STRICTER_CHECKS)


# ---------------------------------------------------------------- judges

_LITERT_CHILD = r"""
import sys
from edgecnn.deploy.litert import LiteRTRunner
for line in sys.stdin:
    path = line.rstrip("\n")
    try:
        LiteRTRunner(path, "ref")
        verdict = "accept"
    except Exception as e:
        verdict = "verifier" if "not a valid Flatbuffer" in str(e) else "other:" + type(e).__name__ + ":" + str(e)[-120:].replace("\n", " ")
    print(verdict, flush=True)
"""


def litert_verdicts(paths: list[str]) -> list[str]:
    """'accept', 'verifier' (LiteRT's flatbuffer verifier refused) or 'other:...'; 'crash' if LiteRT died."""
    out: list[str] = []
    while len(out) < len(paths):
        rest = paths[len(out) :]
        p = subprocess.run([sys.executable, "-c", _LITERT_CHILD], input="\n".join(rest) + "\n",
                           capture_output=True, text=True, timeout=3600)  # fmt: skip
        lines = [line for line in p.stdout.splitlines() if line]
        out += lines
        if len(out) < len(paths):
            out.append("crash")  # the file after the last answer killed the child
    return out


def cpp_verdicts(judge: str, paths: list[str]) -> list[bool]:
    p = subprocess.run([judge], input="\n".join(paths) + "\n", capture_output=True, text=True, check=True)
    return [line.startswith("1") for line in p.stdout.splitlines() if line]


def edgecnn_verdict(data: bytes) -> tuple[bool, str]:
    from edgecnn.deploy.tflite.verify import verify_model
    from edgecnn.errors import TFLiteFormatError

    try:
        verify_model(data, "mutant")
        return True, ""
    except TFLiteFormatError as e:
        return False, str(e)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", type=Path)
    ap.add_argument("--count", type=int, default=2000, help="mutants per model")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cpp-judge", default=None)
    ap.add_argument("--no-litert", action="store_true")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).parent))
    from tflite_models import lenet5

    from edgecnn.deploy.tflite import to_bytes

    models = [("lenet5 (edgecnn)", to_bytes(lenet5(0)))] + [(str(p), p.read_bytes()) for p in args.models]
    report = {}
    with tempfile.TemporaryDirectory() as d:
        for label, data in models:
            rng = np.random.default_rng(args.seed)
            ranges = structural_ranges(data)
            paths, kinds, ours, msgs = [], [], [], []
            for i in range(args.count):
                kind, mutant = mutate(data, rng, ranges)
                path = os.path.join(d, f"m{i}.tflite")
                Path(path).write_bytes(mutant)
                ok, msg = edgecnn_verdict(mutant)
                paths.append(path), kinds.append(kind), ours.append(ok), msgs.append(msg)
            row = {"mutants": len(paths), "edgecnn_refused": ours.count(False)}
            if args.cpp_judge:
                cpp = cpp_verdicts(args.cpp_judge, paths)
                agree = sum(a == b for a, b in zip(ours, cpp))
                row["cpp_refused"] = cpp.count(False)
                row["agree_with_cpp"] = agree
                row["edgecnn_only_refused"] = [(k, m) for k, m, a, b in zip(kinds, msgs, ours, cpp) if not a and b][:20]
                row["cpp_only_refused"] = [k for k, a, b in zip(kinds, ours, cpp) if a and not b][:20]
                row["disagreements_with_cpp_not_stricter_checks"] = sum(
                    a != b and not is_stricter_check(m) for m, a, b in zip(msgs, ours, cpp))
            if not args.no_litert:
                lite = litert_verdicts(paths)
                structural = [(a, v) for a, v in zip(ours, lite) if v in ("accept", "verifier")]
                row["litert_verifier_refused"] = lite.count("verifier")
                row["litert_other_refused"] = sum(v.startswith("other") for v in lite)
                row["litert_crashed"] = lite.count("crash")
                row["litert_judged_structurally"] = len(structural)
                row["agree_with_litert_structural"] = sum(a == (v == "accept") for a, v in structural)
                row["edgecnn_refused_litert_other"] = sum(not a and v.startswith("other") for a, v in zip(ours, lite))
                row["edgecnn_accepted_litert_other"] = sum(a and v.startswith("other") for a, v in zip(ours, lite))
                row["disagreements"] = [(k, m, v) for k, m, a, v in zip(kinds, msgs, ours, lite)
                                        if v in ("accept", "verifier") and a != (v == "accept")][:20]  # fmt: skip
                row["disagreements_not_stricter_checks"] = sum(
                    v in ("accept", "verifier") and a != (v == "accept") and not is_stricter_check(m)
                    for m, a, v in zip(msgs, ours, lite))
                row["litert_crashes"] = [(k, m or "edgecnn accepted") for k, m, v in zip(kinds, msgs, lite)
                                         if v == "crash"]  # fmt: skip
            report[label] = row
            print(json.dumps({label: row}, indent=1), flush=True)


if __name__ == "__main__":
    main()
