"""`edgecnn compare`: the op and image where two back ends (or two models) part.

A diagnostic: it exits 0 whether or not they differ; errors (unknown
backend, one not installed, a model it cannot run) are one line and exit 1.
"""

from __future__ import annotations

import sys
from pathlib import Path

from edgecnn.cli.common import add_command, add_data_args, positive_int

MAX_RANDOM_BYTES = 1 << 30


def register(sub) -> None:
    from edgecnn.deploy.compare import BACKENDS

    p = add_command(sub, "compare", help="find the first op where two back ends differ",
                    description="Run an int8 .tflite in two back ends with every intermediate tensor kept, and "
                                "report per op the differing elements and the largest difference, and the "
                                "first image and op where the two part. Exits 0 whether or not they differ.")
    p.add_argument("model", metavar="MODEL", help="int8 .tflite model")
    p.add_argument("--backends", required=True, metavar="A,B",
                   help=f"two of: {', '.join(BACKENDS)} (one name with --other: both models in it)")
    p.add_argument("--other", metavar="MODEL2",
                   help="a second .tflite with the same ops, run in the second backend (e.g. a retrained "
                        "or edited copy)")
    add_data_args(p)
    p.add_argument("--limit", type=positive_int, default=None, help="first N test images only (default: all)")
    p.add_argument("--inputs", metavar="PATH.npy|.npz",
                   help="the model's inputs instead of dataset images: an array (N, *input shape) in the "
                        "input's dtype or as real values; .npz: input0, input1, ... for several inputs")
    p.add_argument("--random", type=positive_int, metavar="N", default=None,
                   help="N seeded random inputs over the input dtype's whole range instead of dataset images")
    p.add_argument("--fc-rescale", choices=("float", "integer"), default="float",
                   help="numba/c/onnxruntime FULLY_CONNECTED rescale: float (LiteRT >= 1.3) or integer "
                        "(older runtimes, tflite-runtime 2.14)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or data line on stderr")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=run)


def parse_backends(text: str, other: bool) -> tuple[str, str]:
    from edgecnn.deploy.compare import BACKENDS
    from edgecnn.errors import EdgecnnError

    names = [s.strip() for s in text.split(",")]
    for name in names:
        if name not in BACKENDS:
            raise EdgecnnError(f"unknown backend {name!r}; choose from {', '.join(BACKENDS)}")
    if len(names) == 1 and other:
        return names[0], names[0]
    if len(names) != 2:
        raise EdgecnnError(f"--backends takes two names separated by a comma (A,B), got {text!r}"
                           + ("" if other else "; one name needs --other MODEL2"))
    return names[0], names[1]


def model_inputs(args, model):
    """The model's input arrays: --inputs, --random, or dataset images fed as `edgecnn eval` feeds them."""
    import numpy as np

    from edgecnn.deploy.backends import Int8Backend
    from edgecnn.errors import EdgecnnError, ShapeError

    graph = model.graph
    if args.inputs and args.random:
        raise EdgecnnError("give --inputs or --random, not both")
    if args.random:
        per_image = sum(int(np.prod(graph.tensors[t].shape[1:])) * np.dtype(graph.tensors[t].dtype).itemsize
                        for t in graph.inputs)  # fmt: skip
        if args.random * per_image > MAX_RANDOM_BYTES:  # made up front: bound it before numpy fills memory
            raise EdgecnnError(f"--random {args.random} needs {args.random * per_image:,} bytes of inputs; "
                               f"at most {MAX_RANDOM_BYTES // per_image:,} images of this model")
        rng = np.random.default_rng(0)
        arrays = []
        for t in graph.inputs:
            tensor = graph.tensors[t]
            shape = (args.random, *tensor.shape[1:])
            if tensor.dtype == "float32":
                arrays.append(rng.uniform(-1, 1, shape).astype(np.float32))
            else:
                info = np.iinfo(tensor.dtype)
                arrays.append(rng.integers(info.min, info.max, shape, dtype=tensor.dtype, endpoint=True))
        return arrays
    if args.inputs:
        from edgecnn.deploy.compare import check_inputs

        arrays = read_inputs(args.inputs, len(graph.inputs))
        for a, t in zip(arrays, graph.inputs):  # shape first: a 0-d or misshapen array is one line, not a crash
            tensor = graph.tensors[t]
            if a.ndim != len(tensor.shape) or tuple(a.shape[1:]) != tuple(tensor.shape[1:]):
                dims = ", ".join(map(str, tensor.shape[1:]))
                raise ShapeError(f"{Path(args.inputs).name}: input {tensor.name} takes (N, {dims}), got {a.shape}")
        x = Int8Backend(graph).prepare_values(arrays if len(arrays) > 1 else arrays[0])
        arrays = list(x) if isinstance(x, (list, tuple)) else [x]
        return check_inputs(graph, [a[:args.limit] if args.limit else a for a in arrays])
    from edgecnn.cli.common import load_images
    from edgecnn.deploy.compare import prepare_images

    images, _ = load_images(args, "test", args.limit)
    try:
        return prepare_images(graph, images)
    except ShapeError as exc:
        raise ShapeError(f"{model.name}: the {args.dataset} images cannot feed it ({exc}); "
                         "give --inputs PATH.npy or --random N") from None


