"""The FAISS boundary: the only module of knnserve that imports faiss.

Everything that touches FAISS goes through here: making, training, searching, reading and writing
indexes, PCA, OpenMP thread counts and the BLAS threshold. Callers validate their inputs before
they get here (FAISS only asserts): a query is checked when it is resolved against its model
(``knnserve.query``), rows when they are prepared (``KNNModel.prepare``) or built
(``knnserve.index.build``); this module keeps only the cheap shape checks FAISS needs to not crash.

Two process-wide settings are made when this module loads, before the first search:

* ``OPENBLAS_CORETYPE`` from the CPU's flags (``knnserve.blas``): faiss-cpu's bundled OpenBLAS
  reads it once, when faiss loads, and otherwise falls back to generic kernels on new CPUs.
* the BLAS threshold (:data:`DEFAULT_BLAS_THRESHOLD`), unless a caller set one already.
  :func:`set_blas_threshold` changes it (``knnserve serve --blas-threshold``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from knnserve.blas import DEFAULT_BLAS_THRESHOLD, select_openblas_coretype
from knnserve_client.wire.errors import InvalidInputError

select_openblas_coretype()  # must run before the import below loads faiss's OpenBLAS

import faiss  # noqa: E402  (after the environment is set, on purpose)

Index = faiss.Index

_FAISS_DEFAULT_BLAS_THRESHOLD = 128000  # DEFAULT_BLAS_THRESHOLD (knnserve.blas) says why not this
_METRICS: dict[str, int] = {"l2": faiss.METRIC_L2, "l1": faiss.METRIC_L1}


def set_blas_threshold(rows: int) -> None:
    """Let exact search use BLAS from ``rows`` query rows (process-wide)."""
    if rows < 1:
        raise InvalidInputError("blas_threshold", "an integer >= 1", rows)
    faiss.cvar.distance_compute_blas_threshold = int(rows)


def blas_threshold() -> int:
    """The current BLAS threshold in query rows."""
    return int(faiss.cvar.distance_compute_blas_threshold)


if faiss.cvar.distance_compute_blas_threshold == _FAISS_DEFAULT_BLAS_THRESHOLD:
    set_blas_threshold(DEFAULT_BLAS_THRESHOLD)


# -- threads ------------------------------------------------------------------------------------


def omp_threads() -> int:
    """FAISS's OpenMP thread count for the calling thread: what a search started here would use."""
    return int(faiss.omp_get_max_threads())


def set_num_threads(n: int | None) -> None:
    """Set FAISS's OpenMP thread count for the calling thread (None: leave it)."""
    if n is not None:
        if n < 1:
            raise InvalidInputError("threads", "an integer >= 1", n)
        faiss.omp_set_num_threads(int(n))


