"""Which search kernel a model gets, from facts a manifest holds: the plan ``knnserve info`` prints.

The plan is made when a model is built or loaded (and by ``info`` from the manifest alone); the
kernel itself is built from the index on first use (``dispatch.py``). A kernel is planned only
where it is exact — uint8 vectors searched raw under L2, a Flat or IVF (Flat / SQ8_direct lists)
index — and onnxruntime multiplies u8 x s8 without saturating on this CPU. It then runs for
batches at or above its measured threshold; FAISS answers everything else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from knnserve.kernels.exact_int import MAX_DIM
from knnserve.kernels.runtime import int8_gemm_exact, onnxruntime_version

FAISS = "faiss"
EXACT_INT8 = "exact-int8"
IVF_GEMM_INT8 = "ivf-gemm-int8"
POLICIES: tuple[str, ...] = ("auto", "faiss")

# Query rows from which the exact integer kernel answers a Flat search: every batch. Measured on
# Fashion-MNIST (60k x 784 uint8, k=10, 2 threads, median of 15 calls; benchmarks/results/
# kernels-2026-12-01.md): 1 row 3.7 ms against FAISS Flat float32's 17.9 ms, 8 rows 8.4 vs 22.6,
# 128 rows 31 vs 83 — the kernel won at every batch size measured, one row included.
FLAT_MIN_ROWS = 1
# Average queries per inverted list (rows * nprobe / nlist) from which the batched IVF kernel
# answers: it pays one onnxruntime call per list touched, which only many queries per list repay.
# Measured on IVF1024,SQ8_direct over Fashion-MNIST (same file, median of 7 calls): at 16 queries
# per list FAISS was faster (nprobe 16: 48 vs 56 ms; nprobe 32: 48 vs 62 ms), at 32 the kernel
# (nprobe 16: 99 vs 70 ms; nprobe 32: 86 vs 81 ms), and the gap widens with the batch.
IVF_MIN_QUERIES_PER_LIST = 32.0

_FLAT_FACTORIES = ("Flat", "SQ8_direct")
_IVF_UINT8 = re.compile(r"IVF\d+,(Flat|SQ8_direct)")


@dataclass(frozen=True)
class KernelPlan:
    """The kernel a model searches with, and when: ``name`` is ``faiss`` or a kernel's name.

    ``min_rows`` (Flat) or ``min_queries_per_list`` (IVF) is the batch size from which the kernel
    runs; ``reason`` says why FAISS answers everything when no kernel is planned.
    """

    name: str
    min_rows: int | None = None
    min_queries_per_list: float | None = None
    reason: str = ""

    @property
    def active(self) -> bool:
        """True when a kernel is planned (it may still leave small batches to FAISS)."""
        return self.name != FAISS

    def describe(self) -> str:
        """One line for ``knnserve info`` and the harness, e.g. ``exact-int8 (onnxruntime ...) from 8 query rows``."""
        if self.name == EXACT_INT8:
            when = "every batch" if self.min_rows == 1 else f"from {self.min_rows} query rows; faiss below"
            return f"{EXACT_INT8}: exact uint8 GEMM + top-k (onnxruntime {onnxruntime_version()} MatMulInteger u8 x s8), {when}"
        if self.name == IVF_GEMM_INT8:
            return (f"{IVF_GEMM_INT8}: one exact uint8 GEMM per inverted list (onnxruntime {onnxruntime_version()}) "
                    f"from {self.min_queries_per_list:g} queries per list (rows x nprobe / nlist); faiss below")
        return f"faiss ({self.reason})" if self.reason else "faiss"


def plan_kernel(*, factory: str, metric: str, input_dtype: str, preprocessed: bool, dim: int,
                policy: str = "auto") -> KernelPlan:
    """The kernel for an index with these facts (``policy="faiss"`` turns kernels off)."""
    if policy not in POLICIES:
        raise ValueError(f"kernel policy one of {', '.join(POLICIES)}, got {policy!r}")
    flat, ivf = factory in _FLAT_FACTORIES, _IVF_UINT8.fullmatch(factory) is not None
    if policy == FAISS:
        return KernelPlan(FAISS, reason="kernels turned off")
    if not (flat or ivf):
        return KernelPlan(FAISS, reason=f"no kernel for {factory}")
    if metric != "l2":
        return KernelPlan(FAISS, reason=f"{metric} has no GEMM form")
    if input_dtype != "uint8" or preprocessed:
        return KernelPlan(FAISS, reason="vectors are not raw uint8")
    if dim > MAX_DIM:
        return KernelPlan(FAISS, reason=f"{dim} dimensions overflow int32 keys")
    if onnxruntime_version() is None:
        return KernelPlan(FAISS, reason="onnxruntime is not installed")
    if not int8_gemm_exact():
        return KernelPlan(FAISS, reason="onnxruntime's u8 x s8 GEMM saturates on this CPU (no VNNI)")
    if flat:
        return KernelPlan(EXACT_INT8, min_rows=FLAT_MIN_ROWS)
    return KernelPlan(IVF_GEMM_INT8, min_queries_per_list=IVF_MIN_QUERIES_PER_LIST)


__all__ = ["EXACT_INT8", "FAISS", "FLAT_MIN_ROWS", "IVF_GEMM_INT8", "IVF_MIN_QUERIES_PER_LIST", "POLICIES", "KernelPlan",
           "plan_kernel"]
