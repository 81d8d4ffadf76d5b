"""A wheel of edgecnn built from a copy of the sources, installed in a fresh venv (pip's cache, no repo on the path)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from conftest import REPO


def sh(*args, cwd=None, env=None, timeout=900) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)


def install_in_fresh_venv(d: Path, extras: str, *also: str) -> Path:
    """The venv under `d` with `edgecnn[extras]` (and the packages `also`) installed from a wheel.

    The wheel is built from a copy of the sources, so the shared tree gets no build/ folder.
    """
    src = d / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist")
    for name in ("edgecnn", "quantize", "deploy"):
        shutil.copytree(REPO / name, src / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    built = sh(sys.executable, "-m", "pip", "wheel", ".", "-w", d / "dist", "--no-deps", "-q", cwd=src)
    assert built.returncode == 0, built.stderr
    wheel = next((d / "dist").glob("edgecnn-*.whl"))
    venv = d / "venv"
    assert sh(sys.executable, "-m", "venv", venv).returncode == 0
    installed = sh(venv / "bin" / "pip", "install", "-q", f"{wheel}[{extras}]", *also, timeout=1800)
    assert installed.returncode == 0, installed.stderr
    return venv
