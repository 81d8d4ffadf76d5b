"""Pieces several commands share: data arguments, positive ints, JSON output, help with defaults."""

from __future__ import annotations

import argparse
import json
import sys


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


class HelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default, unless the help already states it."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if (action.option_strings and default not in (None, False, argparse.SUPPRESS, [])
                and "default" not in text and "%(default)" not in text):
            text += " (default: %(default)s)"
        return text


def add_command(sub, name: str, **kwargs) -> argparse.ArgumentParser:
    """A subcommand parser whose --help shows every default."""
    return sub.add_parser(name, formatter_class=HelpFormatter, **kwargs)


DATA_HELP = ("the only folder looked in: it holds one folder per dataset, or is the dataset folder itself "
             "(default: $EDGECNN_DATA if set, else ~/.cache/edgecnn, then /usr/share/datasets)")


def add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", metavar="DIR", help=DATA_HELP)
    p.add_argument("--dataset", default="mnist",
                   help="mnist, fashion-mnist, cifar10 (colour), or the name of your own folder of IDX files")


WIDTH_ARCHS = ("mobilenet-v1",)


def add_width_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--width", type=positive_float, default=None, metavar="W",
                   help="mobilenet-v1's width multiplier: channels scale by W, in (0, 4] (default: 0.25, "
                        "MLPerf Tiny's visual wake words)")


def arch_options(args) -> dict:
    """Architecture keyword options from the command line: {"width": W} when --width was given."""
    from edgecnn.errors import EdgecnnError

    width = getattr(args, "width", None)
    if width is None:
        return {}
    arch = getattr(args, "arch", None) or getattr(args, "model", None)
    if arch not in WIDTH_ARCHS:
        raise EdgecnnError(f"--width applies to {', '.join(WIDTH_ARCHS)} only, not {arch}")
    return {"width": width}


_NOTES_AT_EXIT: list[str] = []


def note(msg: str) -> None:
    """An informational stderr line: now on a terminal, else once the command has succeeded.

    Programs reading stderr thus see exactly one line when a command fails.
    """
    if sys.stderr.isatty():
        print(msg, file=sys.stderr, flush=True)
    else:
        _NOTES_AT_EXIT.append(msg)


def flush_notes() -> None:
    """Print the deferred notes (called by `main` after a command succeeded)."""
    while _NOTES_AT_EXIT:
        print(_NOTES_AT_EXIT.pop(0), file=sys.stderr, flush=True)


def data_folder(args) -> str:
    """The folder holding args.dataset, said once on stderr (the same path goes in JSON as `data`)."""
    from edgecnn.data.datasets import find_dataset

    if getattr(args, "data_folder", None) is None:
        args.data_folder = str(find_dataset(args.dataset, args.data))
        if not getattr(args, "quiet", False):
            note(f"data: {args.data_folder}")
    return args.data_folder


def load_images(args, split: str, limit: int | None = None):
    """Raw uint8 images and int64 labels of a split, first `limit` only; an empty split is an error."""
    from edgecnn.data.datasets import load_split
    from edgecnn.errors import DataError

    images, labels = load_split(args.dataset, split, data_folder(args))
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
    """Class names of `dataset` (mnist, fashion-mnist, cifar10), else "0".."n-1"."""
    from edgecnn.data.datasets import dataset_labels

    return dataset_labels(dataset, n)
