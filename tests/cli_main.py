"""The CLI run in the test's own process: the same `main` and error handling as `edgecnn ...`, without
starting an interpreter and importing numpy/Pillow again (about a second per call on a loaded machine).
An exception `main` does not turn into one line propagates and fails the test (stricter than a subprocess,
where it would only show as a traceback on stderr). Keep one real subprocess test per command."""

from __future__ import annotations


def run_main(capsys, *args) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `edgecnn *args` run in-process; argparse's exit included."""
    from edgecnn.cli import main

    capsys.readouterr()
    try:
        rc = main([str(a) for a in args])
    except SystemExit as exc:  # argparse: --help, bad option values
        rc = exc.code
    out, err = capsys.readouterr()
    return rc, out, err
