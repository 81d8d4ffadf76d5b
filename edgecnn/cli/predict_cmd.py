"""`edgecnn predict`: classify image files, or run a model on .npy inputs.

Device-light: Pillow and numpy, no trainer, no onnx, no Numba unless asked.
"""

from __future__ import annotations

from pathlib import Path

from edgecnn.cli.common import add_command

TOP_K = 3


def register(sub) -> None:
    p = add_command(sub, "predict", help="classify images (PNG, JPEG, PGM, ...) or run on .npy inputs",
                    description="Classify images with a .tflite, .npz or .onnx model and print each one's "
                                "softmax probabilities. For one-channel models, images are converted to gray, "
                                "transparency is composited, dark-on-light drawings are inverted (see --invert), "
                                "and images larger than the model's input are framed like MNIST digits. Colour "
                                "models (HxWx3, e.g. CIFAR-10) get RGB pixels (transparency on white), scaled "
                                "to fit when larger. Models whose input is not an image take .npy files of the "
                                "input's shape.")
    p.add_argument("model", metavar="MODEL", help=".tflite (int8), .npz (float) or .onnx (from `edgecnn export`)")
    p.add_argument("images", nargs="+", metavar="IMAGE",
                   help="PNG, JPEG, PGM/PPM, BMP, GIF, TIFF or WebP images, or .npy arrays (HxW, or HxWx3 "
                        "for colour models)")
    p.add_argument("--backend", default=None,
                   help="numba, litert, litert-ref, litert-builtin (.tflite) or float (.npz); "
                        "default: numba when installed, else litert; float for .npz, onnxruntime for .onnx")
    p.add_argument("--invert", choices=("auto", "yes", "no"), default="auto",
                   help="make strokes white on black as in MNIST: auto inverts images with a light border "
                        "(one-channel models; colour images are inverted only with yes)")
    p.add_argument("--framing", choices=("auto", "mnist", "resize"), default="auto",
                   help="for images larger than the model's input: mnist puts the strokes in a 20x20 box "
                        "centred by mass in 28x28; resize scales the whole image; auto picks mnist for "
                        "28x28 digit models")
    p.add_argument("--output", metavar="NAME|INDEX", default=None,
                   help="models with several outputs: the one holding the class scores (default: the one "
                        "the metadata's labels fit, else a softmax output, else the first)")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=run)


def run(args) -> int:
    import numpy as np

    from edgecnn.cli.common import emit_json
    from edgecnn.deploy.backends import open_backend
    from edgecnn.errors import ShapeError

    b = open_backend(args.model, args.backend)
    inputs = getattr(b, "inputs", [])
    if len(inputs) > 1:
        names = ", ".join(f"{s.name} {'x'.join(map(str, s.shape))}" for s in inputs)
        raise ShapeError(f"{Path(args.model).name} has {len(inputs)} inputs ({names}); "
                         "predict feeds models with one input")
    k = choose_output(b, args.output)
    shape = tuple(int(d) for d in b.input_shape)
    if len(shape) == 3 and shape[2] in (1, 3) and not (shape[2] == 3 and _batches_of_one(args.images, shape)):
        fit = _fit if shape[2] == 1 else _fit_rgb
        fitted = [fit(path, b, shape, args) for path in args.images]
        x = b.prepare(np.stack([f.pixels for f in fitted]))
        notes = [{"inverted": f.inverted, "framing": f.framing} for f in fitted]
    else:
        x = b.prepare_values(np.stack([_values(path, shape) for path in args.images]))
        notes = [{} for _ in args.images]
    ys = b.run_all(x) if hasattr(b, "run_all") else [b.run(x)]
    every = [np.asarray(y).reshape(len(args.images), -1) for y in ys]
    raw = every[k]
    probs = probabilities(b, raw)
    several = len(every) > 1
    rows = []
    for i, (path, p, note) in enumerate(zip(args.images, probs, notes)):
        top = int(np.argmax(p))
        # one output: its raw values; several: one list per output, in the model's output order
        outputs = [_raw_list(y[i]) for y in every] if several else _raw_list(raw[i])
        row = {"image": str(path), "label": b.labels[top], "probability": float(p[top]),
               "scores": [round(float(v), 6) for v in p], "labels": list(b.labels), "outputs": outputs, **note}
        if several:
            row.update(output=b.output_name, output_index=k)
        rows.append(row)
    if args.json:
        emit_json(rows)
        return 0
    for row in rows:
        order = np.argsort(row["scores"])[::-1][:TOP_K]
        top = "  ".join(f"{row['labels'][i]} {row['scores'][i]:.1%}" for i in order)
        extra = " (inverted)" if row.get("inverted") else ""
        print(f"{Path(row['image']).name}: {row['label']}  [{top}]{extra}")
    return 0


