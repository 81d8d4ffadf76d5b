"""Atomic writes under SIGKILL: the target is whole or absent, the temp file is recognisable,
and the next write to the same target removes what a killed writer left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from edgecnn.fileio import TEMP_TAG, atomic_path, atomic_write_bytes, remove_stale_temps

WRITER = """
import sys, time
from edgecnn.fileio import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    with open(tmp, "wb") as f:
        f.write(b"half")
        f.flush()
        print("writing", flush=True)
        time.sleep(60)
"""


def killed_writer(target) -> None:
    p = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "writing"
    os.kill(p.pid, signal.SIGKILL)
    p.wait()


def temps(folder):
    return sorted(p.name for p in folder.iterdir() if TEMP_TAG in p.name)


def test_sigkill_leaves_a_recognisable_temp_that_the_next_write_removes(tmp_path):
    target = tmp_path / "model.tflite"
    atomic_write_bytes(target, b"old and whole")
    killed_writer(target)
    left = temps(tmp_path)
    assert len(left) == 1 and left[0].startswith(".model.tflite.edgecnn-tmp-") and left[0].endswith(".part")
    assert target.read_bytes() == b"old and whole"  # never half-written
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new" and temps(tmp_path) == []


def test_a_live_writer_keeps_its_temp_file(tmp_path):
    target = tmp_path / "x.bin"
    with atomic_path(target) as mine:
        mine.write_bytes(b"in progress")
        assert remove_stale_temps(target) == []  # this process is alive: not stale
        assert mine.exists()
    assert target.read_bytes() == b"in progress"


def test_only_temps_of_the_same_target_are_removed(tmp_path):
    other = tmp_path / ".other.bin.edgecnn-tmp-999999999-abc.part"
    other.write_bytes(b"x")
    stale = tmp_path / ".x.bin.edgecnn-tmp-999999999-abc.part"
    stale.write_bytes(b"x")
    users = tmp_path / ".x.bin.mine.part"  # not edgecnn's naming: never touched
    users.write_bytes(b"x")
    atomic_write_bytes(tmp_path / "x.bin", b"ok")
    assert other.exists() and users.exists() and not stale.exists()


def test_repeated_kills_never_corrupt_the_target(tmp_path):
    target = tmp_path / "t.bin"
    atomic_write_bytes(target, b"v0")
    for i in range(3):
        killed_writer(target)
        assert target.read_bytes() == f"v{i}".encode()
        atomic_write_bytes(target, f"v{i + 1}".encode())
        assert temps(tmp_path) == []
