"""Build, search and describe FAISS indexes, with per-call search effort and validation first."""

from __future__ import annotations

import time
from dataclasses import dataclass

import faiss
import numpy as np
from tqdm.auto import tqdm

from knnserve.errors import InvalidInputError
from knnserve.index.spec import ResolvedSpec

ADD_CHUNK_ROWS = 16384
# FAISS 1.15 routes exact search through BLAS only from 128000 query rows; below that it scans
# vector by vector. Measured here (60k x 784 float32 Flat): 16 queries 0.24 s -> 0.06 s and 2000
# queries 1.04 s -> 0.76 s with BLAS from 20 rows, FAISS's former default.
BLAS_THRESHOLD_ROWS = 20
_FAISS_DEFAULT_BLAS_THRESHOLD = 128000
_METRIC_TYPES = {"l2": faiss.METRIC_L2, "l1": faiss.METRIC_L1}


@dataclass(frozen=True)
class SearchParams:
    """Per-call search effort; ``None`` means the index's own setting."""

    nprobe: int | None = None
    ef_search: int | None = None


@dataclass(frozen=True)
class BuildReport:
    """Timings of one index build, in seconds."""

    train_seconds: float
    add_seconds: float


def set_num_threads(n: int | None) -> None:
    """Set FAISS's OpenMP thread count (``None`` leaves FAISS's default: one per core)."""
    if n is not None:
        if n < 1:
            raise InvalidInputError("threads", "an integer >= 1", n)
        faiss.omp_set_num_threads(n)


def metric_type(metric: str) -> int:
    """FAISS metric constant for ``l2`` / ``l1``."""
    return _METRIC_TYPES[metric]


def as_float32_rows(x: np.ndarray, d: int, *, field: str = "x") -> np.ndarray:
    """Validate a batch of vectors and return it as C-contiguous float32 (n, d).

    FAISS only asserts on bad input (or crashes), so every check happens here first.
    """
    if not isinstance(x, np.ndarray):
        raise InvalidInputError(field, "a numpy array", type(x).__name__)
    if x.ndim != 2:
        raise InvalidInputError(field, f"a 2-D array (rows, {d})", f"shape {x.shape}")
    if x.shape[0] < 1:
        raise InvalidInputError(field, "at least one row", "0 rows")
    if x.shape[1] != d:
        raise InvalidInputError(field, f"{d} columns (the index dimension)", f"{x.shape[1]}")
    if x.dtype.kind not in "uif":
        raise InvalidInputError(field, "a numeric dtype (uint8 or float32)", str(x.dtype))
    out = np.ascontiguousarray(x, dtype=np.float32)
    if x.dtype.kind == "f" and not np.isfinite(out).all():
        raise InvalidInputError(field, "finite values", "NaN or infinity")
    return out


def _ivf(index: faiss.Index) -> faiss.IndexIVF | None:
    try:
        return faiss.downcast_index(faiss.extract_index_ivf(index))
    except RuntimeError:
        return None


def _hnsw(index: faiss.Index) -> faiss.IndexHNSW | None:
    while isinstance(index, faiss.IndexPreTransform):
        index = faiss.downcast_index(index.index)
    return index if isinstance(index, faiss.IndexHNSW) else None


def build_index(x: np.ndarray, spec: ResolvedSpec, *, progress: bool = False) -> tuple[faiss.Index, BuildReport]:
    """Create the index ``spec`` describes, train it on ``x`` if it needs training, and add ``x``.

    ``x`` is (n, d) with any numeric dtype; it is converted to float32 in chunks so a uint8 matrix
    never exists as float32 in full.
    """
    if x.ndim != 2 or x.shape[0] < 1:
        raise InvalidInputError("training data", "a non-empty 2-D array", f"shape {x.shape}")
    n, d = x.shape
    index = faiss.index_factory(d, spec.factory, metric_type(spec.metric))
    ivf = _ivf(index)
    if isinstance(ivf, faiss.IndexIVFScalarQuantizer) and ivf.sq.qtype == faiss.ScalarQuantizer.QT_8bit_direct:
        # Residuals (x - centroid) are neither integers nor in 0..255: encode the vectors themselves.
        ivf.by_residual = False
    hnsw = _hnsw(index)
    if hnsw is not None and "efConstruction" in spec.build_params:
        hnsw.hnsw.efConstruction = int(spec.build_params["efConstruction"])
    started = time.perf_counter()
    if not index.is_trained:
        with tqdm(total=1, desc=f"train {spec.factory}", disable=not progress, leave=False) as bar:
            index.train(as_float32_rows(x, d, field="training data"))
            bar.update(1)
    trained = time.perf_counter()
    with tqdm(total=n, desc=f"add to {spec.factory}", unit="vec", disable=not progress, leave=False) as bar:
        for start in range(0, n, ADD_CHUNK_ROWS):
            chunk = as_float32_rows(x[start : start + ADD_CHUNK_ROWS], d, field="training data")
            index.add(chunk)
            bar.update(chunk.shape[0])
    return index, BuildReport(train_seconds=trained - started, add_seconds=time.perf_counter() - trained)


