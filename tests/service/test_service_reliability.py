"""What a hostile or careless caller cannot do to the server: every case answers with a documented status,
names the limit, and leaves the server serving (docs/reliability.md lists them)."""

from __future__ import annotations

import logging
import threading
import time
import urllib.error
import urllib.request

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2

from knnserve.dataplane.config import BatchConfig
from knnserve.model import KNNModel
from knnserve_client import Client, InvalidArgumentError
from knnserve_client.wire.v1.tensors import to_tensor
from knnserve_client.wire.v1 import knnserve_pb2 as pb
from knnserve_client.wire.v1 import knnserve_pb2_grpc

TOKEN = "reliability-token"


def classify_raw(target: str, body: bytes, metadata: tuple[tuple[str, str], ...] = ()) -> grpc.RpcError:
    """Send raw bytes as a Classify request; returns the error it must end in."""
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary("/knnserve.v1.KnnServe/Classify", request_serializer=lambda b: b,
                                   response_deserializer=pb.ClassifyResponse.FromString)
        with pytest.raises(grpc.RpcError) as failure:
            call(body, timeout=10, metadata=metadata)
    return failure.value


def request_id(error: grpc.RpcError) -> str | None:
    return dict(error.trailing_metadata() or ()).get("x-request-id")  # type: ignore[attr-defined]


def counted(server, method: str, code: str) -> float:  # type: ignore[no-untyped-def]
    value = server.metrics.registry.get_sample_value("knnserve_requests_total", {"method": method, "code": code})
    return value or 0.0


def test_every_search_knob_is_bounded_and_the_bounds_are_announced(start_server, models) -> None:
    _, target = start_server(max_ef_search=100)
    x = models.hnsw_data.x_query[:2]
    with Client(target, timeout=10) as client:
        info = client.model("hnsw")
        assert client.limits().max_ef_search == 100
        assert (info.limits.max_k, info.limits.max_nprobe, info.limits.max_ef_search) == (600, None, 100)
        assert client.model("blobs").limits.max_ef_search is None  # Flat: no such knob
        assert client.classify("hnsw", x, ef_search=100).knn is not None
        for bad in (101, 2**31 - 1, 2**32 - 1):
            with pytest.raises(InvalidArgumentError, match=r"ef_search: expected an integer between 1 and 100 \(the server's limit\)"):
                client.classify("hnsw", x, ef_search=bad)
        with pytest.raises(InvalidArgumentError, match="k: expected an integer between 1 and 600"):
            client.search("hnsw", x, k=601)


def test_values_that_overflow_float32_distances_are_refused(client: Client, models) -> None:
    x = models.blobs.x_query[:3].copy()
    x[1, 0] = 3e38
    with pytest.raises(InvalidArgumentError, match="magnitude at most 1e\\+15"):
        client.classify("blobs", x)
    assert client.classify("blobs", models.blobs.x_query[:3]).knn.predictions.min() >= 0


def test_a_huge_model_name_is_echoed_short(shared_server, caplog: pytest.LogCaptureFixture) -> None:
    _, target = shared_server
    name = "x" * 1_000_000
    with grpc.insecure_channel(target, options=[("grpc.max_send_message_length", -1)]) as channel:
        stub = knnserve_pb2_grpc.KnnServeStub(channel)
        with pytest.raises(grpc.RpcError) as failure, caplog.at_level(logging.INFO):
            stub.Classify(pb.ClassifyRequest(model=name, inputs=to_tensor(np.zeros((1, 16), np.float32))), timeout=10)
    assert failure.value.code() == grpc.StatusCode.NOT_FOUND
    assert len(failure.value.details()) < 300 and "(1000000 characters)" in failure.value.details()
    assert all(len(record.getMessage()) < 1000 for record in caplog.records)


def test_an_undecodable_body_is_invalid_argument_with_a_request_id(shared_server) -> None:
    error = classify_raw(shared_server[1], b"\xff\xff\xff\xff not protobuf")
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "request: expected a serialized protobuf" in error.details()
    assert request_id(error)


