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


def _number(convert, minimum, strict: bool, what: str):
    """An argparse type: `convert` the text, then require a finite value above (strict) or at `minimum`."""
    def parse(text: str):
        try:
            v = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not (v > minimum if strict else v >= minimum) or v == float("inf"):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text}")
        return v

    return parse


positive_int = _number(int, 1, False, "a positive integer")
nonnegative_int = _number(int, 0, False, "an integer >= 0")
positive_float = _number(float, 0.0, True, "a positive, finite number")
nonnegative_float = _number(float, 0.0, False, "a finite number >= 0")


def add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", metavar="DIR", help="folder holding one folder per dataset (default: $EDGECNN_DATA, "
                   "~/.cache/edgecnn, /usr/share/datasets)")
    p.add_argument("--dataset", default="mnist", help="dataset name (default: mnist)")


def load_images(args, split: str, limit: int | None = None):
    """Raw uint8 images and int64 labels of a split, first `limit` only; an empty split is an error."""
    from edgecnn.data.datasets import load_split
    from edgecnn.errors import DataError

    images, labels = load_split(args.dataset, split, args.data)
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    if len(images) == 0:
        raise DataError(f"the {split} split of {args.dataset} holds no images")
    return images, labels.astype("int64")


def load_lenet_split(args, split: str, limit: int | None = None):
    """(float32 NHWC inputs, int64 labels, uint8 raw images) for a split, LeNet preprocessing."""
    from edgecnn.data.datasets import lenet_input

    images, labels = load_images(args, split, limit)
    return lenet_input(images), labels, images


def emit_json(obj) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def labels_for(dataset: str, n: int = 10) -> list[str]:
    return DATASET_LABELS.get(dataset, [str(i) for i in range(n)])
