"""`edgecnn quantize`: the quantize-and-export command."""

from __future__ import annotations

import sys
from pathlib import Path

from edgecnn.cli.common import add_command, add_data_args, data_folder, emit_json, positive_int

CALIBRATIONS = ("minmax", "percentile", "mse", "entropy")


def register(sub) -> None:
    p = add_command(sub, "quantize", help="quantize a float model to TFLite int8 and export it",
                       description="Calibrate a float model on training images, quantize it to the TFLite int8 "
                                   "spec, write the .tflite, and report accuracy and per-layer SQNR.")
    p.add_argument("model", metavar="MODEL.{npz,onnx}",
                   help="float checkpoint from `edgecnn train`, or a float ONNX CNN (e.g. from torch.onnx.export)")
    add_data_args(p)
    p.add_argument("--calib-samples", type=positive_int, default=1000, metavar="N",
                   help="calibration images from the train split")
    p.add_argument("--calibration", choices=CALIBRATIONS, default="minmax", help="how activation ranges are chosen")
    p.add_argument("--per-tensor", action="store_true", help="one weight scale per tensor instead of per channel")
    p.add_argument("--mean", type=float, nargs="+", metavar="M",
                   help="input normalisation the model was trained with: it takes (pixel/255 - mean) / std, "
                        "one value per channel (or one for all); recorded in the .tflite, so eval, predict and "
                        "the device runner apply it")
    p.add_argument("--std", type=float, nargs="+", metavar="S", help="the normalisation's std (see --mean)")
    p.add_argument("--out", required=True, metavar="MODEL.tflite", help="the int8 model to write")
    p.add_argument("--also", action="append", default=[], metavar="PATH",
                   help="also export to PATH.onnx or PATH.c (repeatable); the same bytes `edgecnn export` writes")
    from edgecnn.cli.export_cmd import add_c_options

    add_c_options(p)  # --prefix, --integer-only for the .c files
    p.add_argument("--eval-limit", type=positive_int, default=None, metavar="N",
                   help="evaluate on the first N test images only (default: all)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=run)


def run(args) -> int:
    from edgecnn.errors import EdgecnnError

    out = Path(args.out)
    if Path(args.model).suffix.lower() == ".tflite":
        raise EdgecnnError(f"{args.model} is already an int8 model; to write ONNX or C from it, run "
                           f"`edgecnn export {args.model} --out PATH.onnx` (or PATH.c)")
    if out.suffix.lower() != ".tflite":
        raise EdgecnnError(f"--out must name a .tflite file, got {out.name}")
    for extra in args.also:
        if Path(extra).suffix.lower() not in (".onnx", ".c"):
            raise EdgecnnError(f"--also must name a .onnx or .c file, got {extra}")
        if Path(extra).suffix.lower() == ".onnx":
            import importlib.util

            if importlib.util.find_spec("onnx") is None:  # say it now, not after calibrating
                raise EdgecnnError(f'--also {extra} needs onnx, which is not installed: pip install "edgecnn[onnx]"')
    result, report = quantize_and_export(args)
    if args.json:
        emit_json(result)
    else:
        from edgecnn.quantize.report import format_report

        print(format_report(report))
        print(f"float accuracy {result['float_accuracy']:.2%}, int8 accuracy {result['int8_accuracy']:.2%} "
              f"on {result['samples']} test images")
        for written in result["written"]:
            print(f"wrote {written['path']} ({written['bytes']:,} bytes)")
    return 0


def quantize_and_export(args):
    """Shared by `quantize` and `demo`: returns (JSON result, SQNR rows)."""
    import numpy as np

    from edgecnn.cli.common import load_images
    from edgecnn.deploy.runtime import Runtime
    from edgecnn.deploy.tflite.writer import write_tflite
    from edgecnn.model.checkpoint import load_checkpoint
    from edgecnn.quantize.ptq import quantize_model
    from edgecnn.int8.rules import quantize_input
    from edgecnn.quantize.report import layer_sqnr

    src = Path(args.model)
    if src.suffix.lower() == ".onnx":
        from edgecnn.model.onnx_import import import_onnx

        model = import_onnx(src)
    else:
        model = load_checkpoint(src)
    progress = False if (args.quiet or args.json) else None
    train_images, _ = load_images(args, "train")
    rng = np.random.default_rng(0)
    n = min(args.calib_samples, len(train_images))
    norm = _normalization(args, model)
    calib = _model_input(args, model, train_images[np.sort(rng.choice(len(train_images), n, replace=False))], norm)
    test_images, y_test = load_images(args, "test", getattr(args, "eval_limit", None))  # bad data fails early
    x_test = _model_input(args, model, test_images, norm)
    qm = quantize_model(model, calib, args.calibration, per_tensor=args.per_tensor, progress=progress,
                        normalization=norm)
    runtime = Runtime(qm.graph)  # prepared once, for the SQNR report and the int8 accuracy
    report = layer_sqnr(model, qm, calib, runtime.run_intermediates)
    float_acc = float(np.mean(np.argmax(model.predict(x_test), 1) == y_test))
    inp = qm.graph.input
    int8_out = runtime.run(quantize_input(x_test, inp.scale[0], inp.zero_point[0]))
    int8_acc = float(np.mean(np.argmax(int8_out.reshape(len(y_test), -1), 1) == y_test))
    write_tflite(qm.graph, args.out)  # last: a failure above leaves no model behind
    written = [args.out]
    for extra in getattr(args, "also", []):
        from edgecnn.cli.export_cmd import export_file

        record = export_file(args.out, extra, args)  # from the file, so the bytes equal `edgecnn export`'s
        written.append(extra)
        if "header" in record:
            written.append(record["header"])
    result = {"out": str(args.out), "float_accuracy": float_acc, "int8_accuracy": int8_acc,
              "also": [str(p) for p in getattr(args, "also", [])],
              "written": [{"path": str(p), "bytes": Path(p).stat().st_size} for p in written],
              "bytes": Path(args.out).stat().st_size, "samples": int(len(y_test)),
              "calibration": args.calibration, "layers": report, "data": data_folder(args)}
    if not args.quiet and not args.json:
        print(f"quantized {src.name} with {args.calibration} calibration on {n} images", file=sys.stderr)
    return result, report


def _normalization(args, model):
    """(mean, std), one value per input channel, from --mean/--std; None without them."""
    import math

    from edgecnn.errors import EdgecnnError

    mean, std = getattr(args, "mean", None), getattr(args, "std", None)
    if mean is None and std is None:
        return None
    if mean is None or std is None:
        raise EdgecnnError("--mean and --std go together: give both, one value per input channel")
    c = int(model.input_shape[-1])
    for flag, values in (("--mean", mean), ("--std", std)):
        if len(values) not in (1, c):
            raise EdgecnnError(f"{flag} takes 1 or {c} values (one per input channel), got {len(values)}")
        if not all(math.isfinite(v) for v in values):
            raise EdgecnnError(f"{flag} values must be finite numbers")
    if any(v <= 0 for v in std):
        raise EdgecnnError("--std values must be positive")
    return [float(v) for v in mean] * (c // len(mean)), [float(v) for v in std] * (c // len(std))


def _model_input(args, model, images, norm):
    """Raw uint8 images -> the float input the model takes: fitted to its own input size, normalised if asked."""
    from edgecnn.errors import DataError, ShapeError
    from edgecnn.int8.preprocessing import fit_pixels, pixels_to_float

    try:
        pixels = fit_pixels(images, model.input_shape)
    except ShapeError as exc:
        raise DataError(f"{args.dataset} images do not fit {Path(args.model).name}: {exc}") from None
    return pixels_to_float(pixels, *(norm or (None, None)))
