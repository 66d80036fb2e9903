"""k-NN voting: uniform or distance-weighted class votes, probabilities and a documented tie rule.

Rules (docs/voting.md says the same):

* Neighbours whose id is -1 (FAISS found fewer than k) carry no vote.
* ``uniform``: every neighbour votes 1. ``distance``: a neighbour votes ``1 / d`` where ``d`` is the
  distance on the metric's true scale (Euclidean, not FAISS's squared L2; the caller takes the
  square root); if any neighbour of a row is at distance 0, exactly those neighbours vote 1 and the
  others 0 (scikit-learn's rule).
* Probabilities are the votes normalised to sum to 1; a row with no valid neighbour gets
  prediction -1 and all-zero probabilities.
* Ties between classes with equal vote: ``nearest`` (default) picks the tied class of the first
  neighbour in result order, i.e. the nearest one; ``lowest`` picks the lowest class index, which is
  what scikit-learn's ``KNeighborsClassifier`` does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from knnserve.errors import InvalidInputError
from knnserve_client.wire.query import check_choice


@dataclass(frozen=True)
class VoteResult:
    """Predicted class per row (-1 when no neighbour was found) and class probabilities (n, C)."""

    predictions: np.ndarray
    probabilities: np.ndarray


def neighbor_labels(labels: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Class of each neighbor id (n, k) from the training ``labels``; -1 where the id is -1 (none found)."""
    return np.where(ids >= 0, labels[np.maximum(ids, 0)], -1)


def neighbor_weights(distances: np.ndarray, valid: np.ndarray, weights: str) -> np.ndarray:
    """Vote weight of each neighbor (n, k), zero where ``valid`` is False."""
    check_choice("weights", weights)
    if weights == "uniform":
        return valid.astype(np.float64)
    dist = np.where(valid, distances.astype(np.float64), np.inf)
    zero = valid & (dist == 0)
    with np.errstate(divide="ignore"):
        w = np.where(valid, 1.0 / dist, 0.0)
    exact_rows = zero.any(axis=1)
    if exact_rows.any():
        w[exact_rows] = zero[exact_rows]
    return w


def vote(
    neighbor_labels: np.ndarray,
    distances: np.ndarray,
    n_classes: int,
    *,
    weights: str = "uniform",
    tie_break: str = "nearest",
) -> VoteResult:
    """Vote over each row's neighbours, which must be sorted nearest first.

    Parameters
    ----------
    neighbor_labels : (n, k) int class index of each neighbour, -1 for a missing neighbour.
    distances : (n, k) distances on the metric's true scale (used by ``distance`` weighting).
    n_classes : number of classes C; labels must lie in [0, C).
    weights : ``uniform`` or ``distance``.
    tie_break : ``nearest`` or ``lowest`` (see the module docstring).

    Written with as few numpy passes as the rules allow: served requests are often one row, where
    each numpy call's fixed cost (about a microsecond) is most of the work.
    """
    check_choice("tie_break", tie_break)
    labels = np.asarray(neighbor_labels)
    if labels.ndim != 2 or labels.shape != np.shape(distances):
        raise InvalidInputError("neighbor_labels", "a (n, k) array matching distances", f"shape {labels.shape}")
    if labels.size and labels.max() >= n_classes:
        raise InvalidInputError("neighbor_labels", f"class indices below {n_classes}", int(labels.max()))
    n = labels.shape[0]
    valid = labels >= 0
    w = neighbor_weights(np.asarray(distances), valid, weights)
    # Row r's class c counts at r * C + c; a missing neighbour (label -1) has weight 0, and its
    # index r * C - 1 (or C - 1 for r = 0) stays inside the array.
    flat = (labels + (np.arange(n) * n_classes)[:, None]).ravel()
    votes = np.bincount(np.maximum(flat, 0), weights=w.ravel(), minlength=n * n_classes).reshape(n, n_classes)
    totals = votes.sum(axis=1)
    found = totals > 0
    probabilities = (votes / np.where(found, totals, 1.0)[:, None]).astype(np.float32)

    predictions = votes.argmax(axis=1)  # argmax returns the first maximum: the lowest index
    if tie_break == "nearest":
        tied = votes == votes[np.arange(n), predictions][:, None]
        contested = (tied.sum(axis=1) > 1) & found
        if contested.any():
            rows = np.flatnonzero(contested)
            sub_labels = labels[rows]
            in_tie = valid[rows] & tied[rows[:, None], np.where(valid[rows], sub_labels, 0)]
            first = in_tie.argmax(axis=1)
            predictions[rows] = sub_labels[np.arange(rows.size), first]
    if not found.all():
        predictions = np.where(found, predictions, -1)
    return VoteResult(predictions=predictions.astype(np.int64, copy=False), probabilities=probabilities)
