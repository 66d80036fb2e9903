"""The data plane: what a request does to the served models, whatever protocol brought it.

numpy arrays and a :class:`KnnQuery` in, wire result types (``ClassifyResult``, ``SearchResult``,
``ModelInfo``) out; no gRPC here. A servicer decodes its protocol's messages, calls one of these
methods and encodes the answer; every check runs here, in this order, so every protocol reports
the same errors: model and version (NOT_FOUND), rows per request (RESOURCE_EXHAUSTED), the rows
themselves (INVALID_ARGUMENT, via ``KNNModel.prepare``), the query against the model
(``KNNModel.resolve``), the heads, then rows x k (RESOURCE_EXHAUSTED). Searches go through the
model version's batcher (with the model's feature extractor, when it has one, inside the batch);
voting, the linear head (on the features the batch extracted) and top-n run on the caller's thread.

Validation and submission are synchronous and run on the server's event loop (``start_classify``
raises a request's errors before anything is queued); waiting for the search is a coroutine
(``await pending.result()``, ``await plane.classify(...)``, ``await plane.search(...)``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Hashable, Sequence

import numpy as np

from knnserve.answers import answer, found_neighbors
from knnserve.dataplane.registry import ModelRegistry, ServedModel
from knnserve.dataplane.writes import ExampleWriter
from knnserve.features.knn_spec import knn_preprocess_name
from knnserve.model import KNNModel, Searched
from knnserve.vote import neighbor_labels
from knnserve_client.wire.examples import OnlineInfo
from knnserve_client.wire.errors import DeadlineExpiredError, InvalidInputError, RequestTooLargeError
from knnserve_client.wire.limits import ServerLimits
from knnserve_client.wire.model_info import FeatureSpace, IndexInfo, ModelInfo, QueryLimits
from knnserve_client.wire.query import KnnQuery
from knnserve_client.wire.results import ClassifyResult, SearchResult



def batch_key(model: KNNModel, query: KnnQuery) -> Hashable:
    """Searches with equal keys may share one FAISS call at their largest k (see ``batcher.py``)."""
    if query.ef_search is not None:
        # HNSW's beam is max(efSearch, k): equal beams give prefix-consistent results across k.
        return (query.nprobe, max(query.ef_search, query.k or 0))
    return (query.nprobe, None)


async def wait(future: asyncio.Future[Searched], deadline: float | None) -> Searched:
    """The future's result, or DeadlineExpiredError once the deadline (``time.monotonic``) passes.

    A caller that goes away (its task cancelled) cancels the future: a still-queued search is skipped.
    """
    if deadline is None or future.done():
        return await future
    # A timer on the loop, not asyncio.wait_for: no waiter future and callbacks per call.
    expired: list[bool] = []
    timer = asyncio.get_running_loop().call_later(max(0.0, deadline - time.monotonic()), _expire, future, expired)
    try:
        return await future
    except asyncio.CancelledError:
        if expired:
            raise DeadlineExpiredError("the deadline passed while waiting for the search") from None
        raise
    finally:
        timer.cancel()


def _expire(future: asyncio.Future[Searched], expired: list[bool]) -> None:
    """The deadline passed: cancel the search (a queued one is skipped) and say why."""
    if not future.done():
        expired.append(True)
        future.cancel()


def model_info(served: ServedModel, versions: Sequence[int], limits: ServerLimits) -> ModelInfo:
    """Describe one served version (``versions``: every loaded version of the model) under the server's limits."""
    model = served.model
    record = model.index_info
    manifest = model.manifest
    bounds = model.bounds(limits.max_ef_search)
    return ModelInfo(
        name=served.name,
        version=served.version,
        versions=tuple(sorted(versions)),
        input_dtype=str(model.input_dtype),
        input_shape=model.input_shape,
        dim=model.dim,
        class_names=model.class_names,
        index=IndexInfo(spec=record.spec, factory=record.factory, metric=record.metric, kind=record.kind,
                        ntotal=model.ntotal, dim=record.dim, nlist=model.nlist),
        heads=served.heads,
        defaults=model.defaults,
        created_at=manifest.created_at.isoformat() if manifest is not None else "",
        dataset=manifest.dataset.name if manifest is not None and manifest.dataset is not None else "",
        limits=QueryLimits(max_k=bounds.ntotal, max_nprobe=bounds.nlist, max_ef_search=bounds.max_ef_search),
        features=feature_space(model),
    )


def feature_space(model: KNNModel) -> FeatureSpace:
    """The space ``model`` works in, as ModelInfo reports it."""
    extractor = model.extractor.record if model.extractor is not None else None
    return FeatureSpace(
        input="extractor" if extractor is not None else "pixels",
        extractor=extractor.source if extractor is not None else "",
        embedding_dim=extractor.embedding_dim if extractor is not None else 0,
        preprocessing=knn_preprocess_name(model.preprocessor.config if model.preprocessor is not None else None),
        dim=model.index_info.dim,
    )


class PendingClassify:
    """A classification whose search was submitted; :meth:`result` waits for it, votes, and runs the linear head."""

    def __init__(
        self,
        served: ServedModel,
        rows: np.ndarray,
        query: KnnQuery,
        heads: tuple[str, ...],
        *,
        deadline: float | None,
        return_neighbors: bool,
        tag: str,
    ) -> None:
        self.served = served
        self.query = query
        self._rows = rows
        self._heads = heads
        self._deadline = deadline
        self._return_neighbors = return_neighbors
        self._tag = tag
        self._future: asyncio.Future[Searched] | None = None
        if "knn" in heads:
            key = batch_key(served.model, query)
            self._future = served.searcher.submit(rows, query, key=key, deadline=deadline)

    def cancel(self) -> None:
        """Give up (the caller went away): a still-queued search is skipped."""
        if self._future is not None:
            self._future.cancel()

    async def result(self) -> ClassifyResult:
        """Wait for the search (until the deadline), vote, and run the linear head if asked."""
        model = self.served.model
        voted = features = None
        if self._future is not None:
            distances, ids, features = await wait(self._future, self._deadline)
            voted = model.vote(distances, ids, self.query)
        answers = answer(model, self._heads, self.query.top_n or 0, voted=voted, rows=self._rows, features=features,
                         with_neighbors=self._return_neighbors)
        params = self.query if voted is not None else None
        known = tuple(pair for pair in model.head_classes() if pair[0] in self._heads)
        return ClassifyResult(self.served.name, self.served.version, answers.knn, answers.linear, answers.neighbors,
                              params, self._tag, known)


