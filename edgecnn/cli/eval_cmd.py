"""`edgecnn eval`: accuracy of one or more models on a test split, on any backend."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from edgecnn.cli.common import add_command, add_data_args, data_folder, emit_json, load_images, positive_int

EVAL_CHUNK = 1000  # images per call: bounded memory, and a progress bar that moves


def register(sub) -> None:
    from edgecnn.deploy.backends import BACKENDS

    p = add_command(sub, "eval", help="evaluate models on the test split",
                    description="Run models on the test split and report accuracy and time.")
    p.add_argument("models", nargs="+", metavar="MODEL",
                   help=".npz (float), .tflite (int8) or .onnx (int8, from `edgecnn export`) models")
    add_data_args(p)
    p.add_argument("--backend", choices=BACKENDS, default=None,
                   help="default: float for .npz, onnxruntime for .onnx, and for .tflite numba when "
                        "installed, else litert")
    p.add_argument("--fc-rescale", choices=("float", "integer"), default="float",
                   help="numba FULLY_CONNECTED rescale: float (LiteRT >= 1.3) or integer (older runtimes)")
    p.add_argument("--limit", type=positive_int, default=None, help="first N test images only (default: all)")
    p.add_argument("--save-outputs", metavar="PATH.npy", help="save the raw output tensor of all samples")
    p.add_argument("--quiet", action="store_true", help="no progress bar or data line on stderr")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=run)


def run(args) -> int:
    import numpy as np

    from edgecnn.deploy.backends import open_backend
    from edgecnn.errors import EdgecnnError
    from edgecnn.fileio import atomic_path, check_writable

    if args.save_outputs and len(args.models) > 1:
        raise EdgecnnError("--save-outputs takes one model at a time")
    backends = [open_backend(path, args.backend, fc_rescale=args.fc_rescale) for path in args.models]  # models first
    if args.save_outputs:
        check_writable(args.save_outputs)
    images, labels = load_images(args, "test", args.limit)
    results = []
    for path, backend in zip(args.models, backends):
        out, seconds = run_in_chunks(backend, images, f"{Path(path).name} {backend.name}",
                                     show=False if args.quiet else None)
        acc = float(np.mean(np.argmax(out, axis=1) == labels))
        results.append({"model": str(path), "backend": backend.name, "samples": int(len(labels)),
                        "accuracy": acc, "seconds": round(seconds, 4), "data": data_folder(args)})
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


def run_in_chunks(backend, images, label: str, show: bool | None = None, chunk: int = EVAL_CHUNK):
    """(outputs (N, K), seconds of run time) over `images` in chunks, with a progress bar on stderr.

    The first image is run once before timing: JIT compilation and allocation are not timed.
    `show`: None lets tqdm decide (shown on a terminal), False hides the bar.
    """
    import numpy as np

    from edgecnn.progress import progress_bar

    backend.run(backend.prepare(images[:1]))
    outputs, seconds = [], 0.0
    with progress_bar(len(images), label, show, unit="img", file=sys.stderr, leave=False) as bar:
        for start in range(0, len(images), chunk):
            x = backend.prepare(images[start:start + chunk])
            t0 = time.perf_counter()
            y = backend.run(x)
            seconds += time.perf_counter() - t0
            outputs.append(np.asarray(y).reshape(len(x), -1))
            bar.update(len(x))
    return np.concatenate(outputs), seconds
