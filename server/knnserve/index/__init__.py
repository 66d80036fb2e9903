"""FAISS indexes: specs resolved to factory strings, build/train/add, validated per-call search."""

from knnserve.index.engine import (
    BuildReport,
    SearchParams,
    as_float32_rows,
    build_index,
    describe,
    nlist,
    search,
    search_parameters,
    serialized_size,
    set_num_threads,
)
from knnserve.index.spec import ALIASES, METRICS, ResolvedSpec, ivf_nlist, pq_shape, resolve_spec

__all__ = [
    "ALIASES",
    "METRICS",
    "BuildReport",
    "ResolvedSpec",
    "SearchParams",
    "as_float32_rows",
    "build_index",
    "describe",
    "ivf_nlist",
    "nlist",
    "pq_shape",
    "resolve_spec",
    "search",
    "search_parameters",
    "serialized_size",
    "set_num_threads",
]
