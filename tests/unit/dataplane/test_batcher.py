"""The dynamic batcher on an event loop, with a fake search function: merging, splitting, keys, limits,
deadlines, cancellation, the adaptive wait, the unbatched path and the large lane.

Each test runs its own loop in a thread (``LoopThread``, as the server does) and submits on it, so the
searches run on the batcher's lanes exactly as they do in the server.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from knnserve.dataplane.batcher import DirectSearcher, DynamicBatcher
from knnserve.dataplane.config import BatchConfig
from knnserve.service.loop import LoopThread
from knnserve_client.wire.errors import DeadlineExpiredError
from knnserve_client.wire.query import KnnQuery


class FakeIndex:
    """search(rows, query) -> distances = row value + column, ids = row value * 100 + column; records calls."""

    def __init__(self, delay: float = 0.0, *, busy: bool = False) -> None:
        self.calls: list[tuple[int, int, KnnQuery, str]] = []
        self.delay = delay
        self.busy = busy
        self.gate = threading.Event()
        self.gate.set()

    def search(self, rows: np.ndarray, query: KnnQuery) -> tuple[np.ndarray, np.ndarray]:
        k = query.k
        assert k is not None
        self.gate.wait(5)
        self.calls.append((rows.shape[0], k, query, threading.current_thread().name))
        if self.busy:  # spend CPU, as a real search does
            until = time.thread_time() + self.delay
            while time.thread_time() < until:
                pass
        else:
            time.sleep(self.delay)
        base = rows[:, :1].astype(np.int64)
        ids = base * 100 + np.arange(k)
        return ids.astype(np.float32), ids


def rows(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.float32).reshape(-1, 1).repeat(2, axis=1)


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    thread = LoopThread("test-loop")
    thread.start()
    yield thread
    thread.stop()


def on_loop(loop: LoopThread, work: Callable[[], Any]) -> Any:
    """Run ``work`` on the loop's thread (where submissions happen) and return what it returns."""

    async def call() -> Any:
        return work()

    return loop.call(call(), 5)


def result(loop: LoopThread, future: asyncio.Future[Any], timeout: float = 5) -> Any:
    """Wait from the test's thread for a future of the loop."""

    async def wait() -> Any:
        return await asyncio.wait_for(asyncio.shield(future), timeout)

    return loop.call(wait(), timeout + 1)


def submit(loop: LoopThread, batcher: Any, *values: int, k: int = 1, key: object = "a",
           deadline: float | None = None, query: KnnQuery | None = None) -> asyncio.Future[Any]:
    return on_loop(loop, lambda: batcher.submit(rows(*values), query or KnnQuery(k=k), key=key, deadline=deadline))


def blocked(loop: LoopThread, index: FakeIndex, config: BatchConfig, **options: Any) -> DynamicBatcher:
    """A batcher whose first search waits on index.gate, so later submissions queue up."""
    index.gate.clear()
    return DynamicBatcher(index.search, config, loop.loop, **options)


def test_queued_requests_merge_and_split_back_at_their_own_k(loop: LoopThread) -> None:
    index = FakeIndex()
    batcher = blocked(loop, index, BatchConfig(max_rows=100, max_wait_us=0, adaptive=False), name="m")
    first = submit(loop, batcher, 0)
    time.sleep(0.05)  # the lane now waits in the first search
    futures = [submit(loop, batcher, i, i + 50, k=k) for i, k in ((1, 2), (2, 5), (3, 1))]
    index.gate.set()
    result(loop, first)
    for (i, k), future in zip(((1, 2), (2, 5), (3, 1)), futures):
        distances, ids = result(loop, future)
        assert ids.shape == (2, k)
        np.testing.assert_array_equal(ids[:, 0], [i * 100, (i + 50) * 100])
    assert [c[:2] for c in index.calls] == [(1, 1), (6, 5)]  # one search at the largest k
    assert {c[3] for c in index.calls} == {"search-m_0"}  # on the model's lane, never the loop
    batcher.close()


def test_requests_of_one_loop_iteration_form_one_batch_without_any_wait(loop: LoopThread) -> None:
    """No wait configured, nothing searching: the calls that arrive together are still one search."""
    index = FakeIndex()
    batcher = DynamicBatcher(index.search, BatchConfig(max_rows=100, max_wait_us=0, adaptive=False), loop.loop)
    futures = on_loop(loop, lambda: [batcher.submit(rows(i), KnnQuery(k=1), key="a", deadline=None) for i in range(5)])
    for i, future in enumerate(futures):
        assert result(loop, future)[1][0, 0] == i * 100
    assert [c[0] for c in index.calls] == [5]
    batcher.close()


