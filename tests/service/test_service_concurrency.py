"""Many concurrent callers: answers identical to in-process predictions, and batching really merges."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from knnserve.dataplane.config import BatchConfig
from knnserve_client import Client
from knnserve_client.wire.query import KnnQuery


def batch_stats(server) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """(FAISS searches, requests merged into them) over all models, from the metrics registry."""
    registry = server.metrics.registry
    searches = sum(registry.get_sample_value("knnserve_batch_requests_count", {"model": m}) or 0 for m in ("blobs:2", "hnsw:1"))
    merged = sum(registry.get_sample_value("knnserve_batch_requests_sum", {"model": m}) or 0 for m in ("blobs:2", "hnsw:1"))
    return searches, merged


@pytest.mark.parametrize("batching", [True, False], ids=["batching-on", "batching-off"])
def test_many_threads_get_in_process_answers(start_server, models, batching: bool) -> None:
    server, target = start_server(
        batching=BatchConfig(enabled=batching, max_rows=64, max_wait_us=5000, adaptive=False)
    )
    x = models.blobs2.x_query  # 64 rows
    expected = models.blobs_v2.classify(x)
    sizes = [1, 1, 2, 3, 1, 5]

    def work(worker: int) -> list[tuple[int, np.ndarray, np.ndarray]]:
        out = []
        with Client(target, timeout=20) as client:
            for i in range(6):
                start = (worker * 7 + i * 5) % 58
                size = sizes[(worker + i) % len(sizes)]
                result = client.classify("blobs", x[start : start + size], return_neighbors=True)
                out.append((start, result.knn.predictions, result.neighbors.ids))
        return out

    with ThreadPoolExecutor(16) as pool:
        results = [item for chunk in pool.map(work, range(16)) for item in chunk]
    assert len(results) == 96
    for start, predictions, ids in results:
        n = len(predictions)
        np.testing.assert_array_equal(predictions, expected.predictions[start : start + n])
        np.testing.assert_array_equal(ids, expected.ids[start : start + n])
    searches, merged = batch_stats(server)
    if batching:
        assert merged == 96 and searches < 96, "concurrent requests should share FAISS searches"
    else:
        assert searches == 0  # no batcher at all


def test_hnsw_requests_with_different_k_share_a_batch_and_stay_exact(start_server, models) -> None:
    """Equal HNSW beams (k <= efSearch) may share a search at the largest k: same answers as alone."""
    server, target = start_server(batching=BatchConfig(max_rows=256, max_wait_us=20000, adaptive=False))
    x = models.hnsw_data.x_query[:32]
    ks = [1, 3, 5, 9]
    expected = {k: models.hnsw.classify(x, KnnQuery(k=k)) for k in ks}

    def work(i: int) -> tuple[int, int, np.ndarray]:
        k = ks[i % len(ks)]
        with Client(target, timeout=20) as client:
            return i, k, client.classify("hnsw", x[i : i + 1], k=k, return_neighbors=True).neighbors.ids

    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(work, range(32)))
    for i, k, ids in results:
        np.testing.assert_array_equal(ids, expected[k].ids[i : i + 1])
    searches, merged = batch_stats(server)
    assert merged == 32 and searches < 32


def test_a_thousand_calls_in_flight_hold_no_thread_each(start_server, models) -> None:
    """The asyncio server: 1,000 concurrent one-row calls wait for their batches as tasks, not threads.

    The model's search is slowed (every search sleeps 50 ms on its lane), so the calls pile up in the
    batcher; while they are all in flight the server process has no more threads than it had idle,
    every call gets the in-process answer, and they were merged into far fewer searches than calls.
    """
    import asyncio
    import threading
    import time

    import grpc

    from knnserve.model import KNNModel
    from knnserve_client.wire.v1 import knnserve_pb2 as pb
    from knnserve_client.wire.v1 import knnserve_pb2_grpc
    from knnserve_client.wire.v1.tensors import to_tensor

    def slow_loader(path):  # type: ignore[no-untyped-def]
        model = KNNModel.load(path)
        search = model.search_features

        def slowed(rows, query):  # type: ignore[no-untyped-def]
            time.sleep(0.05)
            return search(rows, query)

        model.search_features = slowed  # type: ignore[method-assign]
        return model

    server, target = start_server(loader=slow_loader, batching=BatchConfig(max_rows=256, unbatched_below_us=0))
    x = models.blobs2.x_query
    expected = models.blobs_v2.classify(x).predictions
    idle_threads = threading.active_count()
    calls = 1000
    peak = [0]

    async def run() -> list[int]:
        async with grpc.aio.insecure_channel(target) as channel:
            stub = knnserve_pb2_grpc.KnnServeStub(channel)
            requests = [pb.ClassifyRequest(model="blobs", inputs=to_tensor(x[i % len(x)][None])) for i in range(calls)]
            pending = [asyncio.ensure_future(stub.Classify(request, timeout=60)) for request in requests]
            while not all(future.done() for future in pending):
                peak[0] = max(peak[0], threading.active_count())
                await asyncio.sleep(0.01)
            responses = await asyncio.gather(*pending)
        return [int(np.frombuffer(r.knn.predictions.data, np.int64)[0]) for r in responses]

    predictions = asyncio.run(run())
    np.testing.assert_array_equal(predictions, expected[np.arange(calls) % len(x)])
    # The test's own client adds a few threads (grpc's polling); the server may add its search lanes
    # for the versions it loaded, but nothing per call.
    assert peak[0] <= idle_threads + 8, (idle_threads, peak[0])
    registry = server.metrics.registry
    searches = registry.get_sample_value("knnserve_batch_requests_count", {"model": "blobs:2"})
    assert searches is not None and searches <= calls / 10, searches


@pytest.mark.parametrize("event_loop", ["auto", "asyncio", "uvloop"])
def test_every_event_loop_serves_the_same_answers(start_server, models, event_loop: str) -> None:
    """``serve --event-loop``: auto is uvloop (a dependency of the server), asyncio stays selectable."""
    import asyncio

    import uvloop

    server, target = start_server(event_loop=event_loop)
    expected_type = asyncio.BaseEventLoop if event_loop == "asyncio" else uvloop.Loop
    assert isinstance(server._loop.loop, expected_type)
    x = models.blobs2.x_query[:9]
    with Client(target, timeout=20) as client:
        result = client.classify("blobs", x, return_neighbors=True)
    expected = models.blobs_v2.classify(x)
    np.testing.assert_array_equal(result.knn.predictions, expected.predictions)
    np.testing.assert_array_equal(result.neighbors.ids, expected.ids)
