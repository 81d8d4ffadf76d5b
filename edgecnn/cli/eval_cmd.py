"""`edgecnn eval`: accuracy of one or more models on a test split, on any backend."""

from __future__ import annotations

import time
from pathlib import Path

from edgecnn.cli.common import add_data_args, emit_json, load_images, positive_int


def register(sub) -> None:
    from edgecnn.deploy.backends import BACKENDS

    p = sub.add_parser("eval", help="evaluate models on the test split",
                       description="Run models on the test split and report accuracy and time.")
    p.add_argument("models", nargs="+", metavar="MODEL", help=".npz (float), .tflite (int8) or .onnx (int8, from `edgecnn export`) models")
    add_data_args(p)
    p.add_argument("--backend", choices=BACKENDS, default=None,
                   help="default: float for .npz, onnxruntime for .onnx, and for .tflite numba when "
                        "installed, else litert")
    p.add_argument("--fc-rescale", choices=("float", "integer"), default="float",
                   help="numba FULLY_CONNECTED rescale: float (LiteRT >= 1.3) or integer (older runtimes)")
    p.add_argument("--limit", type=positive_int, default=None, help="first N test images only")
    p.add_argument("--save-outputs", metavar="PATH.npy", help="save the raw output tensor of all samples")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=run)


def run(args) -> int:
    import numpy as np

    from edgecnn.deploy.backends import open_backend
    from edgecnn.errors import EdgecnnError
    from edgecnn.fileio import atomic_path

    if args.save_outputs and len(args.models) > 1:
        raise EdgecnnError("--save-outputs takes one model at a time")
    images, labels = load_images(args, "test", args.limit)
    results = []
    for path in args.models:
        backend = open_backend(path, args.backend, fc_rescale=args.fc_rescale)
        x = backend.prepare(images)
        backend.run(x[:1])  # warm-up: JIT compilation and allocation are not timed
        t0 = time.perf_counter()
        out = backend.run(x)
        seconds = time.perf_counter() - t0
        out = out.reshape(len(labels), -1)
        acc = float(np.mean(np.argmax(out, axis=1) == labels))
        results.append({"model": str(path), "backend": backend.name, "samples": int(len(labels)),
                        "accuracy": acc, "seconds": round(seconds, 4)})
        if args.save_outputs:
            with atomic_path(args.save_outputs) as tmp:
                with open(tmp, "wb") as f:
                    np.save(f, out)
    if args.json:
        emit_json(results)
    else:
        for r in results:
            print(f"{Path(r['model']).name}  {r['backend']:<14} {r['samples']} images  "
                  f"accuracy {r['accuracy']:.2%}  {r['seconds']:.2f}s")
    return 0
