"""`edgecnn export MODEL.tflite --out PATH.{onnx,c}`."""

from __future__ import annotations


def register(sub) -> None:
    from edgecnn.cli.common import add_command

    p = add_command(sub, "export", help="export an int8 .tflite to ONNX or C99",
                       description="Export an int8 .tflite model to ONNX (runs in onnxruntime) or to a C99 "
                                   "source file for microcontrollers, bit-exact with the Numba runtime.")
    p.add_argument("model", metavar="MODEL.tflite", help="an int8 .tflite (from `edgecnn quantize` or the TF converter)")
    p.add_argument("--out", required=True, metavar="PATH.{onnx,c}", help="the file to write; its suffix picks the format")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from edgecnn.cli.common import emit_json
    from edgecnn.deploy.export import export_model
    from edgecnn.errors import EdgecnnError

    if Path(args.model).suffix.lower() != ".tflite":
        raise EdgecnnError(f"{args.model}: export reads an int8 .tflite (make one with `edgecnn quantize`)")
    out = export_model(args.model, args.out)
    if args.json:
        emit_json({"model": args.model, "out": str(out), "bytes": out.stat().st_size})
    else:
        print(f"wrote {out} ({out.stat().st_size:,} bytes)")
    return 0
