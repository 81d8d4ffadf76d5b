"""Regression gates for users' CI: float vs int8 accuracy and agreement, and a stored baseline.

The same checks serve `edgecnn eval --max-drop/--min-agreement/--baseline` and
the Python API `assert_int8_close`, so a CI job and a test suite fail on the same
numbers. Accuracies are fractions in [0, 1]; limits on drops are in percentage
points, as people say them ("no more than 1 point below float").
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgecnn.deploy.backends import FloatBackend
from edgecnn.errors import EdgecnnError

SQNR_DEPARTURE_DB = 15.0  # an int8 layer this far from float has left it (good PTQ layers measure 25-45 dB)
SQNR_IMAGES = 256  # images the per-layer SQNR is measured on


class GateFailure(EdgecnnError):
    """A regression gate failed: the message is the one line a CI log shows."""


# --- identities: which model, which images ------------------------------------------------------------------
def file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def images_identity(images: np.ndarray, dataset: str, split: str) -> dict:
    """What identifies an evaluation's images: dataset, split, count and a SHA-256 of their shape and bytes."""
    images = np.ascontiguousarray(images)
    h = hashlib.sha256(repr((images.dtype.str, images.shape)).encode())
    h.update(images.tobytes())
    return {"dataset": str(dataset), "split": str(split), "count": int(len(images)), "sha256": h.hexdigest()}


def same_images(a: dict, b: dict) -> bool:
    return all(a.get(k) == b.get(k) for k in ("dataset", "split", "count", "sha256"))


def describe_images(identity: dict) -> str:
    return f"{identity.get('count')} {identity.get('dataset')} {identity.get('split')} images " \
           f"(sha256 {str(identity.get('sha256'))[:12]})"


# --- metrics ------------------------------------------------------------------------------------------------
def class_metrics(pred: np.ndarray, labels: np.ndarray, classes: int) -> dict:
    """Per-class accuracy (None for a class with no image) and the confusion matrix [true][predicted]."""
    pred = np.asarray(pred, np.int64)
    labels = np.asarray(labels, np.int64)
    n = max(classes, int(pred.max(initial=0)) + 1, int(labels.max(initial=0)) + 1)
    confusion = np.zeros((n, n), np.int64)
    np.add.at(confusion, (labels, pred), 1)
    totals = confusion.sum(axis=1)
    per_class = [float(confusion[c, c] / totals[c]) if totals[c] else None for c in range(n)]
    return {"per_class_accuracy": per_class, "confusion": confusion.tolist()}


@dataclass
class Comparison:
    """A reference model (float) against a model under test (int8) on the same labelled images."""

    reference_accuracy: float
    accuracy: float
    agreement: float  # share of images whose top-1 class is the same in both
    reference_per_class: list
    per_class: list
    labels: list[str]
    samples: int
    names: tuple[str, str] = ("float", "int8")
    departure: str | None = None  # the op where the int8 model leaves the float one, when known
    failures: list[str] = field(default_factory=list)
    images: object = field(default=None, repr=False)  # the uint8 images compared (for the departure search)

    @property
    def drop_points(self) -> float:
        return 100.0 * (self.reference_accuracy - self.accuracy)

    def worst_classes(self, k: int = 3) -> list[tuple[str, float, float]]:
        """[(label, reference accuracy, accuracy)] of the k classes that lost the most."""
        rows = [(self.labels[c] if c < len(self.labels) else str(c), r, a)
                for c, (r, a) in enumerate(zip(self.reference_per_class, self.per_class))
                if r is not None and a is not None]
        return sorted(rows, key=lambda row: row[2] - row[1])[:k]

    def report(self) -> str:
        """A readable multi-line report: accuracies, drop, agreement, worst classes, failed gates."""
        ref, test = self.names
        lines = [f"{ref} accuracy {self.reference_accuracy:.2%}, {test} accuracy {self.accuracy:.2%} "
                 f"(drop {self.drop_points:.2f} points) on {self.samples} images",
                 f"top-1 agreement {self.agreement:.2%}",
                 "worst classes: " + (", ".join(f"{name} {r:.1%} -> {a:.1%}" for name, r, a in self.worst_classes()
                                                if a < r) or "no class lost accuracy")]
        if self.departure:
            lines.append(self.departure)
        lines += [f"FAILED: {f}" for f in self.failures]
        return "\n".join(lines)


def compare_predictions(ref_pred, pred, labels, label_names, names=("float", "int8")) -> Comparison:
    labels = np.asarray(labels)
    classes = len(label_names)
    ref_m, m = class_metrics(ref_pred, labels, classes), class_metrics(pred, labels, classes)
    return Comparison(float(np.mean(ref_pred == labels)), float(np.mean(pred == labels)),
                      float(np.mean(np.asarray(ref_pred) == np.asarray(pred))), ref_m["per_class_accuracy"],
                      m["per_class_accuracy"], list(label_names), int(len(labels)), tuple(names))


