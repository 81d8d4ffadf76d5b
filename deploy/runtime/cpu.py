"""Which GEMM kernels this CPU can run, decided once at import from the host's features (no compiling).

- GEMM_VNNI: x86 with AVX-512 VNNI: `vpdpbusd` (u8 x s8 -> s32, 64 MACs per instruction), see vnni.py.
- GEMM_PORTABLE: plain Numba loops that LLVM vectorizes on any CPU (x86 without VNNI, ARM).

Both give the same bytes (every sum is the same set of int32 terms, wrapping the same way).
The environment variable EDGECNN_KERNELS=portable forces the portable kernels even on a VNNI
machine, so they are tested there too; EDGECNN_KERNELS=legacy makes Runtime use the per-op path.
"""

from __future__ import annotations

import os

GEMM_PORTABLE = 0
GEMM_VNNI = 1


def host_features() -> dict:
    """LLVM's view of the host CPU's features ({'avx512vnni': True, ...}); empty if llvmlite cannot say."""
    try:
        from llvmlite import binding

        return dict(binding.get_host_cpu_features())
    except Exception:  # a CPU or platform llvmlite does not know: no optional features
        return {}


HAS_VNNI = bool(host_features().get("avx512vnni")) and bool(host_features().get("avx512bw"))


def kernel_choice() -> str:
    """'vnni', 'portable' or 'legacy', from the CPU and EDGECNN_KERNELS."""
    forced = os.environ.get("EDGECNN_KERNELS", "").strip().lower()
    if forced in ("portable", "legacy"):
        return forced
    if forced == "vnni" and not HAS_VNNI:
        raise RuntimeError("EDGECNN_KERNELS=vnni, but this CPU has no AVX-512 VNNI")
    return "vnni" if HAS_VNNI else "portable"
