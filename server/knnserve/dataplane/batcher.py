"""Dynamic batching on the server's event loop: concurrent searches of one model merged into one FAISS call.

Why: FAISS answers one exact query in about the time of eight, so merging the 1-row requests of
concurrent clients multiplies throughput. Requests are merged only when their search parameters
match (``key``); the batch is searched once at the largest k and each request gets the first k
columns of its own rows. That prefix is exactly what a search at the smaller k returns for flat
and IVF indexes; HNSW's beam is max(efSearch, k), so the data plane puts that into the key.

How: everything but the search itself runs on the asyncio event loop that serves the calls, so a
call waiting for its batch is a future, not a thread, and forming a batch takes no lock. A
submission queues the request and schedules a dispatch; the dispatch takes every compatible
request queued by then (each loop iteration handles all the calls that arrived meanwhile, so a
batch forms from however many are waiting) and hands the merged rows to the model version's
search lane: one thread, where FAISS runs with the GIL released. While it searches the loop keeps
accepting calls; they queue up and form the next batch the moment the search returns. Searches of
one model version never overlap. One cross-thread hand-off each way per batch, not per request.

A request whose deadline passed, or whose caller went away, while it waited is not searched.

A merged batch stays within a neighbor budget (``BatchConfig.max_neighbors``: rows x largest k).
A request over that budget on its own (say one row at k = 60,000) is never merged: it runs on a
lane of its own (one thread, one FAISS thread), after waiting up to ``LARGE_YIELD_S`` for a gap
between the batches, so the searches of everybody else's small requests go on beside it instead
of waiting behind it or being inflated to its k.

Adaptive mode (the default) sizes the wait for company by the search itself: at most
``wait_fraction`` (1/4) of the last search's duration, capped by ``max_wait_us``, and no wait at
all when the previous batch held one request (no sign of concurrent load). The wait counts from
the later of the first request's arrival and the end of the previous search. When a request
searched alone costs less than ``unbatched_below_us`` (a small HNSW index answers in tens of
microseconds), merging saves less than the hand-off to the lane costs, so such requests are
searched at once on the loop's thread.

Every method except :meth:`DynamicBatcher.close` runs on the loop's thread.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
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
# How long close() waits for the queued searches of a replaced version.
CLOSE_TIMEOUT_S = 60.0


class BatchObserver(Protocol):
    """Receives batch statistics (the metrics module implements it)."""

    def observe_batch(self, model: str, rows: int, requests: int) -> None:
        """One FAISS search of ``rows`` rows merged from ``requests`` requests."""

    def observe_queue_wait(self, model: str, seconds: float) -> None:
        """Time one request waited between submission and its batch's search."""


class Searcher(Protocol):
    """Something that answers searches on the event loop: a DynamicBatcher or a DirectSearcher."""

    def submit(self, rows: np.ndarray, query: KnnQuery, *, key: Hashable,
               deadline: float | None) -> asyncio.Future[RowsAnswer]:
        """Search prepared float32 rows (call on the loop); the future holds (distances, ids, *extras)."""

    def close(self) -> None:
        """Finish queued work and stop (call from any thread but the loop's); later submissions still work."""