def test_different_keys_are_searched_separately(loop: LoopThread) -> None:
    index = FakeIndex()
    batcher = blocked(loop, index, BatchConfig(max_rows=100, max_wait_us=0, adaptive=False))
    submit(loop, batcher, 0, key="x")
    time.sleep(0.05)
    a = submit(loop, batcher, 1, query=KnnQuery(k=1, nprobe=1), key=(1, None))
    b = submit(loop, batcher, 2, query=KnnQuery(k=1, nprobe=2), key=(2, None))
    c = submit(loop, batcher, 3, query=KnnQuery(k=1, nprobe=1), key=(1, None))
    index.gate.set()
    for future in (a, b, c):
        result(loop, future)
    assert [(n, p.nprobe) for n, _, p, _ in index.calls[1:]] == [(2, 1), (1, 2)]
    batcher.close()


def test_max_rows_caps_a_batch_but_a_large_request_goes_alone(loop: LoopThread) -> None:
    index = FakeIndex()
    batcher = blocked(loop, index, BatchConfig(max_rows=4, max_wait_us=0, adaptive=False))
    submit(loop, batcher, 0)
    time.sleep(0.05)
    futures = [submit(loop, batcher, *range(n)) for n in (3, 1, 9, 2)]
    index.gate.set()
    for future in futures:
        result(loop, future)
    assert [c[0] for c in index.calls] == [1, 4, 9, 2]
    batcher.close()


def test_expired_and_cancelled_requests_are_not_searched(loop: LoopThread) -> None:
    index = FakeIndex()
    batcher = blocked(loop, index, BatchConfig(max_rows=100, max_wait_us=0, adaptive=False))
    submit(loop, batcher, 0)
    time.sleep(0.05)
    expired = submit(loop, batcher, 1, deadline=time.monotonic() + 0.01)
    cancelled = submit(loop, batcher, 2)
    alive = submit(loop, batcher, 3)
    assert on_loop(loop, cancelled.cancel)
    time.sleep(0.05)
    index.gate.set()
    with pytest.raises(DeadlineExpiredError):
        result(loop, expired)
    assert result(loop, alive)[1][0, 0] == 300
    assert [c[0] for c in index.calls] == [1, 1]
    batcher.close()


def test_waits_for_company_only_under_load(loop: LoopThread) -> None:
    index = FakeIndex()
    batcher = DynamicBatcher(index.search, BatchConfig(max_rows=8, max_wait_us=300_000, adaptive=True), loop.loop)
    started = time.monotonic()
    result(loop, submit(loop, batcher, 1))
    assert time.monotonic() - started < 0.2, "a lone caller must not wait max_wait"
    batcher.close()
    patient = DynamicBatcher(index.search, BatchConfig(max_rows=8, max_wait_us=100_000, adaptive=False), loop.loop)
    started = time.monotonic()
    result(loop, submit(loop, patient, 1))
    assert time.monotonic() - started >= 0.09
    patient.close()


def test_search_errors_reach_every_request_and_the_lane_survives(loop: LoopThread) -> None:
    calls = []

    def flaky(rows: np.ndarray, query: KnnQuery):  # type: ignore[no-untyped-def]
        k = query.k
        calls.append(rows.shape[0])
        if len(calls) == 1:
            raise RuntimeError("boom")
        return np.zeros((rows.shape[0], k), np.float32), np.zeros((rows.shape[0], k), np.int64)

    batcher = DynamicBatcher(flaky, BatchConfig(), loop.loop)
    with pytest.raises(RuntimeError, match="boom"):
        result(loop, submit(loop, batcher, 1))
    assert result(loop, submit(loop, batcher, 1, k=2))[1].shape == (1, 2)
    batcher.close()


def test_close_drains_and_later_submissions_still_succeed(loop: LoopThread) -> None:
    index = FakeIndex(delay=0.05)
    batcher = DynamicBatcher(index.search, BatchConfig(max_rows=1, max_wait_us=0), loop.loop)
    futures = [submit(loop, batcher, i) for i in range(3)]
    batcher.close()
    assert all(f.done() for f in futures)
    assert result(loop, submit(loop, batcher, 7))[1][0, 0] == 700


def test_direct_searcher_searches_on_the_pool_and_checks_the_deadline(loop: LoopThread) -> None:
    index = FakeIndex()
    searcher = DirectSearcher(index.search, loop.loop, None)
    assert result(loop, submit(loop, searcher, 2, k=3))[1].shape == (1, 3)
    assert index.calls[0][3] != "test-loop"
    with pytest.raises(DeadlineExpiredError):
        result(loop, submit(loop, searcher, 2, k=3, deadline=time.monotonic() - 1))


