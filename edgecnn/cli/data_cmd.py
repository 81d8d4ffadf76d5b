"""`edgecnn data fetch {mnist,fashion-mnist,cifar10} [--dir DIR] [--json]`.

The dataset name is checked by `fetch`, not by argparse `choices`, so a bad
name gives the CLI's one-line error instead of argparse's usage block.
"""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers) -> None:
    from edgecnn.cli.common import add_command

    parser = add_command(
        subparsers, "data", help="download and verify datasets",
        description="Manage the datasets edgecnn trains and evaluates on.")
    actions = parser.add_subparsers(dest="data_command", metavar="ACTION")
    fetch = add_command(
        actions, "fetch", help="download MNIST, Fashion-MNIST or CIFAR-10 and verify SHA-256",
        description="Download a dataset from its public mirrors (trying each in turn), verify SHA-256, "
                    "and print the folder holding it. CIFAR-10 is its binary version (cifar-10-binary.tar.gz), "
                    "unpacked safely (plain files only, nothing outside the folder). Does nothing if verified "
                    "files are already in --dir (or, without --dir, in $EDGECNN_DATA if set, else ~/.cache/edgecnn or "
                    "/usr/share/datasets).")
    fetch.add_argument("name", metavar="{mnist,fashion-mnist,cifar10}", help="dataset to fetch")
    fetch.add_argument("--dir", metavar="DIR",
                       help="data root to download into (default: $EDGECNN_DATA if set, else ~/.cache/edgecnn)")
    fetch.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    fetch.add_argument("--quiet", "-q", action="store_true", help="no progress bar or messages on stderr")
    parser.set_defaults(func=run, data_parser=parser)


def run(args: argparse.Namespace) -> int:
    if args.data_command != "fetch":
        args.data_parser.print_help(sys.stderr)
        return 2
    from edgecnn.data.fetch import fetch_result

    result = fetch_result(args.name, dest_dir=args.dir, quiet=args.quiet or args.json)
    if args.json:
        print(json.dumps({"dataset": args.name, "path": str(result.folder),
                          "downloaded": list(result.downloaded)}))
    else:
        print(result.folder)
    return 0
