"""The wheel holds every package in the tree: a folder with an __init__.py missing from
pyproject's list installs fine in editable mode and breaks only on a user's device."""

from __future__ import annotations

import tomllib

from conftest import REPO

INSTALLED_AS = {"edgecnn": "edgecnn", "quantize": "edgecnn.quantize", "deploy": "edgecnn.deploy"}


def test_every_package_folder_is_listed_in_pyproject():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = set()
    for top, name in INSTALLED_AS.items():
        for init in (REPO / top).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / top).parts
            found.add(".".join((name, *rel)))
    assert found - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"
    assert listed - found == set(), "these are listed but have no __init__.py"


def test_pillow_is_a_base_dependency():
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(d.lower().startswith("pillow") for d in deps)  # predict reads images on every install
