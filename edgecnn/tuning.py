"""Process settings that keep the Numba kernels (float and int8) fast on a small, shared CPU.

Call `tune_for_training()` once at the start of a training process, before the
first kernel runs. Neither setting changes any result; both only change speed.
Measured on 2 cores, LeNet-5, batch 64 (benchmarks/kernel_speed.py):

- glibc returns freed blocks of 128 KB and more to the OS, so each step's fresh
  1.2 MB activations page-faulted again: ~1 ms of a ~4.5 ms step. Raising malloc's
  mmap and trim thresholds makes it reuse them.
- libgomp (Numba's default thread pool here) busy-waits ~3 ms after each parallel
  region. With other jobs on the machine the spinning thread takes the core the
  other worker needs: steps went from ~4.5 ms to 30-180 ms. PASSIVE waiting sleeps at
  once and held ~4.3-4.8 ms per step idle or loaded; on an idle, dedicated machine
  OMP_WAIT_POLICY=ACTIVE is faster (3.4 ms), since waking a sleeping vCPU is slow.
  A policy already in the environment is left alone.
"""

import ctypes
import os
import sys

_M_TRIM_THRESHOLD = -1  # glibc <malloc.h>
_M_MMAP_THRESHOLD = -3


def keep_freed_memory(mmap_threshold=32 << 20, trim_threshold=1 << 30):
    """Make glibc malloc serve arrays up to mmap_threshold bytes from its heap and keep
    up to trim_threshold bytes of freed heap. Returns False where it does not apply
    (not glibc, or a value glibc refuses: its mmap threshold caps at 32 MB on 64-bit)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(mallopt(_M_TRIM_THRESHOLD, trim_threshold))


def openmp_already_loaded():
    """True if libgomp is mapped, after which its wait policy can no longer change."""
    try:
        with open("/proc/self/maps") as maps:
            return "libgomp" in maps.read()
    except OSError:
        return False


def passive_openmp_wait():
    """Set OMP_WAIT_POLICY=PASSIVE unless the user chose a policy or spin count.

    libgomp reads it once, when Numba first loads its OpenMP pool (the first parallel
    kernel call), so this must run before that. Returns the policy in effect, or None
    if libgomp was already loaded.
    """
    if openmp_already_loaded():
        return None
    if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return os.environ.get("OMP_WAIT_POLICY", "GOMP_SPINCOUNT=" + os.environ.get("GOMP_SPINCOUNT", ""))


def tune_for_training():
    """Apply both settings; returns what took effect, for logs."""
    return {"malloc_keeps_freed_memory": keep_freed_memory(), "omp_wait_policy": passive_openmp_wait()}


tune_process = tune_for_training  # the CLI, trainer and runtime all want the same two settings
