"""Pieces several commands share: data arguments, positive ints, JSON output."""

from __future__ import annotations

import argparse
import json
import sys

DATASET_LABELS = {
    "mnist": [str(i) for i in range(10)],
    "fashion-mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
}


def positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


def nonnegative_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {v}")
    return v


def positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (v > 0 and v < float("inf")):
        raise argparse.ArgumentTypeError(f"expected a positive, finite number, got {text}")
    return v


def nonnegative_float(text: str) -> float:
    if text.strip() in ("0", "0.0"):
        return 0.0
    return positive_float(text)


def add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", metavar="DIR", help="folder holding one folder per dataset (default: $EDGECNN_DATA, "
                   "~/.cache/edgecnn, /usr/share/datasets)")
    p.add_argument("--dataset", default="mnist", help="dataset name (default: mnist)")


def load_lenet_split(args, split: str, limit: int | None = None):
    """(float32 NHWC inputs, int64 labels, uint8 raw images) for a split, LeNet preprocessing."""
    from edgecnn.data.datasets import lenet_input, load_split

    images, labels = load_split(args.dataset, split, args.data)
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    if len(images) == 0:
        from edgecnn.errors import DataError

        raise DataError(f"the {split} split of {args.dataset} holds no images")
    return lenet_input(images), labels.astype("int64"), images




def emit_json(obj) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def labels_for(dataset: str, n: int = 10) -> list[str]:
    return DATASET_LABELS.get(dataset, [str(i) for i in range(n)])