@contextmanager
def num_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` FAISS OpenMP threads (None: as is), then restore the previous count."""
    previous = faiss.omp_get_max_threads()
    set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)


# -- metrics and introspection --------------------------------------------------------------------


def metric_type(metric: str) -> int:
    """FAISS metric constant for ``l2`` / ``l1``."""
    try:
        return _METRICS[metric]
    except KeyError:
        raise InvalidInputError("metric", f"one of {', '.join(_METRICS)}", repr(metric)) from None


def metric_name(index: Index) -> str:
    """The metric an index searches with: ``l2``, ``l1``, or FAISS's number for any other."""
    names = {number: name for name, number in _METRICS.items()}
    return names.get(index.metric_type, f"faiss metric {index.metric_type}")


def _ivf(index: Index) -> faiss.IndexIVF | None:
    try:
        return faiss.downcast_index(faiss.extract_index_ivf(index))
    except RuntimeError:
        return None


def _hnsw(index: Index) -> faiss.IndexHNSW | None:
    while isinstance(index, faiss.IndexPreTransform):
        index = faiss.downcast_index(index.index)
    return index if isinstance(index, faiss.IndexHNSW) else None


def nlist(index: Index) -> int | None:
    """Number of inverted lists, or None for an index without them."""
    ivf = _ivf(index)
    return None if ivf is None else int(ivf.nlist)


def is_hnsw(index: Index) -> bool:
    """True when the index (under any pre-transform) is an HNSW graph."""
    return _hnsw(index) is not None


def type_name(index: Index) -> str:
    """The FAISS class of the index, e.g. ``IndexHNSWSQ``."""
    return type(faiss.downcast_index(index)).__name__


def serialized_size(index: Index) -> int:
    """Bytes the index takes when serialized (what it costs on disk and, roughly, in memory)."""
    return int(faiss.serialize_index(index).size)


def build_info() -> dict[str, str]:
    """The FAISS version and compile options, for reports."""
    return {"faiss": faiss.__version__, "faiss_compile_options": faiss.get_compile_options().strip()}


# -- building ---------------------------------------------------------------------------------------


def new_index(d: int, factory: str, metric: str, build_params: dict[str, object] | None = None) -> Index:
    """An empty index from a factory string, with knnserve's build-time settings applied."""
    index = faiss.index_factory(int(d), factory, metric_type(metric))
    ivf = _ivf(index)
    if isinstance(ivf, faiss.IndexIVFScalarQuantizer) and ivf.sq.qtype == faiss.ScalarQuantizer.QT_8bit_direct:
        # Residuals (x - centroid) are neither integers nor in 0..255: encode the vectors themselves.
        ivf.by_residual = False
    hnsw = _hnsw(index)
    if hnsw is not None and build_params and "efConstruction" in build_params:
        hnsw.hnsw.efConstruction = int(build_params["efConstruction"])  # type: ignore[call-overload]
    return index


def flat_index(base: np.ndarray, metric: str) -> Index:
    """An exact float32 ``IndexFlat`` holding ``base`` (n, d), added in chunks (ground truth, baselines)."""
    index = faiss.IndexFlat(int(base.shape[1]), metric_type(metric))
    for start in range(0, base.shape[0], 16384):
        index.add(np.ascontiguousarray(base[start : start + 16384], dtype=np.float32))
    return index


# -- searching --------------------------------------------------------------------------------------


# (wrapped in a pre-transform, nprobe, ef_search) -> SearchParameters. FAISS only reads them, so one
# object serves every concurrent search with those values; making one costs more than a one-row
# HNSW search of a small index. Bounded: the effort knobs are capped per request, not per server.
_PARAMETERS: dict[tuple[bool, int | None, int | None], faiss.SearchParameters | None] = {}
_PARAMETERS_LIMIT = 4096


def search_parameters(index: Index, nprobe: int | None, ef_search: int | None) -> faiss.SearchParameters | None:
    """FAISS ``SearchParameters`` for one call (the index itself is never mutated), shared between calls.

    The values were validated against the index when the query was resolved.
    """
    key = (isinstance(index, faiss.IndexPreTransform), nprobe, ef_search)
    found = _PARAMETERS.get(key, _PARAMETERS)
    if found is not _PARAMETERS:
        return found  # type: ignore[return-value]
    made = _make_parameters(key[0], nprobe, ef_search)
    if len(_PARAMETERS) >= _PARAMETERS_LIMIT:
        _PARAMETERS.clear()
    _PARAMETERS[key] = made
    return made


def _make_parameters(pretransform: bool, nprobe: int | None, ef_search: int | None,
                     selector: faiss.IDSelector | None = None) -> faiss.SearchParameters | None:
    inner: faiss.SearchParameters | None = None
    if nprobe is not None:
        inner = faiss.SearchParametersIVF(nprobe=int(nprobe))
    if ef_search is not None:
        inner = faiss.SearchParametersHNSW(efSearch=int(ef_search))
    if selector is not None:
        inner = inner if inner is not None else faiss.SearchParameters()
        inner.sel = selector
        inner.referenced_objects = [selector]
    if inner is not None and pretransform:
        wrapper = faiss.SearchParametersPreTransform(index_params=inner)
        wrapper.referenced_objects = [inner]  # keep the inner parameters alive as long as the wrapper
        return wrapper
    return inner


class Exclusion:
    """Ids every search skips (FAISS ``IDSelectorNot(IDSelectorBatch)``), with the search parameters that carry it.

    Removed examples stay in the index until a snapshot compacts it; every index kind honours the
    selector (flat, IVF, HNSW), so they are never found. Immutable: a new removal makes a new one.
    """

    def __init__(self, ids: np.ndarray) -> None:
        self.ids = np.unique(np.asarray(ids, dtype=np.int64))
        self._batch = faiss.IDSelectorBatch(self.ids)
        self._selector = faiss.IDSelectorNot(self._batch)
        self._parameters: dict[tuple[bool, int | None, int | None], faiss.SearchParameters] = {}

    def parameters(self, index: Index, nprobe: int | None, ef_search: int | None) -> faiss.SearchParameters:
        """SearchParameters with the effort knobs and this selector (made once per knob values)."""
        key = (isinstance(index, faiss.IndexPreTransform), nprobe, ef_search)
        found = self._parameters.get(key)
        if found is None:
            found = _make_parameters(key[0], nprobe, ef_search, self._selector)
            assert found is not None
            if len(self._parameters) >= _PARAMETERS_LIMIT:
                self._parameters.clear()
            self._parameters[key] = found
        return found


def search(
    index: Index, rows: np.ndarray, k: int, *, nprobe: int | None = None, ef_search: int | None = None,
    exclude: Exclusion | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """FAISS's (distances, ids) of the ``k`` nearest vectors of each row: squared for L2, -1 ids where none.

    ``rows`` must be float32 (n, d); they are made C-contiguous if they are not. ``exclude``: ids
    no search may return.
    """
    if rows.ndim != 2 or rows.shape[1] != index.d or rows.dtype != np.float32:
        raise InvalidInputError("rows", f"float32 rows (n, {index.d})", f"{rows.dtype} {rows.shape}")
    params = search_parameters(index, nprobe, ef_search) if exclude is None else exclude.parameters(index, nprobe, ef_search)
    return index.search(np.ascontiguousarray(rows), int(k), params=params)


# -- changing an index in place (online examples) -----------------------------------------------------


def add(index: Index, vectors: np.ndarray) -> None:
    """Append rows (n, d) to a loaded, writable (not memory-mapped) index; they get ids ntotal, ntotal + 1, ..."""
    if vectors.ndim != 2 or vectors.shape[1] != index.d:
        raise InvalidInputError("vectors", f"rows (n, {index.d})", f"shape {vectors.shape}")
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))


def compacted(index: Index, removed: np.ndarray) -> Index:
    """A copy of ``index`` without the ids in ``removed``, the others renumbered 0..n-1 in order.

    Flat kinds drop the rows; IVF kinds drop the list entries and renumber their ids (codes are
    kept byte for byte); HNSW graphs cannot drop nodes, so the kept vectors are added to an empty
    copy of the index (a new graph over the same vectors).
    """
    removed = np.unique(np.asarray(removed, dtype=np.int64))
    copy = faiss.clone_index(index)
    if removed.size == 0:
        return copy
    inner = faiss.downcast_index(copy)
    if isinstance(inner, faiss.IndexPreTransform):
        raise ValueError(f"cannot drop removed rows from a {type_name(index)} index (pre-transform)")
    ivf = _ivf(inner)
    if ivf is not None:
        ivf.remove_ids(faiss.IDSelectorBatch(removed))
        lists = ivf.invlists
        for number in range(int(ivf.nlist)):
            size = int(lists.list_size(number))
            if size == 0:
                continue
            old = faiss.rev_swig_ptr(lists.get_ids(number), size).copy()
            codes = faiss.rev_swig_ptr(lists.get_codes(number), size * int(lists.code_size)).copy()
            new = old - np.searchsorted(removed, old)
            lists.update_entries(number, 0, size, faiss.swig_ptr(new), faiss.swig_ptr(codes))
        return copy
    hnsw = _hnsw(inner)
    if hnsw is not None:
        n = int(hnsw.ntotal)
        kept = np.setdiff1d(np.arange(n, dtype=np.int64), removed)
        vectors = hnsw.reconstruct_n(0, n)[kept]
        hnsw.reset()
        hnsw.add(vectors)
        return copy
    copy.remove_ids(faiss.IDSelectorBatch(removed))
    return copy


# -- what the search kernels read (knnserve.kernels never imports faiss) ------------------------------


# Bytes of float vectors converted and compared at a time by exact_uint8: the temporaries stay in cache
# (Fashion-MNIST's 60,000 x 784 float32 base, shared busy 2-core machine: 0.08-0.10 s whole, 0.06-0.07 s by blocks).
_AS_UINT8_BLOCK_BYTES = 1 << 18


def exact_uint8(values: np.ndarray) -> np.ndarray | None:
    """``values`` (n, d) as uint8 when every one is an integer in 0..255 (so the conversion is exact), else None.

    The test the integer kernels apply to an index's vectors and to a batch's rows alike.
    """
    as_bytes = np.empty(values.shape, dtype=np.uint8)
    rows = max(1, _AS_UINT8_BLOCK_BYTES // max(values[:1].nbytes, 1))
    with np.errstate(invalid="ignore"):  # out-of-range values cast to garbage, which the comparison rejects
        for start in range(0, values.shape[0], rows):
            part, converted = values[start : start + rows], as_bytes[start : start + rows]
            np.copyto(converted, part, casting="unsafe")
            if not np.array_equal(converted, part):
                return None
    return as_bytes


def _l2_index(index: Index) -> Index | None:
    # Kernels take the index's own vectors and the caller's rows: a pre-transform would sit between.
    inner = faiss.downcast_index(index)
    return inner if inner.metric_type == faiss.METRIC_L2 else None


def _is_sq8_direct(index: Index) -> bool:
    return bool(index.sq.qtype == faiss.ScalarQuantizer.QT_8bit_direct)


def flat_uint8_vectors(index: Index) -> np.ndarray | None:
    """The vectors of an exact L2 Flat index (float32 ``Flat`` or ``SQ8_direct``) as uint8 (n, d).

    None for any other index, and for float32 vectors that are not all integers in 0..255.
    """
    inner = _l2_index(index)
    if inner is None or inner.ntotal == 0:
        return None
    n, d = int(inner.ntotal), int(inner.d)
    if isinstance(inner, faiss.IndexFlat):
        return exact_uint8(faiss.rev_swig_ptr(inner.get_xb(), n * d).reshape(n, d))
    if isinstance(inner, faiss.IndexScalarQuantizer) and _is_sq8_direct(inner):
        return faiss.vector_to_array(inner.codes).reshape(n, d)  # the byte is the value: no decoding
    return None


def ivf_uint8_lists(index: Index) -> tuple[list[np.ndarray], list[np.ndarray]] | None:
    """Each inverted list of an L2 ``IVF<n>,SQ8_direct`` (vectors, not residuals) or ``IVF<n>,Flat``
    index as (uint8 vectors (n_l, d), int64 ids); None for other indexes or non-uint8 float vectors."""
    inner = _l2_index(index)
    if isinstance(inner, faiss.IndexIVFScalarQuantizer):
        if not _is_sq8_direct(inner) or inner.by_residual:
            return None
        as_vectors = None
    elif type(inner) is faiss.IndexIVFFlat:  # not its subclasses (IVFFlatDedup stores lists differently)
        as_vectors = np.float32
    else:
        return None
    d, lists = int(inner.d), inner.invlists
    codes: list[np.ndarray] = []
    ids: list[np.ndarray] = []
    for number in range(int(inner.nlist)):
        size = int(lists.list_size(number))
        if size == 0:
            codes.append(np.zeros((0, d), dtype=np.uint8))
            ids.append(np.zeros(0, dtype=np.int64))
            continue
        code_ptr, id_ptr = lists.get_codes(number), lists.get_ids(number)
        try:
            raw = faiss.rev_swig_ptr(code_ptr, size * int(lists.code_size)).copy()
            ids.append(faiss.rev_swig_ptr(id_ptr, size).copy())
        finally:  # on-disk and other list kinds hand out temporary buffers
            lists.release_codes(number, code_ptr)
            lists.release_ids(number, id_ptr)
        if as_vectors is None:
            codes.append(raw.reshape(size, d))
        else:
            vectors = exact_uint8(raw.view(as_vectors).reshape(size, d))
            if vectors is None:
                return None
            codes.append(vectors)
    return codes, ids


def ivf_probes(
    index: Index, rows: np.ndarray, nprobe: int, run: Callable[[list[Callable[[], None]]], None] | None = None
) -> np.ndarray:
    """The lists an IVF search of ``rows`` at ``nprobe`` scans, (n, nprobe) int64, exactly as FAISS picks them.

    ``IndexIVF.search`` cuts the batch into one slice per OpenMP thread and sends each slice through
    the coarse quantizer on one thread; a slice below the BLAS threshold takes the non-BLAS path,
    whose rounding differs. The same slices go through the quantizer here, so near-tied centroids
    go the same way. ``run`` runs the slices' tasks (in parallel, e.g. the kernels' pool); default: in turn.
    """
    quantizer = faiss.downcast_index(index).quantizer
    rows = np.ascontiguousarray(rows, dtype=np.float32)
    n = rows.shape[0]
    slices = max(1, min(omp_threads(), n))
    probes = np.empty((n, int(nprobe)), dtype=np.int64)

    def one(start: int, stop: int) -> None:
        with num_threads(1):  # as in FAISS's parallel region; faiss's OpenBLAS follows OpenMP's count
            probes[start:stop] = quantizer.search(rows[start:stop], int(nprobe))[1]

    tasks: list[Callable[[], None]] = [
        lambda start=n * part // slices, stop=n * (part + 1) // slices: one(start, stop)
        for part in range(slices) if n * (part + 1) // slices > n * part // slices
    ]
    (run or (lambda ts: [task() for task in ts]))(tasks)
    return probes


# -- files --------------------------------------------------------------------------------------------


def write_index(index: Index, path: Path) -> None:
    """Write the index to a file (``faiss.write_index``)."""
    faiss.write_index(index, str(path))


def read_index(path: Path, *, mmap: bool = False) -> Index:
    """Read an index file; a file FAISS cannot read raises ValueError with FAISS's message.

    ``mmap``: map the file's vector data (flat codes, HNSW graph and storage, scalar-quantizer codes,
    inverted lists) read-only instead of copying it into the process (FAISS's IO_FLAG_MMAP_IFC).
    Processes that map one file share its pages in the page cache: ``knnserve serve --workers N``
    holds one copy of an index, not N. The file must never change in place while mapped; bundles
    are only ever replaced by renaming a new folder over the old one.
    """
    flags = faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY if mmap else 0
    try:
        return faiss.read_index(str(path), flags)
    except RuntimeError as exc:
        raise ValueError(f"FAISS could not read it ({exc})") from exc


# -- PCA ------------------------------------------------------------------------------------------------


def fit_pca(x: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train ``faiss.PCAMatrix`` on every row of x (N, D) float32; (matrix (dim, D), bias (dim,), variance (dim,)).

    ``variance`` is the training-set variance along each kept component (FAISS's eigenvalues are
    those of the unnormalised scatter matrix, so they are divided by N).
    """
    n, d = x.shape
    pca = faiss.PCAMatrix(d, dim)
    # faiss subsamples to max_points_per_d * d points by default; use every training row.
    pca.max_points_per_d = max(int(np.ceil(n / d)), 1)
    pca.train(np.ascontiguousarray(x, dtype=np.float32))
    matrix = faiss.vector_to_array(pca.A).reshape(dim, d)
    bias = faiss.vector_to_array(pca.b)
    variance = faiss.vector_to_array(pca.eigenvalues)[:dim] / n
    return matrix.astype(np.float32), bias.astype(np.float32), variance.astype(np.float32)


__all__ = [
    "DEFAULT_BLAS_THRESHOLD",
    "Exclusion",
    "Index",
    "add",
    "compacted",
    "blas_threshold",
    "build_info",
    "fit_pca",
    "flat_index",
    "flat_uint8_vectors",
    "is_hnsw",
    "ivf_probes",
    "ivf_uint8_lists",
    "metric_name",
    "metric_type",
    "new_index",
    "nlist",
    "num_threads",
    "omp_threads",
    "read_index",
    "search",
    "search_parameters",
    "serialized_size",
    "set_blas_threshold",
    "set_num_threads",
    "type_name",
    "write_index",
]
