"""The server engine: rows sent to a knnserve server through the Python client, several requests in flight.

The client splits each request under the server's announced limits (message bytes, rows, rows x k)
and its channel retries UNAVAILABLE a few times; on top of that a request refused with UNAVAILABLE
(a server restarting or still loading its models) is retried here for ``retry_seconds``. The model
version is pinned when the job opens, and the resolved query is sent with every request, so a
reload on the server cannot change the answers halfway through a job.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import numpy as np

from knnserve.answers import no_answers
from knnserve.batch.engines import Commit
from knnserve.batch.plan import Plan, Shard
from knnserve.batch.progress import note
from knnserve.batch.readers import SourceCache, read_shard
from knnserve.batch.results import assemble
from knnserve.batch.rows import RowBatch, RowSpec
from knnserve.batch.spec import JobSpec, ModelFacts
from knnserve.query import QueryBounds, resolve_query
from knnserve_client import Client, ClassifyResult, UnavailableError
from knnserve_client.wire.errors import InvalidInputError
from knnserve_client.wire.results import HeadResult, Neighbors

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_IN_FLIGHT = 4
DEFAULT_REQUEST_ROWS = 1024
# Shards read and sent ahead of the one being committed.
SHARDS_AHEAD = 2
MAX_BACKOFF_S = 5.0


class ServerEngine:
    """Classify through a knnserve server: same rows and output as the local engine, the search on the server."""

    name = "server"

    def __init__(
        self,
        target: str,
        model: str,
        *,
        version: int | None = None,
        tls: bool | str | Path = False,
        token: str | None = None,
        timeout: float = 60.0,
        in_flight: int | None = None,
        request_rows: int | None = None,
        retry_seconds: float = 120.0,
    ) -> None:
        self.target = target
        self.model = model
        self.version = version
        self.in_flight = in_flight or DEFAULT_IN_FLIGHT
        self.request_rows = request_rows or DEFAULT_REQUEST_ROWS
        self.retry_seconds = retry_seconds
        self.client = Client(target, timeout=timeout, tls=tls, token=token)
        self.retries = 0
        self.facts: ModelFacts | None = None
        self._heads: tuple[str, ...] = ()
        self._neighbors = False

    def _retrying(self, call: Callable[[], T], what: str) -> T:
        """``call()``, retried with backoff while the server answers UNAVAILABLE, up to ``retry_seconds``."""
        give_up = time.monotonic() + self.retry_seconds
        delay = 0.25
        while True:
            try:
                return call()
            except UnavailableError as error:
                if time.monotonic() + delay > give_up:
                    raise
                self.retries += 1
                log.warning("%s: %s; retrying in %.2f s", what, error, delay)
                time.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF_S)

    def open(self, spec: JobSpec) -> ModelFacts:
        """Ask the server about the model, pin its version, and resolve the query as the server would."""
        info = self._retrying(lambda: self.client.model(self.model, self.version), "GetModel")
        for head in spec.heads:
            if head not in info.heads:
                raise InvalidInputError("--method", f"heads the served model has ({', '.join(info.heads)})", head)
        if spec.neighbors and "knn" not in spec.heads:
            raise InvalidInputError("--neighbors", "the k-NN head (--method knn or both): neighbours come from it", "--method linear")
        bounds = QueryBounds(info.index.ntotal, info.index.nlist, info.index.kind == "hnsw", len(info.class_names))
        query = resolve_query(spec.query, info.defaults, bounds)
        self.version = info.version
        self._heads = spec.heads
        self._neighbors = spec.neighbors
        note(f"server {self.target}: model {info.name} version {info.version} pinned for this job")
        self.facts = ModelFacts(
            row_spec=RowSpec(tuple(info.input_shape), info.input_dtype),
            name=info.name,
            version=info.version,
            class_names=tuple(info.class_names),
            query=query,
            identity={"served_model": info.name, "version": info.version, "created_at": info.created_at,
                      "factory": info.index.factory, "ntotal": info.index.ntotal},
        )
        return self.facts

    def _classify(self, x: np.ndarray) -> ClassifyResult:
        assert self.facts is not None
        options = self.facts.query.set_fields()
        return self._retrying(
            lambda: self.client.classify(self.model, x, version=self.version, heads=self._heads,
                                         return_neighbors=self._neighbors, **options),
            "Classify",
        )

    def _send(self, pool: ThreadPoolExecutor, rows: RowBatch) -> list[Future[ClassifyResult]]:
        good = rows.x[rows.good]
        return [pool.submit(self._classify, good[start : start + self.request_rows])
                for start in range(0, good.shape[0], self.request_rows)]

    def _answers(self, rows: RowBatch, futures: list[Future[ClassifyResult]]) -> tuple[dict[str, HeadResult], Neighbors | None]:
        assert self.facts is not None
        if futures:
            joined = ClassifyResult.concat([f.result() for f in futures])
            heads = {head: getattr(joined, head) for head in self._heads}
            return heads, joined.neighbors
        empty = no_answers(self._heads, self.facts.query.top_n or 0, self.facts.query.k or 0, with_neighbors=self._neighbors)
        return empty.heads(), empty.neighbors

    def run(self, plan: Plan, shards: Sequence[Shard], commit: Commit) -> None:
        """Read shards ahead, keep ``in_flight`` requests going, commit each shard when all its answers are in."""
        assert self.facts is not None, "open() first"
        cache = SourceCache(self.facts.row_spec)
        pending = iter(shards)
        with ThreadPoolExecutor(1, thread_name_prefix="batch-read") as reader, \
                ThreadPoolExecutor(self.in_flight, thread_name_prefix="batch-call") as calls, \
                ThreadPoolExecutor(1, thread_name_prefix="batch-write") as writer:
            reads: deque[Future[RowBatch]] = deque()
            sent: deque[tuple[RowBatch, list[Future[ClassifyResult]]]] = deque()
            writes: deque[Future[None]] = deque()

            def read_next() -> None:
                shard = next(pending, None)
                if shard is not None:
                    reads.append(reader.submit(read_shard, shard, plan.files, cache))

            read_next()
            try:
                while reads or sent:
                    while reads and len(sent) < SHARDS_AHEAD:
                        rows = reads.popleft().result()
                        sent.append((rows, self._send(calls, rows)))
                        read_next()
                    rows, futures = sent.popleft()
                    heads, neighbors = self._answers(rows, futures)
                    writes.append(writer.submit(commit, assemble(rows, heads, neighbors)))
                    while writes and writes[0].done():
                        writes.popleft().result()
                while writes:
                    writes.popleft().result()
            finally:
                for _, futures in sent:
                    for future in futures:
                        future.cancel()
                reader.submit(cache.close)

    def close(self) -> None:
        """Close the channel."""
        self.client.close()

    def report(self) -> dict[str, float | int | str]:
        """Requests retried after UNAVAILABLE."""
        return {"unavailable_retries": self.retries}


__all__ = ["ServerEngine"]