def _expired(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline


class DirectSearcher:
    """No batching: each submission is searched at once on a thread of a shared pool, side by side
    (``loop`` None: the running loop; ``pool`` None: its default executor)."""

    def __init__(self, search: BatchSearch, loop: asyncio.AbstractEventLoop | None, pool: ThreadPoolExecutor | None) -> None:
        self._search = search
        self._loop = loop
        self._pool = pool

    def submit(self, rows: np.ndarray, query: KnnQuery, *, key: Hashable,
               deadline: float | None) -> asyncio.Future[RowsAnswer]:
        """Search on the pool; a request already past its deadline fails at once."""
        loop = self._loop or asyncio.get_running_loop()
        if _expired(deadline):
            future: asyncio.Future[RowsAnswer] = loop.create_future()
            future.set_exception(DeadlineExpiredError("the deadline passed before the search started"))
            return future
        return loop.run_in_executor(self._pool, self._search, rows, query)

    def close(self) -> None:
        """Nothing to stop: the pool belongs to the server."""


@dataclass(eq=False)
class _Pending:
    rows: np.ndarray
    query: KnnQuery
    key: Hashable
    deadline: float | None
    future: asyncio.Future[RowsAnswer]
    enqueued: float = field(default_factory=time.monotonic)


class DynamicBatcher:
    """Merges the queued searches of one model version with equal keys; one search lane thread."""

    def __init__(
        self,
        search: BatchSearch,
        config: BatchConfig,
        loop: asyncio.AbstractEventLoop,
        *,
        name: str = "model",
        observer: BatchObserver | None = None,
        on_thread_start: Callable[[], None] | None = None,
        on_large_thread_start: Callable[[], None] | None = None,
    ) -> None:
        self._search = search
        self._config = config
        self._loop = loop
        self._name = name
        self._observer = observer
        self._lane = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"search-{name}",
                                        initializer=on_thread_start or (lambda: None))
        self._large = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"search-{name}-large",
                                         initializer=on_large_thread_start or (lambda: None))
        self._queue: collections.deque[_Pending] = collections.deque()
        self._busy = False  # a batch is being searched on the lane
        self._scheduled: asyncio.Handle | asyncio.TimerHandle | None = None  # the next dispatch
        self._lane_free: asyncio.Event | None = None  # made on the loop: what large requests wait for
        self._closed = False
        self._last_batch_requests = 0
        self._last_search_s = 0.0
        self._free_since = 0.0
        # Seconds per row of recent searches of one request alone (moving average; None until the
        # first): decides which requests are too cheap to batch (BatchConfig.unbatched_below_us).
        self._row_cost_s: float | None = None

    # -- on the loop --------------------------------------------------------------------------

    def submit(self, rows: np.ndarray, query: KnnQuery, *, key: Hashable,
               deadline: float | None) -> asyncio.Future[RowsAnswer]:
        """Queue a search; the future completes when its batch has been searched."""
        item = _Pending(rows=rows, query=query, key=key, deadline=deadline, future=self._loop.create_future())
        if self._closed:
            return DirectSearcher(self._search, self._loop, None).submit(rows, query, key=key, deadline=deadline)
        if rows.shape[0] * (query.k or 0) > self._config.max_neighbors:
            self._loop.create_task(self._run_large(item))
        elif self._too_cheap_to_batch(rows.shape[0]):
            self._search_now(item)
        else:
            self._queue.append(item)
            self._schedule()
        return item.future

    def _too_cheap_to_batch(self, rows: int) -> bool:
        """Adaptive mode: the model's searches cost less per request than handing them to the lane would."""
        cost = self._row_cost_s
        limit = self._config.unbatched_below_us
        return self._config.adaptive and limit > 0 and cost is not None and cost * rows * 1e6 < limit

    def _search_now(self, item: _Pending) -> None:
        """Search ``item`` on the loop's thread: cheaper than any hand-off (microseconds of search)."""
        if _expired(item.deadline):
            item.future.set_exception(DeadlineExpiredError("the deadline passed before the search started"))
            return
        if self._observer is not None:
            self._observer.observe_batch(self._name, item.rows.shape[0], 1)
        started = time.thread_time()
        try:
            found = self._search(item.rows, item.query)
        except Exception as exc:  # the caller's future carries it to the error mapping
            item.future.set_exception(exc)
            return
        self._note_cost(time.thread_time() - started, item.rows.shape[0])
        item.future.set_result(found)

    def _note_cost(self, cpu_seconds: float, rows: int) -> None:
        """Remember what a request costs searched alone: CPU time of the searching thread, not wall time,
        which a busy machine inflates (on a shared 2-core machine, wall time sent a fifth of a
        microsecond-cheap model's requests to the lane, each paying the hand-off it was spared)."""
        per_row = cpu_seconds / max(rows, 1)
        previous = self._row_cost_s
        self._row_cost_s = per_row if previous is None else 0.8 * previous + 0.2 * per_row

    def _compatible_rows(self, key: Hashable) -> int:
        return sum(item.rows.shape[0] for item in self._queue if item.key == key)

    def _schedule(self) -> None:
        """Arrange the next dispatch: now (after this loop iteration's calls), or when the wait for company ends."""
        if self._busy or not self._queue:
            return
        config = self._config
        first = self._queue[0]
        if self._scheduled is not None:
            if isinstance(self._scheduled, asyncio.TimerHandle) and self._compatible_rows(first.key) >= config.max_rows:
                self._scheduled.cancel()  # the batch is full: no reason to wait on
                self._scheduled = self._loop.call_soon(self._dispatch)
            return
        wait_s = config.max_wait_us / 1e6
        if config.adaptive:
            wait_s = 0.0 if self._last_batch_requests <= 1 else min(wait_s, config.wait_fraction * self._last_search_s)
        # Counted from when the last search ended too: requests that queued during a search are
        # joined by the callers that search just answered (else two half-batches alternate forever).
        delay = max(first.enqueued, self._free_since) + wait_s - time.monotonic()
        if delay <= 0 or self._closed:
            self._scheduled = self._loop.call_soon(self._dispatch)
        else:
            self._scheduled = self._loop.call_later(delay, self._dispatch)

    def _take_batch(self) -> list[_Pending]:
        """The first queued request and every compatible one that fits beside it, in order."""
        config = self._config
        first = self._queue[0]
        batch: list[_Pending] = []
        kept: collections.deque[_Pending] = collections.deque()
        rows = k = 0
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
        return batch

    def _live(self, batch: list[_Pending]) -> list[_Pending]:
        """The requests of ``batch`` still worth searching: not cancelled, not past their deadline."""
        now = time.monotonic()
        live: list[_Pending] = []
        for item in batch:
            if item.future.done():
                continue  # the caller went away (its await was cancelled)
            if item.deadline is not None and now >= item.deadline:
                item.future.set_exception(DeadlineExpiredError("the deadline passed while the request was queued"))
                continue
            if self._observer is not None:
                self._observer.observe_queue_wait(self._name, now - item.enqueued)
            live.append(item)
        return live

    def _dispatch(self) -> None:
        self._scheduled = None
        if self._busy or not self._queue:
            return
        batch = self._take_batch()
        self._last_batch_requests = len(batch)
        live = self._live(batch)
        if not live:
            self._schedule()
            return
        rows = live[0].rows if len(live) == 1 else np.concatenate([item.rows for item in live])
        query = max((item.query for item in live), key=lambda q: q.k or 0)  # equal keys: equal search effort
        if self._observer is not None:
            self._observer.observe_batch(self._name, rows.shape[0], len(live))
        self._set_busy(True)
        searched = self._loop.run_in_executor(self._lane, _timed, self._search, rows, query)
        searched.add_done_callback(lambda done: self._finish(live, done))

    def _set_busy(self, busy: bool) -> None:
        self._busy = busy
        if self._lane_free is not None:
            if busy or self._queue:
                self._lane_free.clear()
            else:
                self._lane_free.set()

    def _finish(self, live: list[_Pending], done: asyncio.Future[tuple[float, float, tuple[np.ndarray | None, ...]]]) -> None:
        """Back on the loop after a batch's search: hand each request its rows and k, then the next batch."""
        self._free_since = time.monotonic()
        self._set_busy(False)
        error = done.exception()
        if error is None:
            seconds, cpu_seconds, found = done.result()
            self._last_search_s = seconds
            if len(live) == 1:  # what a request costs searched alone
                self._note_cost(cpu_seconds, live[0].rows.shape[0])
            _split(live, found)
        else:  # every request of the batch gets the error; the lane keeps serving
            log.error("batched search failed", exc_info=error, extra={"model": self._name})
            for item in live:
                if not item.future.done():
                    item.future.set_exception(error)
        self._schedule()

    async def _run_large(self, item: _Pending) -> None:
        """A request over the batch budget: let the small requests' batches go first (for a while), then search alone.

        While the batch lane is searching or has requests queued, wait for a gap, up to LARGE_YIELD_S,
        so a stream of large requests cannot take the cores the small ones queue for; it still makes
        progress when the small ones never leave a gap.
        """
        if self._lane_free is None:
            self._lane_free = asyncio.Event()
            self._set_busy(self._busy)
        if self._busy or self._queue:
            try:
                await asyncio.wait_for(self._lane_free.wait(), LARGE_YIELD_S)
            except TimeoutError:
                pass
        if not self._live([item]):
            return
        try:
            found = await self._loop.run_in_executor(self._large, self._search, item.rows, item.query)
        except Exception as exc:  # the caller's future carries it to the error mapping
            if not item.future.done():
                item.future.set_exception(exc)
            return
        _split([item], found)

    async def _drain(self) -> None:
        """Search what is queued (no more waiting for company), then stop the lanes."""
        self._closed = True
        while self._queue or self._busy:
            if self._scheduled is not None:
                self._scheduled.cancel()
                self._scheduled = None
            self._schedule()
            await asyncio.sleep(0.001)
        self._lane.shutdown(wait=False)
        self._large.shutdown(wait=False)

    # -- from other threads -------------------------------------------------------------------

    def close(self, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """Search what is queued, then stop the lanes; later submissions are searched on a pool thread.

        Called from another thread than the loop's (a reload, the server's stop). When the loop no
        longer runs there is nothing queued that could still be answered: the lanes just stop.
        """
        if self._loop.is_running() and not self._loop.is_closed():
            done = asyncio.run_coroutine_threadsafe(self._drain(), self._loop)
            try:
                done.result(timeout)
            except Exception:  # a loop stopping under us: nothing left to answer
                log.warning("batcher %s did not drain within %.0f s", self._name, timeout)
        self._closed = True
        self._lane.shutdown(wait=True)
        self._large.shutdown(wait=True)


def _timed(search: BatchSearch, rows: np.ndarray, query: KnnQuery) -> tuple[float, float, tuple[np.ndarray | None, ...]]:
    """On the lane: how long the search took (wall seconds, the lane thread's CPU seconds) and what it found."""
    started, cpu = time.monotonic(), time.thread_time()
    found = search(rows, query)
    return time.monotonic() - started, time.thread_time() - cpu, found


def _split(live: list[_Pending], found: tuple[np.ndarray | None, ...]) -> None:
    """Hand each request its rows of every part of ``found``, and the first k columns of distances and ids."""
    distances, ids, *extras = found
    start = 0
    for item in live:
        stop = start + item.rows.shape[0]
        if not item.future.done():
            k = item.query.k
            item.future.set_result((distances[start:stop, :k], ids[start:stop, :k],  # type: ignore[index]
                                    *(None if extra is None else extra[start:stop] for extra in extras)))
        start = stop


__all__ = ["BatchObserver", "DirectSearcher", "DynamicBatcher", "Searcher"]
