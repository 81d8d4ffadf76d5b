"""Which GEMM kernels this CPU can run, decided once at import from the host's features (no compiling).

- GEMM_VNNI: x86 with AVX-512 VNNI: `vpdpbusd` (u8 x s8 -> s32, 64 MACs per instruction), see vnni.py.
- GEMM_PORTABLE: madd.py's int16-pair tile on any CPU (x86 without VNNI: vpmaddwd, zmm with AVX-512BW or
  ymm with AVX2, MADD_ISA; ARM: generic LLVM IR).

Both give the same bytes (every sum is the same set of int32 terms, wrapping the same way).
The environment variable EDGECNN_KERNELS=portable forces the portable kernels even on a VNNI
machine, so they are tested there too; EDGECNN_KERNELS=legacy makes Runtime use the per-op path.
"""

from __future__ import annotations

import os

from edgecnn.host_cpu import host_features

GEMM_PORTABLE = 0
GEMM_VNNI = 1


_FEATURES = host_features()
HAS_VNNI = bool(_FEATURES.get("avx512vnni")) and bool(_FEATURES.get("avx512bw"))


def _madd_isa() -> str:
    """madd.py's multiply-add: 'avx512bw' (vpmaddwd zmm), 'avx2' (vpmaddwd ymm) or 'generic' (any CPU).

    EDGECNN_MADD=avx2|generic narrows it (experiments; use a fresh NUMBA_CACHE_DIR, the
    cache does not know the choice), never widens it past the host."""
    isa = "avx512bw" if _FEATURES.get("avx512bw") else "avx2" if _FEATURES.get("avx2") else "generic"
    order = ("generic", "avx2", "avx512bw")
    forced = os.environ.get("EDGECNN_MADD", "").strip().lower()
    if forced in order and order.index(forced) < order.index(isa):
        return forced
    return isa


MADD_ISA = _madd_isa()
# The portable GEMM tile (madd.madd_tile): at most rows x 16-lane tiles of int32 accumulators, all in registers:
# 16 zmm of 32 with AVX-512BW; with AVX2 (16 ymm, two per 16 lanes) 4 x 1 = 8 ymm; NEON (32 q, four per 16
# lanes) 4 x 1 = 16 q. fast_conv's tiles use up to 4 rows.
MADD_ROWS, MADD_TILES = (4, 4) if MADD_ISA == "avx512bw" else (4, 1)


def kernel_choice() -> str:
    """'vnni', 'portable' or 'legacy', from the CPU and EDGECNN_KERNELS."""
    forced = os.environ.get("EDGECNN_KERNELS", "").strip().lower()
    if forced in ("portable", "legacy"):
        return forced
    if forced == "vnni" and not HAS_VNNI:
        raise RuntimeError("EDGECNN_KERNELS=vnni, but this CPU has no AVX-512 VNNI")
    return "vnni" if HAS_VNNI else "portable"
