"""A load generator in processes of its own: several worker processes, each with client threads, each
thread with its own ``knnserve_client.Client`` sending requests back to back.

The clients' CPU is spent in these processes, not in the measuring process, so a server's figures
do not carry the load generator's interpreter lock. Results come back per request kind: completions
inside the measurement window (after a warm-up), their latencies, and failures by status code.

    from loadgen import Kind, run_load
    report = run_load("127.0.0.1:50051", rows, [Kind("normal", 63, {"k": 5}), Kind("large-k", 1, {"k": 60000})],
                      model="fashion", warmup=2, duration=60, processes=4)

A kind with ``protocol="v2"`` sends Open Inference Protocol ModelInfer requests with Triton's own
client (tritonclient[grpc]) instead; its options are ``outputs`` (names) and ``parameters``. One run
holds kinds of one protocol: tritonclient and knnserve_client define the same protobuf messages,
which one process cannot import both of. ``protocol="rest"`` sends the same requests over HTTP/REST
with tritonclient.http to the kind's own ``target`` (the server's REST address); option ``binary``
(default true) sends the input and asks for the outputs as binary data, else as JSON.
"""

from __future__ import annotations

import multiprocessing as mp
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Kind:
    """``clients`` threads sending Classify requests with these options (``method="search"`` for Search,
    ``method="health"`` for a grpc.health.v1 Check of service ``model``), or, with ``protocol="v2"``,
    ModelInfer requests through tritonclient."""

    name: str
    clients: int
    options: dict[str, Any] = field(default_factory=dict)
    method: str = "classify"
    rows: int = 1
    protocol: str = "v1"
    target: str | None = None  # where this kind sends (a REST kind: the server's HTTP address); None: the run's


@dataclass
class KindReport:
    """What one kind of client saw in the window: completions, latencies (s) and failures by code."""

    completed: int = 0
    latencies: list[float] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)

    def rate(self, seconds: float) -> float:
        return self.completed / seconds

    def percentile_ms(self, q: float) -> float:
        return float(np.percentile(np.asarray(self.latencies), q) * 1e3) if self.latencies else float("nan")


@contextmanager
def _v1_caller(target: str, model: str, kind: Kind) -> Iterator[Callable[[np.ndarray], str]]:
    """A function sending one request with the knnserve client; returns the status code's name."""
    from knnserve_client import Client, KnnServeClientError
    from knnserve_client.channel import RetryPolicy

    if kind.method == "health":
        with _health_caller(target, model) as call:
            yield call
        return
    with Client(target, timeout=120, retry=RetryPolicy(max_attempts=1)) as client:
        client.limits()
        method = client.search if kind.method == "search" else client.classify

        def call(rows: np.ndarray) -> str:
            try:
                method(model, rows, **kind.options)
                return "OK"
            except KnnServeClientError as error:
                return error.code.name

        yield call


@contextmanager
def _health_caller(target: str, service: str) -> Iterator[Callable[[np.ndarray], str]]:
    """A grpc.health.v1 Check per call (the rows are ignored): the cost of a call that does no work."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest(service=service)

        def call(rows: np.ndarray) -> str:
            try:
                stub.Check(request, timeout=120)
                return "OK"
            except grpc.RpcError as error:
                return error.code().name

        yield call


@contextmanager
def _v2_caller(target: str, model: str, kind: Kind) -> Iterator[Callable[[np.ndarray], str]]:
    """A function sending one ModelInfer request with tritonclient; returns the status code's name."""
    import tritonclient.grpc as triton
    from tritonclient.utils import InferenceServerException

    outputs = [triton.InferRequestedOutput(name) for name in kind.options.get("outputs", [])] or None
    parameters = kind.options.get("parameters")
    with triton.InferenceServerClient(url=target) as client:

        def call(rows: np.ndarray) -> str:
            tensor = triton.InferInput("images", list(rows.shape), "UINT8" if rows.dtype == np.uint8 else "FP32")
            tensor.set_data_from_numpy(rows)
            try:
                result = client.infer(model, [tensor], outputs=outputs, parameters=parameters, client_timeout=120)
                result.as_numpy("predictions")
                return "OK"
            except InferenceServerException as error:
                return str(error.status()).removeprefix("StatusCode.")

        yield call


