"""The CPU features Numba compiles for, read once by the kernels that pick a tile shape or an
instruction (the trainer's float tile, the int8 runtime's kernel choice)."""

from __future__ import annotations

import os


def host_features() -> dict:
    """The features Numba compiles for ({'avx512vnni': True, ...}): LLVM's view of the host CPU's, or
    what NUMBA_CPU_NAME / NUMBA_CPU_FEATURES make of them (e.g. NUMBA_CPU_FEATURES=-avx512vnni,-avxvnni
    compiles as for a CPU without VNNI: then no VNNI kernel may be emitted); empty if llvmlite cannot say."""
    try:
        from llvmlite import binding

        features = dict(binding.get_host_cpu_features())
    except Exception:  # a CPU or platform llvmlite does not know: no optional features
        features = {}
    name = os.environ.get("NUMBA_CPU_NAME", "").strip()
    if name and name != "host":
        features = {}  # a named CPU: only the features NUMBA_CPU_FEATURES lists
    for item in os.environ.get("NUMBA_CPU_FEATURES", "").split(","):
        item = item.strip()
        if item[:1] in "+-" and len(item) > 1:
            features[item[1:]] = item[0] == "+"
    return features
