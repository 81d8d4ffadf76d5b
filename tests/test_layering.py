"""Imports run one way: core (data, model, reference, train, int8) <- quantize <- deploy <- cli.

Parses every module's imports (no importing), so the check is cheap and
covers lazy imports inside functions too.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FOLDERS = {"edgecnn": REPO / "edgecnn", "edgecnn.quantize": REPO / "quantize", "edgecnn.deploy": REPO / "deploy"}
CORE = ("edgecnn.data", "edgecnn.model", "edgecnn.reference", "edgecnn.train", "edgecnn.int8", "edgecnn.errors",
        "edgecnn.fileio", "edgecnn.progress", "edgecnn.jitcache", "edgecnn.tuning", "edgecnn")  # fmt: skip
LAYERS = {"core": 0, "quantize": 1, "deploy": 2, "cli": 3}


def layer(module: str) -> str | None:
    if module.startswith("edgecnn.cli") or module == "edgecnn.__main__":
        return "cli"
    if module.startswith("edgecnn.deploy"):
        return "deploy"
    if module.startswith("edgecnn.quantize"):
        return "quantize"
    if module.startswith("edgecnn"):
        return "core"
    return None


def modules():
    for package, folder in FOLDERS.items():
        for path in folder.rglob("*.py"):
            rel = path.relative_to(folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            name = ".".join([package] + parts)
            if package == "edgecnn" and parts[:1] in (["quantize"], ["deploy"]):
                continue
            yield name, path


def imports(path: Path, name: str):
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the package
                base = name.split(".")[: len(name.split(".")) - node.level + (1 if path.name == "__init__.py" else 0)]
                yield ".".join(base + ([node.module] if node.module else []))
            elif node.module:
                yield node.module


def test_imports_run_one_way():
    bad = []
    for name, path in modules():
        here = layer(name)
        for target in imports(path, name):
            there = layer(target)
            if there is not None and LAYERS[there] > LAYERS[here]:
                bad.append(f"{name} ({here}) imports {target} ({there})")
    assert not bad, "imports against the layering:\n" + "\n".join(bad)


def test_the_checker_sees_a_violation(tmp_path):
    path = tmp_path / "x.py"
    path.write_text("def f():\n    from edgecnn.deploy.runtime import Runtime\n")
    assert "edgecnn.deploy.runtime" in set(imports(path, "edgecnn.quantize.x"))


def test_int8_layer_is_numpy_only():
    for path in (REPO / "edgecnn" / "int8").glob("*.py"):
        for target in imports(path, "edgecnn.int8." + path.stem):
            assert target.split(".")[0] in ("numpy", "edgecnn", "math", "dataclasses", "__future__", "typing"), \
                f"{path.name} imports {target}"
            assert not target.startswith(("edgecnn.quantize", "edgecnn.deploy", "edgecnn.model")), target