def test_without_the_token_the_body_is_never_decoded(start_server) -> None:
    _, target = start_server(token=TOKEN)
    error = classify_raw(target, b"\xff\xff garbage")
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    error = classify_raw(target, b"\xff\xff garbage", (("authorization", f"Bearer {TOKEN}"),))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_an_oversized_message_carries_the_request_id(start_server) -> None:
    _, target = start_server(max_message_bytes=4096)
    body = pb.ClassifyRequest(model="blobs", inputs=to_tensor(np.zeros((100, 16), np.float32))).SerializeToString()
    error = classify_raw(target, body, (("x-request-id", "big-one"),))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "exceed the limit of 4096 bytes" in error.details()
    assert request_id(error) == "big-one"


@pytest.mark.parametrize("header", [f"bearer {TOKEN}", f"BEARER {TOKEN}", f"Bearer  {TOKEN} "])
def test_the_bearer_scheme_is_case_insensitive(start_server, models, header: str) -> None:
    _, target = start_server(token=TOKEN)
    with grpc.insecure_channel(target) as channel:
        response = knnserve_pb2_grpc.KnnServeStub(channel).Classify(
            pb.ClassifyRequest(model="blobs", inputs=to_tensor(models.blobs.x_query[:1])), timeout=10,
            metadata=(("authorization", header),))
    assert response.model == "blobs"


def test_two_authorization_headers_are_refused(start_server, models) -> None:
    _, target = start_server(token=TOKEN)
    with grpc.insecure_channel(target) as channel:
        with pytest.raises(grpc.RpcError) as failure:
            knnserve_pb2_grpc.KnnServeStub(channel).Classify(
                pb.ClassifyRequest(model="blobs", inputs=to_tensor(models.blobs.x_query[:1])), timeout=10,
                metadata=(("authorization", f"Bearer {TOKEN}"), ("authorization", "Bearer other")))
    assert failure.value.code() == grpc.StatusCode.UNAUTHENTICATED and "2 authorization headers" in failure.value.details()


def test_per_model_health_needs_the_token_the_overall_health_does_not(start_server) -> None:
    _, target = start_server(token=TOKEN)
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        assert stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as failure:
            stub.Check(health_pb2.HealthCheckRequest(service="model/blobs"), timeout=5)
        assert failure.value.code() == grpc.StatusCode.UNAUTHENTICATED
        answer = stub.Check(health_pb2.HealthCheckRequest(service="model/blobs"), timeout=5,
                            metadata=(("authorization", f"Bearer {TOKEN}"),))
        assert answer.status == health_pb2.HealthCheckResponse.SERVING


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as failure:
        return int(failure.code)


def test_metrics_and_http_probes_are_served_at_their_paths_only(start_server) -> None:
    server, _ = start_server(metrics_port=0, load=False)
    base = f"http://127.0.0.1:{server.metrics_port}"
    assert (http_status(f"{base}/livez"), http_status(f"{base}/readyz")) == (200, 503)  # models not loaded yet
    server.load_models()
    with urllib.request.urlopen(f"{base}/metrics", timeout=5) as response:
        assert response.status == 200 and b"knnserve_requests_total" in response.read()
    assert (http_status(f"{base}/livez"), http_status(f"{base}/readyz")) == (200, 200)
    for path in ("/", "/anything", "/metrics/extra", "/readyz/x"):
        assert http_status(f"{base}{path}") == 404
    server.drain(0)  # what SIGTERM does first: not ready, still alive
    assert (http_status(f"{base}/livez"), http_status(f"{base}/readyz")) == (200, 503)


def test_reflection_answers_v1_and_v1alpha(shared_server) -> None:
    for service in ("grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"):
        with grpc.insecure_channel(shared_server[1]) as channel:
            call = channel.stream_stream(f"/{service}/ServerReflectionInfo",
                                         request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
                                         response_deserializer=reflection_pb2.ServerReflectionResponse.FromString)
            (answer,) = list(call(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5))
        names = {s.name for s in answer.list_services_response.service}
        assert {"knnserve.v1.KnnServe", "inference.GRPCInferenceService", "grpc.health.v1.Health",
                "grpc.reflection.v1.ServerReflection"} <= names