@contextmanager
def _rest_caller(target: str, model: str, kind: Kind) -> Iterator[Callable[[np.ndarray], str]]:
    """A function sending one inference request over HTTP/REST with tritonclient.http; returns the status code's name."""
    import tritonclient.http as triton_http
    from tritonclient.utils import InferenceServerException

    binary = bool(kind.options.get("binary", True))
    outputs = [triton_http.InferRequestedOutput(name, binary_data=binary) for name in kind.options.get("outputs", [])] or None
    parameters = kind.options.get("parameters")
    client = triton_http.InferenceServerClient(url=target, network_timeout=120.0, connection_timeout=120.0)
    try:

        def call(rows: np.ndarray) -> str:
            tensor = triton_http.InferInput("images", list(rows.shape), "UINT8" if rows.dtype == np.uint8 else "FP32")
            tensor.set_data_from_numpy(rows, binary_data=binary)
            try:
                result = client.infer(model, [tensor], outputs=outputs, parameters=parameters)
                result.as_numpy("predictions")
                return "OK"
            except InferenceServerException as error:
                return f"HTTP {error.status()}"

        yield call
    finally:
        client.close()


def _worker(target: str, x: np.ndarray, model: str, kinds: list[tuple[Kind, int]], start_at: float, begin: float,
            end: float, out: Any) -> None:
    """One process: one thread per (kind, client number); reports (kind, completed, latencies, failures) at the end."""
    if {"v1", "v2"} <= {kind.protocol for kind, _ in kinds}:
        raise ValueError("one process cannot hold v1 and v2 clients (their protobuf messages clash)")
    results: list[tuple[str, int, list[float], Counter[str]]] = []
    lock = threading.Lock()

    def client_thread(kind: Kind, number: int) -> None:
        latencies: list[float] = []
        failures: Counter[str] = Counter()
        completed = 0
        caller = {"v2": _v2_caller, "rest": _rest_caller}.get(kind.protocol, _v1_caller)
        with caller(kind.target or target, model, kind) as call:
            i = number * 997
            while time.time() < start_at:  # wall clock: the one clock every process shares
                time.sleep(0.001)
            while time.time() <= end:
                rows = x[[(i + j) % len(x) for j in range(kind.rows)]]
                i += kind.rows
                started = time.perf_counter()
                code = call(rows)
                seconds = time.perf_counter() - started
                if begin <= time.time() <= end:
                    if code == "OK":
                        completed += 1
                        latencies.append(seconds)
                    else:
                        failures[code] += 1
        with lock:
            results.append((kind.name, completed, latencies, failures))

    threads = [threading.Thread(target=client_thread, args=(kind, number)) for kind, number in kinds]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    out.put(results)


def run_load(target: str, x: np.ndarray, kinds: list[Kind], *, model: str, warmup: float, duration: float,
             processes: int = 4) -> dict[str, KindReport]:
    """Run the kinds of clients spread over ``processes`` processes; the window is [warm-up end, + duration]."""
    return run_load_probed(target, x, kinds, model=model, warmup=warmup, duration=duration, processes=processes)[0]


def run_load_probed(target: str, x: np.ndarray, kinds: list[Kind], *, model: str, warmup: float, duration: float,
                    processes: int = 4, probe: Callable[[], Any] | None = None) -> tuple[dict[str, KindReport], tuple[Any, Any]]:
    """:func:`run_load`, and ``probe()`` called at the start and at the end of the window (e.g. the
    server's CPU time), from a thread of this process: returns (reports, (probe at start, probe at end))."""
    clients = [(kind, n) for kind in kinds for n in range(kind.clients)]
    shares = [clients[p::processes] for p in range(processes)]
    context = mp.get_context("spawn")  # a clean interpreter: no faiss, no server state
    queue = context.Queue()
    start_at = time.time() + 3.0  # every process connected before the clock starts
    begin = start_at + warmup
    end = begin + duration
    probed: list[Any] = [None, None]

    def probe_window() -> None:
        for slot, at in enumerate((begin, end)):
            time.sleep(max(0.0, at - time.time()))
            probed[slot] = probe() if probe is not None else None

    prober = threading.Thread(target=probe_window, daemon=True)
    prober.start()
    workers = [context.Process(target=_worker, args=(target, x, model, share, start_at, begin, end, queue))
               for share in shares if share]
    for worker in workers:
        worker.start()
    reports: dict[str, KindReport] = {kind.name: KindReport() for kind in kinds}
    for _ in workers:
        for name, completed, latencies, failures in queue.get(timeout=end - time.time() + 300):
            report = reports[name]
            report.completed += completed
            report.latencies.extend(latencies)
            report.failures.update(failures)
    for worker in workers:
        worker.join(60)
    prober.join(10)
    return reports, (probed[0], probed[1])


__all__ = ["Kind", "KindReport", "run_load", "run_load_probed"]
