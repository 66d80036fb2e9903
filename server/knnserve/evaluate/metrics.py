"""Quality of a k-NN result against exact ground truth: recall@k with ties, id overlap, and accuracy.

Recall follows ann-benchmarks' ``knn_threshold`` rule: a returned neighbour counts when its *exact*
distance to the query is at most the true k-th distance plus ``epsilon``. So a neighbour tied with
the true k-th one counts even if exact search returned the other. Conventions here:

* Distances are on the metric's own scale (Euclidean for ``l2``, not FAISS's squared value; L1 for
  ``l1``), the scale the voting and the wire protocol use; ``epsilon`` is an absolute slack on it.
* They are recomputed in float64 from the stored vectors for every returned id: approximate indexes
  report approximate distances (PQ codes), which must not decide whether a neighbour counts.
* An id of -1 (fewer than k found) never counts; an id returned twice counts once.
"""

from __future__ import annotations

import numpy as np

DEFAULT_EPSILON = 1e-3
DISTANCE_CHUNK_ROWS = 256


def exact_distances(base: np.ndarray, queries: np.ndarray, ids: np.ndarray, metric: str) -> np.ndarray:
    """Exact float64 distance (true scale) from each query to each listed base row; +inf where the id is -1.

    Parameters
    ----------
    base : (N, d) stored vectors, any numeric dtype (uint8 pixels are exact in float64).
    queries : (n, d) query vectors.
    ids : (n, m) int row numbers into ``base``, -1 for missing.
    metric : ``l2`` or ``l1``.
    """
    ids = np.asarray(ids)
    out = np.full(ids.shape, np.inf, dtype=np.float64)
    for start in range(0, ids.shape[0], DISTANCE_CHUNK_ROWS):
        block = ids[start : start + DISTANCE_CHUNK_ROWS]
        valid = block >= 0
        vectors = base[np.where(valid, block, 0)].astype(np.float64)
        diff = vectors - queries[start : start + block.shape[0], None, :].astype(np.float64)
        if metric == "l2":
            dist = np.sqrt(np.einsum("ijk,ijk->ij", diff, diff))
        elif metric == "l1":
            dist = np.abs(diff).sum(axis=2)
        else:
            raise ValueError(f"metric: expected l2 or l1, got {metric!r}")
        out[start : start + block.shape[0]] = np.where(valid, dist, np.inf)
    return out


def _first_occurrence(ids: np.ndarray) -> np.ndarray:
    """Mask (n, m) that is True at the first position of each distinct id in its row."""
    order = np.argsort(ids, axis=1, kind="stable")
    ranked = np.take_along_axis(ids, order, axis=1)
    first_sorted = np.ones(ids.shape, dtype=bool)
    first_sorted[:, 1:] = ranked[:, 1:] != ranked[:, :-1]
    first = np.empty_like(first_sorted)
    np.put_along_axis(first, order, first_sorted, axis=1)
    return first


def recall_per_query(
    ids: np.ndarray, distances: np.ndarray, true_kth: np.ndarray, k: int, epsilon: float = DEFAULT_EPSILON
) -> np.ndarray:
    """Fraction of each row's first ``k`` results within the true k-th distance plus ``epsilon``.

    Parameters
    ----------
    ids : (n, >=k) returned ids, -1 for missing.
    distances : (n, >=k) exact distances of those ids (:func:`exact_distances`), true scale.
    true_kth : (n,) exact distance of each query's true k-th neighbour.
    k : neighbours scored.
    epsilon : absolute slack on the distance scale.
    """
    ids, distances = np.asarray(ids)[:, :k], np.asarray(distances)[:, :k]
    if ids.shape[1] < k:
        raise ValueError(f"ids: expected at least {k} columns, got {ids.shape[1]}")
    hit = (ids >= 0) & (distances <= np.asarray(true_kth, dtype=np.float64)[:, None] + epsilon)
    hit &= _first_occurrence(ids)
    return hit.sum(axis=1) / k


def recall_at_k(
    ids: np.ndarray, distances: np.ndarray, true_kth: np.ndarray, k: int, epsilon: float = DEFAULT_EPSILON
) -> float:
    """Mean of :func:`recall_per_query` over the queries."""
    return float(recall_per_query(ids, distances, true_kth, k, epsilon).mean())


def id_overlap(ids: np.ndarray, true_ids: np.ndarray, k: int) -> float:
    """|returned ∩ true| / k averaged over queries, by id alone (no tie credit; faiss's intersection measure)."""
    found, truth = np.asarray(ids)[:, :k], np.asarray(true_ids)[:, :k]
    member = (found[:, :, None] == truth[:, None, :]).any(axis=2) & (found >= 0) & _first_occurrence(found)
    return float(member.sum() / (k * found.shape[0]))


def accuracy(predictions: np.ndarray, truth: np.ndarray) -> float:
    """Fraction of predictions equal to the true labels (a prediction of -1 is wrong)."""
    predictions, truth = np.asarray(predictions), np.asarray(truth)
    if predictions.shape != truth.shape:
        raise ValueError(f"predictions: expected shape {truth.shape}, got {predictions.shape}")
    return float(np.mean(predictions == truth)) if truth.size else float("nan")


def pareto_front(speed: np.ndarray, quality: np.ndarray) -> np.ndarray:
    """Mask of points no other point beats: none has both speed and quality at least as high, one higher."""
    speed, quality = np.asarray(speed, dtype=np.float64), np.asarray(quality, dtype=np.float64)
    keep = np.ones(speed.shape, dtype=bool)
    for i in range(speed.size):
        dominated = (speed >= speed[i]) & (quality >= quality[i]) & ((speed > speed[i]) | (quality > quality[i]))
        keep[i] = not dominated.any()
    return keep
