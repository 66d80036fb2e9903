"""FAISS indexes: specs resolved to factory strings (``spec``), builds (``build``), and ``backend``,
the one module that imports faiss (search with per-call effort, files, PCA, threads, BLAS).

The names below load their module on first use (PEP 562), so importing ``knnserve.index.spec``
(the CLI does, for its choices) does not load faiss: ``knnserve --help`` and the ``--workers``
supervisor stay light.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "backend": ("Index", "flat_index", "is_hnsw", "nlist", "num_threads", "read_index", "search", "serialized_size",
                "set_blas_threshold", "set_num_threads", "write_index"),
    "build": ("BuildReport", "as_float32_rows", "build_index"),
    "spec": ("ALIASES", "METRICS", "STORAGES", "ResolvedSpec", "ivf_nlist", "pq_shape", "resolve_spec"),
}
_MODULE_OF = {name: module for module, names in _HOMES.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'knnserve.index' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"knnserve.index.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
