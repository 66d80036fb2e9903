"""What a request does to a served model, in numpy: validate options, search (batched), vote, top-n.

No gRPC here: the servicer converts messages to these arguments and the results back. Every
option is validated before anything reaches FAISS (which only asserts).
"""

from __future__ import annotations

import time
from collections.abc import Hashable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

import numpy as np

from knnserve.errors import InvalidInputError
from knnserve.index import SearchParams, search_parameters
from knnserve.model import KNNModel
from knnserve.service.errors import DeadlineExpiredError, RequestTooLargeError
from knnserve.service.registry import ServedModel
from knnserve.vote import check_tie_break, check_weights

DEFAULT_TOP_N = 5


@dataclass(frozen=True)
class KnnOptions:
    """k-NN options of one request, defaults filled in and validated."""

    k: int
    weights: str
    tie_break: str
    params: SearchParams
    top_n: int


@dataclass(frozen=True, eq=False)
class HeadOutput:
    """One head's answer: predictions (n,) int64, top classes (n, top_n) int32 and their scores float32."""

    predictions: np.ndarray
    top_classes: np.ndarray
    top_scores: np.ndarray


@dataclass(frozen=True, eq=False)
class NeighborsOutput:
    """Neighbours of each row: ids (n, k) int64, true-scale distances float32, labels int64."""

    ids: np.ndarray
    distances: np.ndarray
    labels: np.ndarray


@dataclass(frozen=True, eq=False)
class ClassifyOutput:
    """Everything a Classify response carries."""

    knn: HeadOutput | None
    linear: HeadOutput | None
    neighbors: NeighborsOutput | None
    options: KnnOptions


def check_rows(rows: int, max_rows: int) -> None:
    """RESOURCE_EXHAUSTED when a request carries more rows than the server allows."""
    if rows > max_rows:
        raise RequestTooLargeError(
            f"inputs: {rows} rows exceed the limit of {max_rows} rows per request; split the input"
        )


def check_neighbors(rows: int, k: int, max_neighbors: int) -> None:
    """RESOURCE_EXHAUSTED when rows * k exceeds the server's neighbour budget per request."""
    if rows * k > max_neighbors:
        raise RequestTooLargeError(
            f"inputs: {rows} rows x k={k} = {rows * k} neighbours exceed the limit of {max_neighbors} per request; "
            "send fewer rows per request or a smaller k"
        )


def prepare_inputs(model: KNNModel, x: np.ndarray) -> np.ndarray:
    """model.prepare with error fields named as on the wire (inputs, inputs.shape, inputs.dtype)."""
    try:
        return model.prepare(x)
    except InvalidInputError as exc:
        field = "inputs" if exc.field == "x" else f"inputs.{exc.field}"
        raise InvalidInputError(field, exc.expected, exc.got) from None


def resolve_options(
    model: KNNModel,
    *,
    k: int | None,
    weights: str | None,
    tie_break: str | None,
    nprobe: int | None,
    ef_search: int | None,
    top_n: int | None,
) -> KnnOptions:
    """Fill in the model's defaults and validate every option against the index."""
    k = model.defaults.k if k is None else k
    if not 1 <= k <= model.ntotal:
        raise InvalidInputError("k", f"an integer between 1 and {model.ntotal} (ntotal)", k)
    params = model.search_params(nprobe, ef_search)
    search_parameters(model.index, params)  # raises InvalidInputError for knobs the index lacks or bad ranges
    n_classes = model.n_classes
    top_n = min(DEFAULT_TOP_N, n_classes) if top_n is None else top_n
    if not 0 <= top_n <= n_classes:
        raise InvalidInputError("top_n", f"an integer between 0 and {n_classes} (the number of classes)", top_n)
    return KnnOptions(
        k=k,
        weights=check_weights(weights or model.defaults.weights),
        tie_break=check_tie_break(tie_break or model.defaults.tie_break),
        params=params,
        top_n=top_n,
    )


def batch_key(model: KNNModel, options: KnnOptions) -> Hashable:
    """Requests with equal keys may share one search at their largest k (see batcher.py)."""
    params = options.params
    if model.index_info.kind == "hnsw":
        # HNSW's beam is max(efSearch, k): equal beams give prefix-consistent results across k.
        beam = max(params.ef_search, options.k) if params.ef_search is not None else ("k", options.k)
        return (params.nprobe, beam)
    return (params.nprobe, params.ef_search)


