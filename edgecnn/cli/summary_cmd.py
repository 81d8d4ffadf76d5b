"""`edgecnn summary {ARCH|MODEL} [--json]`."""

from __future__ import annotations

import json
from pathlib import Path


def register(sub) -> None:
    from edgecnn.cli.common import add_command, add_width_arg

    p = add_command(sub, "summary", help="per-layer output shapes, parameters and connections",
                       description="Print each layer's output shape, parameter count and connection count.")
    p.add_argument("model", metavar="ARCH|MODEL",
                   help="an architecture name (lenet5, lenet5-classic), a float model.npz or an int8 model.tflite")
    add_width_arg(p)
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=run)


def run(args) -> int:
    from edgecnn.cli.common import arch_options
    from edgecnn.model import ARCHS, build
    from edgecnn.model.summary import format_summary, summarize, summarize_graph

    options = arch_options(args)  # --width: an architecture name only
    if args.model in ARCHS or not Path(args.model).suffix:
        s = summarize(build(args.model, **options))
    elif Path(args.model).suffix.lower() == ".tflite":
        from edgecnn.deploy.tflite import read_tflite

        s = summarize_graph(read_tflite(Path(args.model)))
    elif Path(args.model).suffix.lower() == ".onnx":
        from edgecnn.model.onnx_import import import_onnx

        s = summarize(import_onnx(args.model))
    else:
        from edgecnn.model.checkpoint import load_checkpoint

        s = summarize(load_checkpoint(args.model))
    print(json.dumps(s) if args.json else format_summary(s))
    return 0
