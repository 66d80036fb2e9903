"""``knnserve serve --workers 2``: a real supervisor process with two worker processes on one port.
Both answer, health and the HTTP probes follow them, SIGHUP reloads both, metrics are summed over
them, a worker that dies is replaced, SIGTERM ends all of them, and a bad start ends the server."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from knnserve_client.wire.status import REQUEST_ID_KEY
from knnserve_client.wire.v1.tensors import to_tensor
from knnserve_client.wire.v1 import knnserve_pb2 as pb
from knnserve_client.wire.v1 import knnserve_pb2_grpc

CHANNELS = 24  # separate connections: the kernel spreads them over the workers by their addresses


class Supervised:
    """A ``knnserve serve --workers 2`` process and what its log said."""

    def __init__(self, process: subprocess.Popen[str], records: list[dict[str, Any]]) -> None:
        self.process = process
        self.records = records
        supervising = next(r for r in records if r.get("msg") == "supervising")
        self.target = supervising["address"]
        self.metrics = f"http://127.0.0.1:{supervising['metrics_port']}"
        self.rest = f"http://127.0.0.1:{supervising['http_port']}"

    def workers(self) -> list[int]:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        return [int(pid) for pid in children if b"knnserve.service.workers" in Path(f"/proc/{pid}/cmdline").read_bytes()]

    def http(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.metrics + path, timeout=5) as response:
                return int(response.status), response.read().decode()
        except urllib.error.HTTPError as failure:
            return int(failure.code), ""


def read_until(process: subprocess.Popen[str], message: str, records: list[dict[str, Any]], timeout: float = 120) -> None:
    """Read the supervisor's JSON log lines until one with ``msg == message``."""
    deadline = time.monotonic() + timeout
    assert process.stderr is not None
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            raise AssertionError(f"the server exited ({process.poll()}) before logging {message!r}: {records[-5:]}")
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        records.append(record)
        if record.get("msg") == message:
            return
    raise AssertionError(f"no {message!r} within {timeout} s")


@pytest.fixture
def supervised(models, tmp_path: Path) -> Iterator[Supervised]:  # type: ignore[no-untyped-def]
    root = tmp_path / "models"
    shutil.copytree(models.root / "blobs", root / "blobs")
    shutil.rmtree(root / "blobs" / "2")  # version 2 arrives later, by reload
    process = subprocess.Popen(
        [sys.executable, "-m", "knnserve.cli", "serve", "--models", str(root), "--port", "0", "--workers", "2",
         "--metrics-port", "0", "--http-port", "0", "--drain", "0.5", "--grace", "2", "--log-format", "json"],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
    )
    records: list[dict[str, Any]] = []
    try:
        read_until(process, "all workers ready", records)
        yield Supervised(process, records)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(30)


def classify_over_new_channels(target: str, x: np.ndarray, calls: int = CHANNELS) -> list[tuple[int, str]]:
    """One Classify per fresh channel: (version that answered, request id) each.

    Each channel gets a subchannel pool of its own: gRPC otherwise shares connections between channels
    to the same target, and a new channel could reuse the last one's connection (and so its worker).
    """
    answers = []
    request = pb.ClassifyRequest(model="blobs", inputs=to_tensor(x[:1]))
    for _ in range(calls):
        with grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
            response, call = knnserve_pb2_grpc.KnnServeStub(channel).Classify.with_call(request, timeout=10)
            answers.append((response.version, dict(call.trailing_metadata())[REQUEST_ID_KEY]))
    return answers


def answering_processes(answers: list[tuple[int, str]]) -> set[str]:
    """Request ids a server makes start with a prefix of its own process (12 hex characters)."""
    return {request_id[:12] for _, request_id in answers}


def test_both_workers_answer_and_the_probes_follow_them(supervised: Supervised, models) -> None:  # type: ignore[no-untyped-def]
    assert len(supervised.workers()) == 2
    answers = classify_over_new_channels(supervised.target, models.blobs.x_query)
    assert len(answering_processes(answers)) == 2
    assert {version for version, _ in answers} == {1}
    with grpc.insecure_channel(supervised.target) as channel:
        status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status
    assert status == health_pb2.HealthCheckResponse.SERVING
    assert supervised.http("/readyz")[0] == 200 and supervised.http("/livez")[0] == 200


