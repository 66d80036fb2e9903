"""Search results -> what a classification answers: each head's predictions with its top-n classes, and the neighbours.

The one mapping below every caller of a model — the data plane (both protocols), batch jobs — so
a row gets the same answer whichever way it came. Plain wire types out, no protocol here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from knnserve_client.wire.results import HeadResult, Neighbors

if TYPE_CHECKING:  # the model's module loads FAISS; a batch job's server engine answers without it
    from knnserve.model import Classification, KNNModel


@dataclass(frozen=True, eq=False)
class Answers:
    """What the heads asked for answered for n rows: None for a head that did not run or neighbours not asked for."""

    knn: HeadResult | None
    linear: HeadResult | None
    neighbors: Neighbors | None

    def heads(self) -> dict[str, HeadResult]:
        """The heads that ran, by name."""
        return {name: head for name, head in (("knn", self.knn), ("linear", self.linear)) if head is not None}


def top_classes(scores: np.ndarray, top_n: int) -> tuple[np.ndarray, np.ndarray]:
    """The top_n classes per row by score, best first (equal scores: lower class index first)."""
    if top_n == 0:
        rows = scores.shape[0]
        return np.empty((rows, 0), np.int32), np.empty((rows, 0), np.float32)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :top_n]
    return order.astype(np.int32), np.take_along_axis(scores, order, axis=1).astype(np.float32)


def head_result(predictions: np.ndarray, scores: np.ndarray, top_n: int) -> HeadResult:
    """A head's predictions and its top_n classes with their scores."""
    classes, best = top_classes(np.asarray(scores, dtype=np.float32), top_n)
    return HeadResult(np.asarray(predictions, dtype=np.int64), classes, best)


def found_neighbors(ids: np.ndarray, distances: np.ndarray, labels: np.ndarray) -> Neighbors:
    """Neighbours as the wire carries them: ids int64, distances float32 (true scale), labels int64."""
    return Neighbors(ids.astype(np.int64), distances.astype(np.float32), labels.astype(np.int64))


def answer(
    model: KNNModel,
    heads: Sequence[str],
    top_n: int,
    *,
    voted: Classification | None,
    rows: np.ndarray,
    features: np.ndarray | None = None,
    with_neighbors: bool = False,
) -> Answers:
    """Each asked head's answer for ``rows`` (prepared), given the k-NN vote when that head ran.

    ``features`` are the rows' embeddings when the search already extracted them (the linear head
    reads them instead of running the extractor again).
    """
    knn = neighbors = None
    if voted is not None:
        knn = head_result(voted.predictions, voted.probabilities, top_n)
        if with_neighbors:
            neighbors = found_neighbors(voted.ids, voted.distances, voted.neighbor_labels)
    linear = None
    if "linear" in heads:
        predictions, probabilities = model.predict_linear(rows, features)
        linear = head_result(predictions, probabilities, top_n)
    return Answers(knn, linear, neighbors)


def no_answers(heads: Sequence[str], top_n: int, k: int, *, with_neighbors: bool = False) -> Answers:
    """The answers of zero rows (a piece of a batch job whose rows were all bad)."""
    empty = HeadResult(np.zeros(0, np.int64), np.zeros((0, top_n), np.int32), np.zeros((0, top_n), np.float32))
    return Answers(
        empty if "knn" in heads else None,
        empty if "linear" in heads else None,
        Neighbors.empty(0, k) if with_neighbors else None,
    )


__all__ = ["Answers", "answer", "found_neighbors", "head_result", "no_answers", "top_classes"]
