"""`edgecnn demo`: the main job, end to end.

find MNIST -> train lenet5 -> quantize -> write model.tflite, model.onnx,
model.c -> evaluate float vs int8 (Numba) vs LiteRT vs onnxruntime, and print
one table: accuracy, agreement, size, speed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from types import SimpleNamespace

from edgecnn.cli.common import DATA_HELP, add_command, emit_json, nonnegative_int, positive_int

COMPARE_THREADS = 2


def register(sub) -> None:
    p = add_command(sub, "demo", help="the main job: train, quantize, export and compare",
                    description="Find MNIST (downloading it if needed), train lenet5, quantize it to int8, write "
                                "model.tflite, model.onnx and model.c, and compare float, int8 (Numba), LiteRT, "
                                "onnxruntime and the compiled C on the 10,000 test images.")
    p.add_argument("--data", metavar="DIR", help=DATA_HELP)
    p.add_argument("--epochs", type=positive_int, default=10, help="training epochs")
    p.add_argument("--out", metavar="DIR", default="demo-out", help="output folder")
    p.add_argument("--arch", default="lenet5", help="lenet5 or lenet5-classic")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="initialisation and shuffling seed")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of the table")
    p.set_defaults(func=run)


def say(msg: str) -> None:
    print(f"[demo] {msg}", file=sys.stderr, flush=True)


def run(args) -> int:
    import numba  # noqa: F401  (the trainer's; missing, it is one line naming the extra, before any work)
    import numpy as np

    from edgecnn.data.datasets import explicit_root, find_dataset, lenet_input, load_split
    from edgecnn.errors import DatasetNotFoundError
    from edgecnn.model import build
    from edgecnn.model.checkpoint import save_checkpoint
    from edgecnn.train.trainer import TrainConfig, train

    out = Path(args.out)
    build(args.arch)  # an unknown name fails before anything is written
    try:
        folder = find_dataset("mnist", args.data)
    except DatasetNotFoundError:
        from edgecnn.data.fetch import fetch

        named = explicit_root(args.data)
        if named and not named[0].is_dir():
            raise
        say("MNIST not found; downloading it")
        folder = fetch("mnist", args.data, quiet=args.quiet)
    say(f"data: {folder}")
    train_images, train_labels = load_split("mnist", "train", folder)
    test_images, test_labels = load_split("mnist", "test", folder)
    x_train, x_test = lenet_input(train_images), lenet_input(test_images)

    out.mkdir(parents=True, exist_ok=True)
    say(f"training {args.arch} for {args.epochs} epochs (Adam, batch 64, cosine schedule)")
    model = build(args.arch).init_params(args.seed)
    state = train(model, (x_train, train_labels), (x_test, test_labels), TrainConfig(epochs=args.epochs, seed=args.seed),
                  progress=False if args.quiet else None,
                  on_epoch=lambda m, s, o: say(f"epoch {s.epoch}: test accuracy {s.history[-1]['test_accuracy']:.2%}"))
    npz = save_checkpoint(out / "model.npz", model, {"epoch": state.epoch, "history": state.history})
    say(f"wrote {npz} ({state.seconds:.1f}s of training)")
    del x_train, x_test, model  # the float arrays are 290 MB: free them before comparing back ends

    from edgecnn.cli.quantize_cmd import quantize_and_export

    tflite = out / "model.tflite"
    qargs = SimpleNamespace(model=str(npz), data=str(folder), dataset="mnist", calib_samples=1000,
                            calibration="minmax", per_tensor=False, out=str(tflite), quiet=True, json=False,
                            eval_limit=None, data_folder=str(folder))
    result, report = quantize_and_export(qargs)
    say(f"wrote {tflite} ({result['bytes']:,} bytes)")
    exports = _exports(out, tflite)

    rows = _compare(npz, tflite, out / "model.onnx", test_images, test_labels, np, quiet=args.quiet)
    if args.json:
        emit_json({"out": str(out), "data": str(folder), "arch": args.arch, "epochs": state.epoch,
                   "training_seconds": round(state.seconds, 3),
                   "written": [str(npz), str(tflite), *exports],
                   "rows": [{"backend": name, "accuracy": acc, "identical_to_numba": agree or None,
                             "bytes": size, "images_per_second": round(ips, 1)}
                            for name, acc, agree, size, ips in rows]})
    else:
        print(_table(rows, exports))
    return 0


def _exports(out: Path, tflite: Path) -> list[str]:
    """The other formats, when their exporters are installed."""
    done = []
    try:
        from edgecnn.deploy.export import export_model
    except ImportError:
        return done
    for suffix in (".onnx", ".c"):
        target = out / f"model{suffix}"
        try:
            export_model(tflite, target)
            done.append(str(target))
            say(f"wrote {target}")
        except Exception as exc:  # an optional exporter failing must not hide the main results
            say(f"skipped {suffix}: {exc}")
    return done


def _compare(npz, tflite, onnx, images, labels, np, quiet: bool = False):
    """One row per back end; each runs the test set in chunks, so memory stays far below a whole-set run."""
    from edgecnn.cli.eval_cmd import run_in_chunks
    from edgecnn.deploy.backends import open_backend
    from edgecnn.deploy.bench import set_threads

    rows, reference = [], None
    runs = [(npz, "float"), (tflite, "numba"), (tflite, "litert-ref"), (tflite, "litert")]
    if onnx.exists():
        runs.append((onnx, "onnxruntime"))
    for path, name in runs:
        try:
            b = open_backend(path, name, num_threads=COMPARE_THREADS)
        except Exception as exc:
            say(f"{name}: unavailable ({exc})")
            continue
        set_threads(b.name, COMPARE_THREADS)
        y, secs = run_in_chunks(b, images, name, show=False if quiet else None)
        is_int8 = b.is_int8
        del b  # one back end in memory at a time
        acc = float(np.mean(np.argmax(y, 1) == labels))
        if name == "numba":
            reference = y
        agree = ""
        if is_int8 and reference is not None:
            agree = f"{np.mean(np.all(y == reference, axis=1)):.2%}"
        rows.append((name, acc, agree, Path(path).stat().st_size, len(labels) / secs))
    x_int8 = None
    if reference is not None:
        from edgecnn.data.datasets import lenet_input_int8

        x_int8 = lenet_input_int8(images)  # the int8 model's input: pixel - 128, exactly
    c_row = _c_row(Path(tflite).with_suffix(".c"), reference, x_int8=x_int8, labels=labels, np=np)
    if c_row:
        rows.append(c_row)
    return rows


def _c_row(c_file: Path, reference, x_int8, labels, np):
    """Compile the C export with gcc (when present) and run it on the same int8 inputs."""
    import shutil
    import subprocess
    import tempfile

    if not c_file.exists() or shutil.which("gcc") is None or reference is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        exe = Path(tmp) / "model"
        build = subprocess.run(["gcc", "-std=c99", "-O3", "-DEDGECNN_MAIN", str(c_file), "-o", str(exe)],
                               capture_output=True, text=True)
        if build.returncode != 0:
            say(f"gcc could not build {c_file.name}: {build.stderr.strip().splitlines()[-1:]}")
            return None
        t0 = time.perf_counter()
        run = subprocess.run([str(exe)], input=np.ascontiguousarray(x_int8).tobytes(), capture_output=True)
        secs = time.perf_counter() - t0
    if run.returncode != 0:
        say(f"the compiled C model failed: {run.stderr.decode(errors='replace').strip()}")
        return None
    y = np.frombuffer(run.stdout, dtype=np.int8).reshape(len(labels), -1)
    acc = float(np.mean(np.argmax(y, 1) == labels))
    agree = f"{np.mean(np.all(y == reference, axis=1)):.2%}"
    return ("c (gcc -O3)", acc, agree, c_file.stat().st_size, len(labels) / secs)


def _table(rows, exports) -> str:
    lines = ["", f"{'backend':<13} {'accuracy':>9} {'identical to numba':>19} {'file bytes':>11} {'images/s':>10}",
             "-" * 67]
    for name, acc, agree, size, ips in rows:
        lines.append(f"{name:<13} {acc:>9.2%} {agree:>19} {size:>11,} {ips:>10,.0f}")
    lines.append("")
    lines.append("identical = every element of the int8 output tensor equal, over the 10,000 MNIST test images")
    if exports:
        lines.append("also wrote: " + ", ".join(exports))
    return "\n".join(lines)
