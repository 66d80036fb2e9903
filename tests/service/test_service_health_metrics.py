"""Health (NOT_SERVING until loaded, per-model names), reflection on/off, Prometheus metrics."""

from __future__ import annotations

import urllib.request

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from knnserve_client import Client, UnavailableError
from knnserve_client.channel import RetryPolicy

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def check(target: str, service: str) -> int:
    with grpc.insecure_channel(target) as channel:
        return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status


def test_health_follows_loading(start_server, models) -> None:
    server, target = start_server(load=False)
    assert check(target, "") == NOT_SERVING
    assert check(target, "knnserve.v1.KnnServe") == NOT_SERVING
    with Client(target, timeout=5, retry=RetryPolicy(max_attempts=1)) as client:
        with pytest.raises(UnavailableError, match="still loading"):
            client.classify("blobs", models.blobs.x_query[:1])
    server.load_models()
    assert check(target, "") == SERVING
    assert check(target, "knnserve.v1.KnnServe") == SERVING
    for name in ("blobs", "hnsw", "pixels"):
        assert check(target, f"model/{name}") == SERVING
    with pytest.raises(grpc.RpcError) as failure:
        check(target, "model/nope")
    assert failure.value.code() == grpc.StatusCode.NOT_FOUND


def test_reflection_can_be_turned_off(start_server) -> None:
    _, on = start_server()
    with grpc.insecure_channel(on) as channel:
        services = ProtoReflectionDescriptorDatabase(channel).get_services()
    assert "knnserve.v1.KnnServe" in services and "grpc.health.v1.Health" in services
    _, off = start_server(reflection=False)
    with grpc.insecure_channel(off) as channel:
        with pytest.raises(grpc.RpcError) as failure:
            ProtoReflectionDescriptorDatabase(channel).get_services()
    assert failure.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_metrics_endpoint(start_server, models) -> None:
    server, target = start_server(metrics_port=0)
    with Client(target, timeout=10) as client:
        client.classify("blobs", models.blobs.x_query[:4])
        with pytest.raises(Exception):
            client.classify("blobs", np.zeros((1, 3), np.float32))
    with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5) as response:
        text = response.read().decode()
    assert 'knnserve_requests_total{code="OK",method="knnserve.v1.KnnServe/Classify"} 1.0' in text
    assert 'knnserve_requests_total{code="INVALID_ARGUMENT",method="knnserve.v1.KnnServe/Classify"} 1.0' in text
    assert 'knnserve_request_latency_seconds_count{method="knnserve.v1.KnnServe/Classify"} 2.0' in text
    assert 'knnserve_batch_rows_sum{model="blobs:2"} 4.0' in text
    assert 'knnserve_queue_wait_seconds_count{model="blobs:2"} 1.0' in text
    assert "knnserve_model_versions_loaded 4.0" in text