def _raw_list(values) -> list:
    """An output's raw values as JSON numbers: ints for int8/uint8 outputs, floats for float32."""
    import numpy as np

    return values.astype(int if np.issubdtype(values.dtype, np.integer) else float).tolist()


def choose_output(backend, wanted: str | None) -> int:
    """The classification output: `wanted` (a name or an index), else the one the metadata's labels fit
    (the backend's own choice), else the first softmax-like output (int8 scale 1/256, zero point -128)."""
    from edgecnn.errors import EdgecnnError

    outputs = getattr(backend, "outputs", [])
    if len(outputs) <= 1:
        if wanted not in (None, "0", outputs[0].name if outputs else None):
            raise EdgecnnError(f"--output {wanted}: the model has one output")
        return 0
    if wanted is not None:
        names = [o.name for o in outputs]
        if wanted in names:
            k = names.index(wanted)
        elif wanted.isdigit() and int(wanted) < len(outputs):
            k = int(wanted)
        else:
            raise EdgecnnError(f"--output {wanted}: no such output; the model's outputs are {', '.join(names)} "
                               f"(or 0..{len(outputs) - 1})")
    elif isinstance(backend.metadata, dict) and backend.metadata.get("labels"):
        k = backend.output_index
    else:
        k = next((j for j, o in enumerate(outputs)
                  if o.dtype.name == "int8" and o.zero_point == -128 and o.scale == 1 / 256), 0)
    backend.select_output_index(k)
    return k


def probabilities(backend, raw):
    """Softmax of the real-valued outputs; outputs that already are probabilities are kept as they are."""
    import numpy as np

    y = backend.dequantize(raw)
    if np.all(y >= -1e-6) and np.all(y <= 1 + 1e-6) and np.allclose(y.sum(axis=1), 1.0, atol=0.02):
        return np.clip(y, 0.0, 1.0)  # a softmax output layer (int8 softmax: scale 1/256, zero point -128)
    e = np.exp(y - y.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def content_size(backend, h: int, w: int) -> tuple[int, int]:
    """The input minus the model's zero padding: where the digit itself goes (28x28 in LeNet's 32x32)."""
    pre = backend.metadata.get("preprocessing") if isinstance(backend.metadata, dict) else None
    if isinstance(pre, str):  # ONNX metadata carries it as JSON text
        import json

        try:
            pre = json.loads(pre)
        except (ValueError, RecursionError):
            pre = None
    pad = pre.get("pad") if isinstance(pre, dict) else None
    if not isinstance(pad, int) or isinstance(pad, bool) or not 0 <= 2 * pad < min(h, w):
        pad = 2 if (h, w) == (32, 32) and backend.labels == [str(i) for i in range(10)] else 0
    return h - 2 * pad, w - 2 * pad


def _fit(path, backend, shape, args):
    from edgecnn.deploy.images import fit_image, read_image

    h, w, _ = shape
    return fit_image(read_image(path), h, w, invert=args.invert, framing=args.framing,
                     content=content_size(backend, h, w))


def _fit_rgb(path, backend, shape, args):
    from edgecnn.deploy.images import fit_image_rgb, read_image_rgb

    h, w, _ = shape
    return fit_image_rgb(read_image_rgb(path), h, w, invert=args.invert, framing=args.framing)


def _batches_of_one(paths, shape) -> bool:
    """Whether every file is a .npy batch of one (1, H, W, C): input values, as predict took them before
    it read colour images (an HxWx3 .npy is an RGB image)."""
    from edgecnn.deploy.npy import npy_shape

    return all(Path(p).suffix.lower() == ".npy" and Path(p).is_file() and npy_shape(p) == (1, *shape)
               for p in paths)


def _values(path, shape):
    """A .npy input for a model whose input is not an image: exactly the input's shape, or a batch of one."""
    import numpy as np

    from edgecnn.deploy.npy import read_npy
    from edgecnn.errors import ShapeError

    if Path(path).suffix.lower() != ".npy":
        dims = "x".join(map(str, shape))
        raise ShapeError(f"{Path(path).name}: this model's input is {dims}, not an image; give a .npy file")
    x = read_npy(path)
    if x.shape == (1, *shape):
        x = x[0]
    if x.shape != shape:
        raise ShapeError(f"{Path(path).name}: shape {x.shape} does not match the model's input {shape}")
    if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
        raise ShapeError(f"{Path(path).name}: holds NaN or infinite values")
    return x
