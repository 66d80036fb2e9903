"""FAISS indexes: specs resolved to factory strings (``spec``), builds (``build``), and ``backend``,
the one module that imports faiss (search with per-call effort, files, PCA, threads, BLAS)."""

from knnserve.index.backend import (
    Index,
    flat_index,
    is_hnsw,
    nlist,
    num_threads,
    read_index,
    search,
    serialized_size,
    set_blas_threshold,
    set_num_threads,
    write_index,
)
from knnserve.index.build import BuildReport, as_float32_rows, build_index
from knnserve.index.spec import ALIASES, METRICS, STORAGES, ResolvedSpec, ivf_nlist, pq_shape, resolve_spec

__all__ = [
    "ALIASES",
    "METRICS",
    "STORAGES",
    "BuildReport",
    "Index",
    "ResolvedSpec",
    "as_float32_rows",
    "build_index",
    "flat_index",
    "is_hnsw",
    "ivf_nlist",
    "nlist",
    "num_threads",
    "pq_shape",
    "read_index",
    "resolve_spec",
    "search",
    "serialized_size",
    "set_blas_threshold",
    "set_num_threads",
    "write_index",
]
