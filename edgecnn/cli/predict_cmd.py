"""`edgecnn predict`: classify image files. Device-light: no trainer, no onnx, no Numba unless asked."""

from __future__ import annotations

from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("predict", help="classify PNG, PGM or .npy images",
                       description="Classify grayscale images (PNG, PGM or .npy) with a .tflite or .npz model.")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--backend", default=None,
                   help="numba, litert, litert-ref, litert-builtin (.tflite) or float (.npz); "
                        "default: numba when installed, else litert; float for .npz, onnxruntime for .onnx")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=run)


def run(args) -> int:
    import numpy as np

    from edgecnn.cli.common import emit_json
    from edgecnn.deploy.backends import open_backend
    from edgecnn.deploy.images import read_image

    b = open_backend(args.model, args.backend)
    images = [read_image(p) for p in args.images]
    if len({img.shape for img in images}) != 1:
        from edgecnn.errors import ShapeError

        sizes = ", ".join(f"{Path(p).name} {img.shape[0]}x{img.shape[1]}" for p, img in zip(args.images, images))
        raise ShapeError(f"all images must have the same size: {sizes}")
    images = np.stack(images)
    out = np.asarray(b.run(b.prepare(images))).reshape(len(images), -1)
    rows = []
    for path, scores in zip(args.images, out):
        k = int(np.argmax(scores))
        label = b.labels[k] if k < len(b.labels) else str(k)
        rows.append({"image": str(path), "label": label, "scores": scores.astype(float if not b.is_int8 else int).tolist()})
    if args.json:
        emit_json(rows)
    else:
        for r in rows:
            print(f"{Path(r['image']).name}: {r['label']}")
    return 0
