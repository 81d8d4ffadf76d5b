"""Measure edgecnn's C on the emulated Cortex-M4: the table in docs/mcu.md.

    python tests/mcu/measure.py CONFORMANCE_DIR [--records 2] [--json OUT.json]

CONFORMANCE_DIR holds the TF converter's models (tests/tf_conformance_models.py makes them:
`.venv-tf/bin/python tests/tf_conformance_models.py DIR`). For each model and each build
(-O2 / -Os, DSP path on / off; then -O2 DSP integer-only, and -O2 DSP with the input in the model's
arena, export_c's input_in_arena), every output byte is compared with edgecnn's runtime and the
row gets MACs, RAM (arena + scratch, and with the caller's input/output buffers), the deepest stack
use of an inference, flash (code and constants apart, from the model's object file) and
instructions per inference (QEMU -icount shift=0, APB timer; a lower bound on cycles).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from qemu_m4 import ModelBuild, build_and_run  # noqa: E402

MODELS = ["lenet5", "resnet8", "ds_cnn", "mobilenet_v1_025", "fc_autoencoder"]
TARGETS = {"resnet8": (36864, 19.8e6), "ds_cnn": (9728, 5.18e6), "mobilenet_v1_025": (47104, 10.7e6),
           "fc_autoencoder": (1536, 0.63e6)}  # fmt: skip
BUILDS = [("-O2", True), ("-Os", True), ("-O2", False), ("-Os", False)]  # (optimisation, DSP path)


def macs(graph) -> int:
    total = 0
    for op in graph.ops:
        out = graph.tensors[op.outputs[0]].shape
        if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            w = graph.tensors[op.inputs[1]].shape
            taps = w[1] * w[2] * (w[3] if op.kind == "CONV_2D" else 1)
            total += math.prod(out) * taps
        elif op.kind == "FULLY_CONNECTED":
            total += math.prod(out) * graph.tensors[op.inputs[1]].shape[1]
    return total


def load(name: str, folder: Path):
    from edgecnn.deploy.tflite import read_tflite
    from tflite_models import lenet5

    return lenet5(seed=0) if name == "lenet5" else read_tflite((folder / f"{name}.tflite").read_bytes())


def measure(name: str, folder: Path, records: int, builds=BUILDS, integer_only=False,
            input_in_arena=False) -> list[dict]:  # fmt: skip
    from edgecnn.deploy.export.c import export_c
    from edgecnn.deploy.runtime import Runtime
    from tflite_models import random_input

    graph = load(name, folder)
    x = random_input(graph, records, seed=1)
    x[0] = -128  # an extreme image first
    want = np.asarray(Runtime(graph).run(x)).reshape(records, -1)
    export = export_c(graph, name, integer_only=integer_only, input_in_arena=input_in_arena)
    rows = []
    for opt, dsp in builds:
        with tempfile.TemporaryDirectory() as tmp:
            result = build_and_run([ModelBuild(export, x)], Path(tmp), opt, [] if dsp else ["-DEDGECNN_NO_DSP"])
        same = int(np.sum(result.outputs[0] == want))
        rows.append({"model": name, "opt": opt, "dsp": dsp, "integer_only": integer_only,
                     "input_in_arena": input_in_arena, "macs": macs(graph),
                     "ram": export.ram_bytes, "io": export.io_bytes, "ram_with_io": export.ram_bytes + export.io_bytes,
                     "object_ram": result.sizes[0]["ram"], "stack": result.stack[0],
                     "code": result.sizes[0]["code"], "const": result.sizes[0]["const"],
                     "instructions": max(result.instructions[0]), "identical": same, "elements": int(want.size)})  # fmt: skip
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--records", type=int, default=2)
    ap.add_argument("--models", nargs="*", default=MODELS)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    rows = []
    for name in args.models:
        rows += measure(name, args.folder, args.records)
        rows += measure(name, args.folder, args.records, builds=[("-O2", True)], integer_only=True)
        rows += measure(name, args.folder, args.records, builds=[("-O2", True)], input_in_arena=True)
        for r in rows[-6:]:
            print(json.dumps(r), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0 if all(r["identical"] == r["elements"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
