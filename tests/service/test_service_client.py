"""The Python client: splitting large inputs under the limits, retries on UNAVAILABLE only."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from knnserve_client import Client, InvalidArgumentError, KnnQuery, UnavailableError
from knnserve_client.channel import RetryPolicy


def calls(server, method: str, code: str) -> float:  # type: ignore[no-untyped-def]
    value = server.metrics.registry.get_sample_value(
        "knnserve_requests_total", {"method": f"knnserve.v1.KnnServe/{method}", "code": code}
    )
    return value or 0.0


def test_large_input_is_split_under_the_message_limit_and_reassembled(start_server, models) -> None:
    server, target = start_server(max_message_bytes=16 * 1024)
    x = np.concatenate([models.blobs.x_query] * 8)  # 512 rows x 64 bytes = 32 KiB
    with Client(target, timeout=10) as client:
        result = client.classify("blobs", x, version=1, return_neighbors=True)
        searched = client.search("blobs", x, version=1, k=2)
    expected = models.blobs_v1.classify(x)
    np.testing.assert_array_equal(result.knn.predictions, expected.predictions)
    np.testing.assert_array_equal(result.neighbors.ids, expected.ids)
    np.testing.assert_array_equal(searched.ids, expected.ids[:, :2])
    assert calls(server, "Classify", "OK") >= 3  # really split


def test_row_limit_splits_too(start_server, models) -> None:
    server, target = start_server(max_rows_per_request=10)
    x = models.pix.x_query  # 32 rows -> 4 requests
    with Client(target, timeout=10) as client:
        result = client.classify("pixels", x)
    np.testing.assert_array_equal(result.knn.predictions, models.pixels.classify(x).predictions)
    assert calls(server, "Classify", "OK") == 4


def test_split_chunks_are_pinned_to_the_first_answering_version(start_server, models) -> None:
    _, target = start_server(max_rows_per_request=5)
    with Client(target, timeout=10) as client:
        result = client.classify("blobs", models.blobs.x_query[:12])
    assert result.version == 2
    np.testing.assert_array_equal(result.knn.predictions, models.blobs_v2.classify(models.blobs.x_query[:12]).predictions)


def test_unavailable_is_retried_other_codes_are_not(start_server, models) -> None:
    server, target = start_server(load=False)  # every Classify answers UNAVAILABLE
    x = models.blobs.x_query[:1]
    with Client(target, timeout=10, retry=RetryPolicy(max_attempts=3, initial_backoff_s=0.01, max_backoff_s=0.02)) as client:
        with pytest.raises(UnavailableError) as failure:
            client.classify("blobs", x, k=3)  # k given: no GetModel for the model's default k first
        assert failure.value.code == grpc.StatusCode.UNAVAILABLE
        assert calls(server, "Classify", "UNAVAILABLE") == 3
        server.load_models()
        with pytest.raises(InvalidArgumentError):
            client.classify("blobs", x[:, :3])
        assert calls(server, "Classify", "INVALID_ARGUMENT") == 1


def test_client_is_a_context_manager_that_closes_its_channel(shared_server) -> None:
    client = Client(shared_server[1], timeout=5)
    with client:
        assert client.models()
    with pytest.raises(Exception):
        client.models()  # the channel is closed


def test_the_client_splits_by_rows_times_k_under_a_low_neighbor_budget(start_server, models) -> None:
    """A server with --max-neighbors-per-request 1000: 100 rows at k=50 (5000 neighbors) arrive as calls of <= 20 rows."""
    server, target = start_server(max_neighbors_per_request=1000)
    x = np.repeat(models.blobs.x_query, 3, axis=0)[:100]
    with Client(target, timeout=10) as client:
        assert client.limits().max_neighbors_per_request == 1000
        found = client.search("blobs", x, k=50)
        classified = client.classify("blobs", x, k=50, return_neighbors=True)
        default_k = client.classify("blobs", x)  # k unset: the model's default k from ListModels
    expected = models.blobs_v2.search(models.blobs_v2.prepare(x), models.blobs_v2.resolve(KnnQuery(k=50)))[1]
    np.testing.assert_array_equal(found.ids, expected)
    np.testing.assert_array_equal(classified.neighbors.ids, expected)
    assert found.ids.shape == (100, 50) and default_k.knn.predictions.shape == (100,)
    assert calls(server, "Search", "OK") == 5 and calls(server, "Classify", "OK") >= 6
    assert calls(server, "Search", "RESOURCE_EXHAUSTED") == calls(server, "Classify", "RESOURCE_EXHAUSTED") == 0


def test_calls_are_spread_over_every_address_of_the_target(start_server, models) -> None:
    """Round robin, as behind a Kubernetes headless Service: both replicas answer, not just the first."""
    first, first_target = start_server()
    second, second_target = start_server()
    ports = [target.rsplit(":", 1)[1] for target in (first_target, second_target)]
    with Client(f"ipv4:127.0.0.1:{ports[0]},127.0.0.1:{ports[1]}", timeout=10) as client:
        for _ in range(20):
            client.classify("blobs", models.blobs.x_query[:1], k=3)
    assert calls(first, "Classify", "OK") >= 5 and calls(second, "Classify", "OK") >= 5
    assert calls(first, "Classify", "OK") + calls(second, "Classify", "OK") == 20