class DataPlane:
    """Requests to served models, protocol-neutral: versions, limits and batching in front of the models.

    Parameters
    ----------
    registry : the served model versions (loaded, reloaded and batched by it).
    limits : what one request may carry; announced to clients and enforced here.
    """

    def __init__(self, registry: ModelRegistry, limits: ServerLimits) -> None:
        self.registry = registry
        self.limits = limits
        self.writer = ExampleWriter(registry)

    @property
    def ready(self) -> bool:
        """True once models are loaded and at least one is served."""
        return self.registry.ready

    # -- models -------------------------------------------------------------------------------

    def describe(self, name: str, version: int | None = None, *, field: str = "model") -> ModelInfo:
        """One model at one version (default: the newest)."""
        served = self.registry.get(name, version, field=field)
        versions = self.registry.snapshot().get(served.name, {served.version: served})
        return model_info(served, list(versions), self.limits)

    def online_state(self, name: str, version: int | None = None, *, field: str = "model") -> OnlineInfo | None:
        """What changed in one version since its bundle (None on a server that takes no writes)."""
        return self.writer.state(self.registry.get(name, version, field=field))

    def describe_all(self) -> list[ModelInfo]:
        """Every served model at its newest version, sorted by name."""
        table = self.registry.snapshot()
        return [model_info(versions[max(versions)], list(versions), self.limits) for _, versions in sorted(table.items())]

    # -- requests ------------------------------------------------------------------------------

    def _admit(
        self, name: str, version: int | None, inputs: np.ndarray, query: KnnQuery, field: str
    ) -> tuple[ServedModel, np.ndarray, KnnQuery]:
        served = self.registry.get(name, version)
        rows = inputs.shape[0] if inputs.ndim else 0
        if rows > self.limits.max_rows_per_request:
            raise RequestTooLargeError(
                f"{field}: {rows} rows exceed the limit of {self.limits.max_rows_per_request} rows per request; split the input"
            )
        prepared = served.model.prepare(inputs, field=field)
        return served, prepared, served.model.resolve(query, max_ef_search=self.limits.max_ef_search)

    def _check_neighbors(self, rows: int, k: int, field: str) -> None:
        budget = self.limits.max_neighbors_per_request
        if rows * k > budget:
            raise RequestTooLargeError(
                f"{field}: {rows} rows x k={k} = {rows * k} neighbors exceed the limit of {budget} per request; "
                "send fewer rows per request or a smaller k"
            )

    def start_classify(
        self,
        name: str,
        version: int | None,
        inputs: np.ndarray,
        query: KnnQuery,
        heads: Sequence[str] = (),
        *,
        return_neighbors: bool = False,
        tag: str = "",
        deadline: float | None = None,
        field: str = "inputs",
    ) -> PendingClassify:
        """Validate a classification and submit its search; the caller waits with ``.result()``.

        ``heads`` empty means every head the model has; ``deadline`` is a ``time.monotonic`` time.
        """
        served, rows, resolved = self._admit(name, version, inputs, query, field)
        chosen = self._heads(served, heads)
        if return_neighbors and "knn" not in chosen:
            raise InvalidInputError("return_neighbors", "false unless the k-NN head runs (neighbors come from it)", True)
        if "knn" in chosen:
            self._check_neighbors(rows.shape[0], resolved.k or 0, field)
        return PendingClassify(served, rows, resolved, chosen, deadline=deadline, return_neighbors=return_neighbors, tag=tag)

    async def classify(self, name: str, version: int | None, inputs: np.ndarray, query: KnnQuery,
                       heads: Sequence[str] = (), **options: object) -> ClassifyResult:
        """:meth:`start_classify` and wait for the result."""
        return await self.start_classify(name, version, inputs, query, heads, **options).result()  # type: ignore[arg-type]

    async def search(
        self, name: str, version: int | None, inputs: np.ndarray, query: KnnQuery, *, deadline: float | None = None,
        field: str = "inputs",
    ) -> SearchResult:
        """The ``k`` nearest training vectors of each row (through the batcher)."""
        served, rows, resolved = self._admit(name, version, inputs, query, field)
        self._check_neighbors(rows.shape[0], resolved.k or 0, field)
        model = served.model
        future = served.searcher.submit(rows, resolved, key=batch_key(model, resolved), deadline=deadline)
        distances, ids, _ = await wait(future, deadline)
        return SearchResult(served.name, served.version, found_neighbors(ids, distances, neighbor_labels(model.labels, ids)))

    @staticmethod
    def _heads(served: ServedModel, heads: Sequence[str]) -> tuple[str, ...]:
        if not heads:
            return served.heads
        chosen: list[str] = []
        for head in heads:
            if head not in served.heads:
                raise InvalidInputError("heads", f"a subset of {', '.join(served.heads)} (this model's heads)", head)
            if head not in chosen:
                chosen.append(head)
        return tuple(chosen)


__all__ = ["DataPlane", "PendingClassify", "batch_key", "feature_space", "model_info", "wait"]
