"""Dynamic batching: concurrent searches of one model merged into one FAISS call, results split back.

Why: FAISS answers one exact query in about the time of eight, so merging the 1-row requests of
concurrent clients multiplies throughput. Requests are merged only when their search parameters
match (``key``); the batch is searched once at the largest k and each request gets the first k
columns of its own rows. That prefix is exactly what a search at the smaller k returns for flat
and IVF indexes; HNSW's beam is max(efSearch, k), so the data plane puts that into the key.

A request whose deadline passed, or whose caller went away, while it waited is not searched.

A merged batch stays within a neighbor budget (``BatchConfig.max_neighbors``: rows x largest k).
A request over that budget on its own (say one row at k = 60,000) is never merged: it runs on a
lane of its own (one thread, one FAISS thread), so the searches of everybody else's small requests
go on beside it instead of waiting behind it or being inflated to its k.

Adaptive mode (the default) sizes the wait for company by the search itself: at most
``wait_fraction`` (1/4) of the last search's duration, capped by ``max_wait_us``, so a slow
exact search (tens of ms, nearly as cheap for 16 rows as for 4) waits long enough to collect
every concurrent caller while a fast HNSW search waits a fraction of a millisecond. Under light
load it takes two shortcuts: when the previous batch held one request it does not wait at all,
and when the batcher is also idle with an empty queue a new request is searched at once on its
caller's thread (no hand-off to the batching thread: measured here, that hand-off cost about
0.35 ms of a 1-row HNSW call). Searches never overlap: requests arriving meanwhile queue up and
form the next batch. One exception, in adaptive mode: when a request searched alone costs less than
``unbatched_below_us`` (a small HNSW index answers in tens of microseconds), merging can save less
than the hand-off to the batching thread costs, so such requests are searched at once on their
callers' threads, side by side.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from knnserve.dataplane.config import BatchConfig
from knnserve_client.wire.errors import DeadlineExpiredError
from knnserve_client.wire.query import KnnQuery

# A model's search: prepared rows and a resolved query in, (distances, ids) out, optionally followed
# by row-aligned extras such as the extractor's features (KNNModel.search_features). Each caller gets
# its own rows of every part, and the first k columns of distances and ids; an extra of None stays None.
BatchSearch = Callable[[np.ndarray, KnnQuery], tuple[np.ndarray | None, ...]]
# One caller's part of a batch's answer: its rows of every part the search returned.
RowsAnswer = tuple[np.ndarray | None, ...]

log = logging.getLogger(__name__)
# How long a request over the batch budget waits for a gap between the batches of small requests.
LARGE_YIELD_S = 0.05


class BatchObserver(Protocol):
    """Receives batch statistics (the metrics module implements it)."""

    def observe_batch(self, model: str, rows: int, requests: int) -> None:
        """One FAISS search of ``rows`` rows merged from ``requests`` requests."""

    def observe_queue_wait(self, model: str, seconds: float) -> None:
        """Time one request waited between submission and its batch's search."""


class Searcher(Protocol):
    """Something that answers searches: a DynamicBatcher or a DirectSearcher."""

    def submit(self, rows: np.ndarray, query: KnnQuery, *, key: Hashable, deadline: float | None) -> Future[RowsAnswer]:
        """Search prepared float32 rows; the future holds (distances, ids), each (n, query.k)."""

    def close(self) -> None:
        """Finish queued work and stop; later submissions are searched on the caller's thread."""


def _check_deadline(deadline: float | None) -> None:
    if deadline is not None and time.monotonic() >= deadline:
        raise DeadlineExpiredError("the deadline passed before the search started")


class DirectSearcher:
    """No batching: each submission is searched at once on the calling thread."""

    def __init__(self, search: BatchSearch) -> None:
        self._search = search

    def submit(self, rows: np.ndarray, query: KnnQuery, *, key: Hashable, deadline: float | None) -> Future[RowsAnswer]:
        """Search now; the returned future is already done."""
        future: Future[RowsAnswer] = Future()
        future.set_running_or_notify_cancel()
        try:
            _check_deadline(deadline)
            future.set_result(self._search(rows, query))
        except Exception as exc:  # the caller's future carries it to the error mapping
            future.set_exception(exc)
        return future

    def close(self) -> None:
        """Nothing to stop."""


@dataclass(eq=False)
class _Pending:
    rows: np.ndarray
    query: KnnQuery
    key: Hashable
    deadline: float | None
    enqueued: float = field(default_factory=time.monotonic)
    future: Future[RowsAnswer] = field(default_factory=Future)


