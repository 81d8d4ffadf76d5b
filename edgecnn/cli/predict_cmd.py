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
                        "default: litert when installed, else numba")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=run)


def run(args) -> int:
    import numpy as np

    from edgecnn.cli.common import emit_json
    from edgecnn.deploy.backends import open_backend
    from edgecnn.deploy.images import read_image

    backend = args.backend or _default_backend(args.model)
    b = open_backend(args.model, backend)
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


def _default_backend(model: str) -> str:
    if model.lower().endswith(".npz"):
        return "float"
    if model.lower().endswith(".onnx"):
        return "onnxruntime"
    import importlib.util

    for mod in ("ai_edge_litert", "tflite_runtime"):
        if importlib.util.find_spec(mod) is not None:
            return "litert"
    return "numba"