def test_both_workers_serve_the_rest_port(supervised: Supervised, models) -> None:  # type: ignore[no-untyped-def]
    """Every worker binds the REST port too (SO_REUSEPORT): fresh connections reach both."""
    x = models.blobs.x_query[:1]
    body = json.dumps({"inputs": [{"name": "images", "datatype": "FP32", "shape": [1, 16], "data": x.tolist()}]}).encode()
    ids = set()
    for _ in range(CHANNELS):  # urllib opens a new connection per request
        request = urllib.request.Request(f"{supervised.rest}/v2/models/blobs/infer", data=body, method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200 and json.loads(response.read())["model_version"] == "1"
            ids.add(response.headers["x-request-id"][:12])
    assert len(ids) == 2
    with urllib.request.urlopen(f"{supervised.rest}/v2/health/ready", timeout=10) as response:
        assert response.status == 200


def test_metrics_are_summed_over_the_workers(supervised: Supervised, models) -> None:  # type: ignore[no-untyped-def]
    answers = classify_over_new_channels(supervised.target, models.blobs.x_query, calls=20)
    assert len(answering_processes(answers)) == 2
    code, text = supervised.http("/metrics")
    assert code == 200
    line = next(line for line in text.splitlines()
                if line.startswith("knnserve_requests_total{") and 'method="knnserve.v1.KnnServe/Classify"' in line
                and 'code="OK"' in line)
    assert float(line.rsplit(" ", 1)[1]) == 20.0


def test_sighup_reloads_every_worker(supervised: Supervised, models, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    shutil.copytree(models.root / "blobs" / "2", tmp_path / "models" / "blobs" / "2")
    os.kill(supervised.process.pid, signal.SIGHUP)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        answers = classify_over_new_channels(supervised.target, models.blobs.x_query)
        if {version for version, _ in answers} == {2}:
            break
        time.sleep(0.2)
    assert {version for version, _ in answers} == {2}
    assert len(answering_processes(answers)) == 2  # both workers answer with the new version


def test_a_dead_worker_is_replaced(supervised: Supervised, models) -> None:  # type: ignore[no-untyped-def]
    victim = supervised.workers()[0]
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        workers = supervised.workers()
        if len(workers) == 2 and victim not in workers and supervised.http("/readyz")[0] == 200:
            break
        time.sleep(0.2)
    assert len(supervised.workers()) == 2 and victim not in supervised.workers()
    assert len(answering_processes(classify_over_new_channels(supervised.target, models.blobs.x_query))) == 2


def test_sigterm_ends_every_process(supervised: Supervised) -> None:
    workers = supervised.workers()
    os.kill(supervised.process.pid, signal.SIGTERM)
    assert supervised.process.wait(30) == 0
    assert [pid for pid in workers if running(pid)] == []


def running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
    except (FileNotFoundError, ProcessLookupError):
        return False


def test_workers_stop_when_their_supervisor_is_killed(supervised: Supervised) -> None:
    """SIGKILL leaves the supervisor no chance to stop its workers: the kernel's death signal does."""
    workers = supervised.workers()
    assert len(workers) == 2
    supervised.process.kill()
    supervised.process.wait(10)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(running(pid) for pid in workers):
        time.sleep(0.1)
    assert [pid for pid in workers if running(pid)] == [], "workers outlived their supervisor"


def test_a_worker_that_cannot_start_ends_the_server(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "knnserve.cli", "serve", "--models", str(tmp_path / "empty"), "--port", "0",
         "--workers", "2", "--log-format", "json"], capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 2
    assert "before it was ready" in done.stderr


def test_every_worker_refuses_bad_input_streams_and_reflects(supervised: Supervised, models) -> None:  # type: ignore[no-untyped-def]
    """The asyncio serving path in each worker process: errors with their codes and field names (the worker
    keeps serving), ClassifyStream in order, health and reflection, over channels spread over both workers."""
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    x = models.blobs.x_query
    expected = models.blobs_v1.classify(x[:6]).predictions
    seen: set[str] = set()
    for channel_number in range(40):  # the kernel spreads connections by address: go on until both answered
        if len(seen) == 2 and channel_number >= 8:
            break
        with grpc.insecure_channel(supervised.target, options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
            stub = knnserve_pb2_grpc.KnnServeStub(channel)
            with pytest.raises(grpc.RpcError) as bad:
                stub.Classify(pb.ClassifyRequest(model="blobs", inputs=to_tensor(x[:2, :3])), timeout=10)
            assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "inputs.shape" in bad.value.details()
            seen.add(dict(bad.value.trailing_metadata())[REQUEST_ID_KEY][:12])
            with pytest.raises(grpc.RpcError) as unknown:
                stub.Classify(pb.ClassifyRequest(model="nope", inputs=to_tensor(x[:1])), timeout=10)
            assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
            requests = [pb.ClassifyRequest(model="blobs", inputs=to_tensor(x[i:i + 1]), tag=str(i)) for i in range(6)]
            answers = list(stub.ClassifyStream(iter(requests), timeout=10))
            assert [a.tag for a in answers] == [str(i) for i in range(6)]
            got = [int(np.frombuffer(a.knn.predictions.data, np.int64)[0]) for a in answers]
            np.testing.assert_array_equal(got, expected)
            health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
            assert health.status == health_pb2.HealthCheckResponse.SERVING
            listed = next(reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10))
            assert "knnserve.v1.KnnServe" in {s.name for s in listed.list_services_response.service}
    assert len(seen) == 2, "both workers should have answered some of the channels"
