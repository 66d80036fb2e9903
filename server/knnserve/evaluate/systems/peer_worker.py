"""The child process of one peer nearest-neighbour library (hnswlib, USearch, ScaNN, pynndescent, Annoy,
Voyager): it builds that library's index and answers searches; it never imports faiss.

Run as a script (``python -P peer_worker.py JOB_DIR``), not imported: each library brings its own
thread pool (OpenMP in some), and two OpenMP runtimes in one process slow each other down (the
scikit-learn baseline ran 2x slower beside FAISS's), so each peer gets a process of its own.
``JOB_DIR`` holds ``job.json`` (``library``, ``build``: its build parameters, ``settings``: a list of
search-parameter dicts, ``k``, ``threads``: build threads) and ``base.npy``, ``queries.npy``
(float32, read with ``allow_pickle=False``).

Protocol on stdin/stdout (binary): after building, one JSON line (``build_seconds``, ``memory_bytes``,
``memory_how``, ``version``); then for each request of four little-endian int64 (start, stop,
setting, threads) it searches ``queries[start:stop]`` at ``settings[setting]`` with ``threads``
threads and writes two int64 (rows, k), then rows*k int64 ids and rows*k float32 Euclidean
distances, nearest first (-1 and inf where the library found fewer than k). start == stop is a ping (answered
``0, k``); a request with start < 0 ends the child. Only row numbers cross the pipe.
"""

import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

# (rows, setting, threads) -> (ids int64 (rows, k), Euclidean distances float32 (rows, k))
Searcher = Callable[[np.ndarray, dict[str, Any], int], tuple[np.ndarray, np.ndarray]]


def _file_bytes(path: Path) -> int:
    """Bytes of a file, or of every file under a folder."""
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def _saved_bytes(save: Callable[[str], Any], folder: bool = False) -> int:
    """Serialized size: what ``save(path)`` writes (the index as the library stores it)."""
    with tempfile.TemporaryDirectory(prefix="knnserve-peer-size-") as tmp:
        target = Path(tmp) / "index"
        if folder:
            target.mkdir()
        save(str(target))
        return _file_bytes(target)


