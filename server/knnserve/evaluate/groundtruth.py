"""Exact k-NN ground truth with FAISS IndexFlat, re-ranked in float64, cached on disk by data checksum.

IndexFlat computes L2 as |x|² + |y|² - 2x·y in float32, which for 784 pixel values (|x|² up to 5e7)
rounds by a few units, enough to swap neighbours whose squared distances differ by 1. So the flat
search returns ``k + margin`` candidates, their distances are recomputed exactly in float64 and the
best ``k`` kept (ties ordered by id). For uint8 data the result is exact.

The cache file is named by a sha256 over the base and query arrays (dtype, shape, bytes), the
metric, k and this module's format version, so changed data or settings never hit a stale entry.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from knnserve.atomic import atomic_file
from knnserve.data import array_checksum
from knnserve.evaluate.metrics import exact_distances
from knnserve.index import as_float32_rows, flat_index

FORMAT_VERSION = 1
QUERY_CHUNK_ROWS = 2048


@dataclass(frozen=True)
class GroundTruth:
    """The exact ``k`` nearest base rows of each query, nearest first.

    Attributes
    ----------
    ids : (n, k) int64 base row numbers.
    distances : (n, k) float64 exact distances on the metric's true scale (Euclidean for l2).
    key : the cache key (sha256 hex) these arrays are stored under.
    cached : True when read from the cache rather than computed.
    seconds : time spent computing or loading.
    """

    ids: np.ndarray
    distances: np.ndarray
    metric: str
    key: str
    cached: bool
    seconds: float

    @property
    def kth(self) -> np.ndarray:
        """Exact distance of each query's k-th neighbor, (n,)."""
        return self.distances[:, -1]


def cache_key(base: np.ndarray, queries: np.ndarray, metric: str, k: int) -> str:
    """sha256 over the data checksums, the metric, k and the cache format version."""
    text = f"knnserve-groundtruth-v{FORMAT_VERSION}|{metric}|k={k}|{array_checksum(base)}|{array_checksum(queries)}"
    return hashlib.sha256(text.encode()).hexdigest()


def compute_ground_truth(
    base: np.ndarray, queries: np.ndarray, k: int, metric: str = "l2", *, progress: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Exact (ids, float64 true-scale distances) of the ``k`` nearest base rows of each query."""
    n_base, d = base.shape
    if not 1 <= k <= n_base:
        raise ValueError(f"k: expected 1..{n_base} (the number of base rows), got {k}")
    candidates = min(n_base, k + max(k, 16))
    index = flat_index(base, metric)
    ids = np.empty((queries.shape[0], k), dtype=np.int64)
    distances = np.empty((queries.shape[0], k), dtype=np.float64)
    with tqdm(total=queries.shape[0], desc="exact ground truth", unit="query", disable=not progress, leave=False) as bar:
        for start in range(0, queries.shape[0], QUERY_CHUNK_ROWS):
            block = queries[start : start + QUERY_CHUNK_ROWS]
            _, found = index.search(as_float32_rows(block, d, field="queries"), candidates)
            exact = exact_distances(base, block, found, metric)
            # Sort by exact distance, then id, so equal distances come in a reproducible order.
            order = np.lexsort((found, exact), axis=1)[:, :k]
            ids[start : start + block.shape[0]] = np.take_along_axis(found, order, axis=1)
            distances[start : start + block.shape[0]] = np.take_along_axis(exact, order, axis=1)
            bar.update(block.shape[0])
    return ids, distances


def _read_cache(path: Path, key: str, n: int, k: int) -> tuple[np.ndarray, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as stored:
            if str(stored["key"]) != key:
                return None
            ids, distances = stored["ids"], stored["distances"]
    except (OSError, ValueError, KeyError):
        return None  # missing or damaged: recompute and rewrite
    if ids.shape != (n, k) or distances.shape != (n, k):
        return None
    return ids.astype(np.int64), distances.astype(np.float64)


def _write_cache(path: Path, key: str, ids: np.ndarray, distances: np.ndarray) -> None:
    with atomic_file(path, "wb", suffix=".npz") as handle:
        np.savez(handle, key=np.array(key), ids=ids, distances=distances)


def cache_path(cache_dir: Path, key: str) -> Path:
    """File holding the ground truth for ``key``."""
    return cache_dir / f"gt-{key[:40]}.npz"


def ground_truth(
    base: np.ndarray,
    queries: np.ndarray,
    k: int,
    metric: str,
    *,
    cache_dir: Path | None,
    progress: bool = False,
) -> GroundTruth:
    """Exact ground truth, read from ``cache_dir`` when computed before for the same data, else computed and stored.

    ``cache_dir=None`` disables the cache.
    """
    started = time.perf_counter()
    key = cache_key(base, queries, metric, k)
    path = cache_path(cache_dir, key) if cache_dir is not None else None
    if path is not None and (hit := _read_cache(path, key, queries.shape[0], k)) is not None:
        return GroundTruth(hit[0], hit[1], metric, key, True, time.perf_counter() - started)
    ids, distances = compute_ground_truth(base, queries, k, metric, progress=progress)
    if path is not None:
        _write_cache(path, key, ids, distances)
    return GroundTruth(ids, distances, metric, key, False, time.perf_counter() - started)
