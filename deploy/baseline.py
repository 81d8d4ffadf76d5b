"""A stored evaluation result that later runs must not fall below: `edgecnn eval --write-baseline/--baseline`.

The file is JSON with a format name and a version. It records the images it was
measured on (dataset, split, count, SHA-256 of the pixels), and per model its
accuracy, per-class accuracy and SHA-256; with two models, their top-1 agreement.
A later run is compared only on the same images. Files are read as untrusted:
size-capped, every field type- and range-checked, one-line errors.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from edgecnn.deploy.records import parse_record, valid_images
from edgecnn.errors import EdgecnnError

FORMAT = "edgecnn-eval-baseline"
VERSION = 1
MAX_BYTES = 4 << 20  # a baseline of 1000 classes' per-class accuracies is far smaller


class BaselineError(EdgecnnError):
    """A baseline file is unreadable, malformed, from a newer edgecnn, or about other images."""


def make_baseline(rows: list[dict], images: dict, agreement: float | None) -> dict:
    """The baseline document for eval result `rows` (each with model, sha256, backend, accuracy, per_class_accuracy)."""
    import edgecnn

    return {"format": FORMAT, "version": VERSION, "edgecnn_version": edgecnn.__version__, "images": dict(images),
            "models": [{"model": Path(r["model"]).name, "sha256": r["sha256"], "backend": r["backend"],
                        "accuracy": r["accuracy"], "per_class_accuracy": r["per_class_accuracy"]} for r in rows],
            "agreement": agreement}


def write_baseline(path, doc: dict) -> None:
    from edgecnn.fileio import atomic_path

    text = json.dumps(doc, indent=1) + "\n"
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)


def load_baseline(path) -> dict:
    """The validated baseline document at `path`; BaselineError (one line naming the file) otherwise."""
    path = Path(path)
    where = path.name
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise BaselineError(f"baseline {path} does not exist (make one with --write-baseline)") from None
    except IsADirectoryError:
        raise BaselineError(f"baseline {path} is a folder, not a file") from None
    if len(raw) > MAX_BYTES:
        raise BaselineError(f"{where}: larger than {MAX_BYTES >> 20} MiB, not an edgecnn baseline")
    doc = parse_record(raw, FORMAT, VERSION, "baseline", where, BaselineError)
    _check_images(doc.get("images"), where)
    models = doc.get("models")
    if not isinstance(models, list) or not 1 <= len(models) <= 64:
        raise BaselineError(f"{where}: \"models\" must be a list of 1 to 64 entries")
    for k, m in enumerate(models):
        _check_model(m, f"{where}: models[{k}]")
    agreement = doc.get("agreement")
    if agreement is not None and not _fraction(agreement):
        raise BaselineError(f"{where}: \"agreement\" must be null or a number in [0, 1]")
    return doc


def _fraction(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and 0.0 <= v <= 1.0


def _check_images(images, where: str) -> None:
    if not valid_images(images):
        raise BaselineError(f"{where}: \"images\" must be an object (dataset, split, positive count, sha256)")


def _check_model(m, where: str) -> None:
    if not isinstance(m, dict):
        raise BaselineError(f"{where} must be an object")
    for key in ("model", "backend", "sha256"):
        if not isinstance(m.get(key), str) or len(m[key]) > 4096:
            raise BaselineError(f"{where}.{key} must be a string")
    if not _fraction(m.get("accuracy")):
        raise BaselineError(f"{where}.accuracy must be a number in [0, 1]")
    per_class = m.get("per_class_accuracy")
    if not isinstance(per_class, list) or len(per_class) > 100_000 or \
            not all(v is None or _fraction(v) for v in per_class):
        raise BaselineError(f"{where}.per_class_accuracy must be a list of numbers in [0, 1] (or null)")


def baseline_failures(doc: dict, rows: list[dict], images: dict, agreement: float | None,
                      tolerance: float, source: str) -> list[str]:
    """One line per way this run falls more than `tolerance` points below the baseline `doc`.

    BaselineError when the two cannot be compared: other images, another number of models.
    """
    from edgecnn.deploy.regression import same_images, describe_images

    if not same_images(doc["images"], images):
        raise BaselineError(f"{source} was measured on {describe_images(doc['images'])}, this run on "
                            f"{describe_images(images)}: use the same --dataset/--limit, or write a new baseline")
    if len(doc["models"]) != len(rows):
        raise BaselineError(f"{source} holds {len(doc['models'])} model(s), this run evaluates {len(rows)}")
    failures = []
    for base, row in zip(doc["models"], rows):
        drop = 100.0 * (base["accuracy"] - row["accuracy"])
        if drop > tolerance + 1e-9:
            failures.append(f"baseline: {Path(row['model']).name} ({row['backend']}) accuracy {row['accuracy']:.2%} "
                            f"is {drop:.2f} points below the baseline's {base['accuracy']:.2%} in {source}, "
                            f"more than --baseline-tolerance {tolerance:g}")
    base_agreement = doc.get("agreement")
    if agreement is not None and base_agreement is not None:
        drop = 100.0 * (base_agreement - agreement)
        if drop > tolerance + 1e-9:
            failures.append(f"baseline: agreement {agreement:.2%} is {drop:.2f} points below the baseline's "
                            f"{base_agreement:.2%} in {source}, more than --baseline-tolerance {tolerance:g}")
    return failures