def test_adaptive_wait_is_a_fraction_of_the_last_search(loop: LoopThread) -> None:
    """After a merged batch whose search took 0.2 s, the next batch waits about 0.25 x 0.2 s for company."""
    index = FakeIndex(delay=0.2)
    # The fake search sleeps (no CPU): keep the CPU-cost shortcuts out of this test of the wait.
    batcher = blocked(loop, index, BatchConfig(max_rows=100, max_wait_us=1_000_000, wait_fraction=0.25,
                                               unbatched_below_us=0))
    first = submit(loop, batcher, 0)  # lone: searched at once (no sign of load)
    time.sleep(0.05)
    merged = [submit(loop, batcher, i) for i in (1, 2)]
    index.gate.set()
    result(loop, first)
    for future in merged:
        result(loop, future)  # searched together: last batch = 2 requests, last search = 0.2 s
    index.delay = 0.0
    started = time.monotonic()
    result(loop, submit(loop, batcher, 3))
    waited = time.monotonic() - started
    assert 0.04 <= waited < 0.5, waited
    assert [c[0] for c in index.calls] == [1, 2, 1]
    batcher.close()


def test_searches_cheaper_than_a_hand_off_run_on_the_loop_unbatched(loop: LoopThread) -> None:
    """Adaptive mode: once a lone search is measured below unbatched_below_us, requests are searched at once on
    the loop's thread (no hand-off); a model whose searches cost more keeps going to its lane."""
    for threshold_us, delay, expect_lane in ((10_000_000, 0.0, False), (1000, 0.02, True)):
        index = FakeIndex(delay=delay, busy=True)  # the cost is the searching thread's CPU time: burn it
        batcher = DynamicBatcher(index.search, BatchConfig(max_wait_us=0, unbatched_below_us=threshold_us),
                                 loop.loop, name="m")
        result(loop, submit(loop, batcher, 1))  # measured on the lane: the batcher knows no cost yet
        futures = on_loop(loop, lambda b=batcher: [b.submit(rows(i), KnnQuery(k=1), key="a", deadline=None)
                                                   for i in range(4)])
        for future in futures:
            result(loop, future)
        batcher.close()
        later = [name for *_, name in index.calls[1:]]
        assert index.calls[0][3] == "search-m_0"
        if expect_lane:
            assert later == ["search-m_0"], later  # the four merged into one search on the lane
        else:
            assert later == ["test-loop"] * 4, later  # each searched at once on the loop


def test_a_request_over_the_budget_runs_on_its_own_lane_beside_the_batches(loop: LoopThread) -> None:
    index = FakeIndex()
    batcher = DynamicBatcher(index.search, BatchConfig(max_rows=100, max_neighbors=50, max_wait_us=0), loop.loop,
                             name="m")
    big = submit(loop, batcher, 1, 2, k=40)  # 2 rows x k=40 = 80 > 50
    small = submit(loop, batcher, 3, k=5)
    assert result(loop, big)[1].shape == (2, 40)
    assert result(loop, small)[1].shape == (1, 5)
    lanes = {k: name for _, k, _, name in index.calls}
    assert lanes == {40: "search-m-large_0", 5: "search-m_0"}
    batcher.close()


def test_row_aligned_extras_of_a_merged_search_are_split_back_whole(loop: LoopThread) -> None:
    """A model with a feature extractor returns its features beside the neighbours: each caller gets its rows, all columns."""
    index = FakeIndex()

    def with_features(rows_: np.ndarray, query: KnnQuery):  # type: ignore[no-untyped-def]
        distances, ids = index.search(rows_, query)
        return distances, ids, np.repeat(rows_[:, :1], 7, axis=1)

    index.gate.clear()
    batcher = DynamicBatcher(with_features, BatchConfig(max_rows=100, max_wait_us=0, adaptive=False), loop.loop)
    first = submit(loop, batcher, 0)
    time.sleep(0.05)
    futures = [submit(loop, batcher, i, i + 10, k=k) for i, k in ((1, 3), (2, 1))]
    index.gate.set()
    result(loop, first)
    for (i, k), future in zip(((1, 3), (2, 1)), futures):
        distances, ids, features = result(loop, future)
        assert ids.shape == (2, k) and features.shape == (2, 7)
        np.testing.assert_array_equal(features[:, 0], [i, i + 10])
    none = DirectSearcher(lambda r, q: (*index.search(r, q), None), loop.loop, None)
    assert result(loop, submit(loop, none, 4, k=2))[2] is None
    batcher.close()

