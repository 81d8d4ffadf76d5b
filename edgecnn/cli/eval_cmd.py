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
    p.add_argument("--save-outputs", metavar="PATH.npy", help="save the raw output tensor of all samples; "
                   "a PATH.npz holds every output (output0, output1, ... in the model's order), as models "
                   "with several outputs require")
    p.add_argument("--quiet", action="store_true", help="no progress bar or data line on stderr")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=run)


def run(args) -> int:
    import numpy as np

    from edgecnn.cli.common import labels_for
    from edgecnn.deploy.backends import open_backend
    from edgecnn.errors import EdgecnnError, ShapeError
    from edgecnn.fileio import atomic_path, check_writable

    if args.save_outputs and len(args.models) > 1:
        raise EdgecnnError("--save-outputs takes one model at a time")
    backends = [open_backend(path, args.backend, fc_rescale=args.fc_rescale) for path in args.models]  # models first
    if args.save_outputs:
        several = len(getattr(backends[0], "outputs", [None])) > 1
        if several and not str(args.save_outputs).lower().endswith(".npz"):
            raise EdgecnnError(f"{Path(args.models[0]).name} has {len(backends[0].outputs)} outputs; "
                               "--save-outputs needs a PATH.npz (one array per output: output0, output1, ...)")
        check_writable(args.save_outputs)
    images, labels = load_images(args, "test", args.limit)
    classes = len(labels_for(args.dataset, int(labels.max()) + 1))
    results = []
    for path, backend in zip(args.models, backends):
        try:  # a model the dataset cannot feed, or with no output of `classes` entries: one line naming it
            k = backend.select_output(classes) if hasattr(backend, "select_output") else 0
            outs, seconds = run_in_chunks(backend, images, f"{Path(path).name} {backend.name}",
                                          show=False if args.quiet else None, every_output=True)
        except ShapeError as exc:
            raise ShapeError(f"{Path(path).name}: {exc}") from None
        acc = float(np.mean(np.argmax(outs[k], axis=1) == labels))
        row = {"model": str(path), "backend": backend.name, "samples": int(len(labels)),
               "accuracy": acc, "seconds": round(seconds, 4), "data": data_folder(args)}
        if hasattr(backend, "output_name"):
            row["output"] = backend.output_name  # the classification output (the first with `classes` entries)
        results.append(row)
        if args.save_outputs:
            with atomic_path(args.save_outputs) as tmp:
                with open(tmp, "wb") as f:
                    if str(args.save_outputs).lower().endswith(".npz"):  # every output, in the model's order
                        shapes = [o.shape for o in backend.outputs]
                        np.savez(f, **{f"output{j}": y.reshape((len(y), *s)) for j, (y, s) in
                                       enumerate(zip(outs, shapes))})  # fmt: skip
                    else:
                        np.save(f, outs[0])
    if args.json:
        emit_json(results)
    else:
        for r in results:
            print(f"{Path(r['model']).name}  {r['backend']:<14} {r['samples']} images  "
                  f"accuracy {r['accuracy']:.2%}  {r['seconds']:.2f}s")
    return 0


def run_in_chunks(backend, images, label: str, show: bool | None = None, chunk: int = EVAL_CHUNK,
                  every_output: bool = False):
    """(outputs (N, K), seconds of run time) over `images` in chunks, with a progress bar on stderr.

    With `every_output`, a list of (N, K_j) arrays, one per model output, in the model's order.
    The first image is run once before timing: JIT compilation and allocation are not timed.
    `show`: None lets tqdm decide (shown on a terminal), False hides the bar.
    """
    import numpy as np

    from edgecnn.progress import progress_bar

    run = backend.run_all if hasattr(backend, "run_all") else (lambda x: [backend.run(x)])
    run(backend.prepare(images[:1]))
    outputs, seconds = [], 0.0
    with progress_bar(len(images), label, show, unit="img", file=sys.stderr, leave=False) as bar:
        for start in range(0, len(images), chunk):
            x = backend.prepare(images[start:start + chunk])
            t0 = time.perf_counter()
            ys = run(x)
            seconds += time.perf_counter() - t0
            n = len(x[0] if isinstance(x, list) else x)
            outputs.append([np.asarray(y).reshape(n, -1) for y in ys])
            bar.update(n)
    every = [np.concatenate([chunk_out[j] for chunk_out in outputs]) for j in range(len(outputs[0]))]
    return (every if every_output else every[0]), seconds
