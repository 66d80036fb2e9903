"""Fixtures of the service tests: tiny seeded bundles in tmp dirs and real servers on 127.0.0.1:0."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from knnserve.model import KNNModel
from knnserve.service.config import ServeConfig
from knnserve.service.server import KnnServer
from knnserve_client import Client, ServerLimits
from service_bundles import TinyData, blob_data, pixel_data, save_model


@dataclass(frozen=True)
class Fixture:
    """The models folder and the in-process models the tests compare against."""

    root: Path
    blobs_v1: KNNModel
    blobs_v2: KNNModel
    pixels: KNNModel
    hnsw: KNNModel
    blobs: TinyData
    blobs2: TinyData
    pix: TinyData
    hnsw_data: TinyData


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> Fixture:
    root = tmp_path_factory.mktemp("models")
    blobs, blobs2, pix, hnsw_data = blob_data(1), blob_data(2), pixel_data(3), blob_data(4, n=600)
    return Fixture(
        root=root,
        blobs_v1=save_model(root, "blobs", 1, blobs),
        blobs_v2=save_model(root, "blobs", 2, blobs2),
        pixels=save_model(root, "pixels", 1, pix),
        hnsw=save_model(root, "hnsw", 1, hnsw_data, index="HNSW32"),
        blobs=blobs,
        blobs2=blobs2,
        pix=pix,
        hnsw_data=hnsw_data,
    )


ServerFactory = Callable[..., tuple[KnnServer, str]]
# start_server(max_rows_per_request=5): a ServerLimits field given on its own sets the server's limits.
LIMIT_FIELDS = ("max_message_bytes", "max_rows_per_request", "max_neighbors_per_request", "max_ef_search")


@pytest.fixture
def start_server(models: Fixture) -> Iterator[ServerFactory]:
    """Start servers with ServeConfig overrides; each is stopped at the end of the test."""
    started: list[KnnServer] = []

    def start(*, load: bool = True, loader: Callable[[Path], KNNModel] | None = None, **overrides: object) -> tuple[KnnServer, str]:
        limits = {name: overrides.pop(name) for name in LIMIT_FIELDS if name in overrides}
        if limits:
            overrides["limits"] = ServerLimits(**limits)  # type: ignore[arg-type]
        config = replace(ServeConfig(models_dir=models.root, port=0, grace_s=2.0), **overrides)
        server = KnnServer(config, loader=loader) if loader is not None else KnnServer(config)
        started.append(server)
        port = server.start()
        if load:
            server.load_models()
        return server, f"127.0.0.1:{port}"

    yield start
    for server in started:
        server.stop(0)


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory, models: Fixture) -> Iterator[tuple[KnnServer, str]]:
    """One read-only server over the session's models, shared by a module's tests."""
    server = KnnServer(ServeConfig(models_dir=models.root, port=0, grace_s=1.0))
    port = server.start()
    server.load_models()
    yield server, f"127.0.0.1:{port}"
    server.stop(0)


@pytest.fixture
def client(shared_server: tuple[KnnServer, str]) -> Iterator[Client]:
    with Client(shared_server[1], timeout=10) as c:
        yield c


@pytest.fixture
def curl() -> str:
    """The curl executable; a missing one skips the test, or fails it under KNNSERVE_REQUIRE_TOOLS (``make test``)."""
    found = shutil.which("curl")
    if found is None:
        if os.environ.get("KNNSERVE_REQUIRE_TOOLS"):
            pytest.fail("curl is not installed (make test-deps installs it)")
        pytest.skip("curl is not installed")
    return found


@pytest.fixture
def self_signed_cert(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed EC certificate for localhost and its key (PEM files in tmp_path), made with openssl."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost"],
        check=True, capture_output=True,
    )
    return cert, key