def top_classes(scores: np.ndarray, top_n: int) -> tuple[np.ndarray, np.ndarray]:
    """The top_n classes per row by score, best first (equal scores: lower class index first)."""
    order = np.argsort(-scores, axis=1, kind="stable")[:, :top_n]
    return order.astype(np.int32), np.take_along_axis(scores, order, axis=1).astype(np.float32)


# gRPC reports "no deadline" as an enormous time remaining; treat anything beyond this as none.
NO_DEADLINE_S = 1e7


def deadline_from(time_remaining: float | None) -> float | None:
    """Absolute time.monotonic() deadline from gRPC's seconds-remaining (None = no deadline)."""
    if time_remaining is None or time_remaining > NO_DEADLINE_S:
        return None
    return time.monotonic() + time_remaining


class PendingClassify:
    """A classification whose search was submitted; :meth:`result` waits for it and votes."""

    def __init__(
        self,
        served: ServedModel,
        rows: np.ndarray,
        options: KnnOptions,
        heads: tuple[str, ...],
        *,
        deadline: float | None,
        return_neighbors: bool,
    ) -> None:
        self.served = served
        self.options = options
        self._rows = rows
        self._heads = heads
        self._deadline = deadline
        self._return_neighbors = return_neighbors
        self._future: Future[tuple[np.ndarray, np.ndarray]] | None = None
        if "knn" in heads:
            self._future = served.searcher.submit(
                rows, options.k, options.params, key=batch_key(served.model, options), deadline=deadline
            )

    def cancel(self) -> None:
        """Give up (the caller went away): a still-queued search is skipped."""
        if self._future is not None:
            self._future.cancel()

    def result(self) -> ClassifyOutput:
        """Wait for the search (until the deadline), vote, and run the linear head if asked."""
        model = self.served.model
        knn = neighbors = None
        if self._future is not None:
            distances, ids = wait(self._future, self._deadline)
            voted = model.vote_from_neighbors(
                distances, ids, k=self.options.k, weights=self.options.weights, tie_break=self.options.tie_break
            )
            classes, scores = top_classes(voted.probabilities, self.options.top_n)
            knn = HeadOutput(voted.predictions.astype(np.int64), classes, scores)
            if self._return_neighbors:
                neighbors = NeighborsOutput(voted.ids, voted.distances.astype(np.float32), voted.neighbor_labels)
        linear = None
        if "linear" in self._heads:
            predictions, probabilities = model.predict_linear(self._rows)
            classes, scores = top_classes(np.asarray(probabilities, dtype=np.float32), self.options.top_n)
            linear = HeadOutput(np.asarray(predictions, dtype=np.int64), classes, scores)
        return ClassifyOutput(knn=knn, linear=linear, neighbors=neighbors, options=self.options)


def wait(future: Future[tuple[np.ndarray, np.ndarray]], deadline: float | None) -> tuple[np.ndarray, np.ndarray]:
    """The future's result, or DeadlineExpiredError once the deadline passes."""
    timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
    try:
        return future.result(timeout=timeout)
    except FutureTimeout:
        future.cancel()
        raise DeadlineExpiredError("the deadline passed while waiting for the search") from None


def search(
    served: ServedModel, rows: np.ndarray, options: KnnOptions, *, deadline: float | None
) -> NeighborsOutput:
    """The k nearest training vectors of prepared rows (through the batcher)."""
    model = served.model
    future = served.searcher.submit(rows, options.k, options.params, key=batch_key(model, options), deadline=deadline)
    distances, ids = wait(future, deadline)
    labels = np.where(ids >= 0, model.labels[np.maximum(ids, 0)], -1)
    return NeighborsOutput(ids.astype(np.int64), distances.astype(np.float32), labels.astype(np.int64))


__all__ = [
    "ClassifyOutput",
    "HeadOutput",
    "KnnOptions",
    "NeighborsOutput",
    "PendingClassify",
    "batch_key",
    "check_neighbors",
    "check_rows",
    "deadline_from",
    "prepare_inputs",
    "resolve_options",
    "search",
    "top_classes",
    "wait",
]
