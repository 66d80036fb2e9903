"""Keep faiss-cpu's bundled OpenBLAS off its slowest kernel on CPUs newer than it knows.

The faiss-cpu wheels ship OpenBLAS 0.3.15, which does not recognise recent Intel CPUs and falls
back to its generic "Prescott" (SSE3) kernels: on this project's 2-core AVX-512 machine that made
exact Flat search about 5x slower than numpy's matrix multiply (OpenBLAS issue #4267 describes the
same misdetection). OpenBLAS reads ``OPENBLAS_CORETYPE`` once, when the library loads, so the
choice must be made before faiss is first imported; ``knnserve/__init__.py`` does it. A value the
user already set is never overridden, and nothing is set on CPUs without AVX2.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

from knnserve.machine import cpu_flags

# Rows from which exact (Flat) search computes distances as one BLAS matrix multiply
# (faiss.cvar.distance_compute_blas_threshold; FAISS 1.15 defaults to 128000, so every realistic
# batch was scanned row by row). Measured here on Fashion-MNIST, 60k x 784 float32 Flat, k=10,
# median of 7 (ms, 1 thread / 2 threads): 4 rows 29.6/14.3 without BLAS vs 34.9/18.3 with;
# 8 rows 58.8/28.8 without vs 43.3/24.5 with; 16 rows 132/65 vs 43/26. BLAS wins from 8 rows.
# (Here, not in index/backend.py, so that reading the default does not load faiss.)
DEFAULT_BLAS_THRESHOLD = 8

_SKYLAKEX_FLAGS = frozenset({"avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd"})
_HASWELL_FLAGS = frozenset({"avx2", "fma"})


def coretype_for(flags: frozenset[str]) -> str | None:
    """The OpenBLAS kernel family these CPU flags can run: SkylakeX, Haswell, or None (let OpenBLAS decide)."""
    if _SKYLAKEX_FLAGS <= flags:
        return "SkylakeX"
    if _HASWELL_FLAGS <= flags:
        return "Haswell"
    return None


def select_openblas_coretype(
    environ: MutableMapping[str, str] = os.environ, flags: frozenset[str] | None = None
) -> str | None:
    """Set OPENBLAS_CORETYPE from the CPU's flags unless it is already set; return what was set."""
    if "OPENBLAS_CORETYPE" in environ or environ.get("KNNSERVE_KEEP_OPENBLAS_CORETYPE"):
        return None
    coretype = coretype_for(cpu_flags() if flags is None else flags)
    if coretype is not None:
        environ["OPENBLAS_CORETYPE"] = coretype
    return coretype