class DynamicBatcher:
    """One background thread per model version that merges queued searches with equal keys."""

    def __init__(
        self,
        search: BatchSearch,
        config: BatchConfig,
        *,
        name: str = "model",
        observer: BatchObserver | None = None,
        on_thread_start: Callable[[], None] | None = None,
        on_large_thread_start: Callable[[], None] | None = None,
    ) -> None:
        self._search = search
        self._config = config
        self._name = name
        self._observer = observer
        self._on_thread_start = on_thread_start
        # The lane of requests over the batch's neighbor budget: one at a time, beside the batches.
        self._large = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"batcher-{name}-large",
                                         initializer=on_large_thread_start or (lambda: None))
        self._queue: collections.deque[_Pending] = collections.deque()
        self._cond = threading.Condition()
        self._closed = False
        self._busy = False  # a search (batch or inline) is running; they never overlap
        self._large_waiting = 0  # large-lane searches waiting for the batch lane to fall idle
        self._last_batch_requests = 0
        self._last_search_s = 0.0
        self._free_since = 0.0
        # Seconds per row of recent searches of one request alone (moving average; None until the
        # first): decides which requests are too cheap to batch (BatchConfig.unbatched_below_us).
        self._row_cost_s: float | None = None
        self._thread = threading.Thread(target=self._run, name=f"batcher-{name}", daemon=True)
        self._thread.start()

    def submit(self, rows: np.ndarray, query: KnnQuery, *, key: Hashable, deadline: float | None) -> Future[RowsAnswer]:
        """Queue a search; the future completes when its batch has been searched."""
        item = _Pending(rows=rows, query=query, key=key, deadline=deadline)
        if rows.shape[0] * (query.k or 0) > self._config.max_neighbors:
            return self._submit_large(item)
        if self._too_cheap_to_batch(rows.shape[0]):
            self._search_unbatched(item)
            return item.future
        with self._cond:
            if self._closed:
                inline = None
            elif self._config.adaptive and not self._busy and not self._queue and self._last_batch_requests <= 1:
                self._busy = True
                inline = item
            else:
                self._queue.append(item)
                self._cond.notify()
                return item.future
        if inline is None:
            # Closed (the model version was replaced): answer on the caller's thread so the call still succeeds.
            return DirectSearcher(self._search).submit(rows, query, key=key, deadline=deadline)
        try:
            self._execute([inline])
        finally:
            with self._cond:
                self._busy = False
                self._last_batch_requests = 1
                self._wake_if_waited_for()
        return inline.future

    def _too_cheap_to_batch(self, rows: int) -> bool:
        """Adaptive mode: the model's searches cost less per request than handing them over would."""
        cost = self._row_cost_s
        limit = self._config.unbatched_below_us
        return (self._config.adaptive and limit > 0 and cost is not None and not self._closed
                and cost * rows * 1e6 < limit)

    def _search_unbatched(self, item: _Pending) -> None:
        """Search ``item`` now on the caller's thread, beside whatever else runs (no lane, no merge)."""
        item.future.set_running_or_notify_cancel()
        try:
            _check_deadline(item.deadline)
            if self._observer is not None:
                self._observer.observe_batch(self._name, item.rows.shape[0], 1)
            started = time.monotonic()
            found = self._search(item.rows, item.query)
            self._note_cost(time.monotonic() - started, item.rows.shape[0])
            item.future.set_result(found)
        except Exception as exc:  # the caller's future carries it to the error mapping
            item.future.set_exception(exc)

    def _note_cost(self, seconds: float, rows: int) -> None:
        per_row = seconds / max(rows, 1)
        previous = self._row_cost_s
        self._row_cost_s = per_row if previous is None else 0.8 * previous + 0.2 * per_row

    def _wake_if_waited_for(self) -> None:
        """After a search, under the lock: wake the threads that wait for the lane to be free, if any.

        Waking the batching thread when the queue is empty costs a thread switch for nothing; on a
        one-row HNSW call that was a third of the server's time.
        """
        if self._queue or self._large_waiting or self._closed:
            self._cond.notify_all()

    def _submit_large(self, item: _Pending) -> Future[RowsAnswer]:
        """Run a request over the batch budget alone, on the large lane (or inline once closed)."""
        if self._closed:
            return DirectSearcher(self._search).submit(item.rows, item.query, key=item.key, deadline=item.deadline)
        self._large.submit(self._run_large, item)
        return item.future

    def _run_large(self, item: _Pending) -> None:
        """On the large lane: let the batches of small requests go first (for a while), then search ``item``.

        While the batch lane is searching or has requests queued, wait for a gap, up to LARGE_YIELD_S,
        so a stream of large requests cannot take the cores the small ones queue for; it still
        makes progress when the small ones never leave a gap.
        """
        deadline = time.monotonic() + LARGE_YIELD_S
        with self._cond:
            self._large_waiting += 1
            try:
                while (self._busy or self._queue) and not self._closed:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
            finally:
                self._large_waiting -= 1
        self._execute([item], lane="large")

    def close(self, timeout: float | None = None) -> None:
        """Search what is queued, then stop the threads."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)
        self._large.shutdown(wait=True)

    # -- the batching thread ------------------------------------------------------------------

    def _run(self) -> None:
        if self._on_thread_start is not None:
            self._on_thread_start()
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            try:
                self._execute(batch)
            finally:
                with self._cond:
                    self._busy = False
                    if self._large_waiting:
                        self._cond.notify_all()

    def _compatible_rows(self, key: Hashable) -> int:
        return sum(item.rows.shape[0] for item in self._queue if item.key == key)

    def _next_batch(self) -> list[_Pending] | None:
        config = self._config
        with self._cond:
            while not self._queue or self._busy:
                if self._closed and not self._queue:
                    return None
                self._cond.wait()
            first = self._queue[0]
            wait_s = config.max_wait_us / 1e6
            if config.adaptive:
                if self._last_batch_requests <= 1:
                    wait_s = 0.0  # no sign of concurrent load: do not make a lone caller wait
                else:
                    wait_s = min(wait_s, config.wait_fraction * self._last_search_s)
            # Counted from when the last search ended too: requests that queued during a search are
            # joined by the callers that search just answered (else two half-batches alternate forever).
            until = max(first.enqueued, self._free_since) + wait_s
            while not self._closed and self._compatible_rows(first.key) < config.max_rows:
                remaining = until - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            batch: list[_Pending] = []
            rows = k = 0
            kept: collections.deque[_Pending] = collections.deque()
            for item in self._queue:
                # The first request always goes, even when it alone exceeds max_rows; the merged
                # search (rows x the largest k) stays within the neighbor budget.
                more_rows, more_k = rows + item.rows.shape[0], max(k, item.query.k or 0)
                fits = not batch or (more_rows <= config.max_rows and more_rows * more_k <= config.max_neighbors)
                if item.key == first.key and fits:
                    batch.append(item)
                    rows, k = more_rows, more_k
                else:
                    kept.append(item)
            self._queue = kept
            self._last_batch_requests = len(batch)
            self._busy = True
            return batch

    def _execute(self, batch: list[_Pending], *, lane: str = "batch") -> None:
        """Search the live requests of ``batch`` as one call and hand each its rows and k.

        Only the batch lane's searches set the adaptive wait's clock (``_last_search_s``,
        ``_free_since``): a slow search on the large lane says nothing about how long the batches take.
        """
        now = time.monotonic()
        live: list[_Pending] = []
        for item in batch:
            if not item.future.set_running_or_notify_cancel():
                continue  # the caller went away (cancelled the future)
            if item.deadline is not None and now >= item.deadline:
                item.future.set_exception(DeadlineExpiredError("the deadline passed while the request was queued"))
                continue
            if self._observer is not None:
                self._observer.observe_queue_wait(self._name, now - item.enqueued)
            live.append(item)
        if not live:
            return
        rows = live[0].rows if len(live) == 1 else np.concatenate([item.rows for item in live])
        query = max((item.query for item in live), key=lambda q: q.k or 0)  # equal keys: equal search effort
        if self._observer is not None:
            self._observer.observe_batch(self._name, rows.shape[0], len(live))
        started = time.monotonic()
        try:
            found = self._search(rows, query)
        except Exception as exc:  # every request of the batch gets the error; the thread keeps serving
            log.exception("batched search failed", extra={"model": self._name, "rows": int(rows.shape[0])})
            for item in live:
                item.future.set_exception(exc)
            return
        if lane == "batch":
            self._free_since = time.monotonic()
            self._last_search_s = self._free_since - started
        if len(live) == 1:  # what a request costs searched alone
            self._note_cost(time.monotonic() - started, rows.shape[0])
        start = 0
        for item in live:
            stop = start + item.rows.shape[0]
            k = item.query.k
            distances, ids, *extras = found
            item.future.set_result((distances[start:stop, :k], ids[start:stop, :k],  # type: ignore[index]
                                    *(None if extra is None else extra[start:stop] for extra in extras)))
            start = stop


__all__ = ["BatchObserver", "DirectSearcher", "DynamicBatcher", "Searcher"]