# --- gates: each returns the one-line failure, or None ------------------------------------------------------
def max_drop_failure(c: Comparison, max_drop: float, limit_name: str = "--max-drop") -> str | None:
    if c.drop_points <= max_drop + 1e-9:
        return None
    ref, test = c.names
    return (f"accuracy: {test} {c.accuracy:.2%} is {c.drop_points:.2f} points below {ref} "
            f"{c.reference_accuracy:.2%}, more than {limit_name} {max_drop:g}")


def min_agreement_failure(c: Comparison, min_agreement: float, limit_name: str = "--min-agreement") -> str | None:
    if c.agreement >= min_agreement - 1e-12:
        return None
    ref, test = c.names
    return (f"agreement: {test} and {ref} agree on the top-1 class of {c.agreement:.2%} of {c.samples} images, "
            f"below {limit_name} {min_agreement:g}")


def with_departure(message: str, departure: str | None) -> str:
    return f"{message}; {departure}" if departure else message


# --- where int8 departs from float: per-layer SQNR ------------------------------------------------------------
def sqnr_departure(float_model, graph, x_float: np.ndarray, threshold_db: float = SQNR_DEPARTURE_DB):
    """(first layer row {"name", "sqnr_db", "op"} whose SQNR falls below threshold_db, all rows).

    The per-layer SQNR is the quantize report's, measured on `x_float` (model inputs)
    with the Numba runtime. None first when no layer falls below, or when the
    .tflite does not carry the float model's layer names (then rows is []).
    """
    from edgecnn.deploy.runtime import Runtime
    from edgecnn.quantize.layer_map import quantized_view
    from edgecnn.quantize.report import layer_sqnr

    qm = quantized_view(float_model, graph)
    if not qm.layer_tensors:
        return None, []
    rows = layer_sqnr(float_model, qm, x_float, Runtime(graph).run_intermediates)
    kinds = {t: (i, op.kind) for i, op in enumerate(graph.ops) for t in op.outputs}
    for row, (_, t, _) in zip(rows, qm.layer_tensors):
        i, kind = kinds[t]
        row["op"] = f"op {i} {kind}"
    first = next((r for r in rows if r["sqnr_db"] < threshold_db), None)
    return first, rows


def describe_departure(row: dict | None, threshold_db: float = SQNR_DEPARTURE_DB, rows=()) -> str | None:
    if row is None:
        if not rows:
            return None
        low = min(rows, key=lambda r: r["sqnr_db"])
        return (f"no op's SQNR vs float is below {threshold_db:g} dB (lowest: {low['op']} ({low['name']}), "
                f"{low['sqnr_db']:.1f} dB)")
    return (f"int8 departs from float at {row['op']} ({row['name']}): SQNR {row['sqnr_db']:.1f} dB "
            f"< {threshold_db:g} dB")


def find_departure(reference, int8_model, images: np.ndarray) -> str | None:
    """The op where an edgecnn-made int8 model leaves its float model, or None (unknown, or no such op).

    `reference`: a float model, a float backend, or a .npz/.onnx path; `int8_model`:
    a .tflite path, an Int8Graph or a QuantizedModel.
    """
    model = _float_model(reference)
    graph = getattr(int8_model, "graph", int8_model)
    if isinstance(int8_model, (str, Path)):
        if Path(int8_model).suffix.lower() != ".tflite":
            return None
        from edgecnn.deploy.tflite.reader import read_tflite

        graph = read_tflite(int8_model)
    if model is None or not hasattr(graph, "ops"):
        return None
    x = FloatBackend.from_model(model).prepare(images[:SQNR_IMAGES])
    try:
        row, rows = sqnr_departure(model, graph, x)
    except ModuleNotFoundError:  # no Numba (a device install): the gate still fails, without the op
        return None
    return describe_departure(row, rows=rows)


def _float_model(source):
    """A float model object from a model, a float backend, or a .npz/.onnx path; None for anything else."""
    if hasattr(source, "forward_trace"):
        return source
    if hasattr(getattr(source, "model", None), "forward_trace"):
        return source.model
    if not isinstance(source, (str, Path)):
        return None
    path = Path(source)
    if path.suffix.lower() == ".npz":
        from edgecnn.model.checkpoint import load_checkpoint

        return load_checkpoint(path)
    if path.suffix.lower() == ".onnx" and not is_int8_onnx(path):
        from edgecnn.model.onnx_import import import_onnx

        return import_onnx(path)
    return None


# --- opening the reference model ----------------------------------------------------------------------------
def is_int8_onnx(path) -> bool:
    """Whether an .onnx is an edgecnn int8 export (its metadata has input qparams), not a float model."""
    try:
        import onnx
    except ImportError:
        return False
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # not ONNX at all: the backend that opens it says so in one line
        return False
    return bool({p.key for p in model.metadata_props} & {"input_scale", "input0_scale", "exactness"})


