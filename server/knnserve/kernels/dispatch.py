"""Per model: answer a search with the planned kernel when the batch is large enough and exact, else say no.

``KNNModel.search`` asks :meth:`KernelDispatch.search` first and calls FAISS when it returns None.
The kernel is built from the index (through ``index/backend.py``) on first use, or by :meth:`warm`.
"""

from __future__ import annotations

import threading
import numpy as np

from knnserve.index import backend
from knnserve.kernels.choice import EXACT_INT8, IVF_GEMM_INT8, KernelPlan
from knnserve.kernels.exact_int import ExactInt8Flat
from knnserve.kernels.ivf_gemm import IvfGemmInt8
from knnserve.kernels.runtime import fan_out

Kernel = ExactInt8Flat | IvfGemmInt8


class KernelDispatch:
    """The kernel a model planned, built once on first use; FAISS (None) where it does not apply."""

    def __init__(self, plan: KernelPlan, index: backend.Index, policy: str = "auto") -> None:
        self.policy = policy
        self._plan = plan
        self._index = index
        self._kernel: Kernel | None = None
        self._lock = threading.Lock()
        self._built = not plan.active

    @property
    def plan(self) -> KernelPlan:
        """The plan; after a failed build it says FAISS, and why."""
        return self._plan

    def warm(self) -> None:
        """Build the kernel now (loading a served model), not on the first large batch."""
        self._get()

    def _get(self) -> Kernel | None:
        with self._lock:
            if not self._built:
                self._kernel = self._build()
                self._built = True
            return self._kernel

    def _build(self) -> Kernel | None:
        if self._plan.name == EXACT_INT8:
            base = backend.flat_uint8_vectors(self._index)
            if base is not None:
                return ExactInt8Flat(base)
        elif self._plan.name == IVF_GEMM_INT8:
            lists = backend.ivf_uint8_lists(self._index)
            if lists is not None:
                return IvfGemmInt8(*lists, d=int(self._index.d))
        # The manifest promised uint8 vectors and the index holds others: FAISS, and say so.
        self._plan = KernelPlan("faiss", reason="the index's vectors are not uint8")
        return None

    def wants(self, n: int, nprobe: int | None) -> bool:
        """True when the plan sends a batch of ``n`` rows (at ``nprobe``) to the kernel."""
        plan = self._plan
        if plan.name == EXACT_INT8:
            return plan.min_rows is not None and n >= plan.min_rows
        if plan.name == IVF_GEMM_INT8 and nprobe is not None and plan.min_queries_per_list is not None:
            return n * nprobe >= plan.min_queries_per_list * backend.nlist(self._index)  # type: ignore[operator]
        return False

    def search(self, rows: np.ndarray, k: int, nprobe: int | None) -> tuple[np.ndarray, np.ndarray] | None:
        """The kernel's (squared L2 distances, ids) for float32 ``rows``, or None: let FAISS answer."""
        if not self.wants(rows.shape[0], nprobe):
            return None
        as_bytes = backend.exact_uint8(rows)
        if as_bytes is None:
            return None
        kernel = self._get()
        threads = backend.omp_threads()
        if isinstance(kernel, ExactInt8Flat):
            return kernel.search(as_bytes, k, threads)
        if isinstance(kernel, IvfGemmInt8):
            assert nprobe is not None
            return kernel.search(as_bytes, backend.ivf_probes(self._index, rows, nprobe, fan_out), k, threads)
        return None


__all__ = ["KernelDispatch"]
