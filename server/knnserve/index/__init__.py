"""FAISS indexes: specs resolved to factory strings (``spec``), builds (``build``), and ``backend``,
the one module that imports faiss (search with per-call effort, files, PCA, threads, BLAS).

The names below load their module on first use (PEP 562), so importing ``knnserve.index.spec``
(the CLI does, for its choices) does not load faiss: ``knnserve --help`` and the ``--workers``
supervisor stay light.
"""

from __future__ import annotations

from knnserve.lazy import lazy_exports

_HOMES = {
    "backend": ("Index", "flat_index", "is_hnsw", "nlist", "num_threads", "omp_threads", "read_index", "search",
                "serialized_size", "set_blas_threshold", "set_num_threads", "write_index"),
    "build": ("BuildReport", "as_float32_rows", "build_index"),
    "spec": ("ALIASES", "METRICS", "STORAGES", "ResolvedSpec", "ivf_nlist", "pq_shape", "resolve_spec"),
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _HOMES, globals())
