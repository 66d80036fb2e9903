"""Bearer-token auth (health stays open) and TLS, through real servers."""

from __future__ import annotations

import shutil
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from knnserve.service.config import TlsConfig, read_token
from knnserve_client import Client, UnauthenticatedError

TOKEN = "s3cret-token"


def test_missing_and_wrong_token_are_unauthenticated(start_server, models) -> None:
    _, target = start_server(token=TOKEN)
    x = models.blobs.x_query[:2]
    with Client(target, timeout=10) as anonymous:
        with pytest.raises(UnauthenticatedError, match="missing bearer token") as failure:
            anonymous.classify("blobs", x)
        assert failure.value.code == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(UnauthenticatedError):
            anonymous.models()
    with Client(target, timeout=10, token="s3cret-tokeN") as wrong:
        with pytest.raises(UnauthenticatedError, match="wrong bearer token"):
            wrong.model("blobs")
        with pytest.raises(UnauthenticatedError):
            list(wrong.classify_batches("blobs", [x]))
    with Client(target, timeout=10, token=TOKEN) as right:
        assert right.classify("blobs", x).version == 2
        assert [m.name for m in right.models()] == ["blobs", "hnsw", "pixels"]


def test_health_stays_open_without_token(start_server) -> None:
    _, target = start_server(token=TOKEN)
    with grpc.insecure_channel(target) as channel:
        status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    assert status.status == health_pb2.HealthCheckResponse.SERVING


def test_read_token_from_file_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "token"
    path.write_text(f"  {TOKEN}\n")
    assert read_token(token_file=path) == TOKEN
    monkeypatch.setenv("KNNSERVE_TEST_TOKEN", TOKEN)
    assert read_token(env_var="KNNSERVE_TEST_TOKEN") == TOKEN
    monkeypatch.setenv("KNNSERVE_TEST_TOKEN", " ")
    with pytest.raises(ValueError, match="KNNSERVE_TEST_TOKEN"):
        read_token(env_var="KNNSERVE_TEST_TOKEN")
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ValueError, match="empty"):
        read_token(token_file=tmp_path / "empty")
    assert read_token() is None


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is needed to make a test certificate")
def test_tls_with_a_self_signed_certificate(start_server, models, self_signed_cert: tuple[Path, Path]) -> None:
    cert, key = self_signed_cert
    _, target = start_server(tls=TlsConfig(cert=cert, key=key), token=TOKEN)
    x = models.blobs.x_query[:3]
    with Client(target, timeout=10, tls=cert, tls_server_name="localhost", token=TOKEN) as client:
        np.testing.assert_array_equal(client.classify("blobs", x).knn.predictions, models.blobs_v2.classify(x).predictions)
    # a plaintext client cannot talk to the TLS port
    with Client(target, timeout=3, token=TOKEN) as plaintext:
        with pytest.raises(Exception) as failure:
            plaintext.models()
        assert failure.value.code == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