def read_inputs(path: str, count: int) -> list:
    """Arrays from a .npy (one input) or a .npz holding input0 .. input{count-1}; no pickle, sizes capped.
    A file that is not one raises NpyError (an EdgecnnError)."""
    import os
    import stat
    import zipfile

    from edgecnn.deploy.npy import MAX_DATA_BYTES, ZIP_READ_ERRORS, NpyError, read_npy, read_npy_bytes
    from edgecnn.errors import ShapeError

    name = Path(path).name
    if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO would block the read below
        raise NpyError(f"{name}: not a regular file")
    if name.lower().endswith(".npy"):
        if count != 1:
            raise ShapeError(f"the model has {count} inputs; give a .npz holding input0 .. input{count - 1}")
        return [read_npy(path)]
    if not name.lower().endswith(".npz"):
        raise NpyError(f"{name}: --inputs takes a .npy or .npz file")
    try:
        with zipfile.ZipFile(path) as z:
            arrays = []
            for k in range(count):
                member = f"input{k}.npy"
                try:
                    info = z.getinfo(member)
                except KeyError:
                    raise NpyError(f"{name} holds no {member[:-4]} (the model has {count} inputs)") from None
                if info.file_size > MAX_DATA_BYTES + (1 << 16):
                    raise NpyError(f"{name}: {member} is larger than the {MAX_DATA_BYTES:,} bytes edgecnn reads")
                arrays.append(read_npy_bytes(z.read(member), f"{name}:{member}"))
            return arrays
    except ZIP_READ_ERRORS as exc:
        raise NpyError(f"{name}: not a readable .npz file ({str(exc)[:120]})") from None


def run(args) -> int:
    from edgecnn.cli.common import emit_json
    from edgecnn.deploy.compare import compare, load_model
    from edgecnn.progress import progress_bar

    a, b = parse_backends(args.backends, args.other is not None)
    model = load_model(args.model)  # model (and backends) before data
    other = load_model(args.other) if args.other else None
    inputs = model_inputs(args, model)
    total = len(inputs[0])
    label = f"{model.name} {a} vs {b}"
    with progress_bar(total, label, False if args.quiet else None, unit="img", file=sys.stderr, leave=False) as bar:
        done = [0]

        def progress(n):
            bar.update(n - done[0])
            done[0] = n

        report = compare(model, a, b, inputs=inputs, other=other, fc_rescale=args.fc_rescale, progress=progress)
    if args.json:
        emit_json(report.as_dict())
    else:
        print_report(report)
    return 0


def print_report(report) -> None:
    from edgecnn.deploy.compare import short_name as short

    a, b = report.backends
    what = f"{report.model} in {a} vs {report.other} in {b}" if report.other else f"{report.model}: {a} vs {b}"
    print(f"{what}, {report.images} images")
    width = max([len(short(op.tensor)) for op in report.ops] + [6])
    print(f"{'op':>4}  {'builtin':<24} {'tensor':<{width}} {'differing':>12} {'of':>12} {'max diff':>9} "
          f"{'images':>7} {'first':>6}")
    for op in report.ops:
        if not op.compared and not op.elements:
            print(f"{op.op_index:>4}  {op.builtin:<24} {short(op.tensor):<{width}}   not compared: a backend "
                  "does not keep it (freed, or overwritten by an in-place op)")
            continue
        first = "-" if op.first_image is None else str(op.first_image)
        print(f"{op.op_index:>4}  {op.builtin:<24} {short(op.tensor):<{width}} {op.differing:>12} {op.elements:>12} "
              f"{op.max_diff:>9} {op.images_differing:>7} {first:>6}")
    if report.first is None:
        compared = sum(op.elements for op in report.ops)
        print(f"identical: every compared op output ({compared} elements) is the same in both")
    else:
        d = report.first
        print(f"first difference: op {d.op_index} ({d.builtin}) output {short(d.tensor)}, image {d.image}: "
              f"{d.differing} of {d.elements} elements differ (largest difference {d.max_diff})")
