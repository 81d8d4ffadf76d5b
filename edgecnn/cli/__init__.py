"""The `edgecnn` command line.

Each command lives in its own module with `register(subparsers)`, which adds
its parser and sets `func=run`; `run(args) -> int` does the work. Modules
import heavy dependencies inside `run`, so `edgecnn predict` on a device
never pays for the trainer or onnx.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = ("demo", "data", "summary", "train", "quantize", "export", "eval", "predict", "bench", "compare")

# Optional packages -> the extra that installs them. A command needing one that is
# missing says so in one line instead of a ModuleNotFoundError traceback.
EXTRA_OF_MODULE = {
    "numba": "train", "llvmlite": "train", "tqdm": "train",
    "onnx": "onnx", "onnxruntime": "onnx",
    "ai_edge_litert": "device", "tflite_runtime": "device", "PIL": "device",
}


def missing_extra_message(exc: ModuleNotFoundError) -> str | None:
    """One line naming the extra to install, or None when the missing module is not an optional one."""
    module = (exc.name or "").split(".")[0]
    extra = EXTRA_OF_MODULE.get(module)
    if extra is None:
        return None
    return f"this needs {module}, which is not installed: pip install \"edgecnn[{extra}]\""


def build_parser() -> argparse.ArgumentParser:
    from edgecnn import __version__

    parser = argparse.ArgumentParser(
        prog="edgecnn",
        description="Train LeNet-class CNNs, quantize them to TFLite int8, and run them bit-exact.",
    )
    parser.add_argument("--version", action="version", version=f"edgecnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"edgecnn.cli.{name}_cmd")
        except ModuleNotFoundError as exc:
            if exc.name != f"edgecnn.cli.{name}_cmd":
                raise
            continue  # a command whose module has not landed yet
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from edgecnn.errors import EdgecnnError
    from edgecnn.tuning import tune_process

    tune_process()  # before Numba starts its thread pool; changes speed only, never results
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    from edgecnn.cli.common import flush_notes

    try:
        rc = int(args.func(args) or 0)
        flush_notes()
        return rc
    except EdgecnnError as exc:
        print(f"edgecnn {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as exc:
        message = missing_extra_message(exc)
        if message is None:
            raise
        print(f"edgecnn {args.command}: error: {message}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `edgecnn ... | head`: the reader left; not an error worth a traceback
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except FileNotFoundError as exc:
        print(f"edgecnn {args.command}: error: no such file: {exc.filename}", file=sys.stderr)
        return 1
    except OSError as exc:  # permissions, a folder where a file should be, a full disk, ...
        where = f": {exc.filename}" if exc.filename else ""
        print(f"edgecnn {args.command}: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    except MemoryError:
        print(f"edgecnn {args.command}: error: out of memory (try a smaller --batch or --limit)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"edgecnn {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
