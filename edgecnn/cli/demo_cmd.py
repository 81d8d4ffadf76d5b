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

from edgecnn.cli.common import positive_int


def register(sub) -> None:
    p = sub.add_parser("demo", help="the main job: train, quantize, export and compare",
                       description="Find MNIST (downloading it if needed), train lenet5, quantize it to int8, write "
                                   "model.tflite, and compare float, int8 (Numba) and LiteRT.")
    p.add_argument("--data", metavar="DIR", help="data root (default: $EDGECNN_DATA, ~/.cache/edgecnn, ...)")
    p.add_argument("--epochs", type=positive_int, default=10)
    p.add_argument("--out", metavar="DIR", default="edgecnn-demo", help="output folder (default: ./edgecnn-demo)")
    p.add_argument("--arch", default="lenet5", help="lenet5 or lenet5-classic")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def say(msg: str) -> None:
    print(f"[demo] {msg}", file=sys.stderr, flush=True)


def run(args) -> int:
    import numpy as np

    from edgecnn.data.datasets import find_dataset, lenet_input, load_split
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

        say("MNIST not found; downloading it")
        folder = fetch("mnist", args.data, quiet=args.quiet)
    say(f"MNIST: {folder}")
    train_images, train_labels = load_split("mnist", "train", args.data)
    test_images, test_labels = load_split("mnist", "test", args.data)
    x_train, x_test = lenet_input(train_images), lenet_input(test_images)

    out.mkdir(parents=True, exist_ok=True)
    say(f"training {args.arch} for {args.epochs} epochs (Adam, batch 64, cosine schedule)")
    model = build(args.arch).init_params(args.seed)
    state = train(model, (x_train, train_labels), (x_test, test_labels), TrainConfig(epochs=args.epochs, seed=args.seed),
                  progress=False if args.quiet else None,
                  on_epoch=lambda m, s, o: say(f"epoch {s.epoch}: test accuracy {s.history[-1]['test_accuracy']:.2%}"))
    npz = save_checkpoint(out / "model.npz", model, {"epoch": state.epoch, "history": state.history})
    say(f"wrote {npz} ({state.seconds:.1f}s of training)")

    from edgecnn.cli.quantize_cmd import quantize_and_export

    tflite = out / "model.tflite"
    qargs = SimpleNamespace(model=str(npz), data=args.data, dataset="mnist", calib_samples=1000,
                            calibration="minmax", per_tensor=False, out=str(tflite), quiet=args.quiet, json=False,
                            eval_limit=None)
    result, report = quantize_and_export(qargs)
    say(f"wrote {tflite} ({result['bytes']:,} bytes)")
    exports = _exports(out, tflite)

    rows = _compare(npz, tflite, out / "model.onnx", test_images, test_labels, np)
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


def _compare(npz, tflite, onnx, images, labels, np):
    from edgecnn.deploy.backends import open_backend
    from edgecnn.deploy.bench import set_threads

    rows, reference = [], None
    runs = [(npz, "float"), (tflite, "numba"), (tflite, "litert-ref"), (tflite, "litert")]
    if onnx.exists():
        runs.append((onnx, "onnxruntime"))
    for path, name in runs:
        try:
            b = open_backend(path, name, num_threads=2)
        except Exception as exc:
            say(f"{name}: unavailable ({exc})")
            continue
        set_threads(b.name, 2)
        x = b.prepare(images)
        b.run(x[:8])  # warm-up (JIT)
        t0 = time.perf_counter()
        y = np.asarray(b.run(x)).reshape(len(labels), -1)
        secs = time.perf_counter() - t0
        acc = float(np.mean(np.argmax(y, 1) == labels))
        if name == "numba":
            reference = y
        agree = ""
        if b.is_int8 and reference is not None:
            agree = f"{np.mean(np.all(y == reference, axis=1)):.2%}"
        rows.append((name, acc, agree, Path(path).stat().st_size, len(labels) / secs))
    return rows


def _table(rows, exports) -> str:
    lines = ["", f"{'backend':<12} {'accuracy':>9} {'identical to numba':>19} {'file bytes':>11} {'images/s':>10}",
             "-" * 66]
    for name, acc, agree, size, ips in rows:
        lines.append(f"{name:<12} {acc:>9.2%} {agree:>19} {size:>11,} {ips:>10,.0f}")
    lines.append("")
    lines.append("identical = every element of the int8 output tensor equal, over the 10,000 MNIST test images")
    if exports:
        lines.append("also wrote: " + ", ".join(exports))
    return "\n".join(lines)