def search_parameters(index: faiss.Index, params: SearchParams | None) -> faiss.SearchParameters | None:
    """FAISS ``SearchParameters`` for this call, validated against the index; never mutates it."""
    if params is None or (params.nprobe is None and params.ef_search is None):
        return None
    inner: faiss.SearchParameters | None = None
    if params.nprobe is not None:
        ivf = _ivf(index)
        if ivf is None:
            raise InvalidInputError("nprobe", "unset: this index has no inverted lists", params.nprobe)
        if not 1 <= params.nprobe <= ivf.nlist:
            raise InvalidInputError("nprobe", f"an integer between 1 and nlist={ivf.nlist}", params.nprobe)
        inner = faiss.SearchParametersIVF(nprobe=int(params.nprobe))
    if params.ef_search is not None:
        if _hnsw(index) is None:
            raise InvalidInputError("ef_search", "unset: this index is not HNSW", params.ef_search)
        if params.ef_search < 1:
            raise InvalidInputError("ef_search", "an integer >= 1", params.ef_search)
        inner = faiss.SearchParametersHNSW(efSearch=int(params.ef_search))
    if isinstance(index, faiss.IndexPreTransform):
        return faiss.SearchParametersPreTransform(index_params=inner)
    return inner


def use_blas_for_batches(rows: int = BLAS_THRESHOLD_ROWS) -> None:
    """Let exact search use BLAS from ``rows`` queries, unless someone already chose a threshold."""
    if faiss.cvar.distance_compute_blas_threshold == _FAISS_DEFAULT_BLAS_THRESHOLD:
        faiss.cvar.distance_compute_blas_threshold = rows


def search(
    index: faiss.Index, x: np.ndarray, k: int, params: SearchParams | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Search ``k`` neighbours of each row of ``x``; returns FAISS's (distances, ids).

    Distances are FAISS's own: squared for METRIC_L2. Missing results have id -1.
    """
    use_blas_for_batches()
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= index.ntotal:
        raise InvalidInputError("k", f"an integer between 1 and {index.ntotal} (the number of indexed vectors)", k)
    queries = as_float32_rows(x, index.d)
    return index.search(queries, int(k), params=search_parameters(index, params))


def nlist(index: faiss.Index) -> int | None:
    """Number of inverted lists, or None for an index without them."""
    ivf = _ivf(index)
    return None if ivf is None else int(ivf.nlist)


def serialized_size(index: faiss.Index) -> int:
    """Bytes the index takes when serialized (what it costs on disk and, roughly, in memory)."""
    return int(faiss.serialize_index(index).size)


def describe(index: faiss.Index) -> dict[str, object]:
    """Facts about a built index: type, dimension, size, and the search knobs it accepts."""
    info: dict[str, object] = {
        "type": type(faiss.downcast_index(index)).__name__,
        "dim": int(index.d),
        "ntotal": int(index.ntotal),
        "metric": {faiss.METRIC_L2: "l2", faiss.METRIC_L1: "l1"}.get(index.metric_type, str(index.metric_type)),
    }
    if (lists := nlist(index)) is not None:
        info["nlist"] = lists
    if (hnsw := _hnsw(index)) is not None:
        info["hnsw_efConstruction"] = int(hnsw.hnsw.efConstruction)
    return info