def _rss_bytes() -> int:
    """Resident set size of this process (Linux /proc)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _euclidean(squared: np.ndarray) -> np.ndarray:
    """Squared L2 (what hnswlib, USearch, ScaNN and Voyager return) to Euclidean, float32."""
    return np.sqrt(np.maximum(np.asarray(squared, dtype=np.float64), 0.0)).astype(np.float32)


def _hnswlib(base: np.ndarray, build: dict[str, Any], threads: int, k: int) -> tuple[Searcher, int, str]:
    import hnswlib

    index = hnswlib.Index(space="l2", dim=base.shape[1])
    index.init_index(max_elements=base.shape[0], M=build["M"], ef_construction=build["ef_construction"], random_seed=0)
    index.add_items(base, np.arange(base.shape[0]), num_threads=threads)

    def search(rows: np.ndarray, setting: dict[str, Any], n_threads: int) -> tuple[np.ndarray, np.ndarray]:
        index.set_ef(max(int(setting["ef"]), k))
        ids, squared = index.knn_query(rows, k=k, num_threads=n_threads)
        return ids.astype(np.int64), _euclidean(squared)

    return search, _saved_bytes(index.save_index), "serialized (save_index)"


def _usearch(base: np.ndarray, build: dict[str, Any], threads: int, k: int) -> tuple[Searcher, int, str]:
    from usearch.index import Index

    index = Index(ndim=base.shape[1], metric="l2sq", dtype="f32", connectivity=build["connectivity"],
                  expansion_add=build["expansion_add"])
    index.add(np.arange(base.shape[0], dtype=np.uint64), base, threads=threads)

    def search(rows: np.ndarray, setting: dict[str, Any], n_threads: int) -> tuple[np.ndarray, np.ndarray]:
        index.expansion_search = int(setting["expansion_search"])
        found = index.search(rows, k, threads=n_threads)
        keys = np.asarray(found.keys, dtype=np.int64).reshape(rows.shape[0], -1)[:, :k]
        squared = np.asarray(found.distances, dtype=np.float64).reshape(rows.shape[0], -1)[:, :k]
        counts = np.asarray(found.counts if hasattr(found, "counts") else [len(found.keys)]).reshape(-1)
        missing = np.arange(keys.shape[1])[None, :] >= counts[:, None]
        keys, distances = np.where(missing, -1, keys), np.where(missing, np.inf, _euclidean(squared))
        return keys, distances.astype(np.float32)

    return search, _saved_bytes(index.save), "serialized (Index.save)"


def _scann(base: np.ndarray, build: dict[str, Any], threads: int, k: int) -> tuple[Searcher, int, str]:
    import scann

    builder = scann.scann_ops_pybind.builder(base, k, "squared_l2")
    builder = builder.tree(num_leaves=build["num_leaves"], num_leaves_to_search=build["num_leaves"],
                           training_sample_size=base.shape[0])
    builder = builder.score_ah(build["dims_per_block"], anisotropic_quantization_threshold=float("nan"))
    searcher = builder.reorder(build["reorder"]).set_n_training_threads(threads).build()
    pool_threads = [0]

    def search(rows: np.ndarray, setting: dict[str, Any], n_threads: int) -> tuple[np.ndarray, np.ndarray]:
        leaves, reorder = int(setting["leaves_to_search"]), max(int(setting["reorder"]), k)
        if rows.shape[0] == 1:
            ids, squared = searcher.search(rows[0], k, reorder, leaves)
            ids, squared = ids[None, :], squared[None, :]
        elif n_threads == 1:
            ids, squared = searcher.search_batched(rows, k, reorder, leaves)
        else:
            if pool_threads[0] != n_threads:
                searcher.set_num_threads(n_threads)
                pool_threads[0] = n_threads
            ids, squared = searcher.search_batched_parallel(rows, k, reorder, leaves)
        # fewer than k points in the leaves searched: ScaNN pads with id 0 and a NaN distance
        missing = ~np.isfinite(np.asarray(squared, dtype=np.float64))
        ids = np.where(missing, -1, np.asarray(ids, dtype=np.int64))
        return ids, np.where(missing, np.inf, _euclidean(np.where(missing, 0.0, squared))).astype(np.float32)

    return search, _saved_bytes(searcher.serialize, folder=True), "serialized (ScannSearcher.serialize)"


def _pynndescent(base: np.ndarray, build: dict[str, Any], threads: int, k: int) -> tuple[Searcher, int, str]:
    import numba
    import pynndescent

    before = _rss_bytes()
    numba.set_num_threads(threads)
    index = pynndescent.NNDescent(base, metric="euclidean", n_neighbors=build["n_neighbors"], random_state=0,
                                  n_jobs=threads, low_memory=True)
    index.prepare()
    grown = _rss_bytes() - before

    def search(rows: np.ndarray, setting: dict[str, Any], n_threads: int) -> tuple[np.ndarray, np.ndarray]:
        numba.set_num_threads(n_threads)
        ids, distances = index.query(rows, k=k, epsilon=float(setting["epsilon"]))
        return np.asarray(ids, dtype=np.int64), np.asarray(distances, dtype=np.float32)

    # pynndescent saves only by pickling the whole object: its size here is the resident memory the
    # build and prepare() added (ann-benchmarks' measure), numba's compiled code included.
    return search, grown, "RSS growth during build + prepare()"


def _annoy(base: np.ndarray, build: dict[str, Any], threads: int, k: int) -> tuple[Searcher, int, str]:
    from annoy import AnnoyIndex

    index = AnnoyIndex(base.shape[1], "euclidean")
    index.set_seed(0)
    for i, row in enumerate(base):
        index.add_item(i, row.tolist())
    index.build(build["n_trees"], n_jobs=threads)
    pool: dict[int, ThreadPoolExecutor] = {}

    def one(row: np.ndarray, search_k: int) -> tuple[list[int], list[float]]:
        return index.get_nns_by_vector(row.tolist(), k, search_k=search_k, include_distances=True)

    def search(rows: np.ndarray, setting: dict[str, Any], n_threads: int) -> tuple[np.ndarray, np.ndarray]:
        search_k = int(setting["search_k"])
        if n_threads == 1 or rows.shape[0] == 1:
            found = [one(row, search_k) for row in rows]
        else:
            # Annoy has no batch call; its query releases the GIL, so a thread pool uses every core
            # (what ann-benchmarks' batch mode does for libraries without one).
            executor = pool.setdefault(n_threads, ThreadPoolExecutor(n_threads))
            found = list(executor.map(lambda row: one(row, search_k), rows))
        ids = np.full((rows.shape[0], k), -1, dtype=np.int64)
        distances = np.full((rows.shape[0], k), np.inf, dtype=np.float32)
        for i, (row_ids, row_distances) in enumerate(found):
            ids[i, : len(row_ids)], distances[i, : len(row_ids)] = row_ids, row_distances
        return ids, distances

    return search, _saved_bytes(index.save), "serialized (AnnoyIndex.save)"


def _voyager(base: np.ndarray, build: dict[str, Any], threads: int, k: int) -> tuple[Searcher, int, str]:
    from voyager import Index, Space, StorageDataType

    index = Index(Space.Euclidean, num_dimensions=base.shape[1], M=build["M"], ef_construction=build["ef_construction"],
                  random_seed=1, storage_data_type=StorageDataType.Float32)
    index.add_items(base, np.arange(base.shape[0]), num_threads=threads)

    def search(rows: np.ndarray, setting: dict[str, Any], n_threads: int) -> tuple[np.ndarray, np.ndarray]:
        ids, squared = index.query(rows, k=k, num_threads=n_threads, query_ef=max(int(setting["ef"]), k))
        return np.asarray(ids, dtype=np.int64), _euclidean(squared)

    return search, _saved_bytes(index.save), "serialized (Index.save)"


BUILDERS: dict[str, Callable[[np.ndarray, dict[str, Any], int, int], tuple[Searcher, int, str]]] = {
    "hnswlib": _hnswlib, "usearch": _usearch, "scann": _scann, "pynndescent": _pynndescent, "annoy": _annoy,
    "voyager": _voyager,
}


def _version(library: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(library)
    except PackageNotFoundError:
        return "unknown"


def main(job_dir: str) -> None:
    """Build, report, then answer row ranges until told to stop."""
    folder = Path(job_dir)
    job = json.loads((folder / "job.json").read_text())
    base = np.ascontiguousarray(np.load(folder / "base.npy", allow_pickle=False), dtype=np.float32)
    queries = np.ascontiguousarray(np.load(folder / "queries.npy", allow_pickle=False), dtype=np.float32)
    k, settings = int(job["k"]), list(job["settings"])
    started = time.perf_counter()
    search, memory, how = BUILDERS[job["library"]](base, job["build"], int(job["threads"]), k)
    build_seconds = time.perf_counter() - started
    assert "faiss" not in sys.modules, "a peer's child must not import faiss"
    out, requests = sys.stdout.buffer, sys.stdin.buffer
    ready = {"build_seconds": build_seconds, "memory_bytes": int(memory), "memory_how": how,
             "version": _version(job["library"])}
    out.write((json.dumps(ready) + "\n").encode())
    out.flush()
    while True:
        header = requests.read(32)
        if len(header) < 32:
            return
        start, stop, setting, threads = (int(v) for v in np.frombuffer(header, dtype="<i8"))
        if start < 0:
            return
        if stop <= start:
            out.write(np.array([0, k], dtype="<i8").tobytes())
            out.flush()
            continue
        ids, distances = search(queries[start:stop], settings[setting], max(threads, 1))
        # nearest first, whatever the library returned (the vote reads the first vote_k columns): ScaNN
        # once returned a row out of order on tiny data
        order = np.argsort(distances, axis=1, kind="stable")
        ids, distances = np.take_along_axis(ids, order, 1), np.take_along_axis(distances, order, 1)
        out.write(np.array([stop - start, k], dtype="<i8").tobytes() + np.ascontiguousarray(ids, dtype="<i8").tobytes()
                  + np.ascontiguousarray(distances, dtype="<f4").tobytes())
        out.flush()


if __name__ == "__main__":
    main(sys.argv[1])
