"""`edgecnn export MODEL.tflite --out PATH.{onnx,c}` (C: also PATH.h; --prefix, --integer-only, --input-in-arena)."""

from __future__ import annotations


def add_c_options(p) -> None:
    """The C export's options, shared with `quantize --also`."""
    p.add_argument("--prefix", default="edgecnn_model", metavar="NAME",
                   help="C only: the prefix of every external symbol and macro (NAME_invoke, NAME_INPUT_SIZE, ...), "
                        "so several models link into one program (default: edgecnn_model)")  # fmt: skip
    p.add_argument("--integer-only", action="store_true",
                   help="C only: no floating point in the file (FULLY_CONNECTED's binary64 rescale done exactly "
                        "in integers: the same bytes), for FPU-less microcontrollers")  # fmt: skip
    p.add_argument("--input-in-arena", action="store_true",
                   help="C only: the model owns its input buffer, inside its RAM (NAME_input_buffer()), whose bytes "
                        "it reuses once read: less RAM in all when counting the input")  # fmt: skip


def export_file(model, out, args) -> dict:
    """Export the .tflite `model` to `out` (.onnx, or .c + .h); the JSON record of what was written."""
    from pathlib import Path

    from edgecnn.errors import EdgecnnError

    out = Path(out)
    prefix, integer_only = getattr(args, "prefix", "edgecnn_model"), getattr(args, "integer_only", False)
    input_in_arena = getattr(args, "input_in_arena", False)
    if out.suffix.lower() != ".c":
        if prefix != "edgecnn_model" or integer_only or input_in_arena:
            raise EdgecnnError(f"--prefix, --integer-only and --input-in-arena apply to C files only, not {out.name}")
        from edgecnn.deploy.export import export_model

        export_model(model, out)
        return {"out": str(out), "bytes": out.stat().st_size}
    from edgecnn.deploy.export.c import write_c
    from edgecnn.deploy.tflite import read_tflite

    try:
        result = write_c(read_tflite(Path(model)), out, name=prefix, integer_only=integer_only, header=True,
                         input_in_arena=input_in_arena)
    except ValueError as e:  # a prefix that is not a C identifier
        raise EdgecnnError(str(e)) from None
    return {"out": str(out), "header": str(out.with_suffix(".h")), "bytes": out.stat().st_size,
            "prefix": prefix, "integer_only": integer_only, "input_in_arena": input_in_arena,
            "ram_bytes": result.ram_bytes, "arena_bytes": result.arena_bytes, "scratch_bytes": result.scratch_bytes,
            "io_bytes": result.io_bytes, "constant_bytes": result.constant_bytes,
            "inputs": result.inputs, "outputs": result.outputs}  # fmt: skip


def register(sub) -> None:
    from edgecnn.cli.common import add_command

    p = add_command(sub, "export", help="export an int8 .tflite to ONNX or C99",
                       description="Export an int8 .tflite model to ONNX (runs in onnxruntime) or to a C99 "
                                   "source file for microcontrollers (PATH.c and its header PATH.h), bit-exact "
                                   "with the Numba runtime.")  # fmt: skip
    p.add_argument("model", metavar="MODEL.tflite", help="an int8 .tflite (from `edgecnn quantize` or the TF converter)")
    p.add_argument("--out", required=True, metavar="PATH.{onnx,c}", help="the file to write; its suffix picks the format")
    add_c_options(p)
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from edgecnn.cli.common import emit_json
    from edgecnn.errors import EdgecnnError

    if Path(args.model).suffix.lower() != ".tflite":
        raise EdgecnnError(f"{args.model}: export reads an int8 .tflite (make one with `edgecnn quantize`)")
    if Path(args.out).suffix.lower() not in (".onnx", ".c"):
        raise EdgecnnError(f"cannot export to {Path(args.out).name}: choose a .onnx or .c file")
    record = export_file(args.model, args.out, args)
    if args.json:
        emit_json({"model": args.model, **record})
    elif "header" in record:
        print(f"wrote {record['out']} ({record['bytes']:,} bytes) and {record['header']}: "
              f"RAM {record['ram_bytes']:,} bytes (arena {record['arena_bytes']:,} + scratch "
              f"{record['scratch_bytes']:,}; the caller's buffers {record['io_bytes']:,} more), "
              f"constants {record['constant_bytes']:,} bytes")  # fmt: skip
    else:
        print(f"wrote {record['out']} ({record['bytes']:,} bytes)")
    return 0
