"""Reload (the SIGHUP handler's function, and a real SIGHUP to a subprocess) and graceful shutdown."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2

from knnserve.model import KNNModel
from knnserve_client import Client, NotFoundError, UnavailableError
from knnserve_client.channel import RetryPolicy

from service_bundles import blob_data, save_model


@pytest.fixture
def own_root(models, tmp_path: Path) -> Path:
    root = tmp_path / "models"
    shutil.copytree(models.root, root)
    return root


def test_reload_swaps_new_versions_without_failing_calls_in_flight(start_server, models, own_root: Path) -> None:
    server, target = start_server(models_dir=own_root)
    x = models.blobs.x_query[:4]
    errors: list[BaseException] = []
    versions: set[int] = set()
    stop = threading.Event()

    def hammer() -> None:
        with Client(target, timeout=10) as client:
            while not stop.is_set():
                try:
                    versions.add(client.classify("blobs", x).version)
                except BaseException as exc:  # noqa: BLE001 - collected and asserted below
                    errors.append(exc)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    v3 = save_model(own_root, "blobs", 3, blob_data(5))
    shutil.rmtree(own_root / "blobs" / "1")
    report = server.reload()
    time.sleep(0.2)
    stop.set()
    for thread in threads:
        thread.join()
    assert not errors
    assert report.loaded == (("blobs", 3),)
    assert report.unloaded == (("blobs", 1),)
    assert versions >= {2, 3}
    with Client(target, timeout=10) as client:
        result = client.classify("blobs", x)
        assert result.version == 3
        np.testing.assert_array_equal(result.knn.predictions, v3.classify(x).predictions)
        assert client.model("blobs").versions == (2, 3)
        with pytest.raises(NotFoundError, match="no version 1"):
            client.classify("blobs", x, version=1)


def test_reload_keeps_serving_when_a_new_bundle_is_corrupt(start_server, models, own_root: Path) -> None:
    server, target = start_server(models_dir=own_root)
    bad = own_root / "pixels" / "2"
    shutil.copytree(own_root / "pixels" / "1", bad)
    (bad / "labels.npy").write_bytes(b"corrupt")
    changed = own_root / "blobs" / "2"
    (changed / "labels.npy").write_bytes(b"corrupt")  # changed on disk -> reload tries, fails, keeps the old
    (changed / "manifest.json").write_text((changed / "manifest.json").read_text() + " ")
    report = server.reload()
    assert {(n, v) for n, v, _ in report.failed} == {("pixels", 2), ("blobs", 2)}
    with Client(target, timeout=10) as client:
        assert client.model("pixels").versions == (1,)
        assert client.classify("blobs", models.blobs.x_query[:2]).version == 2


def test_removed_model_goes_not_serving(start_server, own_root: Path) -> None:
    server, target = start_server(models_dir=own_root)
    shutil.rmtree(own_root / "hnsw")
    server.reload()
    status = server.health_status("model/hnsw")
    assert status == health_pb2.HealthCheckResponse.NOT_SERVING
    with Client(target, timeout=10) as client:
        with pytest.raises(NotFoundError):
            client.model("hnsw")


def test_single_bundle_mode(start_server, models) -> None:
    _, target = start_server(models_dir=None, model_dir=models.root / "pixels" / "1")
    with Client(target, timeout=10) as client:
        (info,) = client.models()
        assert (info.name, info.version) == ("pixels", 1)


def slow_loader(delay: float):  # type: ignore[no-untyped-def]
    def load(path: Path) -> KNNModel:
        model = KNNModel.load(path)
        search = model.search_features  # what the data plane's batcher calls

        def slow(*args, **kwargs):  # type: ignore[no-untyped-def]
            time.sleep(delay)
            return search(*args, **kwargs)

        model.search_features = slow  # type: ignore[method-assign]
        return model

    return load


def test_graceful_shutdown_finishes_calls_in_flight(start_server, models) -> None:
    server, target = start_server(loader=slow_loader(0.6))
    x = models.blobs.x_query[:2]
    outcome: dict[str, object] = {}
    client = Client(target, timeout=10, retry=RetryPolicy(max_attempts=1))
    client.limits()

    def call() -> None:
        try:
            outcome["result"] = client.classify("blobs", x)
        except BaseException as exc:  # noqa: BLE001
            outcome["error"] = exc

    caller = threading.Thread(target=call)
    caller.start()
    time.sleep(0.2)  # the call is now in the slow search
    stopper = threading.Thread(target=server.stop, args=(5.0,))
    stopper.start()
    time.sleep(0.1)
    status = server.health_status("")
    assert status == health_pb2.HealthCheckResponse.NOT_SERVING
    with pytest.raises(UnavailableError):
        client.models()  # new calls are refused while the old one drains
    caller.join(5)
    stopper.join(5)
    client.close()
    assert "error" not in outcome, outcome.get("error")
    assert outcome["result"].version == 2  # type: ignore[attr-defined]


def test_request_whose_deadline_passes_in_the_queue_is_not_searched(start_server, models) -> None:
    searched: list[int] = []

    def counting_loader(path: Path) -> KNNModel:
        model = slow_loader(0.4)(path)
        inner = model.search_features

        def count(rows, query):  # type: ignore[no-untyped-def]
            searched.append(rows.shape[0])
            return inner(rows, query)

        model.search_features = count  # type: ignore[method-assign]
        return model

    _, target = start_server(loader=counting_loader)
    x = models.blobs.x_query
    with Client(target, timeout=10, retry=RetryPolicy(max_attempts=1)) as client:
        client.limits()
        answered: list[object] = []
        first = threading.Thread(target=lambda: answered.append(client.classify("blobs", x[:3])))
        first.start()
        time.sleep(0.1)  # the batcher is busy with the first search for ~0.4 s
        with pytest.raises(Exception) as failure:
            client.classify("blobs", x[3:5], timeout=0.15)
        first.join()
        assert len(answered) == 1, "the first call must succeed"
    assert failure.value.code == grpc.StatusCode.DEADLINE_EXCEEDED  # type: ignore[attr-defined]
    time.sleep(0.5)
    assert searched == [3], "the expired request must not reach FAISS"


SERVE_SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from knnserve.service.config import ServeConfig
    from knnserve.service.server import KnnServer

    def ready(server):
        Path(sys.argv[2]).write_text(str(server.port))

    KnnServer(ServeConfig(models_dir=Path(sys.argv[1]), port=0, grace_s=2.0)).run(on_ready=ready)
    """
)


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="POSIX signals")
def test_real_sighup_and_sigterm_to_a_server_process(models, own_root: Path, tmp_path: Path) -> None:
    port_file = tmp_path / "port"
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE_SCRIPT, str(own_root), str(port_file)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    try:
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text():
            assert process.poll() is None, process.stdout.read().decode()  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "server did not become ready"
            time.sleep(0.05)
        target = f"127.0.0.1:{port_file.read_text()}"
        save_model(own_root, "pixels", 2, models.pix)
        process.send_signal(signal.SIGHUP)
        with Client(target, timeout=10) as client:
            while client.model("pixels").version != 2:
                assert time.monotonic() < deadline, "SIGHUP did not load version 2"
                time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
