"""What a classification or a search answers, as plain dataclasses of numpy arrays (no protobuf, no grpc).

The data plane returns these whatever the protocol; each protocol's codec (``wire.v1.codec``, the Open
Inference servicer's) turns them into its messages, and the client decodes responses back into them.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, TypeVar

import numpy as np

from knnserve_client.wire.query import KnnQuery

T = TypeVar("T")


def concat_fields(cls: type[T], parts: list[T]) -> T:
    """Join dataclasses of row-aligned arrays, field by field, in order."""
    return cls(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)})  # type: ignore[arg-type]


@dataclass(frozen=True, eq=False)
class HeadResult:
    """One head's answer for n rows: predictions (n,) int64 and the top classes (n, top_n) int32 with float32 scores."""

    predictions: np.ndarray
    top_classes: np.ndarray
    top_scores: np.ndarray

    @staticmethod
    def concat(parts: list[HeadResult]) -> HeadResult:
        """Join the answers of consecutive row chunks, in order."""
        return concat_fields(HeadResult, parts)

    def class_scores(self, n_classes: int) -> np.ndarray:
        """The (n, n_classes) score matrix, 0 for classes outside the top_n (all of them, when top_n = n_classes)."""
        scores = np.zeros((self.top_classes.shape[0], n_classes), np.float32)
        np.put_along_axis(scores, self.top_classes.astype(np.int64), self.top_scores, axis=1)
        return scores


@dataclass(frozen=True, eq=False)
class Neighbors:
    """The k nearest training vectors of n rows: ids int64, true-scale distances float32 and labels int64, each (n, k)."""

    ids: np.ndarray
    distances: np.ndarray
    labels: np.ndarray

    @staticmethod
    def concat(parts: list[Neighbors]) -> Neighbors:
        """Join the neighbours of consecutive row chunks, in order."""
        return concat_fields(Neighbors, parts)

    @staticmethod
    def empty(rows: int, k: int) -> Neighbors:
        """Neighbours of ``rows`` rows with none found: ids and labels -1, distances +inf (FAISS's own convention)."""
        return Neighbors(
            ids=np.full((rows, k), -1, dtype=np.int64),
            distances=np.full((rows, k), np.inf, dtype=np.float32),
            labels=np.full((rows, k), -1, dtype=np.int64),
        )


def _join(values: list[Any], joiner: Any) -> Any:
    return None if values[0] is None else joiner(values)


@dataclass(frozen=True, eq=False)
class ClassifyResult:
    """The answer to one Classify request; ``knn``/``linear`` are None when that head did not run.

    ``params`` are the k-NN options the request ran with, defaults filled in (None when the k-NN
    head did not run); ``tag`` is the request's tag, echoed.
    """

    model: str
    version: int
    knn: HeadResult | None
    linear: HeadResult | None
    neighbors: Neighbors | None
    params: KnnQuery | None
    tag: str = ""
    # Per head that ran: how many classes it knows (class indices 0 .. known - 1); a class added online
    # is known to the k-NN head at once, to the linear head from the next trained version.
    head_classes: tuple[tuple[str, int], ...] = ()

    @property
    def predictions(self) -> np.ndarray:
        """Predictions of the k-NN head when it ran, else of the linear head."""
        head = self.knn if self.knn is not None else self.linear
        if head is None:
            raise ValueError("no head ran")
        return head.predictions

    @staticmethod
    def concat(parts: list[ClassifyResult]) -> ClassifyResult:
        """Join the results of consecutive row chunks of one input, in order."""
        first = parts[0]
        if len(parts) == 1:
            return first
        return ClassifyResult(
            model=first.model,
            version=first.version,
            knn=_join([p.knn for p in parts], HeadResult.concat),
            linear=_join([p.linear for p in parts], HeadResult.concat),
            neighbors=_join([p.neighbors for p in parts], Neighbors.concat),
            params=first.params,
            tag=first.tag,
            head_classes=first.head_classes,
        )


@dataclass(frozen=True, eq=False)
class SearchResult:
    """The answer to one Search request: the model and version that answered and each row's neighbors."""

    model: str
    version: int
    neighbors: Neighbors

    @property
    def ids(self) -> np.ndarray:
        """Training-vector ids (n, k) int64, -1 where missing."""
        return self.neighbors.ids

    @property
    def distances(self) -> np.ndarray:
        """Distances (n, k) float32 on the metric's true scale."""
        return self.neighbors.distances

    @property
    def labels(self) -> np.ndarray:
        """Class index of each neighbor (n, k) int64, -1 where missing."""
        return self.neighbors.labels

    @staticmethod
    def concat(parts: list[SearchResult]) -> SearchResult:
        """Join the results of consecutive row chunks of one input, in order."""
        neighbors = Neighbors.concat([p.neighbors for p in parts]) if len(parts) > 1 else parts[0].neighbors
        return SearchResult(model=parts[0].model, version=parts[0].version, neighbors=neighbors)


__all__ = ["ClassifyResult", "HeadResult", "Neighbors", "SearchResult", "concat_fields"]
