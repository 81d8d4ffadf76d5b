"""docs/ops.md's table of ops x back ends is the registry's: this test fails when they drift.

Regenerate the table after adding an op or a hook:

    python tests/test_export_ops_doc.py        # rewrites the table between the markers in docs/ops.md
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "ops.md"
START, END = "<!-- ops-table:start -->", "<!-- ops-table:end -->"
YES, NO = "yes", "–"


def ops_table() -> str:
    """The Markdown table: one row per registered builtin, one column per back end."""
    from edgecnn.deploy.ops import REGISTRY

    rows = ["| op | runtime (Numba) | naive reference | .tflite read | .tflite write | C | ONNX |",
            "|---|---|---|---|---|---|---|"]  # fmt: skip
    for name in sorted(REGISTRY):
        d = REGISTRY[name]
        if d.prepare is None:  # a shape op: the reader computes it and drops it
            cells = ["folded", "folded", "folded", NO, "folded", "folded"]
        else:
            readable = d.options_table is None or d.decode is not None
            writable = d.options_table is None or d.encode is not None
            cells = [YES if d.kernel else NO, YES if d.naive else NO, YES if readable else NO,
                     YES if writable else NO, YES if d.c else NO, YES if d.onnx else NO]  # fmt: skip
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


def _section(text: str) -> str:
    match = re.search(re.escape(START) + r"\n(.*?)" + re.escape(END), text, re.S)
    assert match, f"{DOC} lost its table markers"
    return match.group(1)


def test_the_ops_table_matches_the_registry():
    assert _section(DOC.read_text()) == ops_table(), "docs/ops.md is stale: run python tests/test_export_ops_doc.py"


def test_every_runnable_op_has_both_lowerings_or_is_listed_as_missing():
    """The table is the list of what is missing; this keeps the hooks well-formed where they exist."""
    from edgecnn.deploy.export.c import all_blocks, blocks_in_order
    from edgecnn.deploy.ops import REGISTRY

    blocks = all_blocks()  # raises if two ops give different texts for one block name
    for name, d in REGISTRY.items():
        assert callable(d.c) or d.c is None, name
        assert callable(d.onnx) or d.onnx is None, name
        assert isinstance(d.c_blocks, dict), name
        blocks_in_order(set(d.c_blocks), blocks)  # every dependency exists, no cycles


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    text = DOC.read_text()
    _section(text)
    head, rest = text.split(START + "\n", 1)
    DOC.write_text(head + START + "\n" + ops_table() + END + rest.split(END, 1)[1])
    print(f"wrote the table of {DOC}")