def open_reference(path):
    """The backend of a gate's reference: .npz checkpoint, float .onnx (imported), or what open_backend opens."""
    from edgecnn.deploy.backends import open_backend

    path = Path(path)
    if path.suffix.lower() == ".onnx" and path.is_file() and not is_int8_onnx(path):
        from edgecnn.model.onnx_import import import_onnx

        return FloatBackend.from_model(import_onnx(path))
    return open_backend(path, "float" if path.suffix.lower() == ".npz" else None)


# --- the Python API ------------------------------------------------------------------------------------------
def load_dataset(name: str = "mnist", split: str = "test", limit: int | None = None, data=None):
    """(uint8 images, int64 labels) of a split, first `limit` only; data found as the CLI finds it
    (`data`, else $EDGECNN_DATA, ~/.cache/edgecnn, /usr/share/datasets)."""
    from edgecnn.data.datasets import find_dataset, load_split
    from edgecnn.errors import DataError

    images, labels = load_split(name, split, find_dataset(name, data))
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    if len(images) == 0:
        raise DataError(f"the {split} split of {name} holds no images")
    return images, labels.astype(np.int64)


def _open_int8(model, backend: str | None):
    from edgecnn.deploy.backends import NumbaBackend, open_backend

    if isinstance(model, (str, Path)):
        return open_backend(model, backend)
    graph = getattr(model, "graph", model)  # a QuantizedModel, or an Int8Graph
    if hasattr(graph, "ops") and hasattr(graph, "tensors"):
        return NumbaBackend(graph)
    raise TypeError(f"int8_model must be a .tflite path, an Int8Graph or a QuantizedModel, not {type(model).__name__}")


def _open_float(model):
    if isinstance(model, (str, Path)):
        return open_reference(model)
    if hasattr(model, "forward_trace"):
        return FloatBackend.from_model(model)
    raise TypeError(f"float_model must be a .npz/.onnx path or an edgecnn float model, not {type(model).__name__}")


def predictions(backend, images: np.ndarray, classes: int) -> np.ndarray:
    """Top-1 class of every image on the backend's classification output."""
    from edgecnn.deploy.evaluate import run_in_chunks

    k = backend.select_output(classes) if hasattr(backend, "select_output") else 0
    outs, _ = run_in_chunks(backend, images, backend.name, show=False, every_output=True)
    return np.argmax(outs[k], axis=1)


def evaluate_int8(float_model, int8_model, dataset: str = "mnist", split: str = "test", limit: int | None = None,
                  data=None, backend: str | None = None, images=None, labels=None) -> Comparison:
    """Accuracy, agreement and per-class accuracy of an int8 model against its float model on a dataset split.

    Give `images`/`labels` (uint8 (N, H, W), ints) to use your own images instead of a dataset.
    """
    if images is None:
        images, labels = load_dataset(dataset, split, limit, data)
    labels = np.asarray(labels, np.int64)
    ref, test = _open_float(float_model), _open_int8(int8_model, backend)
    classes = len(ref.labels) or int(labels.max()) + 1
    names = list(ref.labels) if len(ref.labels) == classes else [str(i) for i in range(classes)]
    c = compare_predictions(predictions(ref, images, classes), predictions(test, images, classes), labels, names,
                            ("float", f"int8 ({test.name})"))
    c.images = images  # for the departure search, when a gate fails
    return c


def assert_int8_close(float_model, int8_model, dataset: str = "mnist", split: str = "test", limit: int | None = None,
                      max_drop: float | None = 1.0, min_agreement: float | None = None, data=None,
                      backend: str | None = None, images=None, labels=None) -> Comparison:
    """Raise AssertionError with a readable report when the int8 model drifts from its float model.

    Fails when int8 accuracy is more than `max_drop` percentage points below float's,
    or when fewer than `min_agreement` (a fraction) of the images get the same top-1
    class from both. `float_model`: .npz/.onnx path or a model object; `int8_model`:
    .tflite path, Int8Graph or QuantizedModel. Returns the Comparison when it passes.
    """
    c = evaluate_int8(float_model, int8_model, dataset, split, limit, data, backend, images, labels)
    if max_drop is not None:
        c.failures.append(max_drop_failure(c, max_drop, "max_drop"))
    if min_agreement is not None:
        c.failures.append(min_agreement_failure(c, min_agreement, "min_agreement"))
    c.failures = [f for f in c.failures if f]
    if c.failures:
        c.departure = find_departure(float_model, int8_model, c.images)
        raise AssertionError(f"int8 model drifted from float on {c.samples} {dataset} {split} images:\n" + c.report())
    return c