def slow_search_loader(delay: float, *, min_k: int = 0):  # type: ignore[no-untyped-def]
    """Models whose searches at k >= min_k take ``delay`` seconds longer."""

    def load(path):  # type: ignore[no-untyped-def]
        model = KNNModel.load(path)
        search = model.search_features  # what the data plane's batcher calls

        def slow(rows, query):  # type: ignore[no-untyped-def]
            if (query.k or 0) >= min_k:
                time.sleep(delay)
            return search(rows, query)

        model.search_features = slow  # type: ignore[method-assign]
        return model

    return load


def test_cancelled_and_expired_calls_are_counted_as_such_and_logged_without_traceback(
    start_server, models, caplog: pytest.LogCaptureFixture
) -> None:
    server, target = start_server(loader=slow_search_loader(0.5))
    x = models.blobs.x_query[:1]
    request = pb.ClassifyRequest(model="blobs", inputs=to_tensor(x))
    with caplog.at_level(logging.INFO), grpc.insecure_channel(target) as channel:
        stub = knnserve_pb2_grpc.KnnServeStub(channel)
        future = stub.Classify.future(request, timeout=10)
        time.sleep(0.15)
        future.cancel()
        with pytest.raises(grpc.RpcError) as failure:
            stub.Classify(request, timeout=0.2)
        assert failure.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        time.sleep(1.2)  # both calls' handlers finish
        assert stub.Classify(request, timeout=10).model == "blobs"
    assert counted(server, "knnserve.v1.KnnServe/Classify", "CANCELLED") == 1
    assert counted(server, "knnserve.v1.KnnServe/Classify", "DEADLINE_EXCEEDED") == 1
    assert counted(server, "knnserve.v1.KnnServe/Classify", "INTERNAL") == 0
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
    assert not any(r.exc_info for r in caplog.records if r.name == "knnserve.service.rpc")


def test_a_cancelled_stream_is_counted_as_cancelled_and_logged_without_traceback(
    start_server, models, caplog: pytest.LogCaptureFixture
) -> None:
    server, target = start_server(loader=slow_search_loader(0.5))
    x = models.blobs.x_query[:1]
    request = pb.ClassifyRequest(model="blobs", inputs=to_tensor(x))
    with caplog.at_level(logging.INFO), grpc.insecure_channel(target) as channel:
        stub = knnserve_pb2_grpc.KnnServeStub(channel)
        responses = stub.ClassifyStream(iter([request] * 3), timeout=10)
        time.sleep(0.15)  # the first request is being searched
        responses.cancel()
        with pytest.raises(grpc.RpcError) as failure:
            list(responses)
        assert failure.value.code() == grpc.StatusCode.CANCELLED
        time.sleep(1.2)  # the stream's handler finishes
        assert stub.Classify(request, timeout=10).model == "blobs"
    deadline = time.monotonic() + 5
    while counted(server, "knnserve.v1.KnnServe/ClassifyStream", "CANCELLED") != 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert counted(server, "knnserve.v1.KnnServe/ClassifyStream", "CANCELLED") == 1
    assert counted(server, "knnserve.v1.KnnServe/ClassifyStream", "INTERNAL") == 0
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
    assert not any(r.exc_info for r in caplog.records if r.name == "knnserve.service.rpc")


def test_a_request_over_the_batch_budget_runs_beside_the_small_ones(start_server, models) -> None:
    server, target = start_server(batching=BatchConfig(max_neighbors=500), loader=slow_search_loader(1.5, min_k=300))
    x = models.blobs.x_query
    with Client(target, timeout=20) as client:
        client.classify("blobs", x[:1])  # warm
        big = threading.Thread(target=client.search, args=("blobs", x[:2]), kwargs={"k": 300})  # 600 > 500: its own lane
        big.start()
        time.sleep(0.2)
        started = time.perf_counter()
        for i in range(5):
            assert client.classify("blobs", x[i : i + 1], k=3).knn is not None
        small_seconds = time.perf_counter() - started
        big.join()
    assert small_seconds < 1.0, f"small requests waited behind the large one ({small_seconds:.2f} s)"
    assert server.metrics.registry.get_sample_value("knnserve_batch_rows_count", {"model": "blobs:2"}) >= 1
