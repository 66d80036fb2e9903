"""The dynamic batcher, with a fake search function: merging, splitting, keys, limits, deadlines."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from knnserve.dataplane.batcher import DirectSearcher, DynamicBatcher
from knnserve.dataplane.config import BatchConfig
from knnserve_client.wire.errors import DeadlineExpiredError
from knnserve_client.wire.query import KnnQuery


class FakeIndex:
    """search(rows, query) -> distances = row value + column, ids = row value * 100 + column; records calls."""

    def __init__(self, delay: float = 0.0) -> None:
        self.calls: list[tuple[int, int, KnnQuery]] = []
        self.delay = delay
        self.gate = threading.Event()
        self.gate.set()

    def search(self, rows: np.ndarray, query: KnnQuery) -> tuple[np.ndarray, np.ndarray]:
        k = query.k
        assert k is not None
        self.gate.wait(5)
        self.calls.append((rows.shape[0], k, query))
        time.sleep(self.delay)
        base = rows[:, :1].astype(np.int64)
        ids = base * 100 + np.arange(k)
        return ids.astype(np.float32), ids


def rows(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.float32).reshape(-1, 1).repeat(2, axis=1)


def blocked(index: FakeIndex, config: BatchConfig) -> DynamicBatcher:
    """A batcher whose first search waits on index.gate, so later submissions queue up."""
    index.gate.clear()
    batcher = DynamicBatcher(index.search, config)
    return batcher


def test_queued_requests_merge_and_split_back_at_their_own_k() -> None:
    index = FakeIndex()
    batcher = blocked(index, BatchConfig(max_rows=100, max_wait_us=0, adaptive=False))
    first = batcher.submit(rows(0), KnnQuery(k=1), key="a", deadline=None)
    time.sleep(0.05)  # the batcher thread now waits in the first search
    futures = [batcher.submit(rows(i, i + 50), KnnQuery(k=k), key="a", deadline=None) for i, k in ((1, 2), (2, 5), (3, 1))]
    index.gate.set()
    first.result(5)
    for (i, k), future in zip(((1, 2), (2, 5), (3, 1)), futures):
        distances, ids = future.result(5)
        assert ids.shape == (2, k)
        np.testing.assert_array_equal(ids[:, 0], [i * 100, (i + 50) * 100])
    assert [c[:2] for c in index.calls] == [(1, 1), (6, 5)]  # one search at the largest k
    batcher.close()


def test_different_keys_are_searched_separately() -> None:
    index = FakeIndex()
    batcher = blocked(index, BatchConfig(max_rows=100, max_wait_us=0, adaptive=False))
    batcher.submit(rows(0), KnnQuery(k=1), key="x", deadline=None)
    time.sleep(0.05)
    a = batcher.submit(rows(1), KnnQuery(k=1, nprobe=1), key=(1, None), deadline=None)
    b = batcher.submit(rows(2), KnnQuery(k=1, nprobe=2), key=(2, None), deadline=None)
    c = batcher.submit(rows(3), KnnQuery(k=1, nprobe=1), key=(1, None), deadline=None)
    index.gate.set()
    for future in (a, b, c):
        future.result(5)
    assert [(n, p.nprobe) for n, _, p in index.calls[1:]] == [(2, 1), (1, 2)]
    batcher.close()


def test_max_rows_caps_a_batch_but_a_large_request_goes_alone() -> None:
    index = FakeIndex()
    batcher = blocked(index, BatchConfig(max_rows=4, max_wait_us=0, adaptive=False))
    batcher.submit(rows(0), KnnQuery(k=1), key="a", deadline=None)
    time.sleep(0.05)
    futures = [batcher.submit(rows(*range(n)), KnnQuery(k=1), key="a", deadline=None) for n in (3, 1, 9, 2)]
    index.gate.set()
    for future in futures:
        future.result(5)
    assert [c[0] for c in index.calls] == [1, 4, 9, 2]
    batcher.close()


def test_expired_and_cancelled_requests_are_not_searched() -> None:
    index = FakeIndex()
    batcher = blocked(index, BatchConfig(max_rows=100, max_wait_us=0, adaptive=False))
    batcher.submit(rows(0), KnnQuery(k=1), key="a", deadline=None)
    time.sleep(0.05)
    expired = batcher.submit(rows(1), KnnQuery(k=1), key="a", deadline=time.monotonic() + 0.01)
    cancelled = batcher.submit(rows(2), KnnQuery(k=1), key="a", deadline=None)
    alive = batcher.submit(rows(3), KnnQuery(k=1), key="a", deadline=None)
    assert cancelled.cancel()
    time.sleep(0.05)
    index.gate.set()
    with pytest.raises(DeadlineExpiredError):
        expired.result(5)
    assert alive.result(5)[1][0, 0] == 300
    assert [c[0] for c in index.calls] == [1, 1]
    batcher.close()


def test_waits_for_company_only_under_load() -> None:
    index = FakeIndex()
    config = BatchConfig(max_rows=8, max_wait_us=300_000, adaptive=True)
    batcher = DynamicBatcher(index.search, config)
    started = time.monotonic()
    batcher.submit(rows(1), KnnQuery(k=1), key="a", deadline=None).result(5)
    assert time.monotonic() - started < 0.2, "a lone caller must not wait max_wait"
    batcher.close()
    patient = DynamicBatcher(index.search, BatchConfig(max_rows=8, max_wait_us=100_000, adaptive=False))
    started = time.monotonic()
    patient.submit(rows(1), KnnQuery(k=1), key="a", deadline=None).result(5)
    assert time.monotonic() - started >= 0.09
    patient.close()


def test_search_errors_reach_every_request_and_the_thread_survives() -> None:
    calls = []

    def flaky(rows: np.ndarray, query: KnnQuery):  # type: ignore[no-untyped-def]
        k = query.k
        calls.append(rows.shape[0])
        if len(calls) == 1:
            raise RuntimeError("boom")
        return np.zeros((rows.shape[0], k), np.float32), np.zeros((rows.shape[0], k), np.int64)

    batcher = DynamicBatcher(flaky, BatchConfig())
    with pytest.raises(RuntimeError, match="boom"):
        batcher.submit(rows(1), KnnQuery(k=1), key="a", deadline=None).result(5)
    assert batcher.submit(rows(1), KnnQuery(k=2), key="a", deadline=None).result(5)[1].shape == (1, 2)
    batcher.close()


def test_close_drains_and_later_submissions_run_inline() -> None:
    index = FakeIndex(delay=0.05)
    batcher = DynamicBatcher(index.search, BatchConfig(max_rows=1, max_wait_us=0))
    futures = [batcher.submit(rows(i), KnnQuery(k=1), key="a", deadline=None) for i in range(3)]
    batcher.close()
    assert all(f.done() for f in futures)
    late = batcher.submit(rows(7), KnnQuery(k=1), key="a", deadline=None)
    assert late.done() and late.result()[1][0, 0] == 700


def test_direct_searcher_checks_the_deadline() -> None:
    searcher = DirectSearcher(FakeIndex().search)
    assert searcher.submit(rows(2), KnnQuery(k=3), key=None, deadline=None).result()[1].shape == (1, 3)
    with pytest.raises(DeadlineExpiredError):
        searcher.submit(rows(2), KnnQuery(k=3), key=None, deadline=time.monotonic() - 1).result()


def test_lone_caller_is_searched_on_its_own_thread_and_load_goes_to_the_batcher() -> None:
    threads: list[str] = []
    gate = threading.Event()
    gate.set()

    def search(rows: np.ndarray, query: KnnQuery):  # type: ignore[no-untyped-def]
        k = query.k
        threads.append(threading.current_thread().name)
        gate.wait(5)
        return np.zeros((rows.shape[0], k), np.float32), np.zeros((rows.shape[0], k), np.int64)

    # unbatched_below_us=0: this fake search is instant, which would otherwise never be batched.
    batcher = DynamicBatcher(search, BatchConfig(max_wait_us=0, unbatched_below_us=0), name="m")
    batcher.submit(rows(1), KnnQuery(k=1), key="a", deadline=None).result(5)
    assert threads == [threading.current_thread().name]  # inline: no hand-off
    gate.clear()
    first = threading.Thread(target=lambda: batcher.submit(rows(2), KnnQuery(k=1), key="a", deadline=None).result(5))
    first.start()  # inline again, now blocked in search
    time.sleep(0.05)
    queued = [batcher.submit(rows(i), KnnQuery(k=1), key="a", deadline=None) for i in range(3)]
    time.sleep(0.05)
    assert len(threads) == 2, "searches must not overlap"
    gate.set()
    first.join(5)
    for future in queued:
        future.result(5)
    assert threads[2:] == ["batcher-m"]  # the three queued requests: one merged search on the batching thread
    batcher.close()


def test_adaptive_wait_is_a_fraction_of_the_last_search() -> None:
    """After a merged batch whose search took 0.2 s, the next batch waits about 0.25 x 0.2 s for company."""
    index = FakeIndex(delay=0.2)
    batcher = DynamicBatcher(index.search, BatchConfig(max_rows=100, max_wait_us=1_000_000, wait_fraction=0.25))
    inline = threading.Thread(target=lambda: batcher.submit(rows(0), KnnQuery(k=1), key="a", deadline=None).result(5))
    inline.start()
    time.sleep(0.05)
    merged = [batcher.submit(rows(i), KnnQuery(k=1), key="a", deadline=None) for i in (1, 2)]
    for future in merged:
        future.result(5)  # searched together: last batch = 2 requests, last search = 0.2 s
    inline.join()
    index.delay = 0.0
    started = time.monotonic()
    batcher.submit(rows(3), KnnQuery(k=1), key="a", deadline=None).result(5)
    waited = time.monotonic() - started
    assert 0.04 <= waited < 0.5, waited
    assert [c[0] for c in index.calls] == [1, 2, 1]
    batcher.close()


def test_searches_cheaper_than_a_hand_off_run_unbatched_on_their_callers_threads() -> None:
    """Adaptive mode: once a lone search is measured below unbatched_below_us, concurrent requests are
    searched side by side on their own threads; a model whose searches cost more keeps batching."""
    # (threshold, how long the measured lone search takes, how long a search waits for a partner):
    # a 10 s threshold no search here reaches, whatever the machine's load; a 1 ms one a 20 ms search exceeds.
    for threshold_us, lone_s, wait_s, expect_batched in ((10_000_000, 0.0, 2.0, False), (1000, 0.02, 0.05, True)):
        active, overlapped, threads = [0], [False], []
        cond = threading.Condition()

        def search(rows: np.ndarray, query: KnnQuery, lone_s: float = lone_s, wait_s: float = wait_s):  # type: ignore[no-untyped-def]
            with cond:
                threads.append(threading.current_thread().name)
                if threads[-1] == "MainThread":  # the first, measured search
                    time.sleep(lone_s)
                else:  # wait (a while) for a second search to run beside this one: only unbatched ones can
                    active[0] += 1
                    cond.notify_all()
                    cond.wait_for(lambda: active[0] > 1 or overlapped[0], timeout=wait_s)
                    overlapped[0] = overlapped[0] or active[0] > 1
                    active[0] -= 1
            k = query.k
            return np.zeros((rows.shape[0], k), np.float32), np.zeros((rows.shape[0], k), np.int64)

        batcher = DynamicBatcher(search, BatchConfig(max_wait_us=0, unbatched_below_us=threshold_us), name="m")
        batcher.submit(rows(1), KnnQuery(k=1), key="a", deadline=None).result(5)
        workers = [threading.Thread(target=lambda i=i: batcher.submit(rows(i), KnnQuery(k=1), key="a", deadline=None).result(10))
                   for i in range(6)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(10)
        batcher.close()
        assert ("batcher-m" in threads) is expect_batched, threads
        assert overlapped[0] is not expect_batched  # unbatched searches overlap; batched ones never do


def test_row_aligned_extras_of_a_merged_search_are_split_back_whole() -> None:
    """A model with a feature extractor returns its features beside the neighbours: each caller gets its rows, all columns."""
    index = FakeIndex()

    def with_features(rows_: np.ndarray, query: KnnQuery):  # type: ignore[no-untyped-def]
        distances, ids = index.search(rows_, query)
        return distances, ids, np.repeat(rows_[:, :1], 7, axis=1)

    index.gate.clear()
    batcher = DynamicBatcher(with_features, BatchConfig(max_rows=100, max_wait_us=0, adaptive=False))
    first = batcher.submit(rows(0), KnnQuery(k=1), key="a", deadline=None)
    time.sleep(0.05)
    futures = [batcher.submit(rows(i, i + 10), KnnQuery(k=k), key="a", deadline=None) for i, k in ((1, 3), (2, 1))]
    index.gate.set()
    first.result(5)
    for (i, k), future in zip(((1, 3), (2, 1)), futures):
        distances, ids, features = future.result(5)
        assert ids.shape == (2, k) and features.shape == (2, 7)
        np.testing.assert_array_equal(features[:, 0], [i, i + 10])
    none = DirectSearcher(lambda r, q: (*index.search(r, q), None)).submit(rows(4), KnnQuery(k=2), key=None, deadline=None)
    assert none.result(5)[2] is None
    batcher.close()
