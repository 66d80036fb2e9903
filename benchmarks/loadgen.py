"""A load generator in processes of its own: several worker processes, each with client threads, each
thread with its own ``knnserve_client.Client`` sending requests back to back.

The clients' CPU is spent in these processes, not in the measuring process, so a server's figures
do not carry the load generator's interpreter lock. Results come back per request kind: completions
inside the measurement window (after a warm-up), their latencies, and failures by status code.

    from loadgen import Kind, run_load
    report = run_load("127.0.0.1:50051", rows, [Kind("normal", 63, {"k": 5}), Kind("large-k", 1, {"k": 60000})],
                      model="fashion", warmup=2, duration=60, processes=4)
"""

from __future__ import annotations

import multiprocessing as mp
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Kind:
    """``clients`` threads sending Classify requests with these options (``method="search"`` for Search)."""

    name: str
    clients: int
    options: dict[str, Any] = field(default_factory=dict)
    method: str = "classify"
    rows: int = 1


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


def _worker(target: str, x: np.ndarray, model: str, kinds: list[tuple[Kind, int]], start_at: float, begin: float,
            end: float, out: Any) -> None:
    """One process: one thread per (kind, client number); reports (kind, completed, latencies, failures) at the end."""
    from knnserve_client import Client, KnnServeClientError
    from knnserve_client.channel import RetryPolicy

    results: list[tuple[str, int, list[float], Counter[str]]] = []
    lock = threading.Lock()

    def client_thread(kind: Kind, number: int) -> None:
        latencies: list[float] = []
        failures: Counter[str] = Counter()
        completed = 0
        with Client(target, timeout=120, retry=RetryPolicy(max_attempts=1)) as client:
            client.limits()
            call = client.search if kind.method == "search" else client.classify
            i = number * 997
            while time.time() < start_at:  # wall clock: the one clock every process shares
                time.sleep(0.001)
            while time.time() <= end:
                rows = x[[(i + j) % len(x) for j in range(kind.rows)]]
                i += kind.rows
                started = time.perf_counter()
                try:
                    call(model, rows, **kind.options)
                    code = "OK"
                except KnnServeClientError as error:
                    code = error.code.name
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
    clients = [(kind, n) for kind in kinds for n in range(kind.clients)]
    shares = [clients[p::processes] for p in range(processes)]
    context = mp.get_context("spawn")  # a clean interpreter: no faiss, no server state
    queue = context.Queue()
    start_at = time.time() + 3.0  # every process connected before the clock starts
    begin = start_at + warmup
    end = begin + duration
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
    return reports


__all__ = ["Kind", "KindReport", "run_load"]
