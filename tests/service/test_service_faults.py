"""Faults under load, against a real server process: SIGHUP with a broken version, SIGTERM (health goes
NOT_SERVING while calls are still accepted), and a short load test with bounded memory."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from knnserve_client import Client, KnnServeClientError
from knnserve_client.channel import RetryPolicy
from service_bundles import save_model


def start(root: Path, *extra: str) -> tuple[subprocess.Popen[str], str]:
    """`knnserve serve --models root` in its own process; returns it and its address once it listens."""
    process = subprocess.Popen(
        [sys.executable, "-m", "knnserve.cli", "serve", "--models", str(root), "--port", "0", "--grace", "2", *extra],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert process.stderr is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        assert line, "the server exited before listening"
        entry = json.loads(line)
        if entry["msg"] == "listening":
            target = f"127.0.0.1:{entry['address'].rsplit(':', 1)[1]}"
            threading.Thread(target=process.stderr.read, daemon=True).start()  # keep the pipe drained
            with Client(target, timeout=10) as client:
                while not client.models():
                    time.sleep(0.05)
            return process, target
    raise AssertionError("the server did not listen in time")


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its descendants (a --workers server's worker processes)."""
    total = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            total += int(line.split()[1]) / 1024
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        total += rss_mb(int(child))
    return total


# The load tests run against one server process and against a --workers 2 server (supervisor + 2 workers).
WORKERS = pytest.mark.parametrize("workers", ["1", "2"], ids=["workers1", "workers2"])


class Load:
    """``clients`` threads sending one-row Classify requests until stopped; counts outcomes by status."""

    def __init__(self, target: str, x, clients: int, model: str = "blobs") -> None:  # type: ignore[no-untyped-def]
        self.outcomes: Counter[str] = Counter()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(target, x, i, model)) for i in range(clients)]

    def _run(self, target: str, x, i: int, model: str) -> None:  # type: ignore[no-untyped-def]
        with Client(target, timeout=10, retry=RetryPolicy(max_attempts=1)) as client:
            row = i
            while not self._stop.is_set():
                try:
                    client.classify(model, x[row % len(x) : row % len(x) + 1], top_n=0)
                    outcome = "OK"
                except KnnServeClientError as error:
                    outcome = error.code.name
                with self._lock:
                    self.outcomes[outcome] += 1
                row += 7

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)


@pytest.fixture
def own_root(tmp_path: Path, models) -> Path:  # type: ignore[no-untyped-def]
    root = tmp_path / "models"
    save_model(root, "blobs", 1, models.blobs)
    return root


@WORKERS
def test_sighup_with_a_broken_version_under_load_fails_no_call(own_root: Path, models, workers: str) -> None:
    process, target = start(own_root, "--workers", workers)
    try:
        with Load(target, models.blobs.x_query, clients=8) as load:
            time.sleep(1.0)
            broken = own_root / "blobs" / "2"
            save_model(own_root, "blobs", 2, models.blobs2)
            manifest = json.loads((broken / "manifest.json").read_text())
            manifest["index"]["metric"] = "l1"  # checksums still match; the manifest lies
            (broken / "manifest.json").write_text(json.dumps(manifest))
            process.send_signal(signal.SIGHUP)
            time.sleep(1.0)
            with Client(target, timeout=10) as client:
                assert client.model("blobs").version == 1  # the broken version is not served
            save_model(own_root, "blobs", 3, models.blobs2)
            process.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 20
            with Client(target, timeout=10) as client:
                while client.model("blobs").version != 3:
                    assert time.monotonic() < deadline, "SIGHUP did not load version 3"
                    time.sleep(0.05)
            time.sleep(0.5)
        assert set(load.outcomes) == {"OK"} and load.outcomes["OK"] > 50, load.outcomes
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0


@WORKERS
def test_sigterm_under_load_shows_not_serving_before_the_listener_closes(own_root: Path, models, workers: str) -> None:
    process, target = start(own_root, "--drain", "1.5", "--workers", workers)
    seen: list[int] = []
    done = threading.Event()

    def watch() -> None:
        with grpc.insecure_channel(target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while not done.is_set():
                try:
                    seen.append(stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1).status)
                except grpc.RpcError:
                    seen.append(-1)  # the listener is closed
                time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    with Load(target, models.blobs.x_query, clients=8) as load:
        watcher.start()
        time.sleep(1.0)
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
        done.set()
        watcher.join()
    serving, not_serving = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
    first_not_serving = seen.index(not_serving)
    assert serving in seen[:first_not_serving] and -1 not in seen[:first_not_serving]
    assert seen[first_not_serving:].count(not_serving) >= 10, "NOT_SERVING for the drain period (1.5 s of 50 ms checks)"
    assert load.outcomes["OK"] > 50 and load.outcomes["INTERNAL"] == 0, load.outcomes


@WORKERS
def test_short_load_no_errors_and_bounded_memory(own_root: Path, models, workers: str) -> None:
    process, target = start(own_root, "--workers", workers)
    try:
        with Load(target, models.blobs.x_query, clients=16) as load:
            time.sleep(2.0)
            early = rss_mb(process.pid)
            time.sleep(8.0)
            late = rss_mb(process.pid)
        assert set(load.outcomes) == {"OK"} and load.outcomes["OK"] > 500, load.outcomes
        assert late - early < 40, f"the server grew {late - early:.1f} MB in 8 s of steady load ({early:.0f} -> {late:.0f} MB)"
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
